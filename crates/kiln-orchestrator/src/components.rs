//! Registered components: command and pipeline components with versions, stored as the
//! bundled spec the CLI sends (component files inlined, local paths uploaded), so a version is
//! its content and pipelines that name it (`azureml:name:version`, `azureml:name@latest`) get
//! exactly what was registered.

use kiln_spec::pipeline::Component;
use kiln_store::AssetRecord;
use kiln_tracking::ServiceError;
use serde::Serialize;

use crate::assets::{check_version, content_hash, created};
use crate::{Orchestrator, Result};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentAsset {
    pub name: String,
    pub version: String,
    /// `command` or `pipeline`.
    #[serde(rename = "type")]
    pub kind: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub is_deterministic: bool,
    /// The stored spec, as JSON.
    pub spec: serde_json::Value,
    pub created_at: i64,
    pub archived: bool,
}

fn parse(label: &str, text: &str) -> Result<(kiln_spec::Node, Component)> {
    let invalid = |e: kiln_spec::SpecError| ServiceError::invalid(e.to_string());
    let root = kiln_spec::parse_with_overrides(label, text, &[]).map_err(invalid)?;
    let src = kiln_spec::read::Source::new(label);
    let component = kiln_spec::pipeline::component(&src, &root).map_err(invalid)?;
    Ok((root, component))
}

fn view(r: AssetRecord) -> Result<ComponentAsset> {
    let label = format!("component {}:{}", r.name, r.version);
    let (root, c) = parse(&label, &r.spec)?;
    let (kind, display_name, description, inputs, outputs, deterministic) = match &c {
        Component::Command(c) => (
            "command",
            c.display_name.clone(),
            c.description.clone(),
            c.inputs.keys().cloned().collect(),
            c.outputs.keys().cloned().collect(),
            c.is_deterministic,
        ),
        Component::Pipeline(p) => (
            "pipeline",
            p.display_name.clone(),
            p.description.clone(),
            p.inputs.keys().cloned().collect(),
            p.outputs.keys().cloned().collect(),
            true,
        ),
    };
    Ok(ComponentAsset {
        name: r.name,
        version: r.version,
        kind: kind.into(),
        display_name,
        description,
        inputs,
        outputs,
        is_deterministic: deterministic,
        spec: root.to_json(),
        created_at: r.created_at,
        archived: r.archived,
    })
}

impl Orchestrator {
    /// Registers a component version from its bundled spec (`source` names it in messages).
    /// Its `version:` is used when written, the next integer otherwise; the same content under
    /// an existing version is accepted, other content refused.
    pub async fn create_component(&self, text: &str, source: &str) -> Result<ComponentAsset> {
        let (root, component) = parse(source, text)?;
        let Some(name) = component.name().map(str::to_string) else {
            return Err(ServiceError::invalid(format!("{source}: name: a registered component needs a name")));
        };
        let version = component.version().map(str::to_string);
        check_version(version.as_deref())?;
        // The content is the spec without its version (a version is where content goes).
        let mut content = root.to_json();
        if let Some(map) = content.as_object_mut() {
            map.remove("version");
        }
        let hash = content_hash(&[&content.to_string()]);
        let result = self.store().create_asset("component", &name, version.as_deref(), &hash, text).await?;
        view(created("component", result)?)
    }

    /// One version, or the latest (`None` or `latest`).
    pub async fn get_component(&self, name: &str, version: Option<&str>) -> Result<ComponentAsset> {
        view(self.asset("component", name, version).await?)
    }

    pub async fn list_components(&self, name: Option<&str>, archived: Option<bool>) -> Result<Vec<ComponentAsset>> {
        self.store().list_assets("component", name, archived).await?.into_iter().map(view).collect()
    }
}
