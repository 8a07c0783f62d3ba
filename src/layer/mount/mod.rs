//! Mount a service at a path prefix, with the request a CGI program would see.
//!
//! [`MountLayer`] gives a request served natively (hyper, axum) exactly what
//! [`cgi::run`](crate::cgi::run) gives the same request under a web server's CGI: the
//! app-relative URI (`PATH_INFO` + `?QUERY_STRING`), the typed extensions of [`crate::ext`]
//! ([`ScriptName`](crate::ext::ScriptName), [`PathInfo`](crate::ext::PathInfo),
//! [`RemoteAddr`](crate::ext::RemoteAddr), [`RemotePort`](crate::ext::RemotePort),
//! [`ServerName`](crate::ext::ServerName), [`ServerPort`](crate::ext::ServerPort),
//! [`Https`](crate::ext::Https), [`RequestUri`](crate::ext::RequestUri),
//! [`FullUri`](crate::ext::FullUri), …) and the [`Environ`](crate::Environ) itself. An app
//! that reads [`RequestExt::path_info`](crate::ext::RequestExt::path_info), or routes on
//! `/info`, behaves the same in both places.
//!
//! It is built the way a CGI program's request is built, in two steps that are the crate's
//! own conversions, not a copy of them: the request's environ comes from an
//! [`EnvironBuilder`](crate::environ::EnvironBuilder) with the prefix as `SCRIPT_NAME`
//! (RFC 3875 §4.1), and the URI and extensions from
//! [`Environ::into_request`](crate::Environ::into_request), the conversion `cgi::run` makes.
//! What the conversion cannot recover stays as the client sent it: the method, the version,
//! the headers (all of them, `Authorization` and repeated fields included) and the body.
//!
//! - `REMOTE_ADDR`, `REMOTE_PORT` and the `SERVER_*` fallbacks come from the connection:
//!   the [`ConnectInfo`](crate::ext::ConnectInfo) extension
//!   ([`ConnectInfoLayer`](super::ConnectInfoLayer) in a hyper accept loop) or, with the
//!   `axum` feature, axum's `ConnectInfo`. Without either, they are unset.
//! - The environ's gateway keys tell the truth about the process: `multithread` true,
//!   `multiprocess` and `run_once` false (a CGI program has `run_once` true).
//! - In an axum router, mount it with `route_service` or with `nest_service` at the same
//!   prefix: axum strips a nest's prefix from the URI, and with the `axum` feature the layer
//!   reads the full path from axum's `OriginalUri` extension.
//! - A request outside the prefix (the decoded path is neither the prefix nor below it:
//!   `/cgi-bin/application` is outside `/cgi-bin/app`) is answered `404 Not Found` with an
//!   empty body, without calling the service.
//! - A request the conversion refuses is answered with the status a CGI program would give
//!   (400, 414, 431; see [`InvalidEnviron::status`](crate::environ::InvalidEnviron::status))
//!   and a log line.
//!
//! ```
//! use axum::{Router, extract::Request, routing::get};
//! use http_body_util::BodyExt;
//! use tower::{Layer, ServiceExt};
//! use towergate::ext::RequestExt;
//! use towergate::layer::MountLayer;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let app = Router::new().route(
//!     "/info",
//!     get(|request: Request| async move {
//!         format!("{} {} {}", request.uri(), request.script_name(), request.path_info())
//!     }),
//! );
//! let mounted = MountLayer::new("/cgi-bin/app").layer(app);
//!
//! let request = http::Request::get("/cgi-bin/app/info?x=1").body(axum::body::Body::empty());
//! let response = mounted.clone().oneshot(request.unwrap()).await.unwrap();
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, "/info?x=1 /cgi-bin/app /info");
//!
//! let request = http::Request::get("/elsewhere/info").body(axum::body::Body::empty());
//! let response = mounted.oneshot(request.unwrap()).await.unwrap();
//! assert_eq!(response.status(), 404);
//! # }
//! ```

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::MountLayer;
pub use service::Mount;
