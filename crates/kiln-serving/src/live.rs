//! The request path: find the endpoint, check the caller, pick a deployment by the traffic
//! split (or the one the caller named), copy a share to the mirror deployment, wait for a
//! slot within the queue time, score within the request timeout, count it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::auth::{self, Denied, Keys};
use crate::metrics::DeploymentMetrics;
use crate::onnx::OnnxModel;
use crate::protocol::{self, ScoringErrorKind};
use crate::{EndpointDocument, Serving, now_s};

/// A scoring request, as the HTTP layer hands it over.
#[derive(Debug, Clone)]
pub struct ScoreRequest {
    pub body: Bytes,
    pub content_type: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `azureml-model-deployment` header: score with this deployment.
    pub deployment: Option<String>,
}

/// The answer: a status, its content type, the body, and the deployment that served it.
#[derive(Debug, Clone)]
pub struct ScoreResponse {
    pub status: u16,
    pub content_type: Cow<'static, str>,
    pub body: Bytes,
    pub deployment: Option<String>,
}

const JSON: &str = "application/json";

impl ScoreResponse {
    pub(crate) fn error(status: u16, code: &str, message: &str) -> ScoreResponse {
        ScoreResponse {
            status,
            content_type: Cow::Borrowed(JSON),
            body: protocol::error_body(code, message).into(),
            deployment: None,
        }
    }
}

/// What answers a deployment's requests.
pub(crate) enum Runtime {
    Onnx(Arc<OnnxModel>),
    /// MLflow pyfunc models and scoring scripts.
    Workers(crate::workers::WorkerPool),
}

pub(crate) struct LiveDeployment {
    pub name: String,
    pub runtime: Runtime,
    /// Requests being scored at once: instances × max concurrent requests per instance.
    pub slots: Arc<Semaphore>,
    pub queue_wait: Duration,
    pub timeout: Duration,
    pub metrics: DeploymentMetrics,
}

/// An endpoint's routing table. Replaced whole when anything about it changes.
pub(crate) struct LiveEndpoint {
    pub name: String,
    pub auth_mode: String,
    pub keys: Keys,
    pub deployments: HashMap<String, Arc<LiveDeployment>>,
    /// Cumulative percents (1..=100) and the deployment each range goes to.
    pub routes: Vec<(u32, String)>,
    /// The deployment that gets copies, and the percent of requests copied.
    pub mirror: Option<(String, u32)>,
    /// Deployments named in the traffic split that cannot serve, and why.
    pub unavailable: HashMap<String, String>,
}

impl LiveEndpoint {
    pub fn new(
        name: &str,
        doc: &EndpointDocument,
        deployments: HashMap<String, Arc<LiveDeployment>>,
        unavailable: HashMap<String, String>,
    ) -> LiveEndpoint {
        let mut routes = Vec::new();
        let mut total = 0;
        for (dep, pct) in &doc.traffic {
            if *pct > 0 {
                total += pct;
                routes.push((total, dep.clone()));
            }
        }
        let mirror = doc.mirror_traffic.iter().find(|(_, p)| **p > 0).map(|(d, p)| (d.clone(), *p));
        LiveEndpoint {
            name: name.to_string(),
            auth_mode: doc.auth_mode.clone(),
            keys: doc.keys.clone(),
            deployments,
            routes,
            mirror,
            unavailable,
        }
    }

    fn check(&self, authorization: Option<&str>) -> Result<(), Denied> {
        let credential = auth::bearer(authorization);
        match self.auth_mode.as_str() {
            "aml_token" => auth::check_token(&self.keys, &self.name, credential, now_s()),
            _ => auth::check_key(&self.keys, credential),
        }
    }

    fn pick(&self) -> Option<&str> {
        let total = self.routes.last()?.0;
        let r = fastrand::u32(0..total);
        self.routes.iter().find(|(upto, _)| r < *upto).map(|(_, d)| d.as_str())
    }
}

impl LiveDeployment {
    /// Scores within the deployment's limits: a free slot within the queue time (else 429),
    /// an answer within the request timeout (else 408).
    pub async fn score(&self, request: &ScoreRequest) -> ScoreResponse {
        let started = Instant::now();
        let response = self.score_limited(request).await;
        self.metrics.observe(response.status, started.elapsed().as_secs_f64());
        ScoreResponse { deployment: Some(self.name.clone()), ..response }
    }

    async fn score_limited(&self, request: &ScoreRequest) -> ScoreResponse {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => match tokio::time::timeout(self.queue_wait, self.slots.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => {
                    return ScoreResponse::error(
                        429,
                        "TOO_MANY_REQUESTS",
                        &format!(
                            "deployment '{}' is busy: every instance is at its max_concurrent_requests_per_instance \
                             and no slot freed within max_queue_wait_ms ({} ms)",
                            self.name,
                            self.queue_wait.as_millis()
                        ),
                    );
                }
            },
        };
        let answer = tokio::time::timeout(self.timeout, self.run(request)).await;
        drop(permit);
        match answer {
            Ok(r) => r,
            Err(_) => ScoreResponse::error(
                408,
                "REQUEST_TIMEOUT",
                &format!(
                    "deployment '{}' did not answer within request_timeout_ms ({} ms)",
                    self.name,
                    self.timeout.as_millis()
                ),
            ),
        }
    }

    async fn run(&self, request: &ScoreRequest) -> ScoreResponse {
        match &self.runtime {
            Runtime::Onnx(model) => {
                let result = match protocol::decode(request.content_type.as_deref(), &request.body) {
                    Ok(payload) => model.predict(payload).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(predictions) => {
                        let body =
                            serde_json::to_vec(&serde_json::json!({ "predictions": predictions })).unwrap_or_default();
                        ScoreResponse {
                            status: 200,
                            content_type: Cow::Borrowed(JSON),
                            body: body.into(),
                            deployment: None,
                        }
                    }
                    Err(e) => {
                        let (status, code) = match e.kind {
                            ScoringErrorKind::BadRequest => (400, "BAD_REQUEST"),
                            ScoringErrorKind::UnsupportedMediaType => (415, "UNSUPPORTED_MEDIA_TYPE"),
                            ScoringErrorKind::ModelFailed => (500, "MODEL_ERROR"),
                        };
                        ScoreResponse::error(status, code, &e.message)
                    }
                }
            }
            Runtime::Workers(pool) => pool.score(&self.name, request).await,
        }
    }
}

impl Serving {
    fn live_endpoint(&self, name: &str) -> Option<Arc<LiveEndpoint>> {
        self.inner.live.read().ok()?.get(name).cloned()
    }

    /// Answers a scoring request to an online endpoint.
    pub async fn score(&self, endpoint: &str, request: ScoreRequest) -> ScoreResponse {
        let Some(ep) = self.live_endpoint(endpoint) else {
            return ScoreResponse::error(
                404,
                "ENDPOINT_NOT_FOUND",
                &format!("online endpoint '{endpoint}' does not exist"),
            );
        };
        if let Err(denied) = ep.check(request.authorization.as_deref()) {
            self.inner.metrics.unrouted(endpoint, 401);
            return ScoreResponse::error(401, "UNAUTHENTICATED", denied.message());
        }
        let targeted = request.deployment.as_deref().filter(|d| !d.is_empty());
        let name = match targeted {
            Some(d) => d,
            None => match ep.pick() {
                Some(d) => d,
                None => {
                    self.inner.metrics.unrouted(endpoint, 503);
                    return ScoreResponse::error(
                        503,
                        "NO_DEPLOYMENT",
                        &format!(
                            "endpoint '{endpoint}' sends no traffic to any deployment: set its traffic \
                             (kiln online-endpoint update --traffic \"blue=100\") or name a deployment in the \
                             azureml-model-deployment header"
                        ),
                    );
                }
            },
        };
        let Some(dep) = ep.deployments.get(name) else {
            let (status, code, message) = match ep.unavailable.get(name) {
                Some(why) => (503, "DEPLOYMENT_UNAVAILABLE", format!("deployment '{name}' cannot serve: {why}")),
                None => (404, "DEPLOYMENT_NOT_FOUND", format!("endpoint '{endpoint}' has no deployment '{name}'")),
            };
            self.inner.metrics.unrouted(endpoint, status);
            return ScoreResponse::error(status, code, &message);
        };
        // Mirror traffic: a copy of a share of the routed requests, whose answer is dropped.
        if targeted.is_none()
            && let Some((mirror, pct)) = &ep.mirror
            && mirror != name
            && fastrand::u32(0..100) < *pct
            && let Some(shadow) = ep.deployments.get(mirror)
            // A copy never waits for a slot: when the mirror is busy, the copy is dropped.
            && shadow.slots.available_permits() > 0
        {
            let shadow = shadow.clone();
            let copy = request.clone();
            shadow.metrics.mirrored();
            tokio::spawn(async move {
                let _ = shadow.score(&copy).await;
            });
        }
        dep.score(&request).await
    }
}
