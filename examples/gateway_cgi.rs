//! A gateway app (environ + start_response, PEP 3333 style) run as a CGI program by
//! `CgiHandler`, Python's `wsgiref.handlers.CGIHandler`.
//!
//! ```text
//! cargo build --example gateway_cgi
//! REQUEST_METHOD=GET PATH_INFO=/hello target/debug/examples/gateway_cgi
//! ```
//!
//! Paths: `/hello`, `/chunks`, `/empty`, `/write`, `/start-twice`, `/hop`, `/bad-status`,
//! `/error-before-output`, `/error-after-output`, `/replace`, `/panic`, `/no-start`,
//! `/environ`, `/file` (the file named by the `FILE` meta-variable).

#[path = "common/gateway_app.rs"]
mod gateway_app;

use std::process::ExitCode;

use towergate::handler::CgiHandler;

fn main() -> ExitCode {
    CgiHandler::new().run(gateway_app::app())
}
