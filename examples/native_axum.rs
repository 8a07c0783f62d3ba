//! The router of `cgi_axum` (`examples/common/axum_app.rs`), served natively by hyper and
//! mounted at `/cgi-bin/app` through towergate's `MountLayer`: every route answers as
//! `cgi_axum` does when a web server runs it at `/cgi-bin/app` (`REMOTE_PORT` aside), `/info`
//! included.
//!
//! ```text
//! cargo run --example native_axum                  # http://127.0.0.1:8001/cgi-bin/app/
//! cargo run --example native_axum -- --addr 127.0.0.1:9001
//! curl 'http://127.0.0.1:8001/cgi-bin/app/info?x=1'
//! ```
//!
//! The only glue is a stack of layers on each connection: the connection's addresses
//! (`ConnectInfoLayer`), the CGI view of the request (`MountLayer`) and, since a panicking
//! handler under CGI gets towergate's error response, the same response for a panic here.

#[path = "common/addr.rs"]
mod addr;
#[path = "common/axum_app.rs"]
mod axum_app;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use towergate::error_response::{DefaultErrorResponse, ErrorResponse};
use towergate::layer::{ConnectInfoLayer, MountLayer};

const DEFAULT_ADDR: &str = "127.0.0.1:8001";
const MOUNT: &str = "/cgi-bin/app";

/// What `cgi::run` answers when the handler panics: towergate's default error response.
fn panic_response(_panic: Box<dyn std::any::Any + Send>) -> http::Response<axum::body::Body> {
    let error = towergate::BoxError::from("the handler panicked");
    DefaultErrorResponse::new()
        .error_response(&error)
        .map(axum::body::Body::from)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let listener =
        tokio::net::TcpListener::bind(addr::from_args("native_axum", DEFAULT_ADDR)?).await?;
    let local = listener.local_addr()?;
    println!("native_axum listening on http://{local}{MOUNT}/ (try {MOUNT}/info?x=1)");

    let app = axum_app::app();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let service = ServiceBuilder::new()
            .layer(ConnectInfoLayer::new(remote, Some(local)))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(MountLayer::new(MOUNT))
            .service(app.clone());
        tokio::spawn(async move {
            let served = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .await;
            if let Err(e) = served {
                eprintln!("native_axum: connection from {remote}: {e}");
            }
        });
    }
}
