//! `towergate call`: one run of a program, its response printed.

use std::io::Write;
use std::process::ExitCode;

use http::{HeaderName, HeaderValue, Method, Request};
use http_body::Body as _;
use tower_service::Service;
use towergate::host::{CgiProgram, ReasonPhrase, Stderr};

use crate::CallArgs;

pub(crate) fn main(args: CallArgs) -> ExitCode {
    let Some(runtime) = crate::runtime(false) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("towergate call: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: CallArgs) -> Result<(), towergate::BoxError> {
    let method = match &args.method {
        Some(method) => Method::from_bytes(method.as_bytes())?,
        None if args.data.is_some() => Method::POST,
        None => Method::GET,
    };
    let path = if args.path.starts_with('/') {
        args.path.clone()
    } else {
        format!("/{}", args.path)
    };
    let body = args.data.clone().unwrap_or_default();
    let mut request = Request::builder().method(method).uri(path.as_str());
    let mut has_host = false;
    let mut has_type = false;
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("a header must be `Name: value`, got {header:?}"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())?;
        has_host |= name == http::header::HOST;
        has_type |= name == http::header::CONTENT_TYPE;
        request = request.header(name, HeaderValue::from_str(value.trim())?);
    }
    if !has_host {
        request = request.header(http::header::HOST, "localhost");
    }
    if args.data.is_some() {
        request = request.header(http::header::CONTENT_LENGTH, body.len());
        if !has_type {
            request = request.header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        }
    }
    let request = request.body(body)?;

    let mut program = CgiProgram::new(&args.program).stderr(Stderr::Inherit);
    let response = program.call(request).await.unwrap_or_else(|e| match e {});
    let (parts, body) = response.into_parts();

    let mut out = std::io::stdout().lock();
    let reason = parts
        .extensions
        .get::<ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .or_else(|| parts.status.canonical_reason().map(str::to_owned))
        .unwrap_or_default();
    write!(out, "HTTP/1.1 {} {reason}\r\n", parts.status.as_str())?;
    for (name, value) in &parts.headers {
        out.write_all(name.as_str().as_bytes())?;
        out.write_all(b": ")?;
        out.write_all(value.as_bytes())?;
        out.write_all(b"\r\n")?;
    }
    out.write_all(b"\r\n")?;
    out.flush()?;
    drop(out);
    let mut body = std::pin::pin!(body);
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            let mut out = std::io::stdout().lock();
            out.write_all(&data)?;
            out.flush()?;
        }
    }
    Ok(())
}
