use tower_layer::Layer;

use super::Lint;

/// Applies [`Lint`] to an app or a service: see the [module docs](super).
///
/// Over a gateway [`App`](crate::gateway::App), `Lint<A>` is an app checked the way
/// `wsgiref.validate` checks one; over a tower `Service`, `Lint<S>` is a service whose
/// responses are checked against HTTP's rules.
#[derive(Clone, Copy, Debug, Default)]
pub struct LintLayer {
    _private: (),
}

impl LintLayer {
    /// The layer.
    pub fn new() -> Self {
        LintLayer { _private: () }
    }
}

impl<S> Layer<S> for LintLayer {
    type Service = Lint<S>;

    fn layer(&self, inner: S) -> Lint<S> {
        Lint::new(inner)
    }
}
