//! Tower layers: the same app, the same request, under every transport.
//!
//! - [`MountLayer`] / [`Mount`]: mounts a service at a path prefix and gives each request
//!   what a CGI program's request carries (the app-relative URI, `SCRIPT_NAME`, `PATH_INFO`,
//!   the connection's addresses, the whole [`Environ`](crate::Environ)), so an axum router
//!   written for [`cgi::run`](crate::cgi::run) answers alike when hyper serves it natively.
//! - [`ConnectInfoLayer`] / [`AddConnectInfo`]: the connection's addresses, the one piece of
//!   glue a plain hyper accept loop needs (axum's `into_make_service_with_connect_info` needs
//!   none, with the `axum` feature).
//! - [`LintLayer`](crate::lint::LintLayer) (feature `gateway`): conformance checks for
//!   gateway apps and for the responses of any tower service.
//!
//! ```
//! use axum::{Router, routing::get};
//! use http_body_util::BodyExt;
//! use tower::{ServiceBuilder, ServiceExt};
//! use towergate::ext::RequestExt;
//! use towergate::layer::{ConnectInfoLayer, MountLayer};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let app = Router::new().route(
//!     "/who",
//!     get(|request: axum::extract::Request| async move {
//!         let addr = request.remote_addr().map(|a| a.to_string()).unwrap_or_default();
//!         format!("{addr}:{}", request.remote_port().unwrap_or(0))
//!     }),
//! );
//! let service = ServiceBuilder::new()
//!     .layer(ConnectInfoLayer::new("192.0.2.7:50123".parse().unwrap(), None))
//!     .layer(MountLayer::new("/app"))
//!     .service(app);
//! let request = http::Request::get("/app/who").body(axum::body::Body::empty()).unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, "192.0.2.7:50123");
//! # }
//! ```

mod connect_info;
pub mod mount;

pub use connect_info::{AddConnectInfo, ConnectInfoLayer};
pub use mount::{Mount, MountLayer};
