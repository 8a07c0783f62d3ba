//! Local redirects (RFC 3875 §6.2.2): the service that serves them, type-erased, and what
//! one hop tells the next.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use tokio::time::Instant;
use tower_service::Service;

use super::ResponseBody;
use super::future::BoxFuture;
use crate::BoxError;
use crate::panic::log;

/// A service that serves local redirects, type-erased.
#[derive(Clone)]
pub(crate) struct Redirect(Arc<dyn Fn(Request<String>) -> BoxFuture + Send + Sync>);

impl fmt::Debug for Redirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Redirect")
    }
}

impl Redirect {
    pub(crate) fn new<S, RB>(service: S) -> Self
    where
        S: Service<Request<String>, Response = Response<RB>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        RB: Body<Data = Bytes> + Send + 'static,
        RB::Error: Into<BoxError>,
    {
        Redirect(Arc::new(move |request| {
            let mut service = service.clone();
            Box::pin(async move {
                let ready = std::future::poll_fn(|cx| service.poll_ready(cx))
                    .await
                    .map_err(Into::into);
                let result: Result<_, BoxError> = match ready {
                    Ok(()) => service.call(request).await.map_err(Into::into),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(response) => response.map(ResponseBody::boxed),
                    Err(error) => {
                        log(format_args!("local redirect service failed: {error}"));
                        super::body::error_response(StatusCode::INTERNAL_SERVER_ERROR)
                    }
                }
            })
        }))
    }

    pub(crate) fn call(&self, request: Request<String>) -> BoxFuture {
        (self.0)(request)
    }
}

/// What a local redirect passes on to the request it makes (a request extension): how
/// many hops led to it, and the deadline of the request it continues (one deadline covers
/// every hop).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hop {
    pub(crate) count: u32,
    pub(crate) deadline: Option<Instant>,
}
