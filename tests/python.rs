//! Real Python WSGI apps (plain PEP 3333 callables, Flask, Django) served by
//! `towergate::python::WsgiApp` through `AppService` in a real hyper server on 127.0.0.1,
//! with a real HTTP client.
//!
//! The apps live in `tests/python/`; Flask and Django come from the virtualenv that
//! `scripts/test.sh` makes (`target/python-venv`, or `TOWERGATE_PYTHON_VENV`).
#![cfg(feature = "python")]

#[cfg(feature = "cli")]
#[path = "support/fifo.rs"]
mod fifo;
#[path = "support/gateway.rs"]
mod gateway_support;
#[cfg(feature = "cli")]
mod support;

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use gateway_support::{Server, read_to_end, serve};
use http::{Request, StatusCode, response::Parts};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use towergate::python::WsgiApp;
use towergate::service::AppService;

const LIMIT: Duration = Duration::from_secs(60);

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("the test's time bound")
}

/// The virtualenv with Flask and Django (made by `scripts/test.sh`).
fn venv() -> PathBuf {
    let venv = match std::env::var_os("TOWERGATE_PYTHON_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().unwrap();
            // target/<profile>/deps/<test> → target/python-venv
            exe.ancestors().nth(3).unwrap().join("python-venv")
        }
    };
    assert!(
        venv.join("bin/python").exists(),
        "no virtualenv at {}: run `bash scripts/test.sh` (it makes one with Flask and Django)",
        venv.display()
    );
    venv
}

fn apps_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

fn import(target: &str) -> WsgiApp {
    WsgiApp::builder()
        .python_path(apps_dir())
        .virtualenv(venv())
        .threads(4)
        .import(target)
        .unwrap_or_else(|e| panic!("import {target}: {e}\n{}", e.traceback().unwrap_or("")))
}

async fn serve_app(app: WsgiApp, script_name: &str) -> (SocketAddr, Server) {
    serve(AppService::new(app).script_name(script_name.to_owned())).await
}

type ReqBody = BoxBody<Bytes, Infallible>;

fn client()
-> hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, ReqBody> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

fn full(bytes: impl Into<Bytes>) -> ReqBody {
    Full::new(bytes.into()).boxed()
}

/// A request body of `chunks` sent with `Transfer-Encoding: chunked` (no length known).
fn chunked(chunks: Vec<Bytes>) -> ReqBody {
    let stream = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, Infallible>(http_body::Frame::data(c))),
    );
    BodyExt::boxed(StreamBody::new(stream))
}

async fn send(request: Request<ReqBody>) -> (Parts, Bytes) {
    let response = client().request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

async fn get(addr: SocketAddr, path: &str) -> (Parts, Bytes) {
    let (parts, body) = open(addr, path).await.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

/// A GET whose body is left to the caller.
async fn open(addr: SocketAddr, path: &str) -> http::Response<hyper::body::Incoming> {
    let request = Request::get(format!("http://{addr}{path}")).body(full(""));
    client().request(request.unwrap()).await.unwrap()
}

/// Everything logged through `tracing` by this test process.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        #[derive(Clone)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(logs.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
    .clone()
}

/// Waits (bounded) until the log holds `needle`, and returns the log.
async fn logged(needle: &str) -> String {
    let logs = logs();
    for _ in 0..500 {
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        if text.contains(needle) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{needle:?} was not logged; the log:\n{}",
        String::from_utf8_lossy(&logs.lock().unwrap())
    );
}

// ---- plain WSGI apps: one PEP 3333 rule each -------------------------------------------

#[tokio::test]
async fn hello_has_its_length_and_exact_bytes() {
    bounded(async {
        let (addr, _server) = serve_app(import("wsgi_apps:hello"), "").await;
        let (parts, body) = get(addr, "/").await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.headers["content-type"], "text/plain");
        assert_eq!(parts.headers["content-length"], "13");
        assert_eq!(body, "Hello, world!");
    })
    .await;
}

#[tokio::test]
async fn environ_holds_native_strings_and_the_deployment_keys() {
    bounded(async {
        let (addr, _server) = serve_app(import("wsgi_apps:environ_dump"), "/app").await;
        let (parts, body) = get(addr, "/app/some/where?x=1").await;
        assert_eq!(parts.status, StatusCode::OK);
        let text = String::from_utf8(body.to_vec()).unwrap();
        for line in [
            "PATH_INFO='/some/where'",
            "QUERY_STRING='x=1'",
            "REQUEST_METHOD='GET'",
            "SCRIPT_NAME='/app'",
            "SERVER_PROTOCOL='HTTP/1.1'",
            "wsgi.input_terminated=True",
            "wsgi.multiprocess=False",
            "wsgi.multithread=True",
            "wsgi.run_once=False",
            "wsgi.url_scheme='http'",
            "wsgi.version=(1, 0)",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn non_ascii_path_arrives_as_latin1_native_string() {
    bounded(async {
        let (addr, _server) = serve_app(import("wsgi_apps:path_bytes"), "").await;
        // "café" in UTF-8 is c3 a9 for é: each byte becomes one latin-1 character.
        let (parts, body) = get(addr, "/caf%C3%A9/%FF").await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(&body[..], b"/caf\xc3\xa9/\xff");
    })
    .await;
}

#[tokio::test]
async fn exception_before_the_body_is_a_500_with_the_traceback_logged() {
    let _ = logs();
    bounded(async {
        let (addr, _server) = serve_app(import("wsgi_apps:raise_before"), "").await;
        let (parts, body) = get(addr, "/").await;
        assert_eq!(parts.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            "A server error occurred.  Please contact the administrator."
        );
        let log = logged("RuntimeError: the app failed before its body").await;
        assert!(log.contains("Traceback (most recent call last)"), "{log}");
        assert!(log.contains("wsgi_apps.py\", line"), "{log}");
    })
    .await;
}

#[tokio::test]
async fn exception_after_the_first_chunk_cuts_the_response() {
    let _ = logs();
    bounded(async {
        let (addr, _server) = serve_app(import("wsgi_apps:raise_after"), "").await;
        let response = open(addr, "/").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get("content-length").is_none());
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "partial");
        assert!(body.collect().await.is_err(), "the response must be cut");
        logged("RuntimeError: the app failed after its first chunk").await;
    })
    .await;
}

#[tokio::test]
async fn write_output_precedes_the_iterable() {
    bounded(async {
        let (addr, _server) = serve_app(import("wsgi_apps:write_then_iter"), "").await;
        let (parts, body) = get(addr, "/").await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, "via-write +iter");
    })
    .await;
}

#[tokio::test]
async fn an_app_that_only_writes_streams_every_write() {
    bounded(async {
        let (addr, _server) = serve_app(import("wsgi_apps:write_many"), "").await;
        let (parts, body) = get(addr, "/").await;
        assert_eq!(parts.status, StatusCode::OK);
        let expected: String = (0..1000).map(|i| format!("{i},")).collect();
        assert_eq!(body, expected);
    })
    .await;
}

#[tokio::test]
async fn start_response_with_exc_info_replaces_the_head_before_output() {
    bounded(async {
        let (addr, _server) = serve_app(import("wsgi_apps:exc_info_replaces"), "").await;
        let (parts, body) = get(addr, "/").await;
        assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(parts.headers["x-replaced"], "yes");
        assert_eq!(body, "replaced");
    })
    .await;
}

#[tokio::test]
async fn start_response_with_exc_info_after_output_reraises_and_cuts() {
    let _ = logs();
    bounded(async {
        let (addr, _server) = serve_app(import("wsgi_apps:exc_info_after_output"), "").await;
        let response = open(addr, "/").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.into_body().collect().await.is_err());
        logged("ValueError: too late").await;
    })
    .await;
}

#[tokio::test]
async fn contract_violations_are_500s() {
    let _ = logs();
    bounded(async {
        let (addr, _server) = serve_app(import("wsgi_apps:not_bytes"), "").await;
        let (parts, _) = get(addr, "/").await;
        assert_eq!(parts.status, StatusCode::INTERNAL_SERVER_ERROR);
        logged("yielded str instead of bytes").await;

        let (addr, _server) = serve_app(import("wsgi_apps:hop_by_hop"), "").await;
        let (parts, _) = get(addr, "/").await;
        assert_eq!(parts.status, StatusCode::INTERNAL_SERVER_ERROR);
        logged("hop-by-hop header \"Connection: close\" not allowed").await;
    })
    .await;
}

#[tokio::test]
async fn close_is_called_after_the_response_and_when_the_client_goes_away() {
    bounded(async {
        let app = import("wsgi_apps:tracked");
        let (addr, _server) = serve_app(app.clone(), "").await;
        let (_, body) = get(addr, "/?done").await;
        assert_eq!(body, "ab");

        let endless = import("wsgi_apps:endless");
        let (endless_addr, _endless_server) = serve_app(endless, "").await;
        let response = open(endless_addr, "/?gone").await;
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.is_data());
        drop(body); // the client goes away mid-stream

        let closed = import("wsgi_apps:closed");
        let (closed_addr, _closed_server) = serve_app(closed, "").await;
        for _ in 0..500 {
            let (_, body) = get(closed_addr, "/").await;
            if body == "done,gone" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("close() was not called on both results");
    })
    .await;
}

#[tokio::test]
async fn a_client_that_stops_reading_frees_its_thread_after_the_send_timeout() {
    let _ = logs();
    // The result's chunks, then write(): each waits 300 ms for the client, then gives up
    // (the result is closed, or write() raises in the app, which records it).
    for (target, failed) in [
        ("wsgi_apps:endless", None),
        (
            "wsgi_apps:endless_write",
            Some("write(): the client took no output for 300ms"),
        ),
    ] {
        bounded(async {
            let app = WsgiApp::builder()
                .python_path(apps_dir())
                .threads(1)
                .send_timeout(Duration::from_millis(300))
                .import(target)
                .unwrap();
            let (addr, _server) = serve_app(app, "").await;
            let query = format!("{target}-stalled");
            let mut stalled = open(addr, &format!("/?{query}")).await.into_body();
            assert!(stalled.frame().await.unwrap().unwrap().is_data());
            // The client reads no more: once the socket buffers are full, the one Python
            // thread gives up after 300 ms and serves the next request.
            let mut next = open(addr, "/?next").await.into_body();
            assert!(next.frame().await.unwrap().unwrap().is_data());
            drop(next);
            if let Some(failed) = failed {
                logged(failed).await;
            }

            let closed = import("wsgi_apps:closed");
            let (closed_addr, _closed_server) = serve_app(closed, "").await;
            let (_, body) = get(closed_addr, "/").await;
            assert!(
                String::from_utf8_lossy(&body).contains(&query),
                "{target}: {body:?}"
            );
            // The stalled response was cut: reading it now ends in an error, not a clean end.
            assert!(
                read_to_end(&mut stalled).await.is_err(),
                "{target}: the stalled response ended as if complete"
            );
        })
        .await;
    }
}

#[tokio::test]
async fn a_client_that_stops_sending_its_body_gets_408_and_frees_the_thread_at_the_app_s_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = logs();
    bounded(async {
        let app = WsgiApp::builder()
            .python_path(apps_dir())
            .threads(1)
            .timeout(Duration::from_millis(500))
            .import("wsgi_apps:read_content_length")
            .unwrap();
        let (addr, _server) = serve_app(app, "").await;
        // 10 bytes of the 100 announced, then nothing; the connection stays open.
        let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        let mut answer = vec![0; 4096];
        let n = stalled.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{answer}"
        );
        assert!(
            answer.ends_with("\r\n\r\nA server error occurred.  Please contact the administrator."),
            "{answer}"
        );
        logged("app failed: the request body stopped arriving: nothing came for 500ms").await;
        // The app's read ended with the response: its one thread serves the next request.
        logged("OSError: wsgi.input: the response is over: the request body can no longer be read")
            .await;
        let request = Request::post(format!("http://{addr}/"))
            .body(full("abc"))
            .unwrap();
        let response = client().request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "3 0 a");
        drop(stalled);
    })
    .await;
}

#[tokio::test]
async fn an_app_without_output_past_its_timeout_gets_a_504_or_its_response_cut() {
    let _ = logs();
    bounded(async {
        let app = WsgiApp::builder()
            .python_path(apps_dir())
            .threads(3)
            // Long enough for the requests that do answer to answer in time on a busy machine.
            .timeout(Duration::from_millis(1200))
            .import("wsgi_apps:held")
            .unwrap();
        let (addr, _server) = serve_app(app, "").await;
        // No head in time: the gateway's timeout.
        let (parts, body) = get(addr, "/before").await;
        assert_eq!(parts.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            body,
            "A server error occurred.  Please contact the administrator."
        );
        logged("app failed: the app produced no output for 1.2s").await;
        // The head and a first chunk, then nothing: the response is cut.
        let response = open(addr, "/after").await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "first");
        assert!(body.frame().await.unwrap().is_err());
        logged("app failed after the head was sent: the app produced no output for 1.2s").await;
        // Released, both threads find their client gone at their next output, close
        // their results and serve again.
        let (_, body) = get(addr, "/release").await;
        assert_eq!(body, "released");
        let closed = import("wsgi_apps:closed");
        let (closed_addr, _closed_server) = serve_app(closed, "").await;
        loop {
            let (_, body) = get(closed_addr, "/").await;
            let mut names: Vec<&[u8]> = body.split(|b| *b == b',').collect();
            names.sort_unstable();
            if names == [&b"after"[..], b"before"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (_, body) = get(addr, "/before").await;
        assert_eq!(body, "late");
    })
    .await;
}

#[tokio::test]
async fn past_max_queued_waiting_requests_a_request_gets_503_at_once() {
    let _ = logs();
    bounded(async {
        let app = WsgiApp::builder()
            .python_path(apps_dir())
            .threads(1)
            .max_queued(1)
            .timeout(None)
            .import("wsgi_apps:held")
            .unwrap();
        let (addr, _server) = serve_app(app, "").await;
        // The one thread is busy: its response has begun and waits for /release.
        let running = open(addr, "/after").await;
        assert_eq!(running.status(), StatusCode::OK);
        let mut running = running.into_body();
        let first = running.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "first");
        // Two more: one waits, the other finds the queue full.
        let waiting = [
            tokio::spawn(get(addr, "/before")),
            tokio::spawn(get(addr, "/before")),
        ];
        logged("app failed: the app is busy: its queue is full (1 waiting)").await;
        // Released from another app of the same module (this one's queue is full).
        let (release_addr, _release_server) = serve_app(import("wsgi_apps:held"), "").await;
        let (_, body) = get(release_addr, "/release").await;
        assert_eq!(body, "released");
        let mut answers = Vec::new();
        for request in waiting {
            let (parts, body) = request.await.unwrap();
            answers.push((
                parts.status,
                parts.headers.get("retry-after").cloned(),
                body,
            ));
        }
        answers.sort_by_key(|(status, _, _)| *status);
        assert_eq!(
            answers,
            [
                (StatusCode::OK, None, Bytes::from_static(b"late")),
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(http::HeaderValue::from_static("1")),
                    Bytes::from_static(
                        b"A server error occurred.  Please contact the administrator."
                    )
                ),
            ]
        );
        let rest = running.collect().await.unwrap().to_bytes();
        assert_eq!(rest, "late");
        // With the thread free again, requests are taken.
        let (parts, body) = get(addr, "/before").await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, "late");
    })
    .await;
}

#[tokio::test]
async fn an_upload_longer_than_the_timeout_counts_as_activity_until_it_stalls() {
    bounded(async {
        let app = WsgiApp::builder()
            .python_path(apps_dir())
            .timeout(Duration::from_secs(1))
            .import("wsgi_apps:count_input")
            .unwrap();
        let (addr, _server) = serve_app(app, "").await;
        // 2.5 s of body in 50 pieces: more than the limit in all, never a second apart.
        let pieces = futures_util::stream::unfold(0, |i| async move {
            if i == 50 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let piece = Bytes::from(vec![b'x'; 1000]);
            Some((Ok::<_, Infallible>(http_body::Frame::data(piece)), i + 1))
        });
        let request = Request::post(format!("http://{addr}/"))
            .header("content-length", "50000")
            .body(BodyExt::boxed(StreamBody::new(pieces)))
            .unwrap();
        let (parts, body) = send(request).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, "50000 50000");
        // A body that stops coming: the app waits on it past the limit, the client's doing.
        let stalled = futures_util::StreamExt::chain(
            futures_util::stream::iter([Ok::<_, Infallible>(http_body::Frame::data(
                Bytes::from_static(b"some"),
            ))]),
            futures_util::stream::pending(),
        );
        let request = Request::post(format!("http://{addr}/"))
            .header("content-length", "50000")
            .body(BodyExt::boxed(StreamBody::new(stalled)))
            .unwrap();
        let (parts, _) = send(request).await;
        assert_eq!(parts.status, StatusCode::REQUEST_TIMEOUT);
    })
    .await;
}

#[tokio::test]
async fn input_supports_every_read_method() {
    bounded(async {
        let (addr, _server) = serve_app(import("wsgi_apps:input_methods"), "").await;
        let request = Request::post(format!("http://{addr}/"))
            .body(full("line one\nabcdef\nthird\nfourth\nfifth"))
            .unwrap();
        let (parts, body) = send(request).await;
        assert_eq!(parts.status, StatusCode::OK);
        // readline() / readline(3) / read(2) / readlines(1) / iteration / read()
        assert_eq!(body, "line one\n/abc/de/f\n/third\n|fourth\n|fifth/");
    })
    .await;
}

#[tokio::test]
async fn thread_local_state_lives_from_one_request_to_the_next() {
    bounded(async {
        let app = WsgiApp::builder()
            .python_path(apps_dir())
            .threads(1)
            .import("wsgi_apps:thread_local_count")
            .unwrap();
        let (addr, _server) = serve_app(app, "").await;
        for expected in ["1", "2", "3"] {
            let (parts, body) = get(addr, "/").await;
            assert_eq!(parts.status, StatusCode::OK);
            assert_eq!(body, expected);
        }
    })
    .await;
}

#[tokio::test]
async fn read_of_the_content_length_returns_the_whole_body_sent_in_pieces() {
    bounded(async {
        let (addr, _server) = serve_app(import("wsgi_apps:read_content_length"), "").await;
        // Six pieces of 50,000 bytes (the first bytes 'a' to 'f'), apart in time, so that
        // the server gets them as separate frames.
        let pieces = futures_util::stream::unfold(0u8, |i| async move {
            if i == 6 {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let piece = Bytes::from(vec![b'a' + i; 50_000]);
            Some((Ok::<_, Infallible>(http_body::Frame::data(piece)), i + 1))
        });
        let request = Request::post(format!("http://{addr}/"))
            .header("content-length", "300000")
            .body(BodyExt::boxed(StreamBody::new(pieces)))
            .unwrap();
        let (parts, body) = send(request).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, "300000 0 abcdef");
    })
    .await;
}

#[tokio::test]
async fn chunked_upload_streams_through_input_without_a_length() {
    bounded(async {
        let (addr, _server) = serve_app(import("wsgi_apps:count_input"), "").await;
        let chunks = (0..64).map(|_| Bytes::from(vec![7u8; 100_000])).collect();
        let request = Request::post(format!("http://{addr}/"))
            .body(chunked(chunks))
            .unwrap();
        let (parts, body) = send(request).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, "6400000 -");
    })
    .await;
}

#[tokio::test]
async fn file_wrapper_is_served_from_the_file_with_its_length() {
    bounded(async {
        let path = std::env::temp_dir().join(format!("towergate-py-{}.bin", std::process::id()));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let (addr, _server) = serve_app(import("wsgi_apps:file_wrapper"), "").await;
        let (parts, body) = get(addr, &format!("/?{}", path.display())).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(
            parts.headers["content-length"],
            (data.len() - 3).to_string()
        );
        assert_eq!(&body[..], &data[3..]);

        let (addr, _server) = serve_app(import("wsgi_apps:file_wrapper_bytesio"), "").await;
        let (parts, body) = get(addr, "/").await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, "from a BytesIO");
        std::fs::remove_file(&path).unwrap();
    })
    .await;
}

#[tokio::test]
async fn write_output_goes_before_a_file_result() {
    bounded(async {
        let path = std::env::temp_dir().join(format!("towergate-py-w-{}.txt", std::process::id()));
        std::fs::write(&path, "the file").unwrap();
        let (addr, _server) = serve_app(import("wsgi_apps:write_then_file"), "").await;
        let (parts, body) = get(addr, &format!("/?{}", path.display())).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, "written:the file");
        std::fs::remove_file(&path).unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_long_stream_of_new_chunks_keeps_memory_flat() {
    bounded(async {
        let (addr, _server) = serve_app(import("wsgi_apps:distinct_chunks"), "").await;
        // Warm up, then 192 MiB of distinct 64 KiB chunks, read as they come.
        let mut body = open(addr, "/?16").await.into_body();
        while body.frame().await.is_some() {}
        let before = rss_kib();
        let mut body = open(addr, "/?3072").await.into_body();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            total += frame.unwrap().into_data().map_or(0, |d| d.len());
        }
        assert_eq!(total, 3072 * 65536);
        let growth = rss_kib().saturating_sub(before);
        assert!(
            growth < 24 * 1024,
            "RSS grew by {growth} KiB over 192 MiB streamed"
        );
    })
    .await;
}

#[tokio::test]
async fn errors_stream_goes_to_the_log_line_by_line() {
    let _ = logs();
    bounded(async {
        let (addr, _server) = serve_app(import("wsgi_apps:log_errors"), "").await;
        let (parts, body) = get(addr, "/").await;
        assert_eq!(parts.status, StatusCode::NO_CONTENT);
        assert!(body.is_empty());
        let log = logged("unfinished").await;
        assert!(log.contains("first line"), "{log}");
        assert!(log.contains("second line"), "{log}");
        // The server flushes the stream when the request is over.
        logged("no newline, no flush").await;
    })
    .await;
}

#[test]
fn broken_import_is_a_clear_error() {
    let venv = venv();
    let err = WsgiApp::builder()
        .python_path(apps_dir())
        .virtualenv(&venv)
        .import("no_such_module:app")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot import no_such_module: ModuleNotFoundError: No module named 'no_such_module'"
    );
    let err = WsgiApp::builder()
        .python_path(apps_dir())
        .import("wsgi_apps:missing")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "wsgi_apps has no attribute missing: AttributeError: module 'wsgi_apps' has no attribute 'missing'"
    );
    let err = WsgiApp::builder()
        .python_path(apps_dir())
        .import("wsgi_apps:CLOSED")
        .unwrap_err();
    assert_eq!(err.to_string(), "wsgi_apps:CLOSED is not callable");
}

// ---- Flask and Django: the same routes (tests/python/flask_app.py, djangosite/) ---------

/// Where the Flask app and the Django project answer differently.
struct Site {
    target: &'static str,
    index: &'static str,
    index_type: &'static str,
    json: &'static str,
    session_cookie: &'static str,
    /// Whether the framework reads a body without `CONTENT_LENGTH` (Flask follows
    /// `wsgi.input_terminated`; Django ignores it).
    reads_chunked: bool,
}

const FLASK: Site = Site {
    target: "flask_app:app",
    index: "hello from flask",
    index_type: "text/html; charset=utf-8",
    json: "{\"name\":\"towergate\",\"sum\":42}\n",
    session_cookie: "session=",
    reads_chunked: true,
};

const DJANGO: Site = Site {
    target: "djangosite.wsgi:application",
    index: "hello from django",
    index_type: "text/plain",
    json: r#"{"sum": 42, "name": "towergate"}"#,
    session_cookie: "sessionid=",
    reads_chunked: false,
};

/// One test per scenario for each site.
macro_rules! site_tests {
    ($name:ident, $site:expr) => {
        mod $name {
            #[tokio::test]
            async fn routes_non_ascii_paths_and_404() {
                super::bounded(super::routes(&$site)).await;
            }
            #[tokio::test]
            async fn form_and_json_posts() {
                super::bounded(super::form_and_json(&$site)).await;
            }
            #[tokio::test]
            async fn cookies_sessions_and_redirects() {
                super::bounded(super::cookies_sessions_and_redirects(&$site)).await;
            }
            #[tokio::test]
            async fn streaming_and_file_downloads() {
                super::bounded(super::streaming_and_downloads(&$site)).await;
            }
            #[tokio::test]
            async fn uploads_of_several_mib() {
                super::bounded(super::uploads(&$site)).await;
            }
        }
    };
}

site_tests!(flask, super::FLASK);
site_tests!(django, super::DJANGO);

async fn routes(site: &Site) {
    let (addr, _server) = serve_app(import(site.target), "").await;
    let (parts, body) = get(addr, "/").await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["content-type"], site.index_type);
    assert_eq!(
        parts.headers["content-length"],
        site.index.len().to_string()
    );
    assert_eq!(body, site.index);

    // PEP 3333: PATH_INFO holds the UTF-8 bytes as latin-1; the framework decodes them.
    let (parts, body) = get(addr, "/hello/caf%C3%A9%20cr%C3%A8me").await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(std::str::from_utf8(&body).unwrap(), "hello café crème");

    let (parts, body) = get(addr, "/no/such/page").await;
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    let body = std::str::from_utf8(&body).unwrap();
    assert!(body.contains("<h1>Not Found</h1>"), "{body}");
}

async fn form_and_json(site: &Site) {
    let (addr, _server) = serve_app(import(site.target), "").await;
    let request = Request::post(format!("http://{addr}/form"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full("b=2&a=%C3%A9t%C3%A9"))
        .unwrap();
    let (parts, body) = send(request).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(std::str::from_utf8(&body).unwrap(), "a=été,b=2");

    let request = Request::post(format!("http://{addr}/json"))
        .header("content-type", "application/json")
        .body(full(r#"{"numbers": [1, 2, 39], "name": "towergate"}"#))
        .unwrap();
    let (parts, body) = send(request).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["content-type"], "application/json");
    assert_eq!(body, site.json);
}

async fn cookies_sessions_and_redirects(site: &Site) {
    let (addr, _server) = serve_app(import(site.target), "").await;
    let (parts, _) = get(addr, "/cookie/set").await;
    let cookies: Vec<_> = parts.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["flavour=oatmeal; Path=/", "size=large; Path=/"]);

    let request = Request::get(format!("http://{addr}/cookie/get"))
        .header("cookie", "flavour=oatmeal; size=large")
        .body(full(""))
        .unwrap();
    let (_, body) = send(request).await;
    assert_eq!(body, "flavour=oatmeal,size=large");

    // The session cookie the first answer sets counts the second request.
    let (parts, body) = get(addr, "/session").await;
    assert_eq!(body, "1");
    let session = parts.headers["set-cookie"].to_str().unwrap();
    let session = session.split(';').next().unwrap().to_owned();
    assert!(session.starts_with(site.session_cookie), "{session}");
    let request = Request::get(format!("http://{addr}/session"))
        .header("cookie", session)
        .body(full(""))
        .unwrap();
    let (_, body) = send(request).await;
    assert_eq!(body, "2");

    let (parts, _) = get(addr, "/redirect").await;
    assert_eq!(parts.status, StatusCode::FOUND);
    assert_eq!(parts.headers["location"], "/hello/there");
}

async fn streaming_and_downloads(site: &Site) {
    let (addr, _server) = serve_app(import(site.target), "").await;
    let response = open(addr, "/stream?n=4").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("content-length").is_none());
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");

    // Flask's send_file and Django's FileResponse hand the file to wsgi.file_wrapper.
    let path = std::env::temp_dir().join(format!(
        "towergate-{}-{}.bin",
        site.session_cookie.trim_end_matches('='),
        std::process::id()
    ));
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 239) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let (parts, body) = get(addr, &format!("/download?path={}", path.display())).await;
    std::fs::remove_file(&path).unwrap();
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["content-type"], "application/octet-stream");
    assert_eq!(parts.headers["content-length"], "2000000");
    assert!(body == data, "the downloaded bytes differ");
}

/// The SHA-256 of `data` from Python's hashlib, so the tests need no hashing crate.
fn sha256_of(data: &[u8]) -> String {
    let mut child = std::process::Command::new(venv().join("bin/python"))
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())",
        ])
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn uploads(site: &Site) {
    let (addr, _server) = serve_app(import(site.target), "").await;
    let data: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 241) as u8).collect();
    let digest = sha256_of(&data);
    let expected = format!("{} {digest}", data.len());
    let post = |path: &str, content_type: &str, body: ReqBody| {
        Request::post(format!("http://{addr}{path}"))
            .header("content-type", content_type)
            .body(body)
            .unwrap()
    };

    // Read through wsgi.input in 64 KiB blocks.
    let (parts, body) = send(post(
        "/upload",
        "application/octet-stream",
        full(data.clone()),
    ))
    .await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, expected);

    if site.reads_chunked {
        let chunks = data.chunks(100_000).map(Bytes::copy_from_slice).collect();
        let (parts, body) =
            send(post("/upload", "application/octet-stream", chunked(chunks))).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, expected);
    }

    let mut form = Vec::new();
    form.extend_from_slice(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
          Content-Type: application/octet-stream\r\n\r\n",
    );
    form.extend_from_slice(&data);
    form.extend_from_slice(b"\r\n--XyZ--\r\n");
    let (parts, body) = send(post(
        "/files",
        "multipart/form-data; boundary=XyZ",
        full(form),
    ))
    .await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, format!("big.bin {expected}"));
}

#[tokio::test]
async fn flask_500_page_and_its_traceback_in_the_log() {
    let _ = logs();
    bounded(async {
        let (addr, _server) = serve_app(import(FLASK.target), "").await;
        let (parts, body) = get(addr, "/boom").await;
        assert_eq!(parts.status, StatusCode::INTERNAL_SERVER_ERROR);
        let body = std::str::from_utf8(&body).unwrap();
        assert!(body.contains("<h1>Internal Server Error</h1>"), "{body}");
        // Flask catches the exception and logs it to wsgi.errors, which goes to the log.
        let log = logged("ZeroDivisionError: division by zero").await;
        assert!(log.contains("Exception on /boom [GET]"), "{log}");
        assert!(log.contains("Traceback (most recent call last)"), "{log}");
        assert!(log.contains("return 1 / 0"), "{log}");
    })
    .await;
}

#[tokio::test]
async fn django_exception_is_a_500_with_the_traceback_logged() {
    let _ = logs();
    bounded(async {
        // DEBUG_PROPAGATE_EXCEPTIONS: the exception leaves Django, towergate answers.
        let (addr, _server) = serve_app(import(DJANGO.target), "").await;
        let (parts, body) = get(addr, "/boom").await;
        assert_eq!(parts.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            "A server error occurred.  Please contact the administrator."
        );
        let log = logged("ZeroDivisionError: division by zero").await;
        assert!(log.contains("Traceback (most recent call last)"), "{log}");
        assert!(log.contains("views.py\", line"), "{log}");
    })
    .await;
}

// ---- wsgiref.validate -------------------------------------------------------------------

/// `target` wrapped in Python's own `wsgiref.validate.validator`, with its warnings made
/// errors: any breach of PEP 3333 on either side then fails the request.
fn validated(target: &str) -> WsgiApp {
    let plain = import(target);
    let wrapped = pyo3::Python::attach(|py| -> pyo3::PyResult<_> {
        use pyo3::types::PyAnyMethods;
        let validate = py.import("wsgiref.validate")?;
        let warnings = py.import("warnings")?;
        warnings.call_method1("simplefilter", ("error", validate.getattr("WSGIWarning")?))?;
        Ok(validate
            .getattr("validator")?
            .call1((plain.as_object().bind(py),))?
            .unbind())
    })
    .unwrap();
    WsgiApp::builder().threads(2).from_object(wrapped).unwrap()
}

/// Sends each `(method, path, content type, body, status)` to `app` under the validator and
/// checks the status and that the whole body arrived.
async fn check_validated(target: &str, requests: &[(&str, &str, &str, &str, u16)]) {
    let (addr, _server) = serve_app(validated(target), "").await;
    for &(method, path, content_type, body, status) in requests {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let response = client()
            .request(request.body(full(body.to_owned())).unwrap())
            .await
            .unwrap();
        if response.status() != status {
            let log = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
            panic!("{target} {method} {path}: {}\n{log}", response.status());
        }
        let body = response.into_body().collect().await;
        assert!(
            body.is_ok(),
            "{target} {method} {path}: the response was cut"
        );
    }
    let log = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    assert!(!log.contains("AssertionError"), "{log}");
    assert!(!log.contains("WSGIWarning"), "{log}");
}

#[tokio::test]
async fn every_app_passes_wsgiref_validate() {
    let _ = logs();
    bounded(async {
        let form = "application/x-www-form-urlencoded";
        let json = "application/json";
        for target in [
            "wsgi_apps:hello",
            "wsgi_apps:environ_dump",
            "wsgi_apps:write_then_iter",
            "wsgi_apps:exc_info_replaces",
            "wsgi_apps:file_wrapper_bytesio",
            "wsgi_apps:log_errors",
        ] {
            let status = if target.ends_with("replaces") {
                503
            } else if target.ends_with("log_errors") {
                204
            } else {
                200
            };
            check_validated(target, &[("GET", "/x?y=1", "", "", status)]).await;
        }
        check_validated(
            "wsgi_apps:count_input",
            &[("PUT", "/", "application/octet-stream", "12345", 200)],
        )
        .await;
        let site = [
            ("GET", "/", "", "", 200),
            ("GET", "/hello/caf%C3%A9", "", "", 200),
            ("POST", "/form", form, "a=1&b=2", 200),
            (
                "POST",
                "/json",
                json,
                r#"{"numbers": [1], "name": "x"}"#,
                200,
            ),
            ("GET", "/cookie/set", "", "", 200),
            ("GET", "/session", "", "", 200),
            ("GET", "/redirect", "", "", 302),
            ("GET", "/stream?n=3", "", "", 200),
            ("POST", "/upload", "application/octet-stream", "abc", 200),
            ("GET", "/no/such/page", "", "", 404),
            ("HEAD", "/", "", "", 200),
        ];
        check_validated("flask_app:app", &site).await;
        check_validated("djangosite.wsgi:application", &site).await;
    })
    .await;
}

// ---- the CLI: towergate wsgi ------------------------------------------------------------

#[cfg(feature = "cli")]
mod cli {
    use std::io::Read;
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    fn towergate() -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_towergate"));
        command
            .env_clear()
            .env("VIRTUAL_ENV", venv())
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs `towergate ARGS` to its end, which must be exit code `code`; its standard error.
    fn exits(code: i32, args: &[&str]) -> String {
        let output = towergate().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(code));
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// `towergate wsgi TARGET`, the test apps on its Python path, on 127.0.0.1:`port`; a
    /// test adds its options.
    fn wsgi(target: &str, port: u16) -> Command {
        let mut command = towergate();
        command
            .args(["wsgi", target, "--python-path"])
            .arg(apps_dir())
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"));
        command
    }

    /// `towergate wsgi TARGET ARGS…` on a free port, once it listens, and its address.
    async fn serving(target: &str, args: &[&str]) -> (Running, SocketAddr) {
        let port = free_port();
        let child = wsgi(target, port).args(args).spawn().unwrap();
        let mut running = Running(child);
        running.wait_listening(port, "towergate wsgi").await;
        (running, ([127, 0, 0, 1], port).into())
    }

    fn free_port() -> u16 {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .unwrap()
            .port()
    }

    /// Waits until `done` (within [`LIMIT`]).
    async fn until(done: impl Fn() -> bool) {
        bounded(async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// Stops the server (SIGTERM) when dropped, and reaps it.
    struct Running(std::process::Child);

    impl Running {
        /// Waits until something listens on `port` (within [`LIMIT`], while the process
        /// runs); `what` names the process in the failure.
        async fn wait_listening(&mut self, port: u16, what: &str) {
            let started = Instant::now();
            while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
                assert!(started.elapsed() < LIMIT, "{what} did not start");
                assert!(self.0.try_wait().unwrap().is_none(), "{what} exited");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        /// What the server wrote on standard output and standard error (once it exited).
        fn output(&mut self) -> (String, String) {
            let (mut out, mut err) = (String::new(), String::new());
            if let Some(mut stdout) = self.0.stdout.take() {
                stdout.read_to_string(&mut out).unwrap();
            }
            if let Some(mut stderr) = self.0.stderr.take() {
                stderr.read_to_string(&mut err).unwrap();
            }
            (out, err)
        }

        fn terminate(&mut self) -> std::process::ExitStatus {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = self.0.try_wait().unwrap() {
                    return status;
                }
                if Instant::now() > deadline {
                    let _ = self.0.kill();
                    return self.0.wait().unwrap();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            if self.0.try_wait().ok().flatten().is_none() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }

    #[tokio::test]
    async fn towergate_wsgi_serves_flask_under_a_mount_with_static_files() {
        let port = free_port();
        let static_dir =
            std::env::temp_dir().join(format!("towergate-wsgi-static-{}", std::process::id()));
        std::fs::create_dir_all(&static_dir).unwrap();
        std::fs::write(static_dir.join("a.txt"), "static bytes").unwrap();
        let child = wsgi("flask_app:app", port)
            .args(["--threads", "2", "--mount", "/flask", "--static"])
            .arg(format!("/s={}", static_dir.display()))
            .spawn()
            .unwrap();
        let mut running = Running(child);
        running.wait_listening(port, "towergate wsgi").await;
        bounded(async {
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let (parts, body) = get(addr, "/flask/hello/caf%C3%A9").await;
            assert_eq!(parts.status, StatusCode::OK);
            assert_eq!(std::str::from_utf8(&body).unwrap(), "hello café");
            let (parts, body) = get(addr, "/flask/environ").await;
            assert_eq!(parts.status, StatusCode::OK);
            let text = std::str::from_utf8(&body).unwrap();
            assert!(text.contains(r#""SCRIPT_NAME": "/flask""#), "{text}");
            assert!(text.contains(r#""PATH_INFO": "/environ""#), "{text}");
            let (parts, body) = get(addr, "/s/a.txt").await;
            assert_eq!(parts.status, StatusCode::OK);
            assert_eq!(body, "static bytes");
            let (parts, _) = get(addr, "/elsewhere").await;
            assert_eq!(parts.status, StatusCode::NOT_FOUND);
        })
        .await;
        let status = running.terminate();
        std::fs::remove_dir_all(&static_dir).unwrap();
        assert!(status.success(), "{status}");
        let (_, stderr) = running.output();
        assert!(
            stderr.contains("\"GET /flask/hello/caf%C3%A9 HTTP/1.1\" 200"),
            "{stderr}"
        );
    }

    #[tokio::test]
    async fn towergate_wsgi_timeout_answers_504_and_exits_though_the_app_is_still_held() {
        let (mut running, addr) =
            serving("wsgi_apps:held", &["--timeout", "0.3", "--grace", "1"]).await;
        let (parts, body) = bounded(get(addr, "/before")).await;
        assert_eq!(parts.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            body,
            "A server error occurred.  Please contact the administrator."
        );
        // Its Python thread still waits for /release: the stop does not wait for it.
        let status = running.terminate();
        assert!(status.success(), "{status}");
        let (_, stderr) = running.output();
        assert!(
            stderr.contains("app failed: the app produced no output for 300ms\n"),
            "{stderr}"
        );
        assert!(stderr.contains("\"GET /before HTTP/1.1\" 504 "), "{stderr}");
    }

    #[tokio::test]
    async fn towergate_wsgi_max_queued_answers_503_with_retry_after_when_the_queue_is_full() {
        let (mut running, addr) = serving(
            "wsgi_apps:held",
            &["--threads", "1", "--max-queued", "0", "--grace", "1"],
        )
        .await;
        bounded(async {
            // The one thread is busy, and no request may wait.
            let held = open(addr, "/after").await;
            assert_eq!(held.status(), StatusCode::OK);
            let (parts, body) = get(addr, "/before").await;
            assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(parts.headers["retry-after"], "1");
            assert_eq!(
                body,
                "A server error occurred.  Please contact the administrator."
            );
        })
        .await;
        let status = running.terminate();
        assert!(status.success(), "{status}");
        let (_, stderr) = running.output();
        assert!(
            stderr.contains("app failed: the app is busy: its queue is full (0 waiting)\n"),
            "{stderr}"
        );
        assert!(stderr.contains("\"GET /before HTTP/1.1\" 503 "), "{stderr}");
    }

    #[tokio::test]
    async fn towergate_wsgi_send_timeout_frees_the_thread_of_a_client_that_stops_reading() {
        let (mut running, addr) = serving(
            "wsgi_apps:endless",
            &["--threads", "1", "--send-timeout", "0.3", "--grace", "1"],
        )
        .await;
        bounded(async {
            let mut stalled = open(addr, "/?cli-stalled").await.into_body();
            assert!(stalled.frame().await.unwrap().unwrap().is_data());
            // The client reads no more; the one thread gives up after 0.3 s.
            let mut next = open(addr, "/?cli-next").await.into_body();
            assert!(next.frame().await.unwrap().unwrap().is_data());
        })
        .await;
        let status = running.terminate();
        assert!(status.success(), "{status}");
        let (_, stderr) = running.output();
        assert!(
            stderr.contains(
                "wsgi_apps:endless GET /?cli-stalled: the client took no output for 300ms: the response is cut\n"
            ),
            "{stderr}"
        );
    }

    #[tokio::test]
    async fn towergate_wsgi_exits_though_a_static_file_read_is_stuck_past_the_grace() {
        let port = free_port();
        let static_dir =
            std::env::temp_dir().join(format!("towergate-wsgi-stuck-{}", std::process::id()));
        std::fs::create_dir_all(&static_dir).unwrap();
        // Opening it blocks one of the runtime's blocking threads for good.
        fifo::mkfifo(&static_dir.join("stuck"));
        let child = wsgi("wsgi_apps:hello", port)
            .args(["--grace", "1", "--static"])
            .arg(format!("/s={}", static_dir.display()))
            .spawn()
            .unwrap();
        let mut running = Running(child);
        running.wait_listening(port, "towergate wsgi").await;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let stuck = tokio::spawn(get(addr, "/s/stuck"));
        let pid = running.0.id();
        until(|| fifo::opening_a_fifo(pid)).await;
        // Dropping the runtime would wait for the blocked read forever (and a worker whose
        // parent is gone has no one to kill it).
        let status = running.terminate();
        std::fs::remove_dir_all(&static_dir).unwrap();
        assert!(status.success(), "{status}");
        let (parts, _) = bounded(stuck).await.unwrap();
        assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
        let (_, stderr) = running.output();
        assert!(
            stderr.contains("\"GET /s/stuck HTTP/1.1\" 503 "),
            "{stderr}"
        );
    }

    #[tokio::test]
    async fn towergate_wsgi_workers_exit_though_no_one_reads_their_output() {
        let port = free_port();
        // Standard output is a pipe that the test never reads.
        let child = wsgi("wsgi_apps:chatty", port)
            .args(["--workers", "2", "--grace", "1"])
            .spawn()
            .unwrap();
        let mut running = Running(child);
        running
            .wait_listening(port, "towergate wsgi --workers 2")
            .await;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // Its worker prints more than the pipes hold: the parent's write of it to its own
        // standard output blocks, on one of its runtime's blocking threads.
        let request = tokio::spawn(get(addr, "/"));
        let pid = running.0.id();
        until(|| fifo::writing_to_a_full_pipe(pid)).await;
        // Dropping the runtime would wait for the blocked write forever.
        let status = running.terminate();
        request.abort();
        assert!(status.success(), "{status}");
    }

    #[tokio::test]
    async fn the_wsgi_flask_example_mounts_flask_beside_rust_routes() {
        let port = free_port();
        let child = Command::new(crate::support::example_bin("wsgi_flask"))
            .env_clear()
            .env("VIRTUAL_ENV", venv())
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut running = Running(child);
        running.wait_listening(port, "the example").await;
        bounded(async {
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let (parts, body) = get(addr, "/").await;
            assert_eq!(parts.status, StatusCode::OK);
            assert!(body.starts_with(b"an axum route"), "{body:?}");
            let (_, body) = get(addr, "/flask/").await;
            assert_eq!(body, "hello from Flask, mounted at /flask\n");
            let (_, body) = get(addr, "/flask/hello/you").await;
            assert_eq!(body, "hello you, from Flask\n");
            let (_, body) = get(addr, "/flask/stream?n=2").await;
            assert_eq!(body, "line 0\nline 1\n");
            let (_, body) = get(addr, "/gateway/hello").await;
            assert_eq!(body, "Hello, world!");
        })
        .await;
        running.terminate();
    }

    /// The processes whose parent is `parent`, from `/proc`.
    fn children(parent: u32) -> Vec<u32> {
        let mut children = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `PID (COMM) STATE PPID ...`: COMM may hold spaces and parentheses.
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
            if ppid == parent {
                children.push(pid);
            }
        }
        children.sort_unstable();
        children
    }

    /// Waits until `parent` has `count` children, none of them in `not`.
    async fn wait_for_workers(running: &mut Running, count: usize, not: &[u32]) -> Vec<u32> {
        let started = Instant::now();
        loop {
            let workers = children(running.0.id());
            if workers.len() == count && !workers.iter().any(|pid| not.contains(pid)) {
                return workers;
            }
            assert!(started.elapsed() < LIMIT, "workers: {workers:?}");
            assert!(
                running.0.try_wait().unwrap().is_none(),
                "towergate wsgi exited"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal` (`-KILL`, `-TERM`) to worker `pid` of two, then waits until another
    /// replaced it: the two workers then.
    async fn replaced(running: &mut Running, pid: u32, signal: &str) -> Vec<u32> {
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        wait_for_workers(running, 2, &[pid]).await
    }

    /// `towergate wsgi wsgi_apps:process` with two workers of one thread each, once both
    /// answered: the server, its workers' pids and its port.
    async fn two_workers() -> (Running, Vec<u32>, u16) {
        two_workers_with(&[]).await
    }

    /// [`two_workers`] with the options `args` too.
    async fn two_workers_with(args: &[&str]) -> (Running, Vec<u32>, u16) {
        let port = free_port();
        let child = wsgi("wsgi_apps:process", port)
            .args(["--workers", "2", "--threads", "1"])
            .args(args)
            .spawn()
            .unwrap();
        let mut running = Running(child);
        let workers = wait_for_workers(&mut running, 2, &[]).await;
        // The parent holds the address; the workers listen once they imported the app, and
        // the connections spread over those that listen.
        running
            .wait_listening(port, "towergate wsgi's workers")
            .await;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        bounded(async {
            let mut answered = Vec::new();
            while answered.len() < 2 {
                let pid = answering_pid(addr).await;
                assert!(workers.contains(&pid), "{pid} not in {workers:?}");
                if !answered.contains(&pid) {
                    answered.push(pid);
                }
            }
        })
        .await;
        (running, workers, port)
    }

    /// The pid in a `wsgi_apps:process` answer, checked for `multiprocess=True`.
    async fn answering_pid(addr: SocketAddr) -> u32 {
        let (parts, body) = get(addr, "/").await;
        assert_eq!(parts.status, StatusCode::OK);
        let text = std::str::from_utf8(&body).unwrap();
        let pid = text
            .strip_prefix("pid=")
            .and_then(|rest| rest.strip_suffix(" multiprocess=True"))
            .unwrap_or_else(|| panic!("{text}"));
        pid.parse().unwrap()
    }

    #[tokio::test]
    async fn towergate_wsgi_workers_share_the_address_a_killed_one_is_replaced_all_stop_together() {
        let (mut running, first, port) = two_workers().await;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // A worker handles its connections on its main thread (a current-thread runtime),
        // beside its one Python thread.
        for pid in &first {
            let started = Instant::now();
            let mut names = fifo::thread_names(*pid);
            while names != ["towergate", "towergate-pytho"] && started.elapsed() < LIMIT {
                tokio::time::sleep(Duration::from_millis(20)).await;
                names = fifo::thread_names(*pid);
            }
            assert_eq!(names, ["towergate", "towergate-pytho"], "worker {pid}");
        }
        let killed = bounded(answering_pid(addr)).await;
        assert!(first.contains(&killed), "{killed} not in {first:?}");
        let second = replaced(&mut running, killed, "-KILL").await;
        bounded(async {
            for _ in 0..4 {
                let pid = answering_pid(addr).await;
                assert!(second.contains(&pid), "{pid} not in {second:?}");
            }
        })
        .await;
        let status = running.terminate();
        assert!(status.success(), "{status}");
        // The parent reaped every worker before it exited.
        for pid in first.iter().chain(&second) {
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "worker {pid} outlived its parent"
            );
        }
        let (stdout, stderr) = running.output();
        assert_eq!(
            stdout,
            format!(
                "towergate: listening on http://127.0.0.1:{port}/\n\
                 towergate: serving wsgi_apps:process at http://127.0.0.1:{port}/ with 2 workers\n"
            )
        );
        assert!(
            stderr.contains(&format!(
                "worker {killed} exited (signal: 9 (SIGKILL)): starting another"
            )),
            "{stderr}"
        );
    }

    /// The CPUs in the `Cpus_allowed_list` (`0-3,6`) of the text of a `/proc/.../status`
    /// file.
    fn cpus_allowed(status: &str) -> Vec<usize> {
        let list = status
            .lines()
            .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim();
        let mut cpus = Vec::new();
        for range in list.split(',') {
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            cpus.extend(first.parse::<usize>().unwrap()..=last.parse().unwrap());
        }
        cpus
    }

    /// The one CPU every thread of process `pid` is bound to.
    fn bound_cpu(pid: u32) -> usize {
        let cpus: Vec<Vec<usize>> = fifo::per_thread(pid, "status")
            .iter()
            .map(|status| cpus_allowed(status))
            .collect();
        assert!(!cpus.is_empty(), "worker {pid} is gone");
        assert!(
            cpus.iter().all(|c| c.len() == 1 && *c == cpus[0]),
            "worker {pid}'s threads may run on {cpus:?}"
        );
        cpus[0][0]
    }

    #[tokio::test]
    async fn towergate_wsgi_pin_workers_binds_each_to_a_cpu_and_a_replacement_to_the_same() {
        // The CPUs this test may run on, which the server inherits: the workers take them
        // in turn.
        let allowed = cpus_allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
        let expected = [allowed[0], allowed[1 % allowed.len()]];
        let (mut running, first, port) = two_workers_with(&["--pin-workers"]).await;
        let mut cpus: Vec<usize> = first.iter().map(|&pid| bound_cpu(pid)).collect();
        cpus.sort_unstable();
        let mut sorted = expected;
        sorted.sort_unstable();
        assert_eq!(cpus, sorted, "workers {first:?}");
        // The parent is not bound.
        assert_eq!(
            cpus_allowed(
                &std::fs::read_to_string(format!("/proc/{}/status", running.0.id())).unwrap()
            ),
            allowed
        );
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let killed = bounded(answering_pid(addr)).await;
        let cpu = bound_cpu(killed);
        let second = replaced(&mut running, killed, "-KILL").await;
        let replacement = *second.iter().find(|pid| !first.contains(pid)).unwrap();
        // Bound before its threads start: wait for them, then check them all.
        until(|| fifo::thread_names(replacement).len() == 2).await;
        assert_eq!(bound_cpu(replacement), cpu, "replacement {replacement}");
        let status = running.terminate();
        assert!(status.success(), "{status}");
        let (stdout, _) = running.output();
        assert_eq!(
            stdout,
            format!(
                "towergate: listening on http://127.0.0.1:{port}/\n\
                 towergate: serving wsgi_apps:process at http://127.0.0.1:{port}/ with 2 workers pinned to CPUs {}, {}\n",
                expected[0], expected[1]
            )
        );
    }

    #[test]
    fn towergate_wsgi_a_worker_that_cannot_take_its_cpu_runs_unbound() {
        // No such CPU (the parent gives a worker one it may run on: this one may have left
        // the server's CPU set since). The warning, then the worker goes on, here to find
        // it has no parent's socket.
        let pid = std::process::id().to_string();
        let stderr = exits(
            1,
            &[
                "wsgi",
                "wsgi_apps:hello",
                "--worker-of",
                &pid,
                "--worker-cpu",
                "1023",
            ],
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{stderr}");
        assert!(
            lines[0].contains(" WARN towergate::server: cannot bind worker ")
                && lines[0]
                    .ends_with(" to CPU 1023: Invalid argument (os error 22); it runs unbound"),
            "{stderr}"
        );
        assert_eq!(
            lines[1],
            "towergate wsgi: --worker-of: descriptor 0 is not the address socket of `towergate wsgi --workers` (the option is for the workers it starts)"
        );
    }

    #[test]
    fn towergate_wsgi_pin_workers_needs_workers() {
        assert_eq!(
            exits(1, &["wsgi", "wsgi_apps:hello", "--pin-workers"]),
            "towergate wsgi: --pin-workers needs --workers 2 or more\n"
        );
    }

    /// Crashes a worker through `/exit`, trying until one takes the connection (between
    /// workers none listens, and a worker that exits resets the connections queued for
    /// it).
    async fn crash_a_worker(addr: SocketAddr) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        bounded(async {
            loop {
                let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                stream
                    .write_all(b"GET /exit HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await
                    .unwrap();
                let mut answer = Vec::new();
                match stream.read_to_end(&mut answer).await {
                    // The worker exited without an answer.
                    Ok(_) => {
                        assert_eq!(String::from_utf8_lossy(&answer), "");
                        return;
                    }
                    // Queued at the listener of a worker that was exiting: the kernel
                    // reset it.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                    Err(e) => panic!("{e}"),
                }
            }
        })
        .await;
    }

    #[tokio::test]
    async fn towergate_wsgi_workers_that_keep_crashing_are_replaced_later_each_time() {
        let (mut running, first, port) = two_workers().await;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        for _ in 0..4 {
            crash_a_worker(addr).await;
        }
        // Each crash came soon after its worker started: each replacement waited longer.
        let second = wait_for_workers(&mut running, 2, &[]).await;
        assert_ne!(second, first);
        let pid = bounded(answering_pid(addr)).await;
        assert!(second.contains(&pid), "{pid} not in {second:?}");
        let status = running.terminate();
        assert!(status.success(), "{status}");
        let (_, stderr) = running.output();
        let replaced: Vec<&str> = stderr
            .lines()
            .filter_map(|line| line.split_once(" exited (exit status: 3): starting another"))
            .map(|(_, delay)| delay)
            .collect();
        assert_eq!(
            replaced,
            ["", " in 100ms", " in 200ms", " in 400ms"],
            "{stderr}"
        );
    }

    /// Whether `pid` has exited: gone, or a zombie its new parent has not reaped.
    fn exited(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat[stat.rfind(')').unwrap() + 2..].starts_with('Z'),
            Err(_) => true,
        }
    }

    #[tokio::test]
    async fn towergate_wsgi_workers_stop_when_their_parent_is_killed() {
        let (mut running, workers, port) = two_workers().await;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        bounded(answering_pid(addr)).await;
        // No SIGTERM for the parent to pass on: the workers get theirs from the kernel.
        running.0.kill().unwrap();
        running.0.wait().unwrap();
        let started = Instant::now();
        while !workers.iter().all(|&pid| exited(pid)) {
            assert!(
                started.elapsed() < LIMIT,
                "workers {workers:?} outlived their parent"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // They shut down as a server does: the address is free again.
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
        let (_, stderr) = running.output();
        assert_eq!(stderr.matches("shutting down").count(), 2, "{stderr}");
    }

    /// Waits until each of `workers` sleeps in its import of `slow_import`.
    async fn importing(workers: &[u32]) {
        for &pid in workers {
            until(|| fifo::sleeping(pid)).await;
        }
    }

    #[tokio::test]
    async fn towergate_wsgi_workers_stopped_while_they_import_the_app_end_at_once() {
        let port = free_port();
        let child = wsgi("slow_import:app", port)
            .args(["--workers", "2"])
            .spawn()
            .unwrap();
        let mut running = Running(child);
        let first = wait_for_workers(&mut running, 2, &[]).await;
        importing(&first).await;
        // Stopped from outside (an operator, the out-of-memory killer): not a broken
        // import, which would stop the server. It is replaced.
        let stopped = first[0];
        let second = replaced(&mut running, stopped, "-TERM").await;
        importing(&second).await;
        // The import takes a minute; the workers end at once, without --grace's wait, and
        // the server with success.
        let status = running.terminate();
        assert!(status.success(), "{status}");
        for pid in first.iter().chain(&second) {
            assert!(exited(*pid), "worker {pid} outlived its parent");
        }
        let (stdout, stderr) = running.output();
        assert_eq!(
            stdout,
            format!(
                "towergate: listening on http://127.0.0.1:{port}/\n\
                 towergate: serving slow_import:app at http://127.0.0.1:{port}/ with 2 workers\n"
            )
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].ends_with(&format!(
                " WARN towergate::server: worker {stopped} exited (signal: 15 (SIGTERM)) before it was ready: starting another"
            )),
            "{stderr}"
        );
    }

    #[test]
    fn towergate_wsgi_workers_with_a_broken_import_stop_with_the_reason() {
        let stderr = exits(
            1,
            &[
                "wsgi",
                "no_such_module:app",
                "--workers",
                "2",
                "--addr",
                "127.0.0.1:0",
            ],
        );
        assert!(
            stderr.contains(
                "towergate wsgi: cannot import no_such_module: ModuleNotFoundError: No module named 'no_such_module'\n"
            ),
            "{stderr}"
        );
        assert!(
            stderr.contains(" exited (exit status: 1) before it was ready: stopping\n"),
            "{stderr}"
        );
    }

    #[test]
    fn towergate_wsgi_worker_of_refuses_a_descriptor_0_that_is_not_its_parents_socket() {
        let pid = std::process::id().to_string();
        assert_eq!(
            exits(1, &["wsgi", "wsgi_apps:hello", "--worker-of", &pid]),
            "towergate wsgi: --worker-of: descriptor 0 is not the address socket of `towergate wsgi --workers` (the option is for the workers it starts)\n"
        );
    }

    #[tokio::test]
    async fn towergate_wsgi_keeping_the_gil_or_not_requests_that_wait_have_every_thread() {
        let stderr = exits(2, &["wsgi", "wsgi_apps:hello", "--keep-gil", "maybe"]);
        assert!(
            stderr.starts_with("error: invalid value 'maybe' for '--keep-gil <BOOL>'"),
            "{stderr}"
        );
        // Keeping the GIL (the default with one worker) or not, four requests that wait for
        // each other all get in (see `keeping_the_gil_requests_that_wait_still_have_every_thread`).
        for args in [
            &["--threads", "4"][..],
            &["--threads", "4", "--keep-gil", "false"],
            &["--threads", "4", "--keep-gil", "yes"],
        ] {
            let (mut running, addr) = serving("wsgi_apps:together", args).await;
            bounded(all_four_together(addr)).await;
            let status = running.terminate();
            assert!(status.success(), "{status}");
        }
    }

    #[test]
    fn towergate_wsgi_with_a_broken_import_exits_with_the_reason() {
        let stderr = exits(1, &["wsgi", "no_such_module:app"]);
        assert!(
            stderr.ends_with(
                "towergate wsgi: cannot import no_such_module: ModuleNotFoundError: No module named 'no_such_module'\n"
            ),
            "{stderr}"
        );
    }
}

// ---- concurrency ------------------------------------------------------------------------

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// `clients` clients at once, each sending `each` requests for `path` one after the other;
/// every answer must be 200 "slept".
async fn load(addr: SocketAddr, clients: usize, each: usize, path: &str) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let path = path.to_owned();
        tasks.spawn(async move {
            for _ in 0..each {
                let (parts, body) = get(addr, &path).await;
                assert_eq!(parts.status, StatusCode::OK);
                assert_eq!(body, "slept");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

/// Four requests at once to `wsgi_apps:together` at `addr`, each of which waits in the app
/// until all four are in: were a thread that keeps the GIL to hold the queued requests back
/// while its own waits, they would never all get there. Each must answer "together".
async fn all_four_together(addr: SocketAddr) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        tasks.spawn(async move { get(addr, "/").await });
    }
    while let Some(done) = tasks.join_next().await {
        let (parts, body) = done.unwrap();
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, "together");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_the_gil_requests_that_wait_still_have_every_thread() {
    bounded(async {
        let app = |target| {
            WsgiApp::builder()
                .python_path(apps_dir())
                .threads(4)
                .import(target)
                .unwrap()
        };
        let together = app("wsgi_apps:together");
        assert!(together.keeps_gil(), "the default");
        let (addr, _server) = serve_app(together, "").await;
        all_four_together(addr).await;

        // Requests that compute, more than the threads, all get their answers.
        let (addr, _server) = serve_app(app("wsgi_apps:spin"), "").await;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..12 {
            tasks.spawn(async move { get(addr, "/?20000").await });
        }
        let sum: u64 = (0..20000u64).map(|i| i * i).sum();
        while let Some(done) = tasks.join_next().await {
            let (parts, body) = done.unwrap();
            assert_eq!(parts.status, StatusCode::OK);
            assert_eq!(body, sum.to_string());
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_flask_views_with_32_clients_neither_stall_rust_routes_nor_grow_memory() {
    bounded(async {
        let flask = AppService::new(import("flask_app:app"));
        let router = axum::Router::new()
            .route("/rust", axum::routing::get(|| async { "rust" }))
            .fallback_service(flask);
        let (addr, _server) = serve(router).await;

        // 32 clients on 4 Python threads, every view sleeping: a Rust route answers while
        // they all wait (Python never runs on the runtime's threads).
        let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let finished = finished.clone();
            tasks.spawn(async move {
                let (parts, _) = get(addr, "/slow?s=0.5").await;
                assert_eq!(parts.status, StatusCode::OK);
                finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (parts, body) = get(addr, "/rust").await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, "rust");
        let done_then = finished.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            done_then < 32,
            "the Rust route waited for the Python requests"
        );
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        assert_eq!(finished.load(std::sync::atomic::Ordering::SeqCst), 32);

        // Memory stays flat: after a warm-up round, three more rounds of 32 clients add
        // little.
        load(addr, 32, 10, "/slow?s=0.001").await;
        let before = rss_kib();
        for _ in 0..3 {
            load(addr, 32, 10, "/slow?s=0.001").await;
        }
        let growth = rss_kib().saturating_sub(before);
        assert!(
            growth < 16 * 1024,
            "RSS grew by {growth} KiB over 960 requests"
        );
    })
    .await;
}
