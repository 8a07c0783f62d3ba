//! [`ServiceApp`]: a tower service as a gateway app.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower_service::Service;

use crate::body::IntoBytes;
use crate::environ::Input;
use crate::gateway::{App, StartResponse};
use crate::headers::is_hop_by_hop;
use crate::{BoxError, Environ};

/// A tower service seen as a gateway [`App`]: each call turns the environ into an
/// `http::Request` ([`Environ::into_request`]: app-relative URI, headers from `HTTP_*`, the
/// meta-variables as typed extensions) whose body is the environ's [`Input`], calls the
/// service, and answers with its status (canonical reason phrase), headers and body.
///
/// Hop-by-hop headers of the service's response (`Connection`, `Transfer-Encoding`, …) are
/// dropped: framing is the server's business (PEP 3333 "Other HTTP Features"). The service
/// is cloned for each request, as axum's `Router` is meant to be.
///
/// ```
/// use std::convert::Infallible;
/// use towergate::handler::SimpleHandler;
/// use towergate::service::ServiceApp;
/// use towergate::Environ;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let service = tower::service_fn(|request: http::Request<towergate::environ::Input>| async move {
///     let body = format!("{} {}", request.method(), request.uri());
///     Ok::<_, Infallible>(http::Response::new(body))
/// });
/// let environ = Environ::from_vars([("REQUEST_METHOD", "GET"), ("PATH_INFO", "/x")]);
/// let mut handler = SimpleHandler::base_cgi(Vec::new(), environ);
/// handler.run(&ServiceApp::new(service)).await.unwrap();
/// assert_eq!(
///     handler.transport(),
///     b"Status: 200 OK\r\nContent-Length: 6\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGET /x"
/// );
/// # }
/// ```
#[derive(Clone)]
pub struct ServiceApp<S> {
    inner: S,
}

impl<S> fmt::Debug for ServiceApp<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceApp").finish_non_exhaustive()
    }
}

impl<S> ServiceApp<S> {
    /// The service as an app.
    pub fn new(inner: S) -> Self {
        ServiceApp { inner }
    }

    /// The service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> App for ServiceApp<S>
where
    S: Service<Request<Input>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Body = ServiceAppBody<B>;
    type Future = Pin<Box<dyn Future<Output = Result<ServiceAppBody<B>, BoxError>> + Send>>;

    fn call(&self, environ: Environ, start_response: StartResponse) -> Self::Future {
        let mut service = self.inner.clone();
        Box::pin(async move {
            let input = environ.input().clone();
            let (parts, ()) = environ.into_request()?.into_parts();
            let request = Request::from_parts(parts, input);
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let response = service.call(request).await.map_err(Into::into)?;
            let (parts, body) = response.into_parts();
            let mut status = Vec::with_capacity(32);
            status.extend_from_slice(parts.status.as_str().as_bytes());
            status.push(b' ');
            status.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
            start_response.start(
                status,
                parts
                    .headers
                    .iter()
                    .filter(|(name, _)| !is_hop_by_hop(name.as_str()))
                    .map(|(name, value)| (name.as_str(), value.as_bytes())),
            )?;
            Ok(ServiceAppBody {
                inner: IntoBytes::new(body),
            })
        })
    }
}

pin_project_lite::pin_project! {
    /// The body of a [`ServiceApp`]: the service's body, as `Bytes` chunks.
    pub struct ServiceAppBody<B> {
        #[pin]
        inner: IntoBytes<B>,
    }
}

impl<B> fmt::Debug for ServiceAppBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAppBody").finish_non_exhaustive()
    }
}

impl<B> Body for ServiceAppBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
