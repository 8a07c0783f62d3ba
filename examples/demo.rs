//! The demo: one hyper server with an axum route at `/`, the gateway app of the examples at
//! `/gateway/` (through `AppService`), the CGI host serving `examples/cgi-bin/` at
//! `/cgi-bin/`, and tower layers (trace, timeout) around it all.
//!
//! ```text
//! cargo run --example demo                 # http://127.0.0.1:8000/
//! cargo run --example demo -- --addr 127.0.0.1:9000
//! curl http://127.0.0.1:8000/cgi-bin/hello
//! curl -d 'a=1' 'http://127.0.0.1:8000/cgi-bin/printenv/extra/path?x=1'
//! curl http://127.0.0.1:8000/gateway/hello
//! ```

#[path = "common/addr.rs"]
mod addr;
#[path = "common/gateway_app.rs"]
mod gateway_app;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use towergate::host::{CgiBin, ProgramOptions};
use towergate::layer::ConnectInfoLayer;
use towergate::service::AppService;

const DEFAULT_ADDR: &str = "127.0.0.1:8000";

fn app() -> Router {
    let cgi_bin = CgiBin::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cgi-bin"))
        .mount("/cgi-bin")
        .options(
            ProgramOptions::new()
                .timeout(Duration::from_secs(20))
                .max_processes(32),
        );
    Router::new()
        .route("/", get(index))
        .route_service("/cgi-bin/{*program}", cgi_bin)
        .nest_service(
            "/gateway",
            AppService::new(gateway_app::app()).script_name("/gateway"),
        )
        .layer(TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http())
}

async fn index() -> &'static str {
    "towergate demo: an axum route; a gateway app under /gateway/ (hello, chunks, environ); \
     CGI programs under /cgi-bin/ (hello, printenv)\n"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=debug".into()),
        )
        .init();
    let addr = addr::from_args("demo", DEFAULT_ADDR)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    println!("towergate demo listening on http://{local}/");
    println!("  http://{local}/                         axum route");
    println!("  http://{local}/cgi-bin/hello            shell script over CGI");
    println!("  http://{local}/cgi-bin/printenv/a?b=1   Perl script printing its meta-variables");
    println!("  http://{local}/gateway/hello            gateway app (environ + start_response)");
    println!("  http://{local}/gateway/environ          the gateway app's environ");

    let app = app();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => break,
        };
        // A CGI program's own reason phrase (`Status: 299 Fine Thanks`) reaches the wire: the
        // host puts it in hyper's extension itself (feature `hyper`).
        let service = ServiceBuilder::new()
            .layer(ConnectInfoLayer::new(remote, Some(local)))
            .service(app.clone());
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .await
            {
                tracing::debug!("connection from {remote}: {error}");
            }
        });
    }
    Ok(())
}
