//! `tollgate-rls`: Envoy's RLS v3 `ShouldRateLimit` on Redis, counting all of a request's limits
//! or none of them. This file only starts things: flags, Redis, health, the gRPC server, shutdown.

mod config;
mod counting;
mod health;
mod request;
mod response;
mod script;
mod server;
mod service;
mod store;
mod wire;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::config::{Config, ConfigError};
use crate::server::RateLimitServer;
use crate::service::RateLimiter;
use crate::store::Store;

/// Concurrent calls on one HTTP/2 connection. At ~1 ms a call, an Envoy worker would need
/// 100,000 calls/s to fill them.
const MAX_STREAMS_PER_CONNECTION: u32 = 100;
/// How much longer than `--redis-timeout-ms` a call may take in all (reading the request
/// included) before it is cancelled.
const CALL_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> ExitCode {
    let redis_env = std::env::var(config::REDIS_ENV).ok();
    // args_os: a non-UTF-8 argument becomes an unknown flag instead of a panic.
    let args = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned());
    match config::parse(args, redis_env) {
        Ok(config) => run(config).await,
        Err(ConfigError::Help) => {
            println!("{}", config::USAGE);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tollgate-rls: {e}\n\n{}", config::USAGE);
            ExitCode::from(2)
        }
    }
}

async fn run(config: Config) -> ExitCode {
    let redis_shown = config::redact(&config.redis_url);
    // rediss:// goes through rustls, which needs a process-wide crypto provider. An Err only
    // means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let store = match Store::new(&config.redis_url, config.redis_timeout) {
        Ok(store) => Arc::new(store),
        Err(e) => {
            eprintln!("tollgate-rls: {redis_shown}: {e}");
            return ExitCode::from(2);
        }
    };

    let (reporter, health_service) = tonic_health::server::health_reporter();
    // NOT_SERVING until the first probe has reached Redis.
    health::set(&reporter, false).await;
    tokio::spawn(health::watch(Arc::clone(&store), reporter));

    let listener = match TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("tollgate-rls: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(1);
        }
    };
    let shutdown = shutdown_requested();
    let address = listener.local_addr().unwrap_or(config.listen);
    eprintln!("tollgate-rls: listening on {address} (redis {redis_shown})");

    let served = Server::builder()
        // Each stream may hold a buffer of up to MAX_REQUEST_BYTES until its message is
        // complete: bound how many one connection opens (tonic leaves hyper's 200 unset, so
        // unlimited) and how long one may take. Envoy opens another connection when it needs
        // more streams; its own timeout is far shorter.
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .timeout(config.redis_timeout + CALL_TIMEOUT_MARGIN)
        .add_service(health_service)
        .add_service(RateLimitServer::new(RateLimiter::new(
            store,
            config.max_hits_addend,
        )))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate-rls: server failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or SIGINT; in-flight calls then finish.
/// The handlers are installed when this is called, not when first polled, so a signal sent right
/// after the "listening" line is not lost.
fn shutdown_requested() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    let install = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(signal) => Some(signal),
        Err(e) => {
            eprintln!("tollgate-rls: cannot watch {name}: {e}");
            None
        }
    };
    async fn received(signal: Option<Signal>) {
        match signal {
            Some(mut signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    let terminate = received(install(SignalKind::terminate(), "SIGTERM"));
    let interrupt = received(install(SignalKind::interrupt(), "SIGINT"));
    async move {
        tokio::select! {
            () = terminate => {}
            () = interrupt => {}
        }
        eprintln!("tollgate-rls: shutting down");
    }
}
