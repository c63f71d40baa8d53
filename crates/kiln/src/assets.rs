//! `kiln data …`, `kiln model …` and `kiln environment …`: asset specs read from YAML (or flags), local paths
//! uploaded as snapshots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use kiln_api::{DataCreate, EnvironmentCreate, ModelCreate};
use kiln_client::Client;
use kiln_spec::read::{MapReader, Source};

use crate::cli::{DataCreateArgs, EnvironmentCreateArgs, ModelCreateArgs};
use crate::upload;

/// The fields of an asset file, read with file/line/field errors.
struct AssetFile {
    root: kiln_spec::Node,
    source: Source,
    base: PathBuf,
}

impl AssetFile {
    fn load(file: &Path, set: &[String]) -> Result<AssetFile> {
        let label = file.display().to_string();
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {label}"))?;
        let root = kiln_spec::parse_with_overrides(&label, &text, set)?;
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(AssetFile { root, source: Source::new(label), base })
    }

    fn reader(&self) -> Result<MapReader<'_>> {
        let m = MapReader::new(&self.source, &self.root, "")?;
        m.accept(&["$schema"]);
        Ok(m)
    }

    fn finish(&self, m: &MapReader) {
        m.warn_unknown();
        for w in self.source.take_warnings() {
            eprintln!("warning: {w}");
        }
    }
}

/// A local file or folder becomes `cas:<id>` (`cas:<id>/<file>` for a file); anything else
/// (a URL, a datastore path) is passed on as written.
async fn upload_if_local(client: &Client, base: &Path, path: &str) -> Result<String> {
    if path.contains("://") || path.starts_with("cas:") || path.starts_with("azureml:") {
        return Ok(path.to_string());
    }
    let local = base.join(path.strip_prefix("file:").unwrap_or(path));
    if !local.exists() {
        bail!("path: {} does not exist", local.display());
    }
    upload::uri(client, &local).await
}

pub async fn create_data(client: &Client, a: DataCreateArgs) -> Result<kiln_api::DataAsset> {
    let mut req = DataCreate {
        name: String::new(),
        version: None,
        data_type: None,
        path: String::new(),
        description: None,
        tags: BTreeMap::new(),
    };
    let mut base = PathBuf::from(".");
    if let Some(file) = &a.file {
        let f = AssetFile::load(file, &a.set)?;
        let m = f.reader()?;
        req.name = m.req_str("name")?;
        req.version = m.str("version")?;
        req.data_type = m.choice("type", &["uri_file", "uri_folder", "mltable"])?;
        req.path = m.req_str("path")?;
        req.description = m.str("description")?;
        req.tags = m.string_map("tags")?;
        m.accept(&["datastore", "properties"]);
        f.finish(&m);
        base = f.base.clone();
    }
    if let Some(v) = a.name {
        req.name = v;
    }
    if a.version.is_some() {
        req.version = a.version;
    }
    if a.data_type.is_some() {
        req.data_type = a.data_type;
    }
    if let Some(p) = a.path {
        req.path = p;
        base = PathBuf::from(".");
    }
    if a.description.is_some() {
        req.description = a.description;
    }
    if req.name.is_empty() || req.path.is_empty() {
        bail!("data needs a name and a path (-f FILE, or --name and --path)");
    }
    req.path = upload_if_local(client, &base, &req.path).await?;
    Ok(client.create_data(&req).await?)
}

pub async fn create_environment(client: &Client, a: EnvironmentCreateArgs) -> Result<kiln_api::EnvironmentAsset> {
    let mut req = EnvironmentCreate {
        name: String::new(),
        version: None,
        image: None,
        conda_file: None,
        description: None,
        tags: BTreeMap::new(),
    };
    if let Some(file) = &a.file {
        let f = AssetFile::load(file, &a.set)?;
        let m = f.reader()?;
        if let Some(e) = m.entries().iter().find(|e| e.key == "channels" || e.key == "dependencies") {
            return Err(anyhow!(
                "{}:{}: {}: this is a conda file, not an environment spec; name it in an environment's conda_file",
                f.source.file,
                e.key_pos.line,
                e.key
            ));
        }
        req.name = m.req_str("name")?;
        req.version = m.str("version")?;
        req.image = m.str("image")?;
        req.description = m.str("description")?;
        req.tags = m.string_map("tags")?;
        if let Some(node) = m.get("conda_file") {
            req.conda_file = Some(match &node.kind {
                kiln_spec::yaml::Kind::Scalar { text, .. } => {
                    let p = f.base.join(text);
                    std::fs::read_to_string(&p).with_context(|| format!("conda_file: cannot read {}", p.display()))?
                }
                _ => node.to_flow(),
            });
        }
        if m.has("build") {
            eprintln!("warning: {}: build: a Docker build context is not built on local compute", f.source.file);
        }
        m.accept(&["build", "os_type", "inference_config", "datastore", "properties"]);
        f.finish(&m);
    }
    if let Some(v) = a.name {
        req.name = v;
    }
    if a.version.is_some() {
        req.version = a.version;
    }
    if a.image.is_some() {
        req.image = a.image;
    }
    if let Some(p) = a.conda_file {
        req.conda_file = Some(std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?);
    }
    if a.description.is_some() {
        req.description = a.description;
    }
    if req.name.is_empty() {
        bail!("an environment needs a name (-f FILE or --name)");
    }
    Ok(client.create_environment(&req).await?)
}

/// A local file or folder becomes `cas:<id>/<its name>`: the version keeps the name, as
/// `AZUREML_MODEL_DIR/<name>` does in a deployment.
pub(crate) async fn upload_model_path(client: &Client, base: &Path, path: &str) -> Result<String> {
    let is_uri =
        path.contains("://") || ["cas:", "runs:/", "blob:", "mlflow-artifacts:"].iter().any(|p| path.starts_with(p));
    if is_uri {
        return Ok(path.to_string());
    }
    let local = base.join(path.strip_prefix("file:").unwrap_or(path));
    if !local.exists() {
        bail!("path: {} does not exist", local.display());
    }
    let canonical = std::fs::canonicalize(&local).with_context(|| format!("reading {}", local.display()))?;
    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("path: {} has no file or folder name to keep", local.display()))?;
    let snap = upload::snapshot_under(client, &canonical, Some(&name)).await?;
    if snap.files == 0 {
        bail!("path: {} has no files", local.display());
    }
    Ok(format!("{}/{name}", snap.uri))
}

pub async fn create_model(client: &Client, a: ModelCreateArgs) -> Result<kiln_api::ModelAsset> {
    let mut req = ModelCreate {
        name: String::new(),
        version: None,
        model_type: None,
        path: String::new(),
        description: None,
        tags: BTreeMap::new(),
    };
    let mut base = PathBuf::from(".");
    if let Some(file) = &a.file {
        let f = AssetFile::load(file, &a.set)?;
        let m = f.reader()?;
        req.name = m.req_str("name")?;
        req.version = m.str("version")?;
        req.model_type = m.choice("type", &["custom_model", "mlflow_model", "triton_model"])?;
        req.path = m.req_str("path")?;
        req.description = m.str("description")?;
        req.tags = m.string_map("tags")?;
        if m.has("stage") {
            eprintln!(
                "warning: {}: stage: set stages with the MLflow client; the version starts in None",
                f.source.file
            );
        }
        m.accept(&["stage", "properties", "datastore", "flavors", "job_name"]);
        f.finish(&m);
        base = f.base.clone();
    }
    if let Some(v) = a.name {
        req.name = v;
    }
    if a.version.is_some() {
        req.version = a.version;
    }
    if a.model_type.is_some() {
        req.model_type = a.model_type;
    }
    if let Some(p) = a.path {
        req.path = p;
        base = PathBuf::from(".");
    }
    if a.description.is_some() {
        req.description = a.description;
    }
    if req.name.is_empty() || req.path.is_empty() {
        bail!("a model needs a name and a path (-f FILE, or --name and --path)");
    }
    req.path = upload_model_path(client, &base, &req.path).await?;
    Ok(client.create_model(&req).await?)
}
