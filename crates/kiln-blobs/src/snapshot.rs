//! Content-addressed snapshots: code folders and uploaded data, stored once.
//!
//! A file's bytes live at `.kiln/cas/blobs/<sha256>`, whoever uploaded them and under whatever
//! name; a snapshot is a manifest (relative path, digest, size, executable bit per file) whose
//! own id is the SHA-256 of its canonical listing, so the same folder always gets the same id
//! and uploading it again sends nothing.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{ArtifactPath, BlobError, Result};

/// The prefix of everything content-addressed, at the artifact store's root.
pub const CAS_DIR: &str = ".kiln/cas";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// Relative, `/`-separated.
    pub path: String,
    /// Lowercase hex SHA-256 of the content.
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub executable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub files: Vec<SnapshotFile>,
}

impl Snapshot {
    /// Sorts the files and checks every path and digest; a snapshot from a client must pass
    /// this before it is stored.
    pub fn normalized(mut files: Vec<SnapshotFile>) -> Result<Snapshot> {
        for f in &mut files {
            let path = ArtifactPath::parse(&f.path)?;
            if path.is_root() {
                return Err(BlobError::InvalidPath(f.path.clone()));
            }
            f.path = path.as_str().to_string();
            if !is_digest(&f.digest) {
                return Err(BlobError::InvalidPath(format!("{}: '{}' is not a SHA-256 digest", f.path, f.digest)));
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some(w) = files.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(BlobError::InvalidPath(format!("{}: listed twice", w[0].path)));
        }
        Ok(Snapshot { files })
    }

    /// The snapshot's id: SHA-256 over its sorted listing.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        for f in &self.files {
            h.update(f.path.as_bytes());
            h.update([0]);
            h.update(f.digest.as_bytes());
            h.update([0, f.executable as u8, b'\n']);
        }
        hex::encode(h.finalize())
    }
}

pub fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Where a file's bytes are stored.
pub fn blob_path(digest: &str) -> Result<ArtifactPath> {
    if !is_digest(digest) {
        return Err(BlobError::InvalidPath(digest.to_string()));
    }
    ArtifactPath::parse(&format!("{CAS_DIR}/blobs/{}/{digest}", &digest[..2]))
}

/// Where a snapshot's manifest is stored.
pub fn manifest_path(id: &str) -> Result<ArtifactPath> {
    if !is_digest(id) {
        return Err(BlobError::InvalidPath(id.to_string()));
    }
    ArtifactPath::parse(&format!("{CAS_DIR}/snapshots/{id}.json"))
}

/// Hashes bytes as the store addresses them.
pub fn digest_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hashes a file, streaming.
pub fn digest_file(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, fill: char) -> SnapshotFile {
        SnapshotFile { path: path.into(), digest: fill.to_string().repeat(64), size: 1, executable: false }
    }

    #[test]
    fn the_id_ignores_listing_order_and_names_the_content() {
        let a = Snapshot::normalized(vec![file("b.py", 'b'), file("a/x.py", 'a')]).unwrap();
        let b = Snapshot::normalized(vec![file("a/x.py", 'a'), file("b.py", 'b')]).unwrap();
        assert_eq!(a.id(), b.id());
        let c = Snapshot::normalized(vec![file("a/x.py", 'a'), file("b.py", 'c')]).unwrap();
        assert_ne!(a.id(), c.id());
    }

    #[test]
    fn bad_listings_are_refused() {
        assert!(Snapshot::normalized(vec![file("../x", 'a')]).is_err());
        assert!(Snapshot::normalized(vec![file("x", 'a'), file("./x", 'b')]).is_err());
        assert!(Snapshot::normalized(vec![SnapshotFile { digest: "zz".into(), ..file("x", 'a') }]).is_err());
    }
}
