//! Put the connection's addresses in each request: the one layer a hyper accept loop needs.

use std::net::SocketAddr;
use std::task::{Context, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::ext::ConnectInfo;

/// Inserts a connection's [`ConnectInfo`] into each of its requests, so that
/// [`MountLayer`](super::MountLayer), [`AppService`](crate::service::AppService), the CGI
/// host and every [`EnvironBuilder`](crate::environ::EnvironBuilder) see `REMOTE_ADDR`,
/// `REMOTE_PORT` and the local address. Build one per accepted connection:
///
/// ```no_run
/// use hyper_util::rt::{TokioExecutor, TokioIo};
/// use hyper_util::server::conn::auto;
/// use hyper_util::service::TowerToHyperService;
/// use tower::ServiceBuilder;
/// use towergate::layer::{ConnectInfoLayer, MountLayer};
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8001").await?;
/// loop {
///     let (stream, remote) = listener.accept().await?;
///     let service = ServiceBuilder::new()
///         .layer(ConnectInfoLayer::new(remote, stream.local_addr().ok()))
///         .layer(MountLayer::new("/cgi-bin/app"))
///         .service(app.clone());
///     tokio::spawn(async move {
///         let _ = auto::Builder::new(TokioExecutor::new())
///             .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
///             .await;
///     });
/// }
/// # }
/// ```
///
/// An axum server built with `into_make_service_with_connect_info::<SocketAddr>()` needs no
/// layer (with the `axum` feature): see [`ConnectInfo`].
#[derive(Clone, Copy, Debug)]
pub struct ConnectInfoLayer {
    info: ConnectInfo,
}

impl ConnectInfoLayer {
    /// The addresses of one connection: the client's, and the local one when known.
    pub fn new(remote: SocketAddr, local: Option<SocketAddr>) -> Self {
        ConnectInfoLayer {
            info: ConnectInfo { remote, local },
        }
    }

    /// The addresses inserted.
    pub fn connect_info(&self) -> ConnectInfo {
        self.info
    }
}

impl From<ConnectInfo> for ConnectInfoLayer {
    fn from(info: ConnectInfo) -> Self {
        ConnectInfoLayer { info }
    }
}

impl<S> Layer<S> for ConnectInfoLayer {
    type Service = AddConnectInfo<S>;

    fn layer(&self, inner: S) -> AddConnectInfo<S> {
        AddConnectInfo {
            inner,
            info: self.info,
        }
    }
}

/// A service that inserts its connection's [`ConnectInfo`] into each request: see
/// [`ConnectInfoLayer`].
///
/// ```
/// use tower::{Layer, ServiceExt};
/// use towergate::ext::ConnectInfo;
/// use towergate::layer::ConnectInfoLayer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let service = tower::service_fn(|request: http::Request<()>| async move {
///     let info = request.extensions().get::<ConnectInfo>().copied();
///     Ok::<_, std::convert::Infallible>(info.map(|i| i.remote.port()))
/// });
/// let service = ConnectInfoLayer::new("192.0.2.1:4000".parse().unwrap(), None).layer(service);
/// let port = service.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(port, Some(4000));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct AddConnectInfo<S> {
    inner: S,
    info: ConnectInfo,
}

impl<S> AddConnectInfo<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for AddConnectInfo<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        request.extensions_mut().insert(self.info);
        self.inner.call(request)
    }
}
