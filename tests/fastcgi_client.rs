//! `towergate::fastcgi::Client` against real FastCGI servers: Debian's php-fpm (TCP and a
//! Unix socket, its own pool, recycled workers) and `php-cgi -b`.
#![cfg(all(feature = "fastcgi", feature = "host"))]

#[path = "support/php.rs"]
mod php;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use php::{Listen, PhpCgi, PhpFpm};
use tower::ServiceExt;
use towergate::fastcgi::{Client, PhpFiles};
use towergate::host::{ProgramOptions, ReasonPhrase};

/// A response taken apart: status, headers, whole body.
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    reason: Option<Bytes>,
    body: String,
}

async fn call<S, B>(service: &S, request: Request<B>) -> Answer
where
    S: tower::Service<Request<B>, Response = http::Response<towergate::host::ResponseBody>> + Clone,
    S::Error: std::fmt::Debug,
{
    let response = service.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let reason = response
        .extensions()
        .get::<ReasonPhrase>()
        .map(|r| Bytes::copy_from_slice(r.as_bytes()));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        reason,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A client of `address` running `root/script` for every request, mounted at `/script`.
fn client_for(address: &str, root: &std::path::Path, script: &str) -> Client {
    Client::new(address.parse().unwrap())
        .script_name(format!("/{script}"))
        .script_filename(root.join(script))
        .document_root(root)
}

fn expected_echo(root: &std::path::Path, method: &str, path_info: &str, query: &str) -> String {
    format!(
        "method={method}\nscript_name=/echo.php\nscript_filename={}/echo.php\npath_info={path_info}\nquery={query}\n",
        root.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_fpm_gets_the_environ_the_cgi_host_builds() {
    let fpm = PhpFpm::start(Listen::Tcp, 2, 0);
    let root = fpm.root();
    let client = client_for(&fpm.address, &root, "echo.php");
    let request = Request::get("http://example.com/echo.php/a%20b/c?x=1&y=%20")
        .header("x-custom", "one")
        .header("proxy", "http://evil.example")
        .header("authorization", "Basic c2VjcmV0")
        .body(String::new())
        .unwrap();
    let answer = call(&client, request).await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.body, fpm.log());
    assert_eq!(answer.headers["content-type"], "text/plain;charset=UTF-8");
    assert_eq!(answer.headers["x-echo"], "yes");
    let expected = expected_echo(&root, "GET", "/a b/c", "x=1&y=%20")
        + "content_length=\n"
        + "http_proxy=unset\n"
        + "http_authorization=unset\n"
        + &format!("document_root={}\n", root.display())
        + "header host: example.com\n"
        + "header x-custom: one\n"
        + "body=";
    assert_eq!(answer.body, expected);

    // Authorization only when configured (RFC 3875 §9.2).
    let client = client.options(ProgramOptions::new().pass_authorization(true));
    let request = Request::get("/echo.php")
        .header("authorization", "Basic c2VjcmV0")
        .body(String::new())
        .unwrap();
    let answer = call(&client, request).await;
    assert!(
        answer
            .body
            .contains("\nhttp_authorization=Basic c2VjcmV0\n"),
        "{}",
        answer.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_reach_php_fpm_with_an_exact_content_length() {
    let fpm = PhpFpm::start(Listen::Unix, 2, 0);
    let root = fpm.root();
    let client = client_for(&fpm.address, &root, "echo.php");

    // A declared length: streamed.
    let request = Request::post("/echo.php")
        .header("content-type", "text/plain")
        .header("content-length", "11")
        .body(String::from("hello world"))
        .unwrap();
    let answer = call(&client, request).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer.body.contains("\ncontent_length=11\n"),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("\nheader content-type: text/plain\n"),
        "{}",
        answer.body
    );
    assert!(
        answer.body.ends_with("\nbody=hello world"),
        "{}",
        answer.body
    );

    // No length (chunked): spooled, memory then a file, so CONTENT_LENGTH is exact.
    for (spool_memory, chunks) in [(1 << 20, 3), (100_000, 40)] {
        let client = client
            .clone()
            .options(ProgramOptions::new().spool_memory(spool_memory));
        let chunk = "0123456789".repeat(1000);
        let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = (0..chunks)
            .map(|_| Ok(http_body::Frame::data(Bytes::from(chunk.clone()))))
            .collect();
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let request = Request::put("/echo.php").body(body).unwrap();
        let answer = call(&client, request).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let length = chunks * chunk.len();
        assert!(
            answer
                .body
                .contains(&format!("\ncontent_length={length}\n")),
            "{}",
            &answer.body[..200]
        );
        assert!(
            answer
                .body
                .ends_with(&format!("\nbody={}", chunk.repeat(chunks)))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_responses_follow_the_cgi_rules() {
    let fpm = PhpFpm::start(Listen::Tcp, 2, 0);
    // One client for every script: php-fpm's two workers are not pinned by the idle
    // connections of several pools.
    let client = Client::new(fpm.address.parse().unwrap());
    let site = PhpFiles::new(fpm.root(), client.clone());
    let get = |path: &str| Request::get(path).body(String::new()).unwrap();

    // Status with its own reason phrase (RFC 3875 §6.3.3).
    let answer = call(&site, get("/status.php")).await;
    assert_eq!(answer.status, 299);
    assert_eq!(answer.reason.as_deref(), Some(&b"Fine"[..]));
    assert_eq!(answer.body, "fine");

    // HEAD: no body (RFC 3875 §4.3.3), and the connection serves the next request.
    let answer = call(
        &site,
        Request::head("/hello.php").body(String::new()).unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "");
    let answer = call(&site, get("/hello.php")).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "Hello, world!")
    );

    // PHP turns a Location into a 302 itself.
    let answer = call(&site, get("/redirect.php")).await;
    assert_eq!(answer.status, 302);
    assert_eq!(answer.headers["location"], "/hello.php");

    // STDERR goes to the log; the response is whole.
    let answer = call(&site, get("/stderr.php")).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "logged"));

    // A large response streams through, record by record.
    let answer = call(&site, get("/big.php?n=40")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body.len(), 40 * 65536);
    assert!(answer.body.bytes().all(|b| b == b'x'));

    // php-fpm's own 404 for a script it cannot find (SCRIPT_FILENAME names no file).
    let answer = call(
        &client_for(&fpm.address, &fpm.root(), "missing.php"),
        get("/missing.php"),
    )
    .await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.body, "File not found.\n");
    assert!(client.open_connections() <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recycled_php_fpm_workers_never_cause_a_502() {
    // Each worker serves two requests, then php-fpm replaces it and its connection closes.
    let fpm = PhpFpm::start(Listen::Tcp, 2, 2);
    let root = fpm.root();
    let client = client_for(&fpm.address, &root, "pid.php");
    let mut pids = BTreeSet::new();
    for i in 0..50 {
        let request = if i % 2 == 0 {
            Request::get("/pid.php").body(String::new()).unwrap()
        } else {
            Request::post("/pid.php")
                .header("content-length", "3")
                .body(String::from("abc"))
                .unwrap()
        };
        let answer = call(&client, request).await;
        assert_eq!(
            answer.status,
            200,
            "request {i}: {}\n{}",
            answer.body,
            fpm.log()
        );
        pids.insert(answer.body);
    }
    // The workers were recycled: many processes served the 50 requests.
    assert!(pids.len() >= 20, "{pids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_connections_are_reused() {
    let fpm = PhpFpm::start(Listen::Tcp, 1, 0);
    let root = fpm.root();
    let client = client_for(&fpm.address, &root, "pid.php");
    let mut pids = BTreeSet::new();
    for _ in 0..10 {
        let answer = call(
            &client,
            Request::get("/pid.php").body(String::new()).unwrap(),
        )
        .await;
        assert_eq!(answer.status, 200);
        pids.insert(answer.body);
    }
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert_eq!(client.open_connections(), 1);
    // php-fpm does not multiplex.
    assert_eq!(client.requests_per_connection(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_cgi_serves_through_the_client() {
    let php = PhpCgi::start(2);
    let root = php.root();
    let client = client_for(&php.address, &root, "echo.php");
    let request = Request::post("/echo.php/x?q=1")
        .header("content-length", "4")
        .body(String::from("data"))
        .unwrap();
    let answer = call(&client, request).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer
            .body
            .starts_with(&expected_echo(&root, "POST", "/x", "q=1")),
        "{}",
        answer.body
    );
    assert!(answer.body.ends_with("\nbody=data"), "{}", answer.body);
    // php-cgi answers GET_VALUES: no multiplexing.
    assert_eq!(client.requests_per_connection(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_502() {
    let port = support::server::free_port();
    let client = Client::new(format!("127.0.0.1:{port}").parse().unwrap())
        .script_filename("/nonexistent.php")
        .connect_timeout(Duration::from_secs(2));
    let answer = call(&client, Request::get("/").body(String::new()).unwrap()).await;
    assert_eq!(answer.status, 502);
}

/// towergate's own FastCGI server on 127.0.0.1: `/slow` answers once `release` is
/// notified, `/echo` streams the request body back, anything else answers its path and the
/// meta-variables it was given.
async fn own_server(
    release: std::sync::Arc<tokio::sync::Notify>,
) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    use towergate::ext::RequestExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let service = tower::service_fn(move |request: Request<towergate::fastcgi::RequestBody>| {
        let release = release.clone();
        async move {
            let response = match request.uri().path() {
                "/slow" => {
                    release.notified().await;
                    http::Response::new(http_body_util::Either::Left(String::from("slow done")))
                }
                "/echo" => http::Response::new(http_body_util::Either::Right(request.into_body())),
                path => {
                    let text = format!(
                        "path={path} script_name={} content_length={:?}",
                        request.script_name(),
                        request.headers().get("content-length"),
                    );
                    http::Response::new(http_body_util::Either::Left(text))
                }
            };
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let server = tokio::spawn(towergate::fastcgi::serve(listener, service));
    (address, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_share_a_connection_to_a_server_that_multiplexes() {
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let (address, server) = own_server(release.clone()).await;
    let client = Client::new(address.parse().unwrap()).script_name("/app");

    // A slow request holds its place; the fast ones pass it on the same connection.
    let slow = {
        let client = client.clone();
        tokio::spawn(async move {
            call(
                &client,
                Request::get("/app/slow").body(String::new()).unwrap(),
            )
            .await
        })
    };
    for i in 0..10 {
        let answer = call(
            &client,
            Request::get(format!("/app/fast/{i}"))
                .body(String::new())
                .unwrap(),
        )
        .await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.body,
            format!("path=/fast/{i} script_name=/app content_length=None")
        );
    }
    assert!(!slow.is_finished());
    assert!(client.requests_per_connection().unwrap() > 1);
    assert_eq!(client.open_connections(), 1);
    release.notify_one();
    let answer = slow.await.unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "slow done"));

    // Bodies stream both ways: declared, spooled, and unspooled to the end of STDIN.
    let data: String = (0..200_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let request = Request::post("/app/echo")
        .header("content-type", "text/plain")
        .body(data.clone())
        .unwrap();
    let answer = call(&client, request).await;
    assert_eq!(answer.status, 200);
    // The service set none: the server sniffed one (RFC 3875 §6.3.1).
    assert_eq!(answer.headers["content-type"], "text/plain; charset=utf-8");
    assert!(answer.body == data, "{} bytes back", answer.body.len());
    for client in [
        client.clone(),
        client.clone().options(ProgramOptions::new().spool(false)),
    ] {
        let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = data
            .as_bytes()
            .chunks(70_000)
            .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let answer = call(&client, Request::post("/app/echo").body(body).unwrap()).await;
        assert_eq!(answer.status, 200);
        assert!(answer.body == data, "{} bytes back", answer.body.len());
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_concurrent_requests_than_php_fpm_workers_all_get_answers() {
    // Two workers, eight requests at a time: kept-alive connections must not hold both
    // workers while the other connections wait in php-fpm's listen queue.
    let fpm = PhpFpm::start(Listen::Unix, 2, 0);
    let client = Client::new(fpm.address.parse().unwrap()).head_timeout(Duration::from_secs(20));
    let site = PhpFiles::new(fpm.root(), client);
    for _ in 0..5 {
        let mut calls = Vec::new();
        for _ in 0..8 {
            let site = site.clone();
            calls.push(tokio::spawn(async move {
                call(
                    &site,
                    Request::get("/hello.php").body(String::new()).unwrap(),
                )
                .await
            }));
        }
        for answer in calls {
            let answer = answer.await.unwrap();
            assert_eq!(
                (answer.status, answer.body.as_str()),
                (200, "Hello, world!")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let fpm = PhpFpm::start(Listen::Tcp, 1, 0);
    let client =
        client_for(&fpm.address, &fpm.root(), "hello.php").idle_timeout(Duration::from_millis(300));
    let answer = call(
        &client,
        Request::get("/hello.php").body(String::new()).unwrap(),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "Hello, world!")
    );
    assert_eq!(client.open_connections(), 1);
    // Polled, not timed: the connection goes once it has been idle for the timeout.
    let mut waited = 0;
    while client.open_connections() > 0 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert_eq!(client.open_connections(), 0);
    // The single php-fpm worker is free again: the next request is answered.
    let answer = call(
        &client,
        Request::get("/hello.php").body(String::new()).unwrap(),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "Hello, world!")
    );
}

/// A hand-written FastCGI application on 127.0.0.1 for precise or hostile behaviour: it
/// answers GET_VALUES (no multiplexing), and hands every request it reads to `serve` with
/// the connection's number (0 for the first connection that carried a request) and the
/// request's number on that connection; `serve` answers or closes.
mod raw {
    use std::collections::HashMap;
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::support::fcgi::*;

    /// One request as the application read it.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct Req {
        pub(crate) id: u16,
        pub(crate) params: HashMap<String, String>,
        pub(crate) stdin: Vec<u8>,
        /// Whether the empty STDIN record that ends the stream came.
        pub(crate) stdin_complete: bool,
    }

    impl Req {
        pub(crate) fn param(&self, name: &str) -> &str {
            self.params.get(name).map_or("-", String::as_str)
        }
    }

    /// What `serve` does with a request.
    pub(crate) enum Then {
        /// Once STDIN has ended, answer with the STDOUT this makes of the request, and
        /// END_REQUEST; keep the connection.
        Answer(fn(&Req) -> Vec<u8>),
        /// The same, then close the connection (php-fpm with `pm.max_requests = 1`).
        AnswerThenClose(fn(&Req) -> Vec<u8>),
        /// Close the connection once this many STDIN bytes of the request have come (0: at
        /// once), without answering.
        CloseAfter(usize),
        /// Read on, never answer.
        Hang,
    }

    /// Every request seen: (connection, request on it, what was read of it).
    pub(crate) type Seen = Arc<Mutex<Vec<(usize, usize, Req)>>>;

    pub(crate) struct Server {
        pub(crate) address: String,
        pub(crate) seen: Seen,
        /// Connections that carried a request and were then closed by the client.
        pub(crate) closed_by_client: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Release);
            let _ = TcpStream::connect(&self.address);
        }
    }

    pub(crate) fn start(
        serve: impl Fn(usize, usize, &Req) -> Then + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let seen: Seen = Arc::default();
        let closed_by_client = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let serve = Arc::new(serve);
        let connections = Arc::new(AtomicUsize::new(0));
        {
            let (seen, closed_by_client, stop) =
                (seen.clone(), closed_by_client.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (seen, closed_by_client, serve, connections) = (
                        seen.clone(),
                        closed_by_client.clone(),
                        serve.clone(),
                        connections.clone(),
                    );
                    std::thread::spawn(move || {
                        connection(stream, &*serve, &seen, &closed_by_client, &connections)
                    });
                }
            });
        }
        Server {
            address,
            seen,
            closed_by_client,
            stop,
        }
    }

    fn connection(
        stream: TcpStream,
        serve: &(dyn Fn(usize, usize, &Req) -> Then + Send + Sync),
        seen: &Seen,
        closed_by_client: &AtomicUsize,
        connections: &AtomicUsize,
    ) {
        let mut peer = Peer::from_stream(stream);
        let mut number = None;
        let mut count = 0;
        let mut req = Req::default();
        let mut then: Option<Then> = None;
        loop {
            let Some(record) = peer.read_record() else {
                if number.is_some() {
                    closed_by_client.fetch_add(1, Ordering::AcqRel);
                }
                return;
            };
            match record.kind {
                GET_VALUES => peer.send(&record_of(
                    GET_VALUES_RESULT,
                    0,
                    &pairs(&[
                        ("FCGI_MAX_CONNS", "10"),
                        ("FCGI_MAX_REQS", "10"),
                        ("FCGI_MPXS_CONNS", "0"),
                    ]),
                )),
                BEGIN_REQUEST => {
                    let conn =
                        *number.get_or_insert_with(|| connections.fetch_add(1, Ordering::AcqRel));
                    req = Req {
                        id: record.id,
                        ..Req::default()
                    };
                    seen.lock().unwrap().push((conn, count, req.clone()));
                    count += 1;
                    then = None;
                }
                PARAMS if !record.content.is_empty() => {
                    for (name, value) in decode_pairs(&record.content) {
                        req.params.insert(name, value);
                    }
                }
                PARAMS => {
                    let conn = number.unwrap_or(0);
                    then = Some(serve(conn, count - 1, &req));
                    if let Some(Then::CloseAfter(0)) = then {
                        update(seen, &req);
                        return;
                    }
                }
                STDIN => {
                    if record.content.is_empty() {
                        req.stdin_complete = true;
                    }
                    req.stdin.extend_from_slice(&record.content);
                    update(seen, &req);
                    match &then {
                        Some(Then::CloseAfter(n)) if req.stdin.len() >= *n => return,
                        Some(Then::Answer(answer) | Then::AnswerThenClose(answer))
                            if req.stdin_complete =>
                        {
                            let stdout = answer(&req);
                            let mut out = super::support::fcgi::stream(STDOUT, req.id, &stdout);
                            out.extend(record_of(END_REQUEST, req.id, &[0; 8]));
                            peer.send(&out);
                            if let Some(Then::AnswerThenClose(_)) = then {
                                return;
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }

    fn record_of(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
        record(kind, id, content)
    }

    fn update(seen: &Seen, req: &Req) {
        let mut seen = seen.lock().unwrap();
        if let Some(last) = seen.last_mut() {
            last.2 = req.clone();
        }
    }
}

/// An `echo` answer of the raw application: method, CONTENT_LENGTH, and the body's length
/// and bytes.
fn raw_echo(req: &raw::Req) -> Vec<u8> {
    let text = format!(
        "{} cl={} len={} body=",
        req.param("REQUEST_METHOD"),
        req.param("CONTENT_LENGTH"),
        req.stdin.len()
    );
    let mut stdout = format!("Content-Type: text/plain\r\n\r\n{text}").into_bytes();
    stdout.extend_from_slice(&req.stdin);
    stdout
}

type Frames = std::vec::IntoIter<Result<http_body::Frame<Bytes>, std::io::Error>>;

/// A body of unknown length: `data` in frames of `frame` bytes, then, if `error`, a failure.
fn streamed(
    data: &[u8],
    frame: usize,
    error: bool,
) -> http_body_util::StreamBody<futures_util::stream::Iter<Frames>> {
    let mut frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = data
        .chunks(frame)
        .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    if error {
        frames.push(Err(std::io::Error::other("the client went away")));
    }
    http_body_util::StreamBody::new(futures_util::stream::iter(frames))
}

/// `n` printable bytes that differ from their neighbours (a cycle of 89, prime to every
/// frame size used), so that a lost or repeated piece shows.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'!' + (i % 89) as u8).collect()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

/// Waits (polling, at most 10 s) until `done` holds.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// Fails the test instead of hanging it.
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 30 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_gets_a_504_after_the_head_timeout_and_its_connection_is_not_reused()
 {
    let server = raw::start(|_, _, _| raw::Then::Hang);
    let client = Client::new(server.address.parse().unwrap())
        .script_filename("/nowhere.php")
        .head_timeout(Duration::from_millis(300));
    for round in 0..2 {
        let request = Request::get("/").body(String::new()).unwrap();
        let answer = within("head timeout", call(&client, request)).await;
        assert_eq!(answer.status, 504, "round {round}");
        assert_eq!(answer.body, "504 Gateway Timeout\n");
        // The connection of the request that got no answer is closed at once (the server
        // may answer it late), never handed to the next request.
        assert_eq!(client.open_connections(), 0, "round {round}");
        assert!(
            eventually(|| server
                .closed_by_client
                .load(std::sync::atomic::Ordering::Acquire)
                == round + 1)
            .await,
            "round {round}: the client kept the connection open"
        );
    }
    // Each request went out on a connection of its own.
    let seen = server.seen.lock().unwrap().clone();
    let places: Vec<(usize, usize)> = seen.iter().map(|(c, n, _)| (*c, *n)).collect();
    assert_eq!(places, [(0, 0), (1, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_waiting_a_request_gets_503_at_once_not_after_the_head_timeout() {
    let server = raw::start(|_, _, _| raw::Then::Hang);
    let client = Client::new(server.address.parse().unwrap())
        .script_filename("/nowhere.php")
        .head_timeout(Duration::from_secs(60))
        .max_requests(1)
        .max_waiting(0);
    // The one request slot is taken by a request the server never answers.
    let first = tokio::spawn({
        let client = client.clone();
        async move { call(&client, Request::get("/").body(String::new()).unwrap()).await }
    });
    assert!(eventually(|| server.seen.lock().unwrap().len() == 1).await);
    // No request may wait: the next is refused at once, though it could have waited a
    // minute.
    let request = Request::get("/").body(String::new()).unwrap();
    let answer = within("503", call(&client, request)).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(answer.body, "503 Service Unavailable\n");
    first.abort();
}

/// The raw application for the recycling tests: the first request of a connection is
/// answered (an echo), the second closes the connection after `close_after` bytes of its
/// body, as php-fpm does when it recycles a worker whose connection the client kept.
fn recycling_server(close_after: usize) -> raw::Server {
    raw::start(move |_, n, _| match n {
        0 => raw::Then::Answer(raw_echo),
        _ => raw::Then::CloseAfter(close_after),
    })
}

/// A warm-up request, so that the next one goes out on a kept-alive connection.
async fn warm_up(client: &Client) {
    let answer = call(client, Request::get("/").body(String::new()).unwrap()).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "GET cl=- len=0 body=")
    );
    assert_eq!(client.open_connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_unknown_length_is_sent_again_whole_when_a_kept_alive_connection_was_closed() {
    // Spooled (the default: php-fpm needs CONTENT_LENGTH), larger than the replay buffer
    // of a streamed body: the spool is sent again from its start.
    let data = pattern(200_000);
    for (spool_memory, close_after) in [(1 << 20, 0), (1 << 20, 100_000), (50_000, 100_000)] {
        let server = recycling_server(close_after);
        let client = Client::new(server.address.parse().unwrap())
            .options(ProgramOptions::new().spool_memory(spool_memory));
        warm_up(&client).await;
        let request = Request::put("/")
            .body(streamed(&data, 10_000, false))
            .unwrap();
        let answer = within("retry", call(&client, request)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let expected = format!("PUT cl=200000 len=200000 body={}", text(&data));
        assert!(
            answer.body == expected,
            "{}",
            &answer.body[..60.min(answer.body.len())]
        );
        // The second connection carried the request whole, once.
        let seen = server.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "{close_after}");
        assert_eq!((seen[2].0, seen[2].1), (1, 0));
        assert!(seen[2].2.stdin_complete && seen[2].2.stdin == data);
    }

    // Streamed without spooling (no CONTENT_LENGTH), within the replay buffer: sent again
    // from its first byte, whether the connection closed before or during the body.
    let data = pattern(30_000);
    for close_after in [0, 10_000] {
        let server = recycling_server(close_after);
        let client = Client::new(server.address.parse().unwrap())
            .options(ProgramOptions::new().spool(false));
        warm_up(&client).await;
        let request = Request::put("/")
            .body(streamed(&data, 5_000, false))
            .unwrap();
        let answer = within("retry", call(&client, request)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let expected = format!("PUT cl=- len=30000 body={}", text(&data));
        assert!(
            answer.body == expected,
            "{}",
            &answer.body[..60.min(answer.body.len())]
        );
        let seen = server.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3);
        assert!(seen[2].2.stdin_complete && seen[2].2.stdin == data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_that_cannot_be_sent_again_is_a_502_never_a_truncated_request() {
    // Past the replay buffer (64 KiB) when the kept-alive connection turns out closed: the
    // bytes sent are gone, so the answer is 502 and a log line, and nothing is sent again.
    let data = pattern(300_000);
    let server = recycling_server(100_000);
    let client =
        Client::new(server.address.parse().unwrap()).options(ProgramOptions::new().spool(false));
    warm_up(&client).await;
    let request = Request::put("/")
        .body(streamed(&data, 10_000, false))
        .unwrap();
    let answer = within("no retry", call(&client, request)).await;
    assert_eq!(answer.status, 502);
    assert_eq!(answer.body, "502 Bad Gateway\n");
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "sent again: {:?}", seen.len());
    assert!(!seen[1].2.stdin_complete);

    // A body that fails part way (the HTTP client went away) is the client's doing: 400,
    // and what was kept of it is never sent again as if it were the whole body.
    let server = recycling_server(10_000);
    let client =
        Client::new(server.address.parse().unwrap()).options(ProgramOptions::new().spool(false));
    warm_up(&client).await;
    let request = Request::put("/")
        .body(streamed(&data[..20_000], 5_000, true))
        .unwrap();
    let answer = within("failed body", call(&client, request)).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body, "400 Bad Request\n");
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|(_, _, req)| !req.stdin_complete || req.stdin.is_empty()),
        "a truncated body went out as whole: {:?}",
        seen.iter()
            .map(|(c, n, r)| (c, n, r.stdin.len(), r.stdin_complete))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_redirects_from_php_fpm_are_served_as_the_cgi_host_serves_them() {
    let fpm = PhpFpm::start(Listen::Tcp, 2, 0);
    let root = fpm.root();
    // One pool for every client below: php-fpm's two workers are not pinned by the idle
    // connections of several pools.
    let php = Client::new(fpm.address.parse().unwrap());
    let site = PhpFiles::new(&root, php.clone());

    // A POST that ends in a local redirect: the new path and query are served as a GET
    // without the body or its fields (RFC 3875 §6.2.2), routed again among the scripts.
    let request = Request::post("/local_redirect.php")
        .header("content-type", "text/plain")
        .header("content-length", "3")
        .header("x-custom", "kept")
        .body(String::from("abc"))
        .unwrap();
    let answer = call(&site, request).await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.body, fpm.log());
    assert_eq!(answer.headers["x-echo"], "yes");
    assert!(answer.headers.get("location").is_none());
    let expected = format!(
        "method=GET\nscript_name=/sub/index.php\nscript_filename={root}/sub/index.php\n\
         path_info=\nquery=q=1\ncontent_length=\nhttp_proxy=unset\nhttp_authorization=unset\n\
         document_root={root}\nheader x-custom: kept\nbody=",
        root = root.display()
    );
    assert_eq!(answer.body, expected);

    // HEAD stays HEAD, and gets no body.
    let request = Request::head("/local_redirect.php")
        .body(String::new())
        .unwrap();
    let answer = call(&site, request).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, ""));
    assert_eq!(answer.headers["x-echo"], "yes");

    // A redirect loop ends at the hop limit with 500, as in the CGI host.
    let looping = PhpFiles::new(
        &root,
        php.clone().options(ProgramOptions::new().max_redirects(3)),
    );
    let answer = call(
        &looping,
        Request::get("/loop.php").body(String::new()).unwrap(),
    )
    .await;
    assert_eq!(answer.status, 500);

    // Through a configured service instead.
    let elsewhere = tower::service_fn(|request: Request<String>| async move {
        Ok::<_, std::convert::Infallible>(http::Response::new(format!(
            "elsewhere {} {}",
            request.method(),
            request.uri()
        )))
    });
    let client = php
        .script_filename(root.join("local_redirect.php"))
        .options(ProgramOptions::new().local_redirect(elsewhere));
    let request = Request::post("/local_redirect.php")
        .body(String::from("abc"))
        .unwrap();
    let answer = call(&client, request).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "elsewhere GET /sub/?q=1")
    );
}

/// towergate's own FastCGI server (which multiplexes) on 127.0.0.1 with two routes:
/// `/endless` streams `e` forever (64 KiB chunks, made as they are read) and notifies
/// `dropped` once its body is dropped (the request cancelled), `/pattern` streams
/// [`pattern`]`(3_000_000)` in chunks of 50 000 bytes.
async fn streaming_server(
    dropped: std::sync::Arc<tokio::sync::Notify>,
) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    struct Guard(std::sync::Arc<tokio::sync::Notify>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.notify_one();
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let service = tower::service_fn(move |request: Request<towergate::fastcgi::RequestBody>| {
        let dropped = dropped.clone();
        async move {
            type Frames = std::pin::Pin<
                Box<
                    dyn futures_util::Stream<Item = Result<http_body::Frame<Bytes>, std::io::Error>>
                        + Send,
                >,
            >;
            let frames: Frames = match request.uri().path() {
                "/endless" => {
                    let guard = Guard(dropped);
                    let chunk = Bytes::from(vec![b'e'; 65536]);
                    Box::pin(futures_util::stream::repeat_with(move || {
                        let _ = &guard;
                        Ok(http_body::Frame::data(chunk.clone()))
                    }))
                }
                _ => {
                    let data = Bytes::from(pattern(3_000_000));
                    let chunks: Vec<_> = (0..data.len())
                        .step_by(50_000)
                        .map(|at| {
                            Ok(http_body::Frame::data(
                                data.slice(at..(at + 50_000).min(data.len())),
                            ))
                        })
                        .collect();
                    Box::pin(futures_util::stream::iter(chunks))
                }
            };
            let response = http::Response::builder()
                .header("content-type", "application/octet-stream")
                .body(http_body_util::StreamBody::new(frames))
                .unwrap();
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let server = tokio::spawn(towergate::fastcgi::serve(listener, service));
    (address, server)
}

/// A TCP proxy in front of `upstream` that notes the type and request id of every record
/// the client sends.
async fn recording_proxy(
    upstream: String,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<(u8, u16)>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let records = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let noted = records.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                return;
            };
            let (mut from_client, mut to_server) = (client.into_split(), server.into_split());
            let noted = noted.clone();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut to_server.0, &mut from_client.1).await;
            });
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = vec![0; 65536];
                loop {
                    let n = match from_client.0.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if to_server.1.write_all(&chunk[..n]).await.is_err() {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while buf.len() >= 8 {
                        let len = 8
                            + usize::from(u16::from_be_bytes([buf[4], buf[5]]))
                            + usize::from(buf[6]);
                        if buf.len() < len {
                            break;
                        }
                        noted
                            .lock()
                            .unwrap()
                            .push((buf[1], u16::from_be_bytes([buf[2], buf[3]])));
                        buf.drain(..len);
                    }
                }
                let _ = to_server.1.shutdown().await;
            });
        }
    });
    (address, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_one_response_on_a_multiplexed_connection_aborts_that_request_only() {
    use support::fcgi::{ABORT_REQUEST, BEGIN_REQUEST};
    let dropped = std::sync::Arc::new(tokio::sync::Notify::new());
    let (upstream, server) = streaming_server(dropped.clone()).await;
    let (address, records) = recording_proxy(upstream).await;
    // Never so long a wait that a stalled reader would be aborted here: only the drop does.
    let client = Client::new(address.parse().unwrap()).stdout_timeout(Duration::from_secs(600));

    // Both responses are read as they come, each by a task of its own.
    let endless = client
        .clone()
        .oneshot(Request::get("/endless").body(String::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(endless.status(), 200);
    let (started, mut reading) = tokio::sync::mpsc::channel(1);
    let endless = tokio::spawn(async move {
        let mut body = endless.into_body();
        while let Some(Ok(frame)) = body.frame().await {
            assert!(frame.into_data().unwrap().iter().all(|&b| b == b'e'));
            let _ = started.try_send(());
        }
        panic!("the endless body ended");
    });
    within("endless", reading.recv()).await;
    let other = client
        .clone()
        .oneshot(Request::get("/pattern").body(String::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(client.open_connections(), 1);
    assert!(client.requests_per_connection().unwrap() > 1);
    let other = tokio::spawn(other.into_body().collect());

    // The client of the first goes away mid-body: its request is aborted, the other one
    // goes on.
    endless.abort();
    within("the abort", dropped.notified()).await;
    let body = within("the other body", other)
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert!(body == pattern(3_000_000), "{} bytes", body.len());

    // On the wire: one ABORT_REQUEST, for the dropped request's id.
    let records = records.lock().unwrap().clone();
    let begins: Vec<u16> = records
        .iter()
        .filter(|(kind, _)| *kind == BEGIN_REQUEST)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(begins.len(), 2, "{records:?}");
    assert_ne!(begins[0], begins[1]);
    let aborts: Vec<u16> = records
        .iter()
        .filter(|(kind, _)| *kind == ABORT_REQUEST)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(aborts, [begins[0]]);
    // The connection serves on.
    let answer = call(
        &client,
        Request::get("/pattern").body(String::new()).unwrap(),
    )
    .await;
    assert_eq!(answer.body.len(), 3_000_000);
    assert_eq!(client.open_connections(), 1);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_holds_up_a_multiplexed_connection_no_longer_than_the_stdout_timeout() {
    let dropped = std::sync::Arc::new(tokio::sync::Notify::new());
    let (address, server) = streaming_server(dropped.clone()).await;
    let client = Client::new(address.parse().unwrap()).stdout_timeout(Duration::from_millis(300));

    // A response whose reader takes one piece, then stops reading (but keeps it).
    let endless = client
        .clone()
        .oneshot(Request::get("/endless").body(String::new()).unwrap())
        .await
        .unwrap();
    let mut endless = endless.into_body();
    within("endless", endless.frame()).await.unwrap().unwrap();

    // Another request on the same connection is answered whole.
    let answer = within(
        "a request behind a stalled one",
        call(
            &client,
            Request::get("/pattern").body(String::new()).unwrap(),
        ),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.body.as_bytes() == pattern(3_000_000),
        "{} bytes",
        answer.body.len()
    );
    assert_eq!(client.open_connections(), 1);

    // The stalled request was aborted: the server cancelled it, and its reader, when it
    // reads again, gets what was buffered and then an error, never a clean end.
    within("the abort", dropped.notified()).await;
    let mut read = 0;
    let error = loop {
        match within("the stalled body", endless.frame()).await {
            Some(Ok(frame)) => read += frame.into_data().map_or(0, |d| d.len()),
            Some(Err(error)) => break error,
            None => panic!("the aborted response ended cleanly after {read} bytes"),
        }
    };
    assert!(error.to_string().contains("aborted"), "{error}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_of_unknown_length_are_spooled_within_max_body_and_the_shared_spool_limit() {
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let (address, server) = own_server(release).await;
    let twenty = || {
        Request::post("/echo")
            .body(streamed(b"01234567890123456789", 10, false))
            .unwrap()
    };

    // Over max_body: 413 before anything is sent, and the body is read no further than
    // the limit (RFC 3875 §4.2 needs CONTENT_LENGTH, so such a body is spooled first).
    let polled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = polled.clone();
    let endless = futures_util::stream::repeat_with(move || {
        counter.fetch_add(10, std::sync::atomic::Ordering::Relaxed);
        Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from_static(b"0123456789")))
    });
    let client = Client::new(address.parse().unwrap())
        .options(ProgramOptions::new().max_body(100).spool_memory(16));
    let request = Request::post("/echo")
        .body(http_body_util::StreamBody::new(endless))
        .unwrap();
    let answer = within("413", call(&client, request)).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (413, "413 Payload Too Large\n")
    );
    assert_eq!(polled.load(std::sync::atomic::Ordering::Relaxed), 110);
    // Exactly at the limit: spooled and sent.
    let answer = call(
        &client,
        Request::post("/echo")
            .body(streamed(&[b'x'; 100], 10, false))
            .unwrap(),
    )
    .await;
    assert_eq!((answer.status, answer.body.len()), (200, 100));

    // spool_limit is one total for every spool of every service sharing the options (a
    // clone of the client, another client with the same options): while one request's 20 bytes are
    // spooled, another of 20 does not fit in 30 and gets 503 with Retry-After.
    let options = ProgramOptions::new().spool_limit(30).spool_memory(8);
    let first_client = Client::new(address.parse().unwrap()).options(options.clone());
    let second_client = Client::new(address.parse().unwrap()).options(options);
    let (consumed, mut consumed_rx) = tokio::sync::mpsc::channel::<()>(1);
    let (go, go_rx) = tokio::sync::oneshot::channel::<()>();
    let held = futures_util::stream::unfold((0, Some(go_rx)), move |(step, go)| {
        let consumed = consumed.clone();
        async move {
            match step {
                0 => Some((
                    Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from_static(
                        b"01234567890123456789",
                    ))),
                    (1, go),
                )),
                // The first 20 bytes are spooled: wait until told to end.
                _ => {
                    let _ = consumed.send(()).await;
                    if let Some(go) = go {
                        let _ = go.await;
                    }
                    None
                }
            }
        }
    });
    let first = {
        let client = first_client.clone();
        tokio::spawn(async move {
            call(
                &client,
                Request::post("/echo")
                    .body(http_body_util::StreamBody::new(held))
                    .unwrap(),
            )
            .await
        })
    };
    within("the first spool", consumed_rx.recv()).await;
    for client in [&first_client, &second_client] {
        let answer = within("503", call(client, twenty())).await;
        assert_eq!(answer.status, 503);
        assert_eq!(answer.headers["retry-after"], "1");
    }
    go.send(()).unwrap();
    let answer = within("the first request", first).await.unwrap();
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "01234567890123456789")
    );
    // Its bytes are given back once it is sent: the next spool fits.
    let response = within("after", second_client.clone().oneshot(twenty()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-length"], "20");
    // The body came with the head: the size hint counts it once.
    assert_eq!(
        http_body::Body::size_hint(response.body()).exact(),
        Some(20)
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "01234567890123456789");
    server.abort();
}

/// The raw application's answers for the whole-response tests, by `PATH_INFO`.
fn raw_lengths(req: &raw::Req) -> Vec<u8> {
    match req.param("PATH_INFO") {
        "/short" => b"Content-Type: text/plain\r\nContent-Length: 10\r\n\r\nhello".to_vec(),
        "/long" => b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhello".to_vec(),
        "/exact" => b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        _ => b"Content-Type: text/plain\r\n\r\nhello".to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_whole_behind_its_head_has_a_known_length_and_frees_its_connection() {
    let server = raw::start(|_, _, _| raw::Then::Answer(raw_lengths));
    let client = Client::new(server.address.parse().unwrap());
    for path in ["/plain", "/exact"] {
        let request = Request::get(path).body(String::new()).unwrap();
        let response = within(path, client.clone().oneshot(request)).await.unwrap();
        assert_eq!(response.status(), 200);
        // Whole already: its length is known before the body is read, and the connection
        // (one request at a time) takes the next request at once.
        assert_eq!(
            http_body::Body::size_hint(response.body()).exact(),
            Some(5),
            "{path}"
        );
        let next = within(
            "next",
            call(&client, Request::get("/next").body(String::new()).unwrap()),
        )
        .await;
        assert_eq!((next.status, next.body.as_str()), (200, "hello"));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "hello");
    }
    assert_eq!(client.open_connections(), 1);
    let seen = server.seen.lock().unwrap().clone();
    let places: Vec<(usize, usize)> = seen.iter().map(|(c, n, _)| (*c, *n)).collect();
    assert_eq!(places, [(0, 0), (0, 1), (0, 2), (0, 3)]);

    // A body that differs from its Content-Length still ends with an error, never passes
    // off as whole.
    for path in ["/short", "/long"] {
        let request = Request::get(path).body(String::new()).unwrap();
        let response = within(path, client.clone().oneshot(request)).await.unwrap();
        assert_eq!(response.status(), 200);
        let error = response
            .into_body()
            .collect()
            .await
            .unwrap_err()
            .to_string();
        let expected = match path {
            "/short" => "the FastCGI response is shorter than its Content-Length",
            _ => "the FastCGI response is longer than its Content-Length",
        };
        assert_eq!(error, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_closes_after_each_answer_never_cause_a_502() {
    // php-fpm with `pm.max_requests = 1`: every kept connection is closed by the server
    // after its answer; the next request goes out on a new one, answered.
    let server = raw::start(|_, _, _| raw::Then::AnswerThenClose(raw_lengths));
    let client = Client::new(server.address.parse().unwrap());
    for round in 0..10 {
        let answer = within(
            "answer",
            call(&client, Request::get("/").body(String::new()).unwrap()),
        )
        .await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "hello"),
            "{round}"
        );
    }
    let seen = server.seen.lock().unwrap().clone();
    // Each connection carried one request; none was lost or sent twice whole.
    assert!(seen.iter().all(|(_, n, _)| *n == 0), "{seen:?}");
    assert_eq!(seen.len(), 10);
    // Closed by the server, the connections are not kept.
    assert!(client.open_connections() <= 1);
}
