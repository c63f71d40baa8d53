//! Kiln's HTTP server: the only crate that knows HTTP.
//!
//! Two faces over the same services: MLflow's REST API (`/api/2.0/mlflow`, `/api/3.0/mlflow`,
//! the artifact proxy, and the `/ajax-api` twins) and Kiln's native API (`/api/v1`, with an
//! OpenAPI document). Every request passes one identity layer first.

mod artifacts;
mod assets;
mod batch;
mod endpoints;
mod error;
mod fields;
mod jobs;
mod mlflow;
pub mod native;
mod schedules;
mod studio;
mod wire;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kiln_blobs::ArtifactStore;
use kiln_orchestrator::{Orchestrator, OrchestratorConfig};
use kiln_registry::Registry;
use kiln_serving::{Serving, ServingConfig};
use kiln_store::Store;
use kiln_tracking::Tracking;

pub use error::ApiError;

/// The version `/version` reports to MLflow clients. Below 3.4 the client logs trace spans
/// as a `traces.json` artifact instead of through OTLP, which Kiln does not ingest yet.
pub const MLFLOW_COMPAT_VERSION: &str = "3.3.0";

/// The services every handler reaches.
pub struct AppState {
    pub tracking: Tracking,
    pub registry: Registry,
    pub orchestrator: Orchestrator,
    pub serving: Serving,
    pub studio: kiln_studio::Studio,
}

pub type Shared = Arc<AppState>;

/// The caller of a request. Authentication is not enforced yet; this is the one place where
/// it will be, and handlers that need the caller read it from the request's extensions.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The user name a client sent (HTTP basic auth or `X-Kiln-User`), unverified.
    pub user: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the metadata store: {0}")]
    Store(#[from] kiln_store::StoreError),
    #[error("cannot open the artifact store: {0}")]
    Blobs(#[from] kiln_blobs::BlobError),
    #[error("cannot initialize the workspace: {0}")]
    Service(#[from] kiln_tracking::ServiceError),
}

/// Where a workspace keeps its state.
#[derive(Debug, Clone)]
pub struct WorkspaceConfig {
    /// `sqlite://PATH` or `postgresql://…`.
    pub store: String,
    /// A folder or `s3://BUCKET/PREFIX`.
    pub artifacts: String,
    /// Job folders (`<data_dir>/jobs/<name>`).
    pub data_dir: std::path::PathBuf,
    /// Environments, snapshots and downloads shared by the jobs of this machine.
    pub cache_dir: std::path::PathBuf,
    /// The `kiln` binary, whose `launch` command runs jobs.
    pub exe: std::path::PathBuf,
}

/// Opens a workspace. Jobs are not scheduled until `orchestrator.start` is called with the
/// URL they reach the server at.
pub async fn open(config: &WorkspaceConfig) -> Result<Shared, OpenError> {
    let store = Store::connect(&config.store).await?;
    let blobs = ArtifactStore::open(&config.artifacts)?;
    let tracking = Tracking::new(store, blobs).await?;
    let registry = Registry::new(tracking.clone());
    let orchestrator = Orchestrator::new(
        tracking.clone(),
        OrchestratorConfig {
            data_dir: config.data_dir.clone(),
            cache_dir: config.cache_dir.clone(),
            exe: config.exe.clone(),
            artifact_store: config.artifacts.clone(),
        },
    );
    let serving = Serving::new(
        tracking.clone(),
        orchestrator.clone(),
        ServingConfig {
            data_dir: config.data_dir.clone(),
            cache_dir: config.cache_dir.clone(),
            exe: config.exe.clone(),
            artifact_store: config.artifacts.clone(),
        },
    );
    let studio = kiln_studio::Studio::new(tracking.clone(), orchestrator.clone(), serving.clone());
    Ok(Arc::new(AppState { tracking, registry, orchestrator, serving, studio }))
}

async fn resolve_identity(mut req: Request, next: Next) -> Response {
    let user = req
        .headers()
        .get("x-kiln-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| basic_auth_user(req.headers().get(header::AUTHORIZATION)?.to_str().ok()?));
    req.extensions_mut().insert(Identity { user });
    next.run(req).await
}

fn basic_auth_user(value: &str) -> Option<String> {
    use base64::Engine;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split_once(':').map(|(u, _)| u).unwrap_or(&text).to_string())
}

/// No name in Kiln may hold a NUL character (PostgreSQL cannot store one): refuse it in any
/// URL up front rather than deep in a query.
async fn refuse_nul_in_url(req: Request, next: Next) -> Response {
    let uri = req.uri();
    let has_nul = |s: &str| s.to_ascii_lowercase().contains("%00");
    if has_nul(uri.path()) || uri.query().is_some_and(has_nul) {
        return ApiError::invalid("Invalid request: the URL contains a NUL character").into_response();
    }
    next.run(req).await
}

/// Unknown routes answer a plain-text 404: MLflow clients read that as ENDPOINT_NOT_FOUND
/// and fall back to older endpoints, which a JSON 404 would break.
async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "Not Found").into_response()
}

/// The whole HTTP application.
pub fn router(state: Shared) -> Router {
    let v2 = mlflow::v2_routes();
    let v3 = mlflow::v3_routes();
    let proxy = artifacts::routes();
    let api = Router::new()
        .nest("/api/2.0/mlflow", v2.clone())
        .nest("/ajax-api/2.0/mlflow", v2)
        .nest("/api/3.0/mlflow", v3.clone())
        .nest("/ajax-api/3.0/mlflow", v3)
        .nest("/api/2.0/mlflow-artifacts", proxy.clone())
        .nest("/ajax-api/2.0/mlflow-artifacts", proxy)
        .nest(
            "/api/v1",
            native::routes()
                .merge(jobs::routes())
                .merge(assets::routes())
                .merge(schedules::routes())
                .merge(endpoints::routes())
                .merge(batch::routes()),
        )
        // JSON bodies are read whole; artifacts stream and are not limited by this.
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024));
    Router::new()
        .merge(api)
        .merge(endpoints::data_plane())
        .merge(studio::routes())
        .route("/health", get(|| async { "OK" }))
        .route("/version", get(|| async { MLFLOW_COMPAT_VERSION }))
        .fallback(not_found)
        .layer(middleware::from_fn(resolve_identity))
        .layer(middleware::from_fn(refuse_nul_in_url))
        .with_state(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Shared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
