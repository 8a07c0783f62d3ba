//! An axum app run with `towergate::run`: a CGI program, or a FastCGI application when it is
//! started with a listening socket on descriptor 0 (spawn-fcgi, Apache `mod_fcgid`, lighttpd
//! `bin-path`, systemd socket activation). The router of `examples/common/axum_app.rs` (its
//! routes are listed there). `native_axum` serves the same router natively.
//!
//! Run it under a web server, or by hand with a CGI environment:
//!
//! ```text
//! cargo build --features fastcgi --example cgi_axum
//! REQUEST_METHOD=GET PATH_INFO=/info target/debug/examples/cgi_axum
//! ```

#[path = "common/axum_app.rs"]
mod axum_app;

fn main() -> std::process::ExitCode {
    towergate::run(axum_app::app())
}
