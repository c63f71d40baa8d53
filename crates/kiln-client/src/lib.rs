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
    #[error("{0}")]
    Local(String),
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
        self.json(url.clone(), self.http.get(&url)).await
    }

    /// The answer to a request, or the error it stands for (an unreachable server, or the
    /// API's error body).
    async fn answer(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response =
            req.send().await.map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        Err(api_error(status, &body))
    }

    /// Sends a request and reads its JSON answer.
    async fn json<T: DeserializeOwned>(&self, url: String, req: reqwest::RequestBuilder) -> Result<T> {
        let response = self.answer(req).await?;
        let bytes =
            response.bytes().await.map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol { url, detail: e.to_string() })
    }

    /// Sends a JSON body (or none) and reads a JSON answer.
    async fn send<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.json(url, req).await
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

impl Client {
    pub async fn create_job(&self, spec: String, source: Option<String>) -> Result<Job> {
        self.send(reqwest::Method::POST, "/jobs", Some(&JobCreate { spec, source })).await
    }

    pub async fn job(&self, name: &str) -> Result<Job> {
        self.get(&format!("/jobs/{}", encode(name)), vec![]).await
    }

    pub async fn jobs(
        &self,
        archived: Option<&str>,
        max_results: Option<i64>,
        parent: Option<String>,
    ) -> Result<JobPage> {
        self.get(
            "/jobs",
            vec![
                ("archived", archived.map(str::to_string)),
                ("max_results", max_results.map(|m| m.to_string())),
                ("parent_job_name", parent),
            ],
        )
        .await
    }

    /// A pipeline job's steps and edges.
    pub async fn pipeline_graph(&self, name: &str) -> Result<PipelineGraph> {
        self.get(&format!("/jobs/{}/graph", encode(name)), vec![]).await
    }

    /// A sweep job's parameters and trials.
    pub async fn sweep_trials(&self, name: &str) -> Result<SweepTrials> {
        self.get(&format!("/jobs/{}/trials", encode(name)), vec![]).await
    }

    /// `cancel`, `archive` or `restore`.
    pub async fn job_action(&self, name: &str, action: &str) -> Result<Job> {
        self.send::<(), _>(reqwest::Method::POST, &format!("/jobs/{}/{action}", encode(name)), None).await
    }

    pub async fn update_job(&self, name: &str, update: &JobUpdate) -> Result<Job> {
        self.send(reqwest::Method::PATCH, &format!("/jobs/{}", encode(name)), Some(update)).await
    }

    /// The job's log from `offset`; with `follow`, a live stream until the job ends.
    pub async fn job_log(&self, name: &str, follow: bool, offset: u64) -> Result<reqwest::Response> {
        let url = format!("{}/api/v1/jobs/{}/log?follow={follow}&offset={offset}", self.base, encode(name));
        self.answer(self.http.get(&url)).await
    }

    pub async fn output_files(&self, name: &str, output: &str) -> Result<OutputFiles> {
        self.get(&format!("/jobs/{}/outputs/{}", encode(name), encode(output)), vec![]).await
    }

    /// Streams a file of the artifact store.
    pub async fn download(&self, store_path: &str) -> Result<reqwest::Response> {
        let path: Vec<String> = store_path.split('/').map(encode).collect();
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{}", self.base, path.join("/"));
        self.answer(self.http.get(&url)).await
    }

    pub async fn computes(&self) -> Result<ComputePage> {
        self.get("/computes", vec![]).await
    }

    pub async fn compute(&self, name: &str) -> Result<ComputeTarget> {
        self.get(&format!("/computes/{}", encode(name)), vec![]).await
    }

    pub async fn create_compute(&self, c: &ComputeCreate) -> Result<ComputeTarget> {
        self.send(reqwest::Method::POST, "/computes", Some(c)).await
    }

    pub async fn missing_blobs(&self, digests: Vec<String>) -> Result<BlobsMissing> {
        self.send(reqwest::Method::POST, "/blobs/missing", Some(&BlobQuery { digests })).await
    }

    /// Uploads a file's bytes under their digest, streaming from disk.
    pub async fn put_blob(&self, digest: &str, file: &std::path::Path) -> Result<()> {
        let url = format!("{}/api/v1/blobs/{digest}", self.base);
        let f =
            tokio::fs::File::open(file).await.map_err(|e| ClientError::Local(format!("{}: {e}", file.display())))?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f));
        self.answer(self.http.put(&url).body(body)).await?;
        Ok(())
    }

    pub async fn create_snapshot(&self, files: Vec<SnapshotFile>) -> Result<Snapshot> {
        self.send(reqwest::Method::POST, "/snapshots", Some(&SnapshotCreate { files })).await
    }
}

impl Client {
    pub async fn create_data(&self, d: &DataCreate) -> Result<DataAsset> {
        self.send(reqwest::Method::POST, "/data", Some(d)).await
    }

    pub async fn create_environment(&self, e: &EnvironmentCreate) -> Result<EnvironmentAsset> {
        self.send(reqwest::Method::POST, "/environments", Some(e)).await
    }

    pub async fn create_component(&self, spec: String, source: String) -> Result<ComponentAsset> {
        self.send(reqwest::Method::POST, "/components", Some(&ComponentCreate { spec, source: Some(source) })).await
    }

    pub async fn create_model(&self, m: &ModelCreate) -> Result<ModelAsset> {
        self.send(reqwest::Method::POST, "/models", Some(m)).await
    }

    pub async fn model_versions(&self, name: &str, archived: Option<&str>) -> Result<ModelAssetPage> {
        self.get(&format!("/models/{}/versions", encode(name)), vec![("archived", archived.map(str::to_string))]).await
    }

    /// `kind` is `data`, `environments` or `models`; `version` `latest` or a version.
    pub async fn asset<T: DeserializeOwned>(&self, kind: &str, name: &str, version: &str) -> Result<T> {
        self.get(&format!("/{kind}/{}/versions/{}", encode(name), encode(version)), vec![]).await
    }

    pub async fn assets<T: DeserializeOwned>(
        &self,
        kind: &str,
        name: Option<String>,
        archived: Option<&str>,
    ) -> Result<T> {
        self.get(&format!("/{kind}"), vec![("name", name), ("archived", archived.map(str::to_string))]).await
    }

    /// `kind` as for [`Client::asset`]; `action` is `archive` or `restore`; every version of the name when `version` is `None`.
    pub async fn asset_action(&self, kind: &str, name: &str, action: &str, version: Option<&str>) -> Result<()> {
        let q = version.map(|v| format!("?version={}", encode(v))).unwrap_or_default();
        let _: serde_json::Value =
            self.send::<(), _>(reqwest::Method::POST, &format!("/{kind}/{}/{action}{q}", encode(name)), None).await?;
        Ok(())
    }
}

impl Client {
    pub async fn create_schedule(&self, spec: String, source: String) -> Result<Schedule> {
        self.send(reqwest::Method::POST, "/schedules", Some(&ScheduleCreate { spec, source: Some(source) })).await
    }

    pub async fn schedule(&self, name: &str) -> Result<Schedule> {
        self.get(&format!("/schedules/{}", encode(name)), vec![]).await
    }

    /// `disabled`: `include` or `only` (enabled schedules alone when `None`).
    pub async fn schedules(&self, disabled: Option<&str>) -> Result<SchedulePage> {
        self.get("/schedules", vec![("disabled", disabled.map(str::to_string))]).await
    }

    /// `enable` or `disable`.
    pub async fn schedule_action(&self, name: &str, action: &str) -> Result<Schedule> {
        self.send::<(), _>(reqwest::Method::POST, &format!("/schedules/{}/{action}", encode(name)), None).await
    }

    pub async fn delete_schedule(&self, name: &str) -> Result<()> {
        let url = format!("{}/api/v1/schedules/{}", self.base, encode(name));
        self.answer(self.http.delete(&url)).await?;
        Ok(())
    }

    pub async fn create_online_endpoint(&self, spec: &EndpointSpec) -> Result<OnlineEndpoint> {
        self.send(reqwest::Method::POST, "/online-endpoints", Some(spec)).await
    }

    pub async fn online_endpoint(&self, name: &str) -> Result<OnlineEndpoint> {
        self.get(&format!("/online-endpoints/{}", encode(name)), vec![]).await
    }

    pub async fn online_endpoints(&self) -> Result<OnlineEndpointList> {
        self.get("/online-endpoints", vec![]).await
    }

    pub async fn update_online_endpoint(&self, name: &str, update: &OnlineEndpointUpdate) -> Result<OnlineEndpoint> {
        self.send(reqwest::Method::PATCH, &format!("/online-endpoints/{}", encode(name)), Some(update)).await
    }

    pub async fn delete_online_endpoint(&self, name: &str) -> Result<()> {
        let url = format!("{}/api/v1/online-endpoints/{}", self.base, encode(name));
        self.answer(self.http.delete(&url)).await?;
        Ok(())
    }

    pub async fn endpoint_credentials(&self, name: &str) -> Result<EndpointCredentials> {
        self.get(&format!("/online-endpoints/{}/credentials", encode(name)), vec![]).await
    }

    pub async fn regenerate_endpoint_key(&self, name: &str, key_type: &str) -> Result<()> {
        let url = format!("{}/api/v1/online-endpoints/{}/regenerate-keys", self.base, encode(name));
        self.answer(self.http.post(&url).json(&RegenerateKeys { key_type: key_type.to_string() })).await?;
        Ok(())
    }

    pub async fn create_online_deployment(
        &self,
        endpoint: &str,
        req: &OnlineDeploymentCreate,
    ) -> Result<OnlineDeployment> {
        self.send(reqwest::Method::POST, &format!("/online-endpoints/{}/deployments", encode(endpoint)), Some(req))
            .await
    }

    pub async fn update_online_deployment(
        &self,
        endpoint: &str,
        name: &str,
        req: &OnlineDeploymentCreate,
    ) -> Result<OnlineDeployment> {
        let path = format!("/online-endpoints/{}/deployments/{}", encode(endpoint), encode(name));
        self.send(reqwest::Method::PUT, &path, Some(req)).await
    }

    pub async fn online_deployment(&self, endpoint: &str, name: &str) -> Result<OnlineDeployment> {
        self.get(&format!("/online-endpoints/{}/deployments/{}", encode(endpoint), encode(name)), vec![]).await
    }

    pub async fn online_deployments(&self, endpoint: &str) -> Result<OnlineDeploymentList> {
        self.get(&format!("/online-endpoints/{}/deployments", encode(endpoint)), vec![]).await
    }

    pub async fn delete_online_deployment(&self, endpoint: &str, name: &str) -> Result<()> {
        let url = format!("{}/api/v1/online-endpoints/{}/deployments/{}", self.base, encode(endpoint), encode(name));
        self.answer(self.http.delete(&url)).await?;
        Ok(())
    }

    pub async fn deployment_logs(&self, endpoint: &str, name: &str, lines: usize) -> Result<DeploymentLogs> {
        let path = format!("/online-endpoints/{}/deployments/{}/logs", encode(endpoint), encode(name));
        self.get(&path, vec![("lines", Some(lines.to_string()))]).await
    }

    /// Sends a scoring request to an endpoint's scoring URI; the answer's status and body
    /// are returned as they are (an error status is the model's answer, not a failure here).
    pub async fn score(
        &self,
        scoring_uri: &str,
        credential: Option<&str>,
        deployment: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(u16, String)> {
        let mut req = self.http.post(scoring_uri).header("content-type", "application/json").body(body);
        if let Some(c) = credential {
            req = req.bearer_auth(c);
        }
        if let Some(d) = deployment {
            req = req.header("azureml-model-deployment", d);
        }
        let response =
            req.send().await.map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
        let status = response.status().as_u16();
        let text =
            response.text().await.map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
        Ok((status, text))
    }

    pub async fn create_batch_endpoint(&self, spec: &EndpointSpec) -> Result<BatchEndpoint> {
        self.send(reqwest::Method::POST, "/batch-endpoints", Some(spec)).await
    }

    pub async fn batch_endpoint(&self, name: &str) -> Result<BatchEndpoint> {
        self.get(&format!("/batch-endpoints/{}", encode(name)), vec![]).await
    }

    pub async fn batch_endpoints(&self) -> Result<BatchEndpointList> {
        self.get("/batch-endpoints", vec![]).await
    }

    pub async fn update_batch_endpoint(&self, name: &str, update: &BatchEndpointUpdate) -> Result<BatchEndpoint> {
        self.send(reqwest::Method::PATCH, &format!("/batch-endpoints/{}", encode(name)), Some(update)).await
    }

    pub async fn delete_batch_endpoint(&self, name: &str) -> Result<()> {
        let url = format!("{}/api/v1/batch-endpoints/{}", self.base, encode(name));
        self.answer(self.http.delete(&url)).await?;
        Ok(())
    }

    pub async fn invoke_batch_endpoint(&self, name: &str, req: &BatchInvoke) -> Result<Job> {
        self.send(reqwest::Method::POST, &format!("/batch-endpoints/{}/invoke", encode(name)), Some(req)).await
    }

    pub async fn batch_endpoint_jobs(&self, name: &str) -> Result<JobPage> {
        self.get(&format!("/batch-endpoints/{}/jobs", encode(name)), vec![]).await
    }

    pub async fn create_batch_deployment(
        &self,
        endpoint: &str,
        req: &BatchDeploymentCreate,
    ) -> Result<BatchDeployment> {
        self.send(reqwest::Method::POST, &format!("/batch-endpoints/{}/deployments", encode(endpoint)), Some(req)).await
    }

    pub async fn update_batch_deployment(
        &self,
        endpoint: &str,
        name: &str,
        req: &BatchDeploymentCreate,
    ) -> Result<BatchDeployment> {
        let path = format!("/batch-endpoints/{}/deployments/{}", encode(endpoint), encode(name));
        self.send(reqwest::Method::PUT, &path, Some(req)).await
    }

    pub async fn batch_deployment(&self, endpoint: &str, name: &str) -> Result<BatchDeployment> {
        self.get(&format!("/batch-endpoints/{}/deployments/{}", encode(endpoint), encode(name)), vec![]).await
    }

    pub async fn batch_deployments(&self, endpoint: &str) -> Result<BatchDeploymentList> {
        self.get(&format!("/batch-endpoints/{}/deployments", encode(endpoint)), vec![]).await
    }

    pub async fn delete_batch_deployment(&self, endpoint: &str, name: &str) -> Result<()> {
        let url = format!("{}/api/v1/batch-endpoints/{}/deployments/{}", self.base, encode(endpoint), encode(name));
        self.answer(self.http.delete(&url)).await?;
        Ok(())
    }
}

fn api_error(status: reqwest::StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => ClientError::Api { status: status.as_u16(), code: e.error_code, message: e.message },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: status.to_string(),
            message: String::from_utf8_lossy(body).into_owned(),
        },
    }
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20")
}
