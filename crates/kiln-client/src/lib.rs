//! A typed client of Kiln's native REST API, used by the `kiln` CLI. A remote workspace and
//! a local one are used the same way: only the base URL differs.

use kiln_api::*;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the Kiln server at {url}: {source}. Is `kiln up` running? (set --url or KILN_URL)")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{code}: {message}")]
    Api { status: u16, code: String, message: String },
    #[error("unexpected answer from {url}: {detail}")]
    Protocol { url: String, detail: String },
}

pub type Result<T> = std::result::Result<T, ClientError>;

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// Query parameters, left out when `None`.
type Params<'a> = Vec<(&'a str, Option<String>)>;

impl Client {
    pub fn new(base_url: &str) -> Client {
        Client { base: base_url.trim_end_matches('/').to_string(), http: reqwest::Client::new() }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, params: Params<'_>) -> Result<T> {
        let query: Vec<(&str, String)> = params.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
        let mut url = format!("{}/api/v1{path}", self.base);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&query).finish());
        }
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
        let status = response.status();
        let body =
            response.bytes().await.map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(e) => ClientError::Api { status: status.as_u16(), code: e.error_code, message: e.message },
                Err(_) => ClientError::Api {
                    status: status.as_u16(),
                    code: status.to_string(),
                    message: String::from_utf8_lossy(&body).into_owned(),
                },
            });
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol { url, detail: e.to_string() })
    }

    pub async fn health(&self) -> Result<Health> {
        self.get("/health", vec![]).await
    }

    pub async fn experiments(
        &self,
        filter: Option<String>,
        view: Option<String>,
        page_token: Option<String>,
    ) -> Result<ExperimentPage> {
        self.get("/experiments", vec![("filter", filter), ("view", view), ("page_token", page_token)]).await
    }

    pub async fn runs(
        &self,
        experiment_ids: &[String],
        filter: Option<String>,
        order_by: Option<String>,
        max_results: Option<i64>,
    ) -> Result<RunPage> {
        let ids = (!experiment_ids.is_empty()).then(|| experiment_ids.join(","));
        self.get(
            "/runs",
            vec![
                ("experiment_id", ids),
                ("filter", filter),
                ("order_by", order_by),
                ("max_results", max_results.map(|m| m.to_string())),
            ],
        )
        .await
    }

    pub async fn run(&self, id: &str) -> Result<Run> {
        self.get(&format!("/runs/{}", encode(id)), vec![]).await
    }

    pub async fn models(&self, filter: Option<String>) -> Result<ModelPage> {
        self.get("/models", vec![("filter", filter)]).await
    }

    pub async fn model(&self, name: &str) -> Result<Model> {
        self.get(&format!("/models/{}", encode(name)), vec![]).await
    }
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20")
}
