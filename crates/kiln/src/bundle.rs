//! Turning a pipeline spec and the component files it names into one self-contained spec:
//! every `component: ./x.yml` is replaced by the component written inline, and every local
//! path in it (code, data inputs, conda files) by what was uploaded (`cas:` snapshots, the
//! conda file's content). The server reads the result with the same checks as the files.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use anyhow::{Result, anyhow, bail};
use kiln_client::Client;
use kiln_spec::yaml::Kind;
use kiln_spec::{Node, Pos};

use crate::upload;

/// Components nest at most this deep (a component that names itself would never end).
const MAX_DEPTH: usize = 16;

/// A quoted scalar written by Kiln (no position in the file).
pub(crate) fn text(value: &str) -> Node {
    Node::scalar(value, false, Pos::default())
}

pub(crate) fn scalar(node: &Node) -> Option<&str> {
    match &node.kind {
        Kind::Scalar { text, .. } if !node.is_null() => Some(text.as_str()),
        _ => None,
    }
}

pub(crate) fn entry_mut<'n>(node: &'n mut Node, key: &str) -> Option<&'n mut Node> {
    match &mut node.kind {
        Kind::Map(entries) => entries.iter_mut().find(|e| e.key == key).map(|e| &mut e.value),
        _ => None,
    }
}

/// A path in a spec that names something on this machine (not a URL, a `cas:` snapshot, an
/// `azureml:` reference, a binding or a `name:version` asset).
pub(crate) fn local_path(base: &Path, written: &str) -> Option<PathBuf> {
    if written.contains("://")
        || written.contains("${{")
        || written.starts_with("azureml:")
        || written.starts_with("cas:")
        || written.starts_with("runs:/")
    {
        return None;
    }
    let rel = written.strip_prefix("file:").unwrap_or(written);
    let path = base.join(rel);
    // `iris:1` / `iris@latest` are assets unless such a file exists.
    if (rel.contains(':') || rel.contains('@')) && !path.exists() {
        return None;
    }
    Some(path)
}

pub struct Bundler<'c> {
    pub client: &'c Client,
}

impl Bundler<'_> {
    /// Data inputs with local paths (`inputs.<k>.path`) become uploads.
    pub async fn inputs(&self, node: &mut Node, base: &Path, label: &str, field: &str) -> Result<()> {
        let Some(Node { kind: Kind::Map(entries), .. }) = entry_mut(node, "inputs") else { return Ok(()) };
        for e in entries.iter_mut() {
            let direct = e.value.get("mode").and_then(scalar) == Some("direct");
            let uri_file = e.value.get("type").and_then(scalar) == Some("uri_file");
            let Some(path_node) = entry_mut(&mut e.value, "path") else { continue };
            let Some(written) = scalar(path_node).map(str::to_string) else { continue };
            if direct {
                continue;
            }
            let Some(path) = local_path(base, &written) else { continue };
            let p = path_node.pos;
            if !path.exists() {
                bail!("{label}:{}:{}: {field}inputs.{}.path: {} does not exist", p.line, p.col, e.key, path.display());
            }
            if uri_file && !path.is_file() {
                bail!(
                    "{label}:{}:{}: {field}inputs.{}.path: {} is not a file (type uri_file)",
                    p.line,
                    p.col,
                    e.key,
                    path.display()
                );
            }
            *path_node = text(&upload::uri(self.client, &path).await?);
        }
        Ok(())
    }

    /// A command's `code:`, data inputs and `environment.conda_file`.
    pub async fn command(&self, node: &mut Node, base: &Path, label: &str, field: &str) -> Result<()> {
        if let Some(code) = entry_mut(node, "code")
            && let Some(written) = scalar(code).map(str::to_string)
            && let Some(dir) = local_path(base, &written)
        {
            if !dir.exists() {
                let p = code.pos;
                bail!("{label}:{}:{}: {field}code: {} does not exist", p.line, p.col, dir.display());
            }
            *code = text(&upload::uri(self.client, &dir).await?);
        }
        self.inputs(node, base, label, field).await?;
        Self::environment(node, base, label, field)
    }

    /// An inline environment's `conda_file` path becomes the conda spec written inline.
    pub fn environment(node: &mut Node, base: &Path, label: &str, field: &str) -> Result<()> {
        if let Some(env) = entry_mut(node, "environment")
            && let Some(conda) = entry_mut(env, "conda_file")
            && let Some(written) = scalar(conda).map(str::to_string)
        {
            let path = base.join(written.strip_prefix("file:").unwrap_or(&written));
            let conda_label = path.display().to_string();
            let p = conda.pos;
            let conda_text = std::fs::read_to_string(&path).map_err(|e| {
                anyhow!("{label}:{}:{}: {field}environment.conda_file: cannot read {conda_label}: {e}", p.line, p.col)
            })?;
            let parsed = match kiln_spec::yaml::parse(&conda_text) {
                Ok(Some(n)) => n,
                Ok(None) => bail!("{conda_label}: the conda file is empty"),
                Err(e) => bail!("{conda_label}:{}:{}: invalid YAML: {}", e.pos.line, e.pos.col, e.message),
            };
            if let Err(e) = kiln_spec::conda::python_requirements(&parsed) {
                bail!("{conda_label}: {e}");
            }
            *conda = parsed;
        }
        Ok(())
    }

    /// A pipeline job or pipeline component: its data inputs and every step.
    pub fn pipeline<'a>(
        &'a self,
        node: &'a mut Node,
        base: PathBuf,
        label: String,
        depth: usize,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + 'a>> {
        Box::pin(async move {
            if depth > MAX_DEPTH {
                bail!("{label}: components nest more than {MAX_DEPTH} deep (does a component use itself?)");
            }
            self.inputs(node, &base, &label, "").await?;
            let Some(Node { kind: Kind::Map(steps), .. }) = entry_mut(node, "jobs") else { return Ok(()) };
            for step in steps.iter_mut() {
                let field = format!("jobs.{}.", step.key);
                // A sweep node names its trial component under `trial`.
                let key = if kiln_spec::job_type(&step.value) == "sweep" { "trial" } else { "component" };
                if step.value.get(key).is_none() {
                    // An inline command step.
                    self.command(&mut step.value, &base, &label, &field).await?;
                    continue;
                }
                self.inputs(&mut step.value, &base, &label, &field).await?;
                let Some(component) = entry_mut(&mut step.value, key) else { continue };
                match scalar(component).map(str::to_string) {
                    Some(written) => {
                        let is_file = written.starts_with("file:")
                            || (!written.starts_with("azureml:")
                                && (written.ends_with(".yml") || written.ends_with(".yaml")));
                        if !is_file {
                            continue;
                        }
                        let path = base.join(written.strip_prefix("file:").unwrap_or(&written));
                        let file_label = path.display().to_string();
                        let source = std::fs::read_to_string(&path).map_err(|e| {
                            let p = component.pos;
                            anyhow!("{label}:{}:{}: {field}{key}: cannot read {file_label}: {e}", p.line, p.col)
                        })?;
                        let mut tree = kiln_spec::parse_with_overrides(&file_label, &source, &[])?;
                        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                        self.component(&mut tree, dir, file_label, depth + 1).await?;
                        // Keeps how the pipeline named the file, for `job show`.
                        tree.set_path_node("$source", text(&written)).map_err(|e| anyhow!(e))?;
                        *component = tree;
                    }
                    None => {
                        self.component(component, base.clone(), label.clone(), depth + 1).await?;
                    }
                }
            }
            Ok(())
        })
    }

    /// A component (command or pipeline) whose relative paths are relative to `base`.
    pub async fn component(&self, node: &mut Node, base: PathBuf, label: String, depth: usize) -> Result<()> {
        if kiln_spec::job_type(node) == "pipeline" || node.get("jobs").is_some() {
            self.pipeline(node, base, label, depth).await
        } else {
            self.command(node, &base, &label, "").await
        }
    }
}
