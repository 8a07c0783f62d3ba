//! Helpers for the gateway tests: bodies that record being dropped, and a real hyper server.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use towergate::BoxError;

/// A flag set when a [`Tracked`] body is dropped (the app's `close()`).
#[derive(Clone, Default, Debug)]
pub struct DropFlag(Arc<AtomicBool>);

impl DropFlag {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until the flag is set; true if it was.
    pub async fn wait(&self) -> bool {
        for _ in 0..500 {
            if self.is_set() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.is_set()
    }
}

pin_project_lite::pin_project! {
    /// A body that sets its flag when dropped.
    pub struct Tracked<B> {
        #[pin]
        inner: B,
        flag: DropFlag,
    }
    impl<B> PinnedDrop for Tracked<B> {
        fn drop(this: Pin<&mut Self>) {
            this.flag.0.store(true, Ordering::SeqCst);
        }
    }
}

impl<B> Tracked<B> {
    pub fn new(inner: B, flag: DropFlag) -> Self {
        Tracked { inner, flag }
    }
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.project().inner.poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A frame or an error, as a channel body carries them.
pub type FrameResult = Result<Frame<Bytes>, BoxError>;

/// The body end of [`channel_body`].
pub type ChannelBody = http_body_util::StreamBody<tokio_stream_shim::ReceiverStream<FrameResult>>;

/// Reads `body` to its end: `Err` when it ends with an error (a response cut), `Ok` when it
/// ends cleanly.
pub async fn read_to_end<B: Body + Unpin>(body: &mut B) -> Result<(), B::Error> {
    use http_body_util::BodyExt;
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(())
}

/// A body of frames from a channel: the test decides when each chunk exists.
pub fn channel_body() -> (tokio::sync::mpsc::Sender<FrameResult>, ChannelBody) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    (
        tx,
        http_body_util::StreamBody::new(tokio_stream_shim::ReceiverStream(rx)),
    )
}

pub mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A `Stream` over a tokio receiver.
    pub struct ReceiverStream<T>(pub tokio::sync::mpsc::Receiver<T>);

    impl<T> futures_util::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

/// Serves `service` with hyper on 127.0.0.1 (any port) until the handle is dropped.
pub async fn serve<S, B>(service: S) -> (SocketAddr, Server)
where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            });
        }
    });
    (addr, Server(task))
}

/// Stops the server when dropped.
pub struct Server(tokio::task::JoinHandle<()>);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A hyper-util legacy client.
pub fn client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}
