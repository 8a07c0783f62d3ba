//! The gateway app of `gateway_cgi`, served by hyper through `AppService`, behind a
//! `tower::ServiceBuilder` of tower-http layers: the layer story in one file.
//!
//! ```text
//! cargo run --example gateway_hyper -- --addr 127.0.0.1:8000
//! curl -i http://127.0.0.1:8000/hello
//! ```

#[path = "common/gateway_app.rs"]
mod gateway_app;

use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use towergate::layer::ConnectInfoLayer;
use towergate::service::AppService;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=debug".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let mut addr: SocketAddr = "127.0.0.1:8000".parse()?;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs HOST:PORT")?.parse()?,
            other => {
                return Err(format!("unknown argument {other:?} (try --addr HOST:PORT)").into());
            }
        }
    }
    let listener = TcpListener::bind(addr).await?;
    println!("gateway app on http://{}/hello", listener.local_addr()?);

    let app = AppService::new(gateway_app::app());
    loop {
        let (stream, remote) = listener.accept().await?;
        let local = stream.local_addr().ok();
        let service = ServiceBuilder::new()
            .layer(TraceLayer::new_for_http())
            .layer(TimeoutLayer::with_status_code(
                http::StatusCode::GATEWAY_TIMEOUT,
                Duration::from_secs(30),
            ))
            .layer(CompressionLayer::new())
            .layer(ConnectInfoLayer::new(remote, local))
            .service(app.clone());
        tokio::spawn(async move {
            let served = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .await;
            if let Err(e) = served {
                tracing::debug!("connection from {remote} ended: {e}");
            }
        });
    }
}
