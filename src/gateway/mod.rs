//! Gateway apps: the `environ` + `start_response` contract of PEP 3333, for Rust.
//!
//! An [`App`] is called with the request's [`Environ`](crate::Environ) (meta-variables,
//! gateway keys, the body as [`input`](crate::Environ::input), an
//! [`errors`](crate::Environ::errors) sink) and a [`StartResponse`]; it chooses its status
//! and headers with [`StartResponse::start`] and returns its body as a sequence of chunks.
//! Async apps come from [`app_fn`], blocking apps (a closure returning an iterator of
//! chunks, as in Python) from [`blocking_app_fn`], which runs them on a blocking thread.
//!
//! The same app runs under every transport: as a CGI program with
//! [`CgiHandler`](crate::handler::CgiHandler), in memory with
//! [`SimpleHandler`](crate::handler::SimpleHandler), and in hyper (or any tower stack) with
//! [`AppService`](crate::service::AppService).
//!
//! ```
//! use towergate::gateway::{app_fn, AppBody};
//! use towergate::handler::SimpleHandler;
//! use towergate::{BoxError, Environ};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let app = app_fn(|environ: Environ, start_response| async move {
//!     start_response.start("200 OK", [("Content-Type", "text/plain")])?;
//!     let who = environ.get_str("QUERY_STRING").unwrap_or("").to_owned();
//!     Ok::<_, BoxError>(AppBody::from(format!("Hello, {who}!")))
//! });
//!
//! let environ = Environ::from_vars([("REQUEST_METHOD", "GET"), ("QUERY_STRING", "world")]);
//! let mut handler = SimpleHandler::base_cgi(Vec::new(), environ);
//! handler.run(&app).await.unwrap();
//! assert_eq!(
//!     handler.transport(),
//!     b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!"
//! );
//! # }
//! ```
//!
//! # What the contract enforces (PEP 3333)
//!
//! | rule | where |
//! |---|---|
//! | status `NNN Reason`, no control characters | [`StartResponse::start`] ("The start_response() Callable") |
//! | header names are tokens, values without CR/LF/control characters | [`StartResponse::start`] |
//! | no hop-by-hop headers | [`StartResponse::start`] ("Other HTTP Features") |
//! | a second call only with an error, before the head is sent; after, it re-raises | [`StartResponse::start_with_error`] |
//! | `write()` output precedes the body's chunks | [`Writer`] ("The write() Callable") |
//! | the head waits for the first non-empty chunk | the handler ("The start_response() Callable") |
//! | the body is always closed (dropped) | the handler ("Specification Details") |
//!
//! The [`lint`](crate::lint) layer checks more, the way `wsgiref.validate` does.

mod app;
mod body;
mod exchange;
mod start_response;

pub use app::{App, AppFn, BlockingAppFn, BoxApp, BoxAppFuture, app_fn, blocking_app_fn};
pub use body::{AppBody, BlockingBody, Chunks, DEFAULT_SEND_TIMEOUT, FileWrapper};
pub use start_response::{ContractError, StartResponse, Writer};

#[cfg(feature = "python")]
pub(crate) use body::{Sink, Unsent, channel, stalled};
pub(crate) use exchange::Exchange;
#[cfg(feature = "python")]
pub(crate) use start_response::Msg;
pub(crate) use start_response::Shared;
