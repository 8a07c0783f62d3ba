use bytes::Bytes;
use tower_layer::Layer;

use super::Mount;
use crate::environ::EnvironBuilder;

/// Applies [`Mount`] to a service: see the [module docs](super).
#[derive(Clone, Debug)]
pub struct MountLayer {
    pub(super) prefix: Bytes,
    pub(super) environ: EnvironBuilder,
    pub(super) full_path: bool,
}

impl MountLayer {
    /// Mounts the service at `prefix`, not URL-encoded (`/cgi-bin/app`): the prefix is
    /// `SCRIPT_NAME` and the service sees the rest of the path. Trailing slashes are trimmed,
    /// so `""` and `/` mount it at the root, where `SCRIPT_NAME` is `""` (RFC 3875 §4.1.13).
    pub fn new(prefix: impl Into<Bytes>) -> Self {
        let mut prefix: Bytes = prefix.into();
        let trimmed = prefix.len() - prefix.iter().rev().take_while(|&&b| b == b'/').count();
        prefix.truncate(trimmed);
        MountLayer {
            environ: EnvironBuilder::new().script_name(prefix.clone()),
            prefix,
            full_path: false,
        }
    }

    /// Mounts the service at the root: every request is inside, `SCRIPT_NAME` is `""`.
    pub fn root() -> Self {
        MountLayer::new(Bytes::new())
    }

    /// The builder of each request's environ, for the settings a web server would have
    /// (`HTTPS`, `SERVER_SOFTWARE`, `DOCUMENT_ROOT`, whether `Authorization` is passed, …);
    /// its `script_name` is replaced by the mount prefix. Defaults to
    /// [`EnvironBuilder::new`].
    pub fn environ(mut self, builder: EnvironBuilder) -> Self {
        self.environ = builder.script_name(self.prefix.clone());
        self
    }

    /// Whether the service sees the full path, prefix included, rather than the app-relative
    /// path, as [`cgi::Builder::full_path`](crate::cgi::Builder::full_path) does under CGI.
    /// Defaults to false.
    pub fn full_path(mut self, full_path: bool) -> Self {
        self.full_path = full_path;
        self
    }
}

impl<S> Layer<S> for MountLayer {
    type Service = Mount<S>;

    fn layer(&self, inner: S) -> Mount<S> {
        Mount {
            inner,
            layer: self.clone(),
        }
    }
}
