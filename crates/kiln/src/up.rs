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
    let state = kiln_server::open(&store, &artifacts).await.context("cannot open the workspace")?;
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
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
