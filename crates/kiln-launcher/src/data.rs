//! Turning a plan's URIs into paths on this node: code snapshots, data inputs (snapshots,
//! artifact-store paths, downloads) and output folders. On a node where the artifact store is
//! a local folder, paths in it are used as they are: nothing is copied that need not be.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use kiln_blobs::snapshot::{self, Snapshot};
use kiln_blobs::{ArtifactPath, ArtifactStore};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::SystemLog;
use crate::plan::{InputPlan, OutputPlan};

/// A cache entry `<dir>` is complete when `<dir>.ready` exists beside it (outside it, so a
/// job reading the folder sees only the data); an entry without one is rebuilt.
fn ready_marker(dir: &Path) -> PathBuf {
    dir.with_extension("ready")
}

pub(crate) struct Materializer<'a> {
    pub blobs: &'a ArtifactStore,
    pub cache_dir: &'a Path,
    pub job_dir: &'a Path,
    pub log: &'a SystemLog,
}

/// Splits `cas:<id>[/<path>]`.
fn parse_cas(uri: &str) -> Option<(&str, Option<&str>)> {
    let rest = uri.strip_prefix("cas:")?;
    Some(match rest.split_once('/') {
        Some((id, path)) => (id, Some(path)),
        None => (rest, None),
    })
}

impl Materializer<'_> {
    /// Copies a code snapshot into the (empty) working directory: the job may change its own
    /// files without touching the stored snapshot or other jobs.
    pub async fn code_into(&self, uri: &str, wd: &Path) -> Result<usize> {
        let Some((id, None)) = parse_cas(uri) else { bail!("code '{uri}' is not a snapshot (cas:<id>)") };
        let cached = self.snapshot(id).await?;
        let count = tokio::task::spawn_blocking({
            let wd = wd.to_path_buf();
            move || copy_tree(&cached, &wd)
        })
        .await??;
        Ok(count)
    }

    /// A snapshot, materialized once per node under the cache (read-only) and shared.
    async fn snapshot(&self, id: &str) -> Result<PathBuf> {
        let dir = self.cache_dir.join("snapshots").join(id);
        if ready_marker(&dir).exists() {
            return Ok(dir);
        }
        let _lock = lock(&self.cache_dir.join("snapshots").join(format!("{id}.lock"))).await?;
        if ready_marker(&dir).exists() {
            return Ok(dir);
        }
        let manifest_path = snapshot::manifest_path(id)?;
        let Some(bytes) = self.blobs.get_bytes(&manifest_path).await? else {
            bail!("snapshot {id} is not in the store")
        };
        let manifest: Snapshot = serde_json::from_slice(&bytes).context("reading the snapshot manifest")?;
        if dir.exists() {
            tokio::fs::remove_dir_all(&dir).await.ok();
        }
        for f in &manifest.files {
            let dest = dir.join(&f.path);
            let blob = snapshot::blob_path(&f.digest)?;
            if let Some(parent) = dest.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            match self.blobs.local_path(&blob) {
                Some(local) => {
                    tokio::fs::copy(&local, &dest).await.with_context(|| format!("copying {}", f.path))?;
                }
                None => {
                    if !self.blobs.get_file(&blob, &dest).await? {
                        bail!("snapshot {id}: the content of {} is missing from the store", f.path);
                    }
                }
            }
            set_mode(&dest, f.executable, true)?;
        }
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(ready_marker(&dir), b"").await?;
        Ok(dir)
    }

    /// The path (or, in `direct` mode, the URI) a data input is given to the job as.
    pub async fn input(&self, name: &str, plan: &InputPlan) -> Result<String> {
        let (uri, data_type, mode) = match plan {
            InputPlan::Literal { value } => return Ok(value.clone()),
            InputPlan::Data { uri, data_type, mode } => (uri.as_str(), data_type.as_str(), mode.as_str()),
        };
        if mode == "direct" {
            return Ok(uri.to_string());
        }
        let shared: PathBuf = if let Some((id, file)) = parse_cas(uri) {
            let dir = self.snapshot(id).await?;
            match file {
                Some(f) => dir.join(ArtifactPath::parse(f)?.as_str()),
                None => dir,
            }
        } else if let Some(path) = uri.strip_prefix("blob:") {
            let path = ArtifactPath::parse(path)?;
            match self.blobs.local_path(&path) {
                Some(local) => local,
                None => {
                    let dest = self.job_dir.join("inputs").join(name);
                    self.download_blob(&path, &dest, data_type).await?
                }
            }
        } else if uri.starts_with("http://") || uri.starts_with("https://") {
            self.http(uri).await?
        } else {
            bail!("input '{name}': cannot read '{uri}' on this node")
        };
        if !shared.exists() {
            bail!("input '{name}': {} does not exist", shared.display());
        }
        if data_type == "uri_file" && shared.is_dir() {
            bail!("input '{name}' is a uri_file but {uri} is a folder");
        }
        if mode == "download" {
            // The job gets its own copy it may change.
            let dest = self.job_dir.join("inputs").join(name);
            let target = if shared.is_dir() { dest.clone() } else { dest.join(file_name(&shared)) };
            let src = shared.clone();
            let to = target.clone();
            tokio::task::spawn_blocking(move || {
                if src.is_dir() {
                    copy_tree(&src, &to).map(|_| ())
                } else {
                    std::fs::create_dir_all(to.parent().unwrap_or(Path::new("."))).and_then(|_| {
                        std::fs::copy(&src, &to)?;
                        set_mode(&to, false, false)
                    })
                }
            })
            .await??;
            return Ok(target.display().to_string());
        }
        Ok(shared.display().to_string())
    }

    async fn download_blob(&self, path: &ArtifactPath, dest: &Path, data_type: &str) -> Result<PathBuf> {
        let files = self.blobs.list_files(path).await?;
        if files.is_empty() {
            // A single file.
            let target = dest.join(path.file_name());
            if !self.blobs.get_file(path, &target).await? {
                bail!("{} is not in the artifact store", path.as_str());
            }
            return Ok(target);
        }
        if data_type == "uri_file" {
            bail!("{} is a folder, not a file", path.as_str());
        }
        for (rel, _) in files {
            self.blobs.get_file(&path.join(&rel)?, &dest.join(&rel)).await?;
        }
        Ok(dest.to_path_buf())
    }

    /// Downloads a URL once; later uses send its validators (ETag, Last-Modified) and reuse
    /// the cached copy when the server answers 304, or when it cannot be reached.
    async fn http(&self, url: &str) -> Result<PathBuf> {
        let key = hex::encode(Sha256::digest(url.as_bytes()));
        let dir = self.cache_dir.join("http").join(&key);
        let _lock = lock(&self.cache_dir.join("http").join(format!("{key}.lock"))).await?;
        let name =
            url.split(['?', '#']).next().unwrap_or(url).rsplit('/').find(|s| !s.is_empty()).unwrap_or("download");
        let name = if name.contains("://") { "download" } else { name };
        let target = dir.join(name);
        let meta_path = dir.join("validators.json");
        let meta: serde_json::Value = std::fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        let have = target.exists() && meta.is_object();
        let mut req = reqwest::Client::new().get(url);
        if have {
            if let Some(etag) = meta["etag"].as_str() {
                req = req.header("if-none-match", etag);
            }
            if let Some(lm) = meta["last_modified"].as_str() {
                req = req.header("if-modified-since", lm);
            }
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if have => {
                self.log.line(&format!("{url}: unreachable ({e}); using the cached copy"));
                return Ok(target);
            }
            Err(e) => return Err(anyhow!("downloading {url}: {e}")),
        };
        if resp.status() == reqwest::StatusCode::NOT_MODIFIED && have {
            self.log.line(&format!("{url}: not modified; using the cached copy"));
            return Ok(target);
        }
        if !resp.status().is_success() {
            bail!("downloading {url}: HTTP {}", resp.status());
        }
        let header = |h: &str| resp.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
        let validators = serde_json::json!({"etag": header("etag"), "last_modified": header("last-modified")});
        tokio::fs::create_dir_all(&dir).await?;
        let partial = dir.join(".partial");
        let mut out = tokio::fs::File::create(&partial).await?;
        let mut body = resp.bytes_stream();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.with_context(|| format!("downloading {url}"))?;
            size += chunk.len() as u64;
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        drop(out);
        if target.exists() {
            set_mode(&target, false, false).ok();
        }
        tokio::fs::rename(&partial, &target).await?;
        set_mode(&target, false, true)?;
        tokio::fs::write(&meta_path, serde_json::to_vec(&validators)?).await?;
        self.log.line(&format!("{url}: downloaded {size} bytes"));
        Ok(target)
    }

    /// The local path a job writes an output to. On a local store in `rw_mount` mode that is
    /// the output's final place; otherwise a folder of the job's, uploaded when it ends.
    pub fn output(&self, name: &str, plan: &OutputPlan) -> Result<(PathBuf, bool)> {
        let Some(path) = plan.uri.strip_prefix("blob:") else {
            bail!("output '{name}': '{}' is not an artifact-store path", plan.uri)
        };
        let path = ArtifactPath::parse(path)?;
        let (dir, upload) = match (self.blobs.local_path(&path), plan.mode.as_str()) {
            (Some(local), "rw_mount" | "direct") => (local, false),
            _ => (self.job_dir.join("outputs").join(name), true),
        };
        std::fs::create_dir_all(&dir)?;
        // A uri_file output is a file named after the output inside that folder.
        let given = if plan.data_type == "uri_file" { dir.join(name) } else { dir };
        Ok((given, upload))
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into())
}

/// Copies a folder tree (files writable in the copy).
pub(crate) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(to)?;
    let mut count = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            count += copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &dest)?;
            let exec = is_executable(&entry.path());
            set_mode(&dest, exec, false)?;
            count += 1;
        }
    }
    Ok(count)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

fn set_mode(p: &Path, executable: bool, read_only: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match (executable, read_only) {
        (true, true) => 0o555,
        (true, false) => 0o755,
        (false, true) => 0o444,
        (false, false) => 0o644,
    };
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

/// An exclusive lock on a file, held until dropped: one builder per cache entry per node.
pub(crate) async fn lock(path: &Path) -> Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let path = path.to_path_buf();
    Ok(tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        f.lock()?;
        Ok(f)
    })
    .await??)
}
