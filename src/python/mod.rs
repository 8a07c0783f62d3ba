//! Python WSGI apps (PEP 3333) as gateway apps, through an embedded interpreter (PyO3).
//!
//! TODO docs

mod app;
mod body;
mod environ;
mod error;
mod file;
mod pool;
mod respond;

pub use app::{Builder, DEFAULT_THREADS, ResponseFuture, WsgiApp};
pub use body::WsgiBody;
pub use error::ImportError;
