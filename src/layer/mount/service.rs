use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tower_service::Service;

use super::{MountLayer, ResponseFuture};
use crate::ext::FullUri;
use crate::panic::log;
use crate::percent;

/// A service mounted at a path prefix, whose requests carry what a CGI program's requests
/// carry: see the [module docs](super).
#[derive(Clone, Debug)]
pub struct Mount<S> {
    pub(super) inner: S,
    pub(super) layer: MountLayer,
}

impl<S> Mount<S> {
    /// Mounts `inner` at `prefix` (see [`MountLayer::new`]).
    pub fn new(prefix: impl Into<bytes::Bytes>, inner: S) -> Self {
        Mount {
            inner,
            layer: MountLayer::new(prefix),
        }
    }

    /// The mount prefix, trailing slashes trimmed (`""` at the root).
    pub fn prefix(&self) -> &[u8] {
        &self.layer.prefix
    }

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

    /// Whether a request path (raw, percent-encoded) is the prefix or below it: the decoded
    /// path starts with the prefix, followed by `/` or nothing.
    fn contains(&self, raw_path: &str) -> bool {
        let prefix: &[u8] = &self.layer.prefix;
        if prefix.is_empty() {
            return true;
        }
        let decoded;
        let path: &[u8] = if percent::has_escape(raw_path.as_bytes()) {
            decoded = percent::decode(raw_path.as_bytes());
            &decoded
        } else {
            raw_path.as_bytes()
        };
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Mount<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        // Nested in an axum router, the URI has lost the nest's prefix: the original has it.
        #[cfg(feature = "axum")]
        if let Some(axum::extract::OriginalUri(original)) = parts.extensions.get() {
            parts.uri = original.clone();
        }
        if !self.contains(parts.uri.path()) {
            return ResponseFuture::status(StatusCode::NOT_FOUND);
        }
        let mut environ = self.layer.environ.build_from_parts(&parts);
        // The truth about this process, where a CGI program says run_once (PEP 3333).
        environ.set_multithread(true);
        environ.set_multiprocess(false);
        environ.set_run_once(false);
        // The very conversion a CGI program makes: the same URI, extensions and environ.
        let cgi = match environ.into_request() {
            Ok(cgi) => cgi,
            Err(e) => {
                log(format_args!("mount: bad request: {e}"));
                return ResponseFuture::status(e.status());
            }
        };
        let (cgi, ()) = cgi.into_parts();
        parts.uri = match cgi.extensions.get::<FullUri>() {
            Some(full) if self.layer.full_path => full.0.clone(),
            _ => cgi.uri,
        };
        parts.extensions.extend(cgi.extensions);
        ResponseFuture::inner(self.inner.call(Request::from_parts(parts, body)))
    }
}
