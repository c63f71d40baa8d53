//! Conda environment files, read as what an isolated pip environment needs: the Python
//! version and the packages. Conda-only packages (compilers, CUDA, MKL) have no pip equivalent
//! and are skipped, each with a note; `pytorch` and friends are renamed to their pip names.

use crate::yaml::{Kind, Node};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PythonRequirements {
    /// `3.10` from `python=3.10`.
    pub python: Option<String>,
    /// pip requirement lines, in file order.
    pub packages: Vec<String>,
    /// What was left out, and why.
    pub notes: Vec<String>,
}

/// Conda packages that pip knows by another name.
const RENAMED: &[(&str, &str)] = &[("pytorch", "torch"), ("py-xgboost", "xgboost"), ("pytorch-lightning", "lightning")];
/// Conda packages with nothing to install from PyPI.
const CONDA_ONLY: &[&str] = &[
    "pip",
    "setuptools",
    "wheel",
    "cudatoolkit",
    "cudnn",
    "mkl",
    "nomkl",
    "libgcc",
    "openmpi",
    "pytorch-cuda",
    "cpuonly",
];

/// Reads a conda spec (`name`, `channels`, `dependencies` with an optional `pip:` list).
pub fn python_requirements(conda: &Node) -> Result<PythonRequirements, String> {
    let mut out = PythonRequirements::default();
    let Some(deps) = conda.get("dependencies") else {
        return Ok(out);
    };
    let Kind::Seq(items) = &deps.kind else {
        return Err(format!("dependencies: expected a list, found {}", deps.type_name()));
    };
    for item in items {
        match &item.kind {
            Kind::Scalar { text, .. } => conda_package(text.trim(), &mut out),
            Kind::Map(_) => {
                let Some(pip) = item.get("pip") else { continue };
                let Kind::Seq(lines) = &pip.kind else {
                    return Err(format!("dependencies.pip: expected a list, found {}", pip.type_name()));
                };
                for line in lines {
                    match &line.kind {
                        Kind::Scalar { text, .. } if !text.trim().is_empty() => out.packages.push(text.trim().into()),
                        _ => {
                            return Err(format!(
                                "dependencies.pip: expected requirement strings, found {}",
                                line.type_name()
                            ));
                        }
                    }
                }
            }
            Kind::Seq(_) => return Err("dependencies: expected package names, found a list".into()),
        }
    }
    Ok(out)
}

/// `numpy=1.21.2=py39_0` (conda: name, version prefix, build) → `numpy==1.21.2.*`.
fn conda_package(spec: &str, out: &mut PythonRequirements) {
    let spec = spec.split("::").last().unwrap_or(spec); // `conda-forge::numpy`
    let end = spec.find(|c: char| "=<>!~ ".contains(c)).unwrap_or(spec.len());
    let (name, constraint) = (spec[..end].trim(), spec[end..].trim());
    if name == "python" {
        let version =
            constraint.trim_start_matches(['=', '>', '<', '~', '!']).split(['=', ',', ' ']).next().unwrap_or("");
        if !version.is_empty() {
            out.python = Some(version.trim_end_matches(".*").to_string());
        }
        return;
    }
    if CONDA_ONLY.contains(&name) {
        if !matches!(name, "pip" | "setuptools" | "wheel") {
            out.notes.push(format!("conda package '{name}' has no pip equivalent; skipped"));
        }
        return;
    }
    let pip_name = RENAMED.iter().find(|(c, _)| *c == name).map(|(_, p)| *p).unwrap_or(name);
    let requirement = if let Some(rest) = constraint.strip_prefix("==") {
        format!("{pip_name}=={}", rest.split('=').next().unwrap_or(rest))
    } else if let Some(rest) = constraint.strip_prefix('=') {
        let version = rest.split('=').next().unwrap_or(rest).trim_end_matches(".*");
        format!("{pip_name}=={version}.*")
    } else {
        format!("{pip_name}{constraint}")
    };
    out.packages.push(requirement);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conda_files_become_pip_requirements() {
        let text = "name: env\nchannels: [conda-forge]\ndependencies:\n- python=3.10\n- pip=21.2.4\n\
                    - numpy=1.21.2=py39_0\n- conda-forge::pandas>=1.3\n- pytorch\n- cudatoolkit=11.3\n\
                    - scikit-learn==1.0.2\n- pip:\n  - mlflow-skinny\n  - azureml-mlflow==1.50\n";
        let node = crate::yaml::parse(text).unwrap().unwrap();
        let r = python_requirements(&node).unwrap();
        assert_eq!(r.python.as_deref(), Some("3.10"));
        assert_eq!(
            r.packages,
            ["numpy==1.21.2.*", "pandas>=1.3", "torch", "scikit-learn==1.0.2", "mlflow-skinny", "azureml-mlflow==1.50"]
        );
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
        let bad = crate::yaml::parse("dependencies: numpy").unwrap().unwrap();
        assert!(python_requirements(&bad).unwrap_err().contains("expected a list"));
    }
}
