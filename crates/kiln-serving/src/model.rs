//! The files of a deployment's model and the runtime they call for.
//!
//! A model is a registered version (its files in the artifact store) or an inline
//! `{path: …}` that the CLI uploaded as a snapshot (`cas:<id>/<name>`). Either way it is a
//! list of files under a root whose name is kept: `AZUREML_MODEL_DIR/<name>` in the original
//! service, and what a scoring script joins its paths to.

use kiln_blobs::snapshot::{Snapshot, blob_path, manifest_path};
use kiln_blobs::{ArtifactPath, ArtifactStore};
use kiln_orchestrator::EnvironmentDefinition;
use kiln_tracking::ServiceError;
use serde::{Deserialize, Serialize};

type Result<T> = std::result::Result<T, ServiceError>;

/// One file of a model: its path under the model's root, and where its bytes are.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    pub path: String,
    pub stored: ArtifactPath,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelFiles {
    /// The root's own name (the uploaded file or folder name).
    pub root_name: String,
    /// Whether the root is a single file (then `files` holds it, with `path` = `root_name`).
    pub is_file: bool,
    pub files: Vec<ModelFile>,
}

fn internal(e: kiln_blobs::BlobError) -> ServiceError {
    ServiceError::internal(e.to_string())
}

/// Lists a model's files from its URI: `blob:<path>` (a file or a folder of the artifact
/// store) or `cas:<snapshot>/<sub path>`.
pub async fn model_files(blobs: &ArtifactStore, uri: &str) -> Result<ModelFiles> {
    if let Some(p) = uri.strip_prefix("blob:") {
        let path = ArtifactPath::parse(p).map_err(|e| ServiceError::invalid(format!("model: {e}")))?;
        let root_name = path.file_name().to_string();
        if blobs.size(&path).await.map_err(internal)?.is_some() {
            return Ok(ModelFiles {
                root_name: root_name.clone(),
                is_file: true,
                files: vec![ModelFile { path: root_name, stored: path }],
            });
        }
        let mut files = Vec::new();
        for (rel, _) in blobs.list_files(&path).await.map_err(internal)? {
            let stored = path.join(&rel).map_err(internal)?;
            files.push(ModelFile { path: rel, stored });
        }
        if files.is_empty() {
            return Err(ServiceError::invalid(format!("model: there are no files at {}", path.as_str())));
        }
        return Ok(ModelFiles { root_name, is_file: false, files });
    }
    if let Some(rest) = uri.strip_prefix("cas:") {
        let (id, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let sub = sub.trim_matches('/');
        let manifest = manifest_path(id).map_err(|e| ServiceError::invalid(format!("model: {e}")))?;
        let bytes = blobs
            .get_bytes(&manifest)
            .await
            .map_err(internal)?
            .ok_or_else(|| ServiceError::invalid(format!("model: snapshot {id} was never uploaded")))?;
        let snapshot: Snapshot = serde_json::from_slice(&bytes)
            .map_err(|e| ServiceError::internal(format!("snapshot {id} cannot be read: {e}")))?;
        let root_name = sub.rsplit('/').next().unwrap_or("").to_string();
        let mut files = Vec::new();
        let mut is_file = false;
        for f in &snapshot.files {
            let rel = if sub.is_empty() {
                f.path.clone()
            } else if f.path == sub {
                is_file = true;
                root_name.clone()
            } else if let Some(r) = f.path.strip_prefix(sub).and_then(|r| r.strip_prefix('/')) {
                r.to_string()
            } else {
                continue;
            };
            let stored = blob_path(&f.digest).map_err(internal)?;
            files.push(ModelFile { path: rel, stored });
        }
        if files.is_empty() {
            return Err(ServiceError::invalid(format!("model: the snapshot has no '{sub}'")));
        }
        return Ok(ModelFiles { root_name, is_file, files });
    }
    Err(ServiceError::invalid(format!("model: '{uri}' is neither an artifact-store path nor an uploaded snapshot")))
}

/// How a deployment's requests are answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuntimeKind {
    /// In the server's process with tract; `file` is the `.onnx` under the model's root.
    Onnx { file: String },
    /// An MLflow model with a `python_function` flavor, in Python workers.
    MlflowPyfunc,
    /// The deployment's scoring script (`init()`, `run(raw_data)`), in Python workers.
    ScoringScript,
}

impl RuntimeKind {
    pub fn label(&self) -> &'static str {
        match self {
            RuntimeKind::Onnx { .. } => "onnx",
            RuntimeKind::MlflowPyfunc => "mlflow",
            RuntimeKind::ScoringScript => "scoring_script",
        }
    }
}

/// The flavors an `MLmodel` file declares, and the `onnx` flavor's model file.
pub fn mlmodel_flavors(text: &str) -> std::result::Result<(Vec<String>, Option<String>), String> {
    let root = match kiln_spec::yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => return Err("the MLmodel file is empty".into()),
        Err(e) => return Err(format!("the MLmodel file is not YAML: line {}: {}", e.pos.line, e.message)),
    };
    let flavors = root.get("flavors").and_then(|f| f.entries()).unwrap_or_default();
    let names = flavors.iter().map(|e| e.key.clone()).collect();
    let onnx = flavors.iter().find(|e| e.key == "onnx").and_then(|e| {
        let data = e.value.get("data")?;
        match &data.kind {
            kiln_spec::yaml::Kind::Scalar { text, .. } => Some(text.clone()),
            _ => None,
        }
    });
    Ok((names, onnx))
}

/// Picks the runtime: a scoring script when the deployment has one; else an ONNX model
/// (one `.onnx` file, or an MLflow model with the `onnx` flavor) natively; else an MLflow
/// model through its `python_function` flavor.
pub async fn runtime_for(blobs: &ArtifactStore, files: &ModelFiles, has_script: bool) -> Result<RuntimeKind> {
    if has_script {
        return Ok(RuntimeKind::ScoringScript);
    }
    if let Some(mlmodel) = files.files.iter().find(|f| f.path == "MLmodel") {
        let bytes = blobs
            .get_bytes(&mlmodel.stored)
            .await
            .map_err(internal)?
            .ok_or_else(|| ServiceError::internal("the MLmodel file vanished"))?;
        let text = String::from_utf8_lossy(&bytes);
        let (flavors, onnx) = mlmodel_flavors(&text).map_err(|e| ServiceError::invalid(format!("model: {e}")))?;
        if let Some(file) = onnx
            && files.files.iter().any(|f| f.path == file)
        {
            return Ok(RuntimeKind::Onnx { file });
        }
        if flavors.iter().any(|f| f == "python_function") {
            return Ok(RuntimeKind::MlflowPyfunc);
        }
        return Err(ServiceError::invalid(format!(
            "model: this MLflow model has no python_function or onnx flavor (it has {}); give the deployment a \
             scoring script (code_configuration)",
            if flavors.is_empty() { "none".to_string() } else { flavors.join(", ") }
        )));
    }
    let onnx: Vec<&ModelFile> = files.files.iter().filter(|f| f.path.to_ascii_lowercase().ends_with(".onnx")).collect();
    match onnx.as_slice() {
        [one] => Ok(RuntimeKind::Onnx { file: one.path.clone() }),
        [] => Err(ServiceError::invalid(
            "model: Kiln serves ONNX models (a .onnx file) and MLflow models (a folder with an MLmodel file) on \
             their own; for any other model give the deployment a scoring script (code_configuration)",
        )),
        many => Err(ServiceError::invalid(format!(
            "model: the model has {} .onnx files ({}); deploy one of them, or give a scoring script",
            many.len(),
            many.iter().map(|f| f.path.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

async fn read_text(blobs: &ArtifactStore, files: &ModelFiles, name: &str) -> Result<Option<String>> {
    let Some(f) = files.files.iter().find(|f| f.path == name) else { return Ok(None) };
    let bytes = blobs.get_bytes(&f.stored).await.map_err(internal)?;
    Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// `3.11.7` → `3.11`: the environment is built with a Python of that minor version.
fn minor_version(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The environment an MLflow model asks for: `requirements.txt` with the Python version of
/// `python_env.yaml` (what `mlflow models serve --env-manager virtualenv` installs), else its
/// `conda.yaml`, else the host's Python.
pub async fn mlflow_environment(blobs: &ArtifactStore, files: &ModelFiles) -> Result<EnvironmentDefinition> {
    if let Some(reqs) = read_text(blobs, files, "requirements.txt").await? {
        let packages = reqs
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('-'))
            .map(str::to_string)
            .collect();
        let python = match read_text(blobs, files, "python_env.yaml").await? {
            Some(text) => match kiln_spec::yaml::parse(&text) {
                Ok(Some(root)) => root.get("python").and_then(|p| match &p.kind {
                    kiln_spec::yaml::Kind::Scalar { text, .. } => Some(minor_version(text)),
                    _ => None,
                }),
                _ => None,
            },
            None => None,
        };
        return Ok(EnvironmentDefinition {
            image: None,
            requirements: Some(packages),
            python,
            conda_file: None,
            notes: Vec::new(),
        });
    }
    if let Some(text) = read_text(blobs, files, "conda.yaml").await? {
        let root = match kiln_spec::yaml::parse(&text) {
            Ok(Some(root)) => root,
            _ => return Err(ServiceError::invalid("model: its conda.yaml cannot be read")),
        };
        let req = kiln_spec::conda::python_requirements(&root)
            .map_err(|e| ServiceError::invalid(format!("model: conda.yaml: {e}")))?;
        return Ok(EnvironmentDefinition::from_parts(None, Some((&root, req))));
    }
    Ok(EnvironmentDefinition::from_parts(None, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlmodel_flavors_are_read() {
        let text = "artifact_path: model\nflavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.17.0\n  python_function:\n    loader_module: mlflow.onnx\n";
        let (names, onnx) = mlmodel_flavors(text).unwrap();
        assert_eq!(names, ["onnx", "python_function"]);
        assert_eq!(onnx.as_deref(), Some("model.onnx"));
        let (names, onnx) = mlmodel_flavors("flavors:\n  sklearn: {pickled_model: model.pkl}\n").unwrap();
        assert_eq!((names, onnx), (vec!["sklearn".to_string()], None));
        assert!(mlmodel_flavors("a: [").is_err());
    }
}
