//! Registered assets as specs name them (`azureml:name:version`, `azureml:name@latest`, …).

/// A registered asset a spec names: its name, and its version (`None`: the latest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssetRef<'a> {
    pub name: &'a str,
    pub version: Option<&'a str>,
}

/// Reads `azureml:name:version`, `azureml:name@latest`, `azureml:name`, and without the prefix
/// `name:version` and `name@latest`. A bare `name` is a reference only where nothing else could
/// be meant (`bare_name`: environments, components); for data and models it is a path. `None`
/// for URLs (`azureml://…` included) and anything else.
pub fn asset_reference(reference: &str, bare_name: bool) -> Option<AssetRef<'_>> {
    if reference.contains("://") {
        return None;
    }
    let prefixed = reference.starts_with("azureml:");
    let r = reference.strip_prefix("azureml:").unwrap_or(reference);
    let (name, version) = if let Some(name) = r.strip_suffix("@latest") {
        (name, None)
    } else if let Some((name, version)) = r.split_once(':') {
        (name, Some(version))
    } else if prefixed || bare_name {
        (r, None)
    } else {
        return None;
    };
    (!name.is_empty()).then_some(AssetRef { name, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_version_or_the_latest() {
        let r = |name, version| Some(AssetRef { name, version });
        assert_eq!(asset_reference("azureml:iris:3", false), r("iris", Some("3")));
        assert_eq!(asset_reference("azureml:iris@latest", false), r("iris", None));
        assert_eq!(asset_reference("azureml:iris", false), r("iris", None));
        assert_eq!(asset_reference("iris:3", false), r("iris", Some("3")));
        assert_eq!(asset_reference("iris", false), None);
        assert_eq!(asset_reference("iris", true), r("iris", None));
        assert_eq!(asset_reference("azureml://registries/azureml/environments/x/labels/latest", true), None);
        assert_eq!(asset_reference("https://example.com/a.csv", false), None);
    }
}
