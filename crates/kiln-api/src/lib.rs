//! The types of Kiln's native REST API (`/api/v1`).
//!
//! **API boundary**: plain data designed for clients (the `kiln` CLI, the studio, scripts),
//! changed slowly and only compatibly. The server converts its service types into these at
//! the edge; the client deserializes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ErrorBody {
    pub error_code: String,
    pub message: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Health {
    pub status: String,
    pub version: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Experiment {
    pub id: String,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: String,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ExperimentPage {
    pub experiments: Vec<Experiment>,
    pub next_page_token: Option<String>,
}

/// A metric value; `null` stands for NaN, which JSON cannot carry.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Metric {
    pub key: String,
    pub value: Option<f64>,
    pub step: i64,
    pub timestamp: i64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Run {
    pub id: String,
    pub name: String,
    pub experiment_id: String,
    pub status: String,
    pub user_id: String,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
    /// The latest value of each metric.
    pub metrics: Vec<Metric>,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct RunPage {
    pub runs: Vec<Run>,
    pub next_page_token: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct MetricHistory {
    pub metrics: Vec<Metric>,
    pub next_page_token: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ModelVersion {
    pub version: i64,
    pub stage: String,
    pub status: String,
    pub source: String,
    pub run_id: Option<String>,
    pub model_id: Option<String>,
    pub description: Option<String>,
    pub aliases: Vec<String>,
    pub creation_timestamp: i64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Model {
    pub name: String,
    pub description: Option<String>,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub tags: BTreeMap<String, String>,
    pub aliases: BTreeMap<String, i64>,
    /// All versions for `GET /models/{name}`; the latest per stage in listings.
    pub versions: Vec<ModelVersion>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ModelPage {
    pub models: Vec<Model>,
    pub next_page_token: Option<String>,
}
