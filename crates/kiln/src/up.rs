//! `kiln up`: open the workspace and serve it until interrupted.

use std::time::Instant;

use anyhow::{Context, Result};

use crate::cli::UpArgs;

pub async fn run(args: UpArgs) -> Result<()> {
    let started = Instant::now();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KILN_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data folder {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize().unwrap_or(args.data_dir.clone());
    let store = args.store.clone().unwrap_or_else(|| format!("sqlite://{}", data_dir.join("kiln.db").display()));
    let artifacts = args.artifacts.clone().unwrap_or_else(|| data_dir.join("artifacts").display().to_string());
    let cache_dir = args.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let config = kiln_server::WorkspaceConfig {
        store: store.clone(),
        artifacts: artifacts.clone(),
        data_dir: data_dir.clone(),
        cache_dir,
        exe: std::env::current_exe().context("cannot find the kiln binary (for job launchers)")?,
    };
    let state = kiln_server::open(&config).await.context("cannot open the workspace")?;
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    // Jobs on this machine reach the server on loopback when it listens on every address.
    let job_host = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
    let job_url = match addr {
        std::net::SocketAddr::V6(_) if job_host != "127.0.0.1" => format!("http://[{job_host}]:{}", addr.port()),
        _ => format!("http://{job_host}:{}", addr.port()),
    };
    state.orchestrator.start(&job_url).await.context("cannot start the job scheduler")?;
    state.serving.start().await.context("cannot restore the online endpoints")?;
    // One parseable line on stdout, so scripts and tests learn the port (with --port 0).
    println!("Kiln listening on http://{addr}");
    tracing::info!(
        store = %redact(&store),
        artifacts = %artifacts,
        data_dir = %data_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "workspace ready"
    );
    kiln_server::serve(listener, state.clone(), shutdown_signal()).await.context("server failed")?;
    state.tracking.store().close().await;
    tracing::info!("stopped");
    Ok(())
}

/// `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`: environments and snapshots are shared by
/// every workspace of the user.
fn default_cache_dir() -> std::path::PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return std::path::PathBuf::from(x).join("kiln");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => std::path::PathBuf::from(home).join(".cache/kiln"),
        None => std::env::temp_dir().join("kiln-cache"),
    }
}

/// Hides a password in a database URL before logging it.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
