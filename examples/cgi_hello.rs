//! The smallest CGI program: every request gets `Hello, world!`.
//!
//! ```text
//! cargo build --release --example cgi_hello
//! cp target/release/examples/cgi_hello /srv/cgi-bin/
//! ```

use std::convert::Infallible;
use std::process::ExitCode;

use http::{Request, Response, header};
use towergate::cgi::RequestBody;

fn main() -> ExitCode {
    towergate::cgi::run(tower::service_fn(|_: Request<RequestBody>| async {
        let response = Response::builder()
            .header(header::CONTENT_TYPE, "text/plain")
            .body(String::from("Hello, world!"));
        Ok::<_, Infallible>(response.unwrap_or_default())
    }))
}
