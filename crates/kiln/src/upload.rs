//! Uploading local folders and files as content-addressed snapshots: only content the server
//! does not have yet is sent, so an unchanged code folder costs one small request.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use kiln_api::{Snapshot, SnapshotFile};
use kiln_client::Client;

/// A folder's files, honouring `.gitignore` and `.amlignore` (and never `.git` itself).
fn list_folder(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let walker = ignore::WalkBuilder::new(dir)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .parents(false)
        .add_custom_ignore_filename(".amlignore")
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    for entry in walker {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let rel = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/");
        out.push((rel, entry.path().to_path_buf()));
    }
    Ok(out)
}

/// Uploads a folder (or one file, named by its file name) and returns its snapshot.
pub async fn snapshot(client: &Client, path: &Path) -> Result<Snapshot> {
    snapshot_under(client, path, None).await
}

/// Uploads a local file or folder and returns the URI a spec names it by: `cas:<id>` for a
/// folder, `cas:<id>/<file name>` for a file.
pub async fn uri(client: &Client, path: &Path) -> Result<String> {
    let snap = snapshot(client, path).await.with_context(|| format!("uploading {}", path.display()))?;
    Ok(if path.is_file() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        format!("{}/{name}", snap.uri)
    } else {
        snap.uri
    })
}

/// Like [`snapshot`], with a folder's files placed under `prefix/` in the snapshot (a model
/// keeps its folder's name).
pub async fn snapshot_under(client: &Client, path: &Path, prefix: Option<&str>) -> Result<Snapshot> {
    let entries = if path.is_dir() {
        let files = list_folder(path)?;
        match prefix {
            Some(p) => files.into_iter().map(|(rel, local)| (format!("{p}/{rel}"), local)).collect(),
            None => files,
        }
    } else if path.is_file() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
        vec![(name, path.to_path_buf())]
    } else {
        bail!("{} does not exist", path.display());
    };
    let hashed = tokio::task::spawn_blocking(move || -> Result<Vec<(SnapshotFile, PathBuf)>> {
        use std::os::unix::fs::PermissionsExt;
        entries
            .into_iter()
            .map(|(rel, local)| {
                let (digest, size) = kiln_blobs::snapshot::digest_file(&local)
                    .with_context(|| format!("reading {}", local.display()))?;
                let executable =
                    std::fs::metadata(&local).map(|m| m.permissions().mode() & 0o111 != 0).unwrap_or(false);
                Ok((SnapshotFile { path: rel, digest, size, executable }, local))
            })
            .collect()
    })
    .await??;
    let mut digests: Vec<String> = hashed.iter().map(|(f, _)| f.digest.clone()).collect();
    digests.sort();
    digests.dedup();
    let mut missing = Vec::new();
    for chunk in digests.chunks(1000) {
        missing.extend(client.missing_blobs(chunk.to_vec()).await?.missing);
    }
    let local_of: std::collections::HashMap<&str, &PathBuf> =
        hashed.iter().map(|(f, p)| (f.digest.as_str(), p)).collect();
    let uploads: Vec<(String, PathBuf)> =
        missing.iter().filter_map(|d| local_of.get(d.as_str()).map(|p| (d.clone(), (*p).clone()))).collect();
    let results: Vec<Result<()>> = futures::stream::iter(uploads)
        .map(|(digest, local)| async move {
            client.put_blob(&digest, &local).await.with_context(|| format!("uploading {}", local.display()))
        })
        .buffer_unordered(4)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(client.create_snapshot(hashed.into_iter().map(|(f, _)| f).collect()).await?)
}
