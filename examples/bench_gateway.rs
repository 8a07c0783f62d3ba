//! The server behind the comparison script's gateway row: `hello` answered by a native hyper
//! `service_fn`, or by a gateway app through `AppService`, on the same hyper server.
//!
//! ```text
//! cargo run --release --example bench_gateway -- native 127.0.0.1:8001
//! cargo run --release --example bench_gateway -- gateway 127.0.0.1:8002
//! wrk -t2 -c64 -d10s http://127.0.0.1:8002/
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use towergate::gateway::{App, AppBody, StartResponse, app_fn};
use towergate::service::AppService;
use towergate::{BoxError, Environ};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "gateway".into());
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:8000").parse()?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("{mode} hello on http://{}/", listener.local_addr()?);
    match mode.as_str() {
        "native" => {
            let service = tower::service_fn(|_: Request<Incoming>| async {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header(header::CONTENT_TYPE, "text/plain")
                        .body(Full::new(Bytes::from_static(b"Hello, world!")))
                        .unwrap_or_default(),
                )
            });
            serve(listener, service).await
        }
        "gateway" => serve(listener, AppService::new(hello())).await,
        other => Err(format!("unknown mode {other:?}: native or gateway").into()),
    }
}

/// The gateway hello app.
fn hello() -> impl App<Body = AppBody, Future: Send + 'static> + Clone + Send + Sync + 'static {
    app_fn(|_: Environ, start_response: StartResponse| async move {
        start_response.start("200 OK", [("Content-Type", "text/plain")])?;
        Ok::<_, BoxError>(AppBody::from(Bytes::from_static(b"Hello, world!")))
    })
}

async fn serve<S, B>(listener: TcpListener, service: S) -> Result<(), BoxError>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
