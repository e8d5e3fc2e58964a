//! The `room` binary: reads flags and site settings, binds, serves until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use room::server::config::{Command, Config};
use room::server::{auth, http, run, shutdown_signal, site, spawn_metrics, AppState};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("ROOM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let config = Config::parse();
    if let Some(Command::Token(args)) = &config.command {
        let now = room::server::unix_now().0 / 1000;
        return match auth::token_command(args, now) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("room token: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let leptos = match site::load(&config.site_config) {
        Ok(options) => options,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let addr = config.addr.unwrap_or(leptos.site_addr);
    let listener = match http::bind(addr) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!("cannot listen on {addr}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    // Scripts and the end-to-end tests read this line to find a port chosen by the OS.
    println!("Room is listening on http://{local}");
    tracing::info!(site_root = %leptos.site_root, "serving");

    let state = match AppState::new(config, leptos) {
        Ok(state) => state,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(metrics_addr) = state.config.metrics_addr.0 {
        // Metrics are optional: a busy port costs them, not the meeting server.
        match tokio::net::TcpListener::bind(metrics_addr).await {
            Ok(metrics) => {
                let local = metrics.local_addr().unwrap_or(metrics_addr);
                tracing::info!("metrics on http://{local}/metrics");
                spawn_metrics(metrics, state.clone());
            }
            Err(error) => tracing::warn!("cannot serve metrics on {metrics_addr}: {error}"),
        }
    }
    match run(listener, state, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("server failed: {error}");
            ExitCode::FAILURE
        }
    }
}
