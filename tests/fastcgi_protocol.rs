//! The FastCGI application side at the protocol level, against a hand-written peer:
//! multiplexing, ABORT_REQUEST, FCGI_KEEP_CONN, GET_VALUES, unknown types, roles, limits, and
//! hostile input (truncated records, lying lengths, bogus ids).
#![cfg(all(unix, feature = "fastcgi"))]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use support::fcgi::*;
use tokio::sync::{Notify, oneshot};
use towergate::BoxError;
use towergate::ext::RequestExt;
use towergate::fastcgi::{Builder, RequestBody, Role};

type Body = BoxBody<Bytes, BoxError>;

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).map_err(|e| match e {}).boxed()
}

/// What the test service shares with the test: a gate the `/slow` route waits for.
#[derive(Clone, Default)]
struct Gate(Arc<Notify>);

async fn route(gate: Gate, request: Request<RequestBody>) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    Ok(match path.as_str() {
        "/fast" => Response::new(full("fast")),
        "/slow" => {
            gate.0.notified().await;
            Response::new(full("slow"))
        }
        "/echo" => Response::new(request.into_body().map_err(BoxError::from).boxed()),
        "/length" => {
            let body = request.into_body().collect().await;
            match body {
                Ok(body) => Response::new(full(body.to_bytes().len().to_string())),
                Err(e) => Response::new(full(format!("error: {e}"))),
            }
        }
        "/env" => {
            let environ = request.environ().expect("the environ");
            let role = request.extensions().get::<Role>().copied();
            let text = format!(
                "{:?} {} {} {} {:?}",
                role,
                environ.get_str("HTTP_X_TEST").unwrap_or("-"),
                environ.multithread(),
                environ.run_once(),
                request.headers().get("x-test"),
            );
            Response::new(full(text))
        }
        "/forever" => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        "/big" => {
            // 256 MiB, made as it is read: more than any socket buffer holds.
            let chunk = Bytes::from(vec![b'b'; 1 << 20]);
            let frames = futures_util::stream::iter(
                (0..256).map(move |_| Ok::<_, BoxError>(http_body::Frame::data(chunk.clone()))),
            );
            Response::new(http_body_util::StreamBody::new(frames).boxed())
        }
        "/panic" => panic!("on purpose"),
        _ => Response::builder()
            .status(404)
            .body(full("not found"))
            .unwrap(),
    })
}

struct Server {
    addr: SocketAddr,
    gate: Gate,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(builder: Builder) -> Server {
        let gate = Gate::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let service_gate = gate.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let service = tower::service_fn(move |r| route(service_gate.clone(), r));
                let shutdown = async {
                    let _ = stopped.await;
                };
                builder
                    .grace(Duration::from_secs(5))
                    .serve_with_shutdown(listener, service, shutdown)
                    .await
                    .unwrap();
            });
        });
        Server {
            addr,
            gate,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn peer(&self) -> Peer {
        Peer::connect(self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn get_request(id: u16, keep_conn: bool, path: &str) -> Vec<u8> {
    request(id, keep_conn, &borrowed(&get(path)), b"")
}

fn post_request(id: u16, path: &str, extra: &[(&'static str, String)], body: &[u8]) -> Vec<u8> {
    let mut params = get(path);
    params[0].1 = "POST".into();
    params.extend_from_slice(extra);
    request(id, true, &borrowed(&params), body)
}

#[test]
fn a_get_is_answered_with_a_cgi_head_and_end_request() {
    let server = Server::start(Builder::new());
    let mut peer = server.peer();
    peer.send(&get_request(1, true, "/fast"));
    let answer = peer.answer(1);
    assert_eq!(
        answer.text(),
        "Status: 200 OK\r\nContent-Length: 4\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfast"
    );
    assert_eq!((answer.app_status, answer.protocol_status), (0, 0));
    // FCGI_KEEP_CONN: the connection serves another request.
    peer.send(&get_request(1, true, "/nowhere"));
    let answer = peer.answer(1);
    assert!(
        answer.text().starts_with("Status: 404 Not Found\r\n"),
        "{}",
        answer.text()
    );
}

#[test]
fn without_keep_conn_the_connection_closes_after_the_request() {
    let server = Server::start(Builder::new());
    let mut peer = server.peer();
    peer.send(&get_request(1, false, "/fast"));
    assert!(peer.answer(1).text().ends_with("\r\n\r\nfast"));
    assert!(peer.is_closed());
}

#[test]
fn a_slow_request_does_not_hold_up_a_fast_one_on_the_same_connection() {
    let server = Server::start(Builder::new());
    let mut peer = server.peer();
    peer.send(&get_request(1, true, "/slow"));
    peer.send(&get_request(2, true, "/fast"));
    // The slow one cannot finish before the gate opens, which happens after the fast
    // one's whole answer has arrived.
    assert!(peer.answer(2).text().ends_with("fast"));
    server.gate.0.notify_one();
    assert!(peer.answer(1).text().ends_with("slow"));
}

#[test]
fn bodies_of_multiplexed_requests_stream_back_interleaved() {
    let server = Server::start(Builder::new());
    let mut peer = server.peer();
    let a = vec![b'a'; 300_000];
    let b = vec![b'b'; 200_000];
    let len = |n: usize| vec![("CONTENT_LENGTH", n.to_string())];
    let first = post_request(1, "/echo", &len(a.len()), &a);
    let second = post_request(2, "/echo", &len(b.len()), &b);
    // Interleave the two requests' records on the wire.
    let mut wire = Vec::new();
    let (mut x, mut y) = (&first[..], &second[..]);
    while !x.is_empty() || !y.is_empty() {
        for part in [&mut x, &mut y] {
            if part.len() >= 8 {
                let len = 8 + u16::from_be_bytes([part[4], part[5]]) as usize + part[6] as usize;
                wire.extend_from_slice(&part[..len]);
                *part = &part[len..];
            }
        }
    }
    let writer = {
        let mut stream = peer.stream.try_clone().unwrap();
        std::thread::spawn(move || std::io::Write::write_all(&mut stream, &wire).unwrap())
    };
    let one = peer.answer(1);
    let two = peer.answer(2);
    writer.join().unwrap();
    let body = |answer: &Answer| {
        let text = answer.stdout.clone();
        let at = text.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        text[at + 4..].to_vec()
    };
    assert_eq!(body(&one), a);
    assert_eq!(body(&two), b);
    assert!(one.text().contains("Content-Length: 300000\r\n"));
}

#[test]
fn a_body_without_content_length_is_stdin_to_its_end_and_an_empty_one_is_none() {
    let server = Server::start(Builder::new());
    let mut peer = server.peer();
    // Apache mod_proxy_fcgi streams a chunked body with no CONTENT_LENGTH.
    let mut params = get("/length");
    params[0].1 = "POST".into();
    peer.send(&request(1, true, &borrowed(&params), &[b'z'; 70_000]));
    assert!(peer.answer(1).text().ends_with("\r\n\r\n70000"));
    // nginx sends an empty CONTENT_LENGTH on GET, and an empty STDIN.
    params.push(("CONTENT_LENGTH", String::new()));
    peer.send(&request(2, true, &borrowed(&params), b""));
    assert!(peer.answer(2).text().ends_with("\r\n\r\n0"));
    // Bytes past CONTENT_LENGTH are not part of the body.
    params.last_mut().unwrap().1 = "3".into();
    peer.send(&request(3, true, &borrowed(&params), b"abcdef"));
    assert!(peer.answer(3).text().ends_with("\r\n\r\n3"));
}

#[test]
fn a_body_shorter_than_content_length_is_a_400() {
    let server = Server::start(Builder::new());
    let mut peer = server.peer();
    let answer = {
        peer.send(&post_request(
            1,
            "/length",
            &[("CONTENT_LENGTH", "10".into())],
            b"abc",
        ));
        peer.answer(1)
    };
    assert!(
        answer.text().starts_with("Status: 400 Bad Request\r\n"),
        "{}",
        answer.text()
    );
}

#[test]
fn abort_request_cancels_the_request_and_ends_it() {
    let server = Server::start(Builder::new());
    let mut peer = server.peer();
    peer.send(&get_request(1, true, "/forever"));
    peer.send(&record(ABORT_REQUEST, 1, b""));
    let answer = peer.answer(1);
    assert_eq!(answer.protocol_status, 0);
    assert!(answer.stdout.is_empty());
    // The id is free again and the connection goes on.
    peer.send(&get_request(1, true, "/fast"));
    assert!(peer.answer(1).text().ends_with("fast"));
}

#[test]
fn get_values_is_answered_truthfully_and_unknown_names_are_left_out() {
    let server = Server::start(Builder::new().max_connections(7).max_requests(3));
    let mut peer = server.peer();
    let ask = pairs(&[
        ("FCGI_MAX_CONNS", ""),
        ("FCGI_MAX_REQS", ""),
        ("FCGI_MPXS_CONNS", ""),
        ("SOMETHING_ELSE", ""),
    ]);
    peer.send(&record(GET_VALUES, 0, &ask));
    let reply = peer.read_record().unwrap();
    assert_eq!((reply.kind, reply.id), (GET_VALUES_RESULT, 0));
    assert_eq!(
        decode_pairs(&reply.content),
        [
            ("FCGI_MAX_CONNS".to_owned(), "7".to_owned()),
            ("FCGI_MAX_REQS".to_owned(), "21".to_owned()),
            ("FCGI_MPXS_CONNS".to_owned(), "1".to_owned()),
        ]
    );
}

#[test]
fn an_unknown_management_record_gets_unknown_type() {
    let server = Server::start(Builder::new());
    let mut peer = server.peer();
    peer.send(&record(42, 0, b"whatever"));
    let reply = peer.read_record().unwrap();
    assert_eq!(
        reply,
        Record {
            kind: UNKNOWN_TYPE,
            id: 0,
            content: vec![42, 0, 0, 0, 0, 0, 0, 0],
        }
    );
}

#[test]
fn the_filter_role_is_refused_and_the_authorizer_role_is_played() {
    let server = Server::start(Builder::new());
    let mut peer = server.peer();
    peer.send(&begin(1, FILTER, true));
    let answer = peer.answer(1);
    assert_eq!(answer.protocol_status, 3, "FCGI_UNKNOWN_ROLE");
    assert!(answer.stdout.is_empty());

    let mut wire = begin(2, AUTHORIZER, true);
    let mut params = get("/env");
    params.push(("HTTP_X_TEST", "yes".into()));
    wire.extend(stream(PARAMS, 2, &pairs(&borrowed(&params))));
    peer.send(&wire);
    assert!(
        peer.answer(2)
            .text()
            .ends_with("\r\n\r\nSome(Authorizer) yes true false Some(\"yes\")"),
    );
}

#[test]
fn requests_over_the_per_connection_limit_are_refused() {
    let server = Server::start(Builder::new().max_requests(1));
    let mut peer = server.peer();
    peer.send(&get_request(1, true, "/slow"));
    peer.send(&get_request(2, true, "/fast"));
    let refused = peer.answer(2);
    assert_eq!(refused.protocol_status, 1, "FCGI_CANT_MPX_CONN");
    server.gate.0.notify_one();
    assert!(peer.answer(1).text().ends_with("slow"));
}

#[test]
fn params_over_the_limit_are_a_431() {
    let server = Server::start(Builder::new().max_params(1000));
    let mut peer = server.peer();
    let mut params = get("/fast");
    params.push(("HTTP_COOKIE", "c".repeat(2000)));
    peer.send(&request(1, true, &borrowed(&params), b""));
    let answer = peer.answer(1);
    assert!(
        answer
            .text()
            .starts_with("Status: 431 Request Header Fields Too Large\r\n"),
        "{}",
        answer.text()
    );
}

#[test]
fn a_panicking_service_gets_a_500_and_the_connection_goes_on() {
    let server = Server::start(Builder::new());
    let mut peer = server.peer();
    peer.send(&get_request(1, true, "/panic"));
    assert!(
        peer.answer(1)
            .text()
            .starts_with("Status: 500 Internal Server Error\r\n")
    );
    peer.send(&get_request(1, true, "/fast"));
    assert!(peer.answer(1).text().ends_with("fast"));
}

#[test]
fn records_for_bogus_ids_are_ignored() {
    let server = Server::start(Builder::new());
    let mut peer = server.peer();
    peer.send(&record(STDIN, 9, b"nobody asked"));
    peer.send(&record(PARAMS, 8, &pairs(&[("A", "b")])));
    peer.send(&record(ABORT_REQUEST, 7, b""));
    peer.send(&record(STDOUT, 6, b"wrong way"));
    // BEGIN_REQUEST twice for one id: the second is ignored.
    peer.send(&begin(1, RESPONDER, true));
    peer.send(&begin(1, RESPONDER, true));
    let mut rest = stream(PARAMS, 1, &pairs(&borrowed(&get("/fast"))));
    rest.extend(stream(STDIN, 1, b""));
    peer.send(&rest);
    assert!(peer.answer(1).text().ends_with("fast"));
}

#[test]
fn a_bad_version_or_a_lying_begin_request_closes_the_connection() {
    let server = Server::start(Builder::new());
    let mut peer = server.peer();
    peer.send(&[2, 1, 0, 1, 0, 0, 0, 0]);
    assert!(peer.is_closed());

    let mut peer = server.peer();
    peer.send(&record(BEGIN_REQUEST, 1, &[0, 1, 0]));
    assert!(peer.is_closed());
}

#[test]
fn pairs_whose_lengths_lie_are_a_400() {
    let server = Server::start(Builder::new());
    let mut peer = server.peer();
    let mut wire = begin(1, RESPONDER, true);
    // A name of 100 bytes announced, 3 sent.
    wire.extend(stream(PARAMS, 1, &[100, 0, b'A', b'B', b'C']));
    peer.send(&wire);
    assert!(
        peer.answer(1)
            .text()
            .starts_with("Status: 400 Bad Request\r\n")
    );
}

#[test]
fn a_truncated_record_ends_the_connection_and_the_server_goes_on() {
    let server = Server::start(Builder::new());
    {
        let mut peer = server.peer();
        peer.send(&begin(1, RESPONDER, true));
        // A PARAMS record announcing 1000 bytes, cut after 10.
        let record = record(PARAMS, 1, &[b'x'; 1000]);
        peer.send(&record[..18]);
        peer.stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(peer.is_closed());
    }
    let mut peer = server.peer();
    peer.send(&get_request(1, true, "/fast"));
    assert!(peer.answer(1).text().ends_with("fast"));
}

#[test]
fn a_request_that_does_not_read_its_body_is_ended_after_the_stdin_timeout() {
    let server = Server::start(
        Builder::new()
            .request_buffer(1)
            .stdin_timeout(Duration::from_millis(200)),
    );
    let mut peer = server.peer();
    // /forever never reads: its buffer (one record) fills, then the timeout ends it.
    let big = vec![b'q'; 65535 * 4];
    let wire = post_request(
        1,
        "/forever",
        &[("CONTENT_LENGTH", big.len().to_string())],
        &big,
    );
    peer.send(&wire);
    let answer = peer.answer(1);
    assert_eq!(answer.app_status, 1);
    // The connection reads again: another request is served.
    peer.send(&get_request(2, true, "/fast"));
    assert!(peer.answer(2).text().ends_with("fast"));
}

#[test]
fn shutdown_lets_an_in_flight_request_finish() {
    let server = Server::start(Builder::new());
    let mut peer = server.peer();
    peer.send(&get_request(1, true, "/slow"));
    // Make sure the request is in flight before the shutdown.
    peer.send(&get_request(2, true, "/fast"));
    assert!(peer.answer(2).text().ends_with("fast"));
    let gate = server.gate.clone();
    let stopper = std::thread::spawn(move || drop(server));
    gate.0.notify_one();
    assert!(peer.answer(1).text().ends_with("slow"));
    assert!(peer.is_closed());
    stopper.join().unwrap();
}

#[test]
fn a_web_server_that_stops_reading_gets_its_connection_closed_after_the_write_timeout() {
    let server = Server::start(Builder::new().write_timeout(Duration::from_millis(100)));
    let mut peer = server.peer();
    peer.send(&get_request(1, true, "/big"));
    // Read nothing for twenty times the timeout, then everything there is: the
    // connection ends without the END_REQUEST of the 256 MiB response.
    std::thread::sleep(Duration::from_secs(2));
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut peer.stream, &mut got).unwrap();
    assert!(got.len() < 256 << 20, "{} bytes", got.len());
    // The server goes on.
    let mut peer = server.peer();
    peer.send(&get_request(1, true, "/fast"));
    assert!(peer.answer(1).text().ends_with("fast"));
}

#[test]
fn connections_over_the_limit_wait_until_one_closes() {
    let server = Server::start(Builder::new().max_connections(1).max_requests(1));
    let mut first = server.peer();
    first.send(&get_request(1, true, "/fast"));
    assert!(first.answer(1).text().ends_with("fast"));
    // The first connection stays open: the second is accepted by the kernel only.
    let mut second = server.peer();
    second.send(&get_request(1, true, "/fast"));
    second
        .stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = std::io::Read::read(&mut second.stream, &mut byte);
    assert!(early.is_err(), "answered while over the limit: {early:?}");
    second
        .stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // And it says so: one connection, one request, no multiplexing.
    first.send(&record(
        GET_VALUES,
        0,
        &pairs(&[("FCGI_MAX_CONNS", ""), ("FCGI_MPXS_CONNS", "")]),
    ));
    let reply = first.read_record().unwrap();
    assert_eq!(
        decode_pairs(&reply.content),
        [
            ("FCGI_MAX_CONNS".to_owned(), "1".to_owned()),
            ("FCGI_MPXS_CONNS".to_owned(), "0".to_owned()),
        ]
    );
    drop(first);
    assert!(second.answer(1).text().ends_with("fast"));
}

#[test]
fn an_id_is_free_once_its_end_request_is_out_even_when_an_abort_crossed_it() {
    // A web server may send ABORT_REQUEST while the END_REQUEST of the same request is on
    // its way, then reuse the id as soon as that END_REQUEST arrives (FastCGI §3.3). The
    // abort must not produce a second END_REQUEST, which would end the next request with
    // that id; and with one request per connection, the next request must not be refused
    // as if the first were still in flight.
    for builder in [Builder::new(), Builder::new().max_requests(1)] {
        let server = Server::start(builder);
        let mut peer = server.peer();
        for round in 0..100 {
            let mut wire = get_request(1, true, "/fast");
            // Records for requests that do not exist: the application spends a moment on
            // them, while request 1 runs and ends.
            for bogus in 0..50 {
                wire.extend(record(STDIN, 1000 + bogus, b""));
            }
            wire.extend(record(ABORT_REQUEST, 1, b""));
            peer.send(&wire);
            let first = peer.answer(1);
            assert!(
                first.stdout.is_empty() || first.text().ends_with("\r\n\r\nfast"),
                "round {round}: {}",
                first.text()
            );
            // The id is reused at once, and another id right after it.
            peer.send(&get_request(1, true, "/fast"));
            let again = peer.answer(1);
            assert_eq!(
                (again.app_status, again.protocol_status),
                (0, 0),
                "round {round}"
            );
            assert!(
                again.text().ends_with("\r\n\r\nfast"),
                "round {round}: {}",
                again.text()
            );
            peer.send(&get_request(2, true, "/fast"));
            let other = peer.answer(2);
            assert_eq!(other.protocol_status, 0, "round {round}: refused");
            assert!(other.text().ends_with("\r\n\r\nfast"), "round {round}");
        }
    }
}
