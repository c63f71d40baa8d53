//! MLflow's input rules and limits (`mlflow/utils/validation.py`), with its messages.

use crate::error::{Result, ServiceError};

pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
pub const MAX_ENTITY_KEY_LENGTH: usize = 250;
pub const MAX_PARAM_VAL_LENGTH: usize = 6000;
pub const MAX_TAG_VAL_LENGTH: usize = 8000;
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
pub const MAX_EXPERIMENT_TAG_VAL_LENGTH: usize = 20000;
pub const MAX_REGISTRY_TAG_VAL_LENGTH: usize = 100_000;
pub const SEARCH_MAX_RESULTS: i64 = 50_000;

/// Checks a param, metric or tag key: MLflow's character set, and no path tricks.
pub fn validate_key(key: &str, what: &str) -> Result<()> {
    if key.is_empty() {
        return Err(ServiceError::missing("key"));
    }
    if !key.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | ' ' | ':')) {
        return Err(ServiceError::invalid(format!(
            "Invalid value \"{key}\" for parameter '{what}' supplied: Names may only contain alphanumerics, \
             underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."
        )));
    }
    let normalized = normpath(key);
    if normalized != key || key == "." || key.starts_with("..") || key.starts_with('/') {
        return Err(ServiceError::invalid(format!(
            "Invalid value \"{key}\" for parameter '{what}' supplied: Names may be treated as files in certain \
             cases, and must not resolve to other names when treated as such. This name would resolve to \
             '{normalized}'"
        )));
    }
    if key.chars().count() > MAX_ENTITY_KEY_LENGTH {
        return Err(ServiceError::invalid(format!(
            "'{what}' exceeds the maximum length of {MAX_ENTITY_KEY_LENGTH} characters (got {})",
            key.chars().count()
        )));
    }
    Ok(())
}

/// Python's `posixpath.normpath`, which MLflow uses to spot keys that act like paths.
fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let initial = if path.starts_with("//") && !path.starts_with("///") {
        2
    } else if path.starts_with('/') {
        1
    } else {
        0
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        if comp.is_empty() || comp == "." {
            continue;
        }
        if comp != ".." || (initial == 0 && parts.is_empty()) || parts.last() == Some(&"..") {
            parts.push(comp);
        } else if !parts.is_empty() {
            parts.pop();
        }
    }
    let joined = format!("{}{}", "/".repeat(initial), parts.join("/"));
    if joined.is_empty() { ".".into() } else { joined }
}

/// Cuts a value to `max` characters, as MLflow does by default (`MLFLOW_TRUNCATE_LONG_VALUES`).
pub fn truncate(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        Some((i, _)) => value[..i].to_string(),
        None => value.to_string(),
    }
}

pub fn validate_batch_sizes(metrics: usize, params: usize, tags: usize) -> Result<()> {
    let limit = |n: usize, max: usize, what: &str| {
        if n > max {
            Err(ServiceError::invalid(format!(
                "A batch logging request can contain at most {max} {what}. Got {n} {what}. \
                 Please split up {what} across multiple requests and try again."
            )))
        } else {
            Ok(())
        }
    };
    limit(metrics, MAX_METRICS_PER_BATCH, "metrics")?;
    limit(params, MAX_PARAMS_TAGS_PER_BATCH, "params")?;
    limit(tags, MAX_PARAMS_TAGS_PER_BATCH, "tags")?;
    limit(metrics + params + tags, MAX_ENTITIES_PER_BATCH, "metrics, params, and tags")
}

pub fn validate_experiment_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(ServiceError::invalid(format!("Invalid experiment name: '{name}'")));
    }
    if name.chars().count() > MAX_EXPERIMENT_NAME_LENGTH {
        return Err(ServiceError::invalid(format!(
            "Experiment name '{name}' exceeds the maximum length of {MAX_EXPERIMENT_NAME_LENGTH} characters"
        )));
    }
    Ok(())
}

/// Run ids: `^[a-zA-Z0-9][\w\-]{0,255}$`.
pub fn validate_run_id(run_id: &str) -> Result<()> {
    let mut chars = run_id.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && run_id.len() <= 256
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if ok { Ok(()) } else { Err(ServiceError::invalid(format!("Invalid run ID: '{run_id}'"))) }
}

/// Experiment ids are decimal integers in Kiln, as in MLflow's SQL store.
pub fn parse_experiment_id(id: &str) -> Result<i64> {
    id.trim().parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
        ServiceError::invalid(format!("Invalid experiment ID '{id}'. Experiment ID must be a valid integer."))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_mlflow_rules() {
        for good in ["a", "a/b", "lr-1.0", "f1 score", "x:y", "ü"] {
            assert!(validate_key(good, "key").is_ok(), "{good}");
        }
        for bad in ["a@b", "../x", "a//b", "a/./b", "a/", "/a", ".", ""] {
            assert!(validate_key(bad, "key").is_err(), "{bad}");
        }
        assert!(validate_key(&"k".repeat(251), "key").is_err());
        let err = validate_key("../x", "key").unwrap_err();
        assert!(err.message.contains("This name would resolve to '../x'"), "{}", err.message);
    }

    #[test]
    fn batch_limits_use_mlflow_wording() {
        let e = validate_batch_sizes(0, 101, 0).unwrap_err();
        assert_eq!(
            e.message,
            "A batch logging request can contain at most 100 params. Got 101 params. Please split up params across multiple requests and try again."
        );
        assert!(validate_batch_sizes(1000, 0, 0).is_ok());
        assert!(validate_batch_sizes(950, 30, 30).unwrap_err().message.contains("metrics, params, and tags"));
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
