//! A Flask app (`examples/wsgi_flask.py`) mounted at `/flask/` beside an axum route at `/`
//! and the gateway app of the examples at `/gateway/`, behind tower layers (trace,
//! timeout): the way to move a Python service to Rust one route at a time.
//!
//! ```text
//! python3 -m venv target/python-venv && target/python-venv/bin/pip install flask
//! VIRTUAL_ENV=target/python-venv PYO3_PYTHON=/usr/bin/python3 \
//!     cargo run --features python --example wsgi_flask      # http://127.0.0.1:8000/
//! curl http://127.0.0.1:8000/flask/hello/you
//! curl -d 'some bytes' http://127.0.0.1:8000/flask/echo
//! curl http://127.0.0.1:8000/gateway/hello
//! ```
//!
//! `--addr HOST:PORT` sets the address. The virtualenv comes from `VIRTUAL_ENV`, which
//! [`WsgiApp::builder`] reads; it must be made from the interpreter the example was built
//! against (`PYO3_PYTHON`).

#[path = "common/gateway_app.rs"]
mod gateway_app;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use towergate::ext::ConnectInfo;
use towergate::python::WsgiApp;
use towergate::service::AppService;

fn app(flask: WsgiApp) -> Router {
    let flask = AppService::new(flask).script_name("/flask");
    Router::new()
        .route("/", get(index))
        .route_service("/flask/", flask.clone())
        .route_service("/flask/{*rest}", flask)
        .nest_service(
            "/gateway",
            AppService::new(gateway_app::app()).script_name("/gateway"),
        )
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
                .layer(TimeoutLayer::with_status_code(
                    http::StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(30),
                ))
                .map_request(with_client_address),
        )
}

async fn index() -> &'static str {
    "an axum route; a Flask app under /flask/ (hello/NAME, echo, stream); \
     a gateway app under /gateway/ (hello, chunks, environ)\n"
}

/// The client's address as towergate's extension: `REMOTE_ADDR` for the apps.
fn with_client_address(mut request: Request) -> Request {
    let remote = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    if let Some(remote) = remote {
        request.extensions_mut().insert(ConnectInfo {
            remote,
            local: None,
        });
    }
    request
}

fn addr() -> Result<SocketAddr, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = match args.as_slice() {
        [] => "127.0.0.1:8000",
        [flag, addr] if flag == "--addr" => addr,
        _ => return Err("usage: wsgi_flask [--addr HOST:PORT]".into()),
    };
    addr.parse()
        .map_err(|e| format!("bad address {addr:?}: {e}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=debug".into()),
        )
        .init();
    let addr = addr()?;
    let flask = WsgiApp::builder()
        .python_path(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
        .import("wsgi_flask:app")?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    println!("wsgi_flask listening on http://{local}/");
    println!("  http://{local}/                 axum route");
    println!("  http://{local}/flask/           Flask app");
    println!("  http://{local}/flask/hello/you  Flask route");
    println!("  http://{local}/gateway/hello    gateway app (environ + start_response)");
    let service = app(flask).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
