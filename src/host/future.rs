//! [`ResponseFuture`]: the future of a CGI host's response.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

use super::ResponseBody;

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send + 'static>>;

/// The response future of [`CgiProgram`](super::CgiProgram) and [`CgiBin`](super::CgiBin).
/// It never fails. Dropping it before it is ready kills the program it started.
pub struct ResponseFuture {
    inner: BoxFuture,
}

impl ResponseFuture {
    pub(crate) fn new(
        future: impl Future<Output = Response<ResponseBody>> + Send + 'static,
    ) -> Self {
        ResponseFuture {
            inner: Box::pin(future),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx).map(Ok)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
