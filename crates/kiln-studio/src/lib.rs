//! The studio: Kiln's web UI, served by `kiln up` under `/ui`.
//!
//! Pages are rendered on the server with askama from the services' own views (no client-side
//! framework, nothing fetched from the internet); charts are SVG drawn here ([`chart`]); the
//! one script (`static/studio.js`) only refreshes live parts of a page. Nothing here knows
//! HTTP: a page is a function from a request's parameters to HTML, or a [`StudioError`] the
//! server turns into a status.

pub mod chart;
pub mod dag;
mod pages;
pub mod parallel;

use kiln_orchestrator::Orchestrator;
use kiln_serving::Serving;
use kiln_tracking::{ServiceError, Tracking};

pub use pages::ExperimentQuery;

/// The services the pages read.
#[derive(Clone)]
pub struct Studio {
    tracking: Tracking,
    registry: kiln_registry::Registry,
    orchestrator: Orchestrator,
    serving: Serving,
}

/// A page that cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum StudioError {
    #[error("{0}")]
    Service(#[from] ServiceError),
    #[error("the page cannot be rendered: {0}")]
    Render(#[from] askama::Error),
}

pub type Result<T> = std::result::Result<T, StudioError>;

#[derive(rust_embed::Embed)]
#[folder = "static/"]
struct Assets;

/// An embedded asset: its content type, bytes, and a tag that changes with its content.
pub fn asset(path: &str) -> Option<(&'static str, std::borrow::Cow<'static, [u8]>, String)> {
    let file = Assets::get(path)?;
    let content_type = match path.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    let etag =
        format!("\"{}\"", file.metadata.sha256_hash().iter().take(8).map(|b| format!("{b:02x}")).collect::<String>());
    Some((content_type, file.data, etag))
}

impl Studio {
    pub fn new(tracking: Tracking, orchestrator: Orchestrator, serving: Serving) -> Studio {
        Studio { registry: kiln_registry::Registry::new(tracking.clone()), tracking, orchestrator, serving }
    }
}
