//! Kiln's artifact storage: files addressed by a relative path, kept in a local folder or in
//! S3-compatible storage through the `object_store` crate.
//!
//! Uploads are streamed: small bodies are written in one request, large ones switch to a
//! multipart upload after the first few megabytes, so memory stays bounded whatever the size.
//! Every path goes through [`ArtifactPath::parse`], which refuses anything that could escape
//! the store (`..`, absolute paths, and their percent-encoded spellings).

pub mod snapshot;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

/// Bodies up to this size are written with one PUT; larger ones go multipart.
const SINGLE_PUT_LIMIT: usize = 8 * 1024 * 1024;

/// Folder (at the store's root) holding the parts of client multipart uploads until they are
/// completed; hidden from listings.
pub const STAGING_DIR: &str = ".kiln-staging";

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("Invalid path")]
    InvalidPath(String),
    #[error("unsupported artifact store URL '{0}': use a folder, file://PATH or s3://BUCKET/PREFIX")]
    UnsupportedUrl(String),
    #[error("artifact storage error: {0}")]
    Storage(#[from] object_store::Error),
    #[error("artifact storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("upload body failed: {0}")]
    Body(String),
}

pub type Result<T, E = BlobError> = std::result::Result<T, E>;

/// A validated, normalized relative path inside the artifact store (no leading or trailing
/// slash; empty means the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPath(String);

impl ArtifactPath {
    /// Checks a client-supplied path. Percent-encodings are decoded (repeatedly) before the
    /// checks so `%2e%2e` is caught like `..`.
    pub fn parse(raw: &str) -> Result<ArtifactPath> {
        let invalid = || BlobError::InvalidPath(raw.to_string());
        let mut decoded = raw.to_string();
        for _ in 0..3 {
            let next =
                percent_encoding::percent_decode_str(&decoded).decode_utf8().map_err(|_| invalid())?.into_owned();
            if next == decoded {
                break;
            }
            decoded = next;
        }
        if decoded.starts_with('/') || decoded.starts_with('\\') || decoded.contains('\\') || decoded.contains('\0') {
            return Err(invalid());
        }
        // Windows drive paths such as C:/x.
        let bytes = decoded.as_bytes();
        if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
            return Err(invalid());
        }
        let trimmed = decoded.trim_end_matches('/');
        let mut segments = Vec::new();
        for segment in trimmed.split('/') {
            match segment {
                "" if trimmed.is_empty() => {}
                "" | "." => {}
                ".." => return Err(invalid()),
                s => segments.push(s),
            }
        }
        Ok(ArtifactPath(segments.join("/")))
    }

    /// Joins a relative path below this one; the child is validated too.
    pub fn join(&self, child: &str) -> Result<ArtifactPath> {
        let child = ArtifactPath::parse(child)?;
        Ok(match (self.0.is_empty(), child.0.is_empty()) {
            (true, _) => child,
            (_, true) => self.clone(),
            _ => ArtifactPath(format!("{}/{}", self.0, child.0)),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactEntry {
    /// The entry's name relative to the listed directory.
    pub name: String,
    pub is_dir: bool,
    /// File size in bytes; `None` for directories.
    pub size: Option<u64>,
}

/// A file being read: its size and its bytes as a stream.
pub struct ArtifactRead {
    pub size: u64,
    pub stream: BoxStream<'static, Result<Bytes>>,
}

/// The artifact store.
#[derive(Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    root: Path,
    description: String,
    /// The folder behind a local store: jobs on this machine read and write it directly.
    local_dir: Option<PathBuf>,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl ArtifactStore {
    /// Opens the store at `location`: a folder path, `file://PATH`, or `s3://BUCKET[/PREFIX]`.
    /// S3 settings come from the usual `AWS_*` environment variables; `AWS_ENDPOINT_URL`
    /// points at an S3-compatible server.
    pub fn open(location: &str) -> Result<ArtifactStore> {
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(BlobError::UnsupportedUrl(location.to_string()));
            }
            let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
            let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
            if let Some(endpoint) = endpoint {
                if endpoint.starts_with("http://") {
                    builder = builder.with_allow_http(true);
                }
                // S3-compatible servers are addressed by path, not by virtual host.
                builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
            }
            if std::env::var("AWS_DEFAULT_REGION").is_err() && std::env::var("AWS_REGION").is_err() {
                builder = builder.with_region("us-east-1");
            }
            let store = builder.build()?;
            return Ok(ArtifactStore {
                store: Arc::new(store),
                root: Path::from(prefix.trim_matches('/')),
                description: location.to_string(),
                local_dir: None,
            });
        }
        let dir = location.strip_prefix("file://").unwrap_or(location);
        if dir.contains("://") {
            return Err(BlobError::UnsupportedUrl(location.to_string()));
        }
        std::fs::create_dir_all(dir)?;
        let local_dir = std::fs::canonicalize(dir)?;
        let store = LocalFileSystem::new_with_prefix(&local_dir)?;
        Ok(ArtifactStore {
            store: Arc::new(store),
            root: Path::default(),
            description: location.to_string(),
            local_dir: Some(local_dir),
        })
    }

    /// Where `path` lives on this machine's disk, for a store that is a local folder.
    pub fn local_path(&self, path: &ArtifactPath) -> Option<PathBuf> {
        let mut p = self.local_dir.clone()?;
        p.extend(path.as_str().split('/').filter(|s| !s.is_empty()));
        Some(p)
    }

    /// Uploads a local file to `path`, streaming.
    pub async fn put_file(&self, path: &ArtifactPath, file: &std::path::Path) -> Result<u64> {
        let f = tokio::fs::File::open(file).await?;
        let body = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024);
        self.put_stream(path, body).await
    }

    /// Uploads every file under a local folder to the folder `path`; returns the file count.
    pub async fn put_dir(&self, path: &ArtifactPath, dir: &std::path::Path) -> Result<u64> {
        let mut count = 0;
        let mut pending = vec![(dir.to_path_buf(), String::new())];
        while let Some((local, rel)) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&local).await {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            while let Some(entry) = entries.next_entry().await? {
                let name = entry.file_name().to_string_lossy().into_owned();
                let child_rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
                let kind = entry.file_type().await?;
                if kind.is_dir() {
                    pending.push((entry.path(), child_rel));
                } else if kind.is_file() {
                    self.put_file(&path.join(&child_rel)?, &entry.path()).await?;
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    /// Downloads the file at `path` into `dest` (written whole, then renamed into place).
    /// Returns false when there is no such file.
    pub async fn get_file(&self, path: &ArtifactPath, dest: &std::path::Path) -> Result<bool> {
        use tokio::io::AsyncWriteExt;
        let Some(mut read) = self.get(path).await? else {
            return Ok(false);
        };
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let partial = dest.with_extension("kiln-partial");
        let mut out = tokio::fs::File::create(&partial).await?;
        while let Some(chunk) = read.stream.next().await {
            out.write_all(&chunk?).await?;
        }
        out.flush().await?;
        drop(out);
        tokio::fs::rename(&partial, dest).await?;
        Ok(true)
    }

    /// Every file below `path` (recursively) with its path relative to `path` and its size.
    pub async fn list_files(&self, path: &ArtifactPath) -> Result<Vec<(String, u64)>> {
        let key = self.key(path);
        let prefix = if key.as_ref().is_empty() { None } else { Some(&key) };
        let metas: Vec<object_store::ObjectMeta> = match self.store.list(prefix).try_collect().await {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let base: Vec<_> = key.parts().collect();
        let mut files: Vec<(String, u64)> = metas
            .into_iter()
            .filter_map(|m| {
                let parts: Vec<_> = m.location.parts().collect();
                let rel = parts.get(base.len()..)?;
                (!rel.is_empty()).then(|| (rel.iter().map(|p| p.as_ref()).collect::<Vec<_>>().join("/"), m.size))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    fn key(&self, path: &ArtifactPath) -> Path {
        let mut key = self.root.clone();
        for segment in path.0.split('/').filter(|s| !s.is_empty()) {
            key = key.join(segment);
        }
        key
    }

    /// Writes a file from a stream of chunks, replacing any earlier file, and returns its size.
    pub async fn put_stream<S, E>(&self, path: &ArtifactPath, body: S) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        if path.is_root() {
            return Err(BlobError::InvalidPath(String::new()));
        }
        let key = self.key(path);
        let mut body = std::pin::pin!(body);
        let mut head = BytesMut::new();
        let mut total = 0u64;
        // Buffer the beginning; most artifacts are small and need one request only.
        while head.len() < SINGLE_PUT_LIMIT {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(|e| BlobError::Body(e.to_string()))?;
                    total += chunk.len() as u64;
                    head.extend_from_slice(&chunk);
                }
                None => {
                    self.store.put(&key, PutPayload::from(head.freeze())).await?;
                    return Ok(total);
                }
            }
        }
        let upload = self.store.put_multipart(&key).await?;
        let mut writer = WriteMultipart::new(upload);
        writer.write(&head);
        drop(head);
        let result: Result<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| BlobError::Body(e.to_string()))?;
                total += chunk.len() as u64;
                writer.wait_for_capacity(4).await?;
                writer.write(&chunk);
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                writer.finish().await?;
                Ok(total)
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Writes a whole file from memory.
    pub async fn put_bytes(&self, path: &ArtifactPath, bytes: Bytes) -> Result<()> {
        self.store.put(&self.key(path), PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Opens a file for reading; `None` when there is no file at `path`.
    pub async fn get(&self, path: &ArtifactPath) -> Result<Option<ArtifactRead>> {
        if path.is_root() {
            return Ok(None);
        }
        match self.store.get(&self.key(path)).await {
            Ok(result) => {
                let size = result.meta.size;
                let stream = result.into_stream().map_err(BlobError::from).boxed();
                Ok(Some(ArtifactRead { size, stream }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            // A directory on the local file system reads as an I/O error, not "not found".
            Err(object_store::Error::Generic { .. }) if self.is_dir(path).await? => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a (small) file whole.
    pub async fn get_bytes(&self, path: &ArtifactPath) -> Result<Option<Bytes>> {
        let Some(read) = self.get(path).await? else { return Ok(None) };
        let chunks: Vec<Bytes> = read.stream.try_collect().await?;
        Ok(Some(chunks.concat().into()))
    }

    /// Size of the file at `path`, if there is one.
    pub async fn size(&self, path: &ArtifactPath) -> Result<Option<u64>> {
        if path.is_root() {
            return Ok(None);
        }
        match self.store.head(&self.key(path)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(object_store::Error::Generic { .. }) if self.is_dir(path).await? => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads bytes `range` (end exclusive) of a file; `None` when there is no file.
    pub async fn get_range(&self, path: &ArtifactPath, range: std::ops::Range<u64>) -> Result<Option<ArtifactRead>> {
        let options = object_store::GetOptions { range: Some(range.into()), ..Default::default() };
        match self.store.get_opts(&self.key(path), options).await {
            Ok(result) => {
                let size = result.range.end - result.range.start;
                Ok(Some(ArtifactRead { size, stream: result.into_stream().map_err(BlobError::from).boxed() }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `dest` as the concatenation of `parts`, streaming, and returns its size.
    pub async fn concat(&self, dest: &ArtifactPath, parts: &[ArtifactPath]) -> Result<u64> {
        type Current = Option<BoxStream<'static, Result<Bytes>>>;
        // The stream must own its list: it outlives this borrow of `parts`.
        let owned: Vec<ArtifactPath> = parts.to_vec();
        let state: (ArtifactStore, std::vec::IntoIter<ArtifactPath>, Current) = (self.clone(), owned.into_iter(), None);
        let body = futures::stream::unfold(state, |(store, mut parts, mut current)| async move {
            loop {
                if let Some(stream) = current.as_mut() {
                    match stream.next().await {
                        Some(Ok(bytes)) => return Some((Ok(bytes), (store, parts, current))),
                        Some(Err(e)) => return Some((Err(e.to_string()), (store, Vec::new().into_iter(), None))),
                        None => {} // this part is done; the next one replaces it below
                    }
                }
                let part = parts.next()?;
                match store.get(&part).await {
                    Ok(Some(read)) => current = Some(read.stream),
                    Ok(None) => {
                        let e = format!("part {} is missing", part.as_str());
                        return Some((Err(e), (store, Vec::new().into_iter(), None)));
                    }
                    Err(e) => return Some((Err(e.to_string()), (store, Vec::new().into_iter(), None))),
                }
            }
        });
        self.put_stream(dest, body).await
    }

    async fn is_dir(&self, path: &ArtifactPath) -> Result<bool> {
        let listing = self.store.list_with_delimiter(Some(&self.key(path))).await?;
        Ok(!listing.objects.is_empty() || !listing.common_prefixes.is_empty())
    }

    /// Lists one level below `path`; empty when `path` is a file or does not exist.
    pub async fn list_dir(&self, path: &ArtifactPath) -> Result<Vec<ArtifactEntry>> {
        let key = self.key(path);
        let prefix = if key.as_ref().is_empty() { None } else { Some(&key) };
        let listing = match self.store.list_with_delimiter(prefix).await {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut entries: Vec<ArtifactEntry> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(|n| ArtifactEntry { name: n.to_string(), is_dir: true, size: None }))
            .chain(listing.objects.iter().filter_map(|o| {
                o.location.filename().map(|n| ArtifactEntry { name: n.to_string(), is_dir: false, size: Some(o.size) })
            }))
            .collect();
        if path.is_root() {
            entries.retain(|e| e.name != STAGING_DIR);
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Copies one file inside the store (a server-side copy on S3, a hard link or copy on a
    /// local folder), replacing what is at `to`.
    pub async fn copy(&self, from: &ArtifactPath, to: &ArtifactPath) -> Result<()> {
        Ok(self.store.copy(&self.key(from), &self.key(to)).await?)
    }

    /// Deletes a file or a whole folder.
    pub async fn delete(&self, path: &ArtifactPath) -> Result<()> {
        let key = self.key(path);
        let nested: Vec<Path> = self.store.list(Some(&key)).map_ok(|m| m.location).try_collect().await?;
        for location in nested {
            self.store.delete(&location).await?;
        }
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) if path.is_root() => Err(e.into()),
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_escape_are_refused() {
        for bad in ["../x", "a/../../b", "/etc/passwd", "%2e%2e/x", "a/%2E%2E/b", "%252e%252e/x", "C:/x", "a\\..\\b"] {
            assert!(ArtifactPath::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn ordinary_paths_are_normalized() {
        assert_eq!(ArtifactPath::parse("a/b/c.txt").unwrap().as_str(), "a/b/c.txt");
        assert_eq!(ArtifactPath::parse("a/./b/").unwrap().as_str(), "a/b");
        assert_eq!(ArtifactPath::parse("").unwrap().as_str(), "");
        assert_eq!(
            ArtifactPath::parse("0/abc/artifacts").unwrap().join("x/y").unwrap().as_str(),
            "0/abc/artifacts/x/y"
        );
    }

    #[tokio::test]
    async fn round_trip_small_and_large_files_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path().to_str().unwrap()).unwrap();
        let small = ArtifactPath::parse("1/run/artifacts/a.txt").unwrap();
        let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(b"hello"))]);
        assert_eq!(store.put_stream(&small, body).await.unwrap(), 5);
        // 20 MiB in 1 MiB chunks goes through the multipart path.
        let big = ArtifactPath::parse("1/run/artifacts/sub/big.bin").unwrap();
        let chunks: Vec<std::result::Result<Bytes, std::io::Error>> =
            (0..20u8).map(|i| Ok(Bytes::from(vec![i; 1 << 20]))).collect();
        assert_eq!(store.put_stream(&big, futures::stream::iter(chunks)).await.unwrap(), 20 << 20);
        let read = store.get(&big).await.unwrap().unwrap();
        assert_eq!(read.size, 20 << 20);
        let data: Vec<Bytes> = read.stream.try_collect().await.unwrap();
        let data: Vec<u8> = data.concat();
        assert_eq!(data.len(), 20 << 20);
        assert!(data[..1 << 20].iter().all(|b| *b == 0) && data[19 << 20..].iter().all(|b| *b == 19));
        let listing = store.list_dir(&ArtifactPath::parse("1/run/artifacts").unwrap()).await.unwrap();
        assert_eq!(
            listing,
            vec![
                ArtifactEntry { name: "a.txt".into(), is_dir: false, size: Some(5) },
                ArtifactEntry { name: "sub".into(), is_dir: true, size: None },
            ]
        );
        assert!(store.list_dir(&small).await.unwrap().is_empty());
        assert!(store.get(&ArtifactPath::parse("1/run/artifacts/sub").unwrap()).await.unwrap().is_none());
        assert!(store.get(&ArtifactPath::parse("1/nope").unwrap()).await.unwrap().is_none());
        let part = store.get_range(&big, (1 << 20) - 2..(1 << 20) + 2).await.unwrap().unwrap();
        let part: Vec<Bytes> = part.stream.try_collect().await.unwrap();
        assert_eq!(part.concat(), vec![0, 0, 1, 1]);
        assert_eq!(store.size(&big).await.unwrap(), Some(20 << 20));
        let joined = ArtifactPath::parse("1/run/artifacts/joined").unwrap();
        assert_eq!(store.concat(&joined, &[small.clone(), small.clone()]).await.unwrap(), 10);
        store.delete(&ArtifactPath::parse("1/run").unwrap()).await.unwrap();
        assert!(store.get(&small).await.unwrap().is_none());
    }
}
