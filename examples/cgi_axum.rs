//! An axum app run as a CGI program with `towergate::cgi::run`: the router of
//! `examples/common/axum_app.rs` (its routes are listed there). `native_axum` serves the same
//! router natively.
//!
//! Run it under a web server, or by hand with a CGI environment:
//!
//! ```text
//! cargo build --example cgi_axum
//! REQUEST_METHOD=GET PATH_INFO=/info target/debug/examples/cgi_axum
//! ```

#[path = "common/axum_app.rs"]
mod axum_app;

fn main() -> std::process::ExitCode {
    towergate::cgi::run(axum_app::app())
}
