//! Environments: what a job's `environment:` becomes on local compute.
//!
//! A conda file or pip list becomes an isolated Python environment keyed by the content hash
//! of what it installs; an image alone runs with the host's Python; Azure ML's curated names
//! map to an equivalent pip list.

use kiln_launcher::EnvironmentPlan;
use kiln_spec::conda::PythonRequirements;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A registered or inline environment, resolved to what the launcher needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentDefinition {
    pub image: Option<String>,
    /// `None`: no isolated environment (the host's Python).
    pub requirements: Option<Vec<String>>,
    pub python: Option<String>,
    /// The conda file as given (JSON), for showing.
    #[serde(default)]
    pub conda_file: Option<serde_json::Value>,
    /// Things the conversion left out.
    #[serde(default)]
    pub notes: Vec<String>,
}

impl EnvironmentDefinition {
    pub fn from_parts(image: Option<String>, conda: Option<(&kiln_spec::Node, PythonRequirements)>) -> Self {
        match conda {
            None => {
                EnvironmentDefinition { image, requirements: None, python: None, conda_file: None, notes: Vec::new() }
            }
            Some((node, req)) => EnvironmentDefinition {
                image,
                requirements: Some(req.packages),
                python: req.python,
                conda_file: Some(node.to_json()),
                notes: req.notes,
            },
        }
    }

    /// The content hash: what is installed, not how the file was written.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"kiln-env-v1\0");
        if let Some(reqs) = &self.requirements {
            h.update(self.python.as_deref().unwrap_or("").as_bytes());
            h.update([0]);
            for r in reqs {
                h.update(r.as_bytes());
                h.update(b"\n");
            }
        } else {
            h.update(b"host\0");
            h.update(self.image.as_deref().unwrap_or("").as_bytes());
        }
        hex::encode(h.finalize())
    }

    pub fn plan(&self, label: &str) -> EnvironmentPlan {
        EnvironmentPlan {
            label: label.to_string(),
            image: self.image.clone(),
            requirements: self.requirements.clone(),
            python: self.python.clone(),
            hash: self.hash(),
        }
    }
}

/// Curated Azure ML environments used by the public examples, and pip lists that give a job
/// the same libraries. Matched on the name with any `AzureML-` prefix and version suffix
/// removed, by prefix (`sklearn-1.5` matches `AzureML-sklearn-1.5-ubuntu20.04-py38-cpu`).
const CURATED: &[(&str, &[&str])] = &[
    ("sklearn-1.5", &["scikit-learn~=1.5.0", "pandas", "scipy", "mlflow-skinny"]),
    ("sklearn-1.1", &["scikit-learn~=1.1.0", "pandas", "scipy", "mlflow-skinny"]),
    ("sklearn-1.0", &["scikit-learn~=1.0.0", "pandas", "scipy", "mlflow-skinny"]),
    ("sklearn-0.24", &["scikit-learn~=0.24.0", "pandas", "scipy", "mlflow-skinny"]),
    ("lightgbm-3.3", &["lightgbm~=3.3.0", "scikit-learn", "pandas", "mlflow-skinny"]),
    ("acpt-pytorch", &["torch", "torchvision", "mlflow-skinny"]),
    ("pytorch", &["torch", "torchvision", "mlflow-skinny"]),
    ("tensorflow-2.16", &["tensorflow~=2.16.0", "mlflow-skinny"]),
    ("tensorflow", &["tensorflow", "mlflow-skinny"]),
    ("minimal", &[]),
];

/// The curated environment a reference names, if it names one: `AzureML-sklearn-1.5`,
/// `azureml:AzureML-sklearn-1.5@latest`, `azureml:AzureML-sklearn-1.5:3`, or
/// `azureml://registries/azureml/environments/sklearn-1.5/labels/latest`.
pub fn curated(reference: &str) -> Option<(String, EnvironmentDefinition)> {
    let name = if let Some(rest) = reference.strip_prefix("azureml://registries/") {
        let mut parts = rest.split('/');
        let (_registry, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
        if kind != "environments" {
            return None;
        }
        name.to_string()
    } else {
        let r = reference.strip_prefix("azureml:").unwrap_or(reference);
        let r = r.split('@').next().unwrap_or(r);
        r.split(':').next().unwrap_or(r).to_string()
    };
    let lower = name.to_ascii_lowercase();
    let key = lower.strip_prefix("azureml-").unwrap_or(&lower);
    let (_, packages) = CURATED.iter().find(|(k, _)| key.starts_with(k))?;
    Some((
        name,
        EnvironmentDefinition {
            image: None,
            requirements: Some(packages.iter().map(|p| p.to_string()).collect()),
            python: None,
            conda_file: None,
            notes: vec![format!("curated environment '{reference}' mapped to an equivalent pip environment")],
        },
    ))
}

pub fn curated_names() -> Vec<&'static str> {
    CURATED.iter().map(|(k, _)| *k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curated_references_in_every_spelling() {
        for r in [
            "AzureML-sklearn-1.5",
            "azureml:AzureML-sklearn-1.5@latest",
            "azureml:AzureML-sklearn-1.5:12",
            "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
            "azureml:AzureML-sklearn-1.5-ubuntu20.04-py38-cpu@latest",
        ] {
            let (_, def) = curated(r).unwrap_or_else(|| panic!("{r}"));
            assert!(def.requirements.unwrap()[0].starts_with("scikit-learn~=1.5"), "{r}");
        }
        assert!(curated("azureml:my-env:1").is_none());
        assert!(curated("azureml://registries/azureml/models/x/labels/latest").is_none());
    }

    #[test]
    fn the_hash_follows_what_is_installed() {
        let a = EnvironmentDefinition {
            image: Some("python:3.10".into()),
            requirements: Some(vec!["six".into()]),
            python: None,
            conda_file: None,
            notes: vec![],
        };
        let b = EnvironmentDefinition { image: Some("other".into()), notes: vec!["x".into()], ..a.clone() };
        assert_eq!(a.hash(), b.hash(), "the image is not run locally, so it does not change the venv");
        let c = EnvironmentDefinition { requirements: Some(vec!["six==1.16.0".into()]), ..a.clone() };
        assert_ne!(a.hash(), c.hash());
    }
}
