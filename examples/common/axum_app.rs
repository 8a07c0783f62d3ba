//! The axum app of the `cgi_axum` contract, shared by `cgi_axum` (run as a CGI program) and
//! `native_axum` (served by hyper through towergate's `MountLayer`): one router, both
//! transports.
//!
//! Routes (app-relative: the app can be mounted anywhere):
//!
//! - `GET /`: `hello from axum over CGI`
//! - `POST /echo`: the request body, streamed back with the same `Content-Type`
//! - `POST /count`: reads the whole request body as it streams in (never holding more than one
//!   frame) and answers `text/plain` with its length in bytes, in decimal. Unlike `/echo`, the
//!   response head comes only after the last byte, which front ends such as nginx need to send
//!   a large upload in full (they stop sending a body once the response head has arrived)
//! - `GET /info`: the method, path, query and the main meta-variables, one `NAME=value` a line
//! - `GET /headers`: the request headers, one `name: value` a line, sorted
//! - `GET /stream?n=N&bytes=B`: N chunks of B bytes (`x`), streamed, no `Content-Length`
//! - `GET /cookies`: two `Set-Cookie` headers
//! - `GET /status/{code}`: that status, empty body
//! - `GET /panic`: the handler panics (the client gets a 500)
//! - `GET /redirect`: `302 Found` to `/`
#![allow(unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{StreamExt, stream};
use towergate::Environ;

/// The router: the routes of the `cgi_axum` contract (DESIGN.md "Contracts").
pub fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "hello from axum over CGI" }))
        .route("/echo", post(echo))
        .route("/count", post(count))
        .route("/info", get(info))
        .route("/headers", get(headers))
        .route("/stream", get(stream_chunks))
        .route("/cookies", get(cookies))
        .route("/status/{code}", get(status))
        .route("/panic", get(panics))
        .route(
            "/redirect",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/")]) }),
        )
}

async fn echo(request: Request) -> Response {
    let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
    let body = Body::from_stream(request.into_body().into_data_stream());
    let mut response = Response::new(body);
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

async fn count(request: Request) -> Response {
    let mut body = request.into_body().into_data_stream();
    let mut total: u64 = 0;
    while let Some(frame) = body.next().await {
        match frame {
            Ok(data) => total += data.len() as u64,
            // The body failed (the client went away, a limit, a truncated upload): no count.
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        }
    }
    ([(header::CONTENT_TYPE, "text/plain")], total.to_string()).into_response()
}

async fn info(request: Request) -> String {
    let environ = request.extensions().get::<Environ>();
    let var = |name: &str| {
        environ
            .and_then(|e| e.get(name))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let mut out = format!(
        "method={}\npath={}\nquery={}\n",
        request.method(),
        request.uri().path(),
        request.uri().query().unwrap_or("")
    );
    for name in [
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "REMOTE_ADDR",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "HTTPS",
    ] {
        out.push_str(&format!("{name}={}\n", var(name)));
    }
    out
}

async fn headers(headers: HeaderMap) -> String {
    let mut lines: Vec<String> = headers
        .iter()
        .map(|(name, value)| format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())))
        .collect();
    lines.sort();
    lines.concat()
}

async fn stream_chunks(Query(query): Query<HashMap<String, String>>) -> Response {
    let parse = |key: &str, default: usize, max: usize| {
        query
            .get(key)
            .and_then(|v| v.parse::<usize>().ok())
            .map_or(default, |v| v.min(max))
    };
    let n = parse("n", 3, 100_000);
    let bytes = parse("bytes", 8, 1 << 20);
    let chunk = Bytes::from(vec![b'x'; bytes]);
    let chunks = stream::iter((0..n).map(move |_| Ok::<_, Infallible>(chunk.clone())));
    (
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(chunks),
    )
        .into_response()
}

async fn panics() -> &'static str {
    panic!("the /panic route panics on purpose")
}

async fn cookies() -> impl IntoResponse {
    (
        AppendHeaders([(header::SET_COOKIE, "a=1"), (header::SET_COOKIE, "b=2")]),
        "",
    )
}

async fn status(Path(code): Path<u16>) -> Response {
    match StatusCode::from_u16(code) {
        Ok(code) => code.into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}
