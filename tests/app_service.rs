//! `AppService` through a real hyper server on 127.0.0.1 and a real HTTP client
//! (hyper-util's legacy client): streaming, HEAD, errors before and after the head, client
//! disconnects, and blocking apps that do not stall other requests.

#[path = "support/gateway.rs"]
mod gateway_support;

use std::convert::Infallible;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use bytes::Bytes;
use gateway_support::{DropFlag, Tracked, channel_body, client, read_to_end, serve};
use http::{Method, Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use towergate::gateway::{AppBody, StartResponse, app_fn, blocking_app_fn};
use towergate::service::{AppService, ServiceApp};
use towergate::{BoxError, Environ};

const TEXT: [(&str, &str); 1] = [("Content-Type", "text/plain")];
const LIMIT: Duration = Duration::from_secs(20);

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("the test's time bound")
}

fn get(addr: std::net::SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}{path}"))
        .body(Full::default())
        .unwrap()
}

#[path = "../examples/common/gateway_app.rs"]
mod gateway_app;

#[tokio::test]
async fn hello_through_hyper_has_a_length() {
    bounded(async {
        let (addr, _server) = serve(AppService::new(gateway_app::app()).script_name("/gw")).await;
        let response = client().request(get(addr, "/gw/hello")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/plain");
        assert_eq!(response.headers()["content-length"], "13");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "Hello, world!");
    })
    .await;
}

#[tokio::test]
async fn environ_of_a_hyper_request_is_multithreaded() {
    bounded(async {
        let (addr, _server) = serve(AppService::new(gateway_app::app()).script_name("/gw")).await;
        let response = client()
            .request(get(addr, "/gw/environ?x=1"))
            .await
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        for line in [
            "SCRIPT_NAME=/gw\n",
            "PATH_INFO=/environ\n",
            "QUERY_STRING=x=1\n",
            "SERVER_PROTOCOL=HTTP/1.1\n",
            "wsgi.multithread=true\n",
            "wsgi.multiprocess=false\n",
            "wsgi.run_once=false\n",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
    })
    .await;
}

#[tokio::test]
async fn chunks_stream_as_the_app_produces_them() {
    bounded(async {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
        let app = app_fn(move |_environ, start_response: StartResponse| {
            let rx = rx.clone();
            async move {
                start_response.start("200 OK", TEXT)?;
                let (chunk_tx, body) = channel_body();
                let mut rx: tokio::sync::mpsc::Receiver<&'static str> =
                    rx.lock().await.take().ok_or("one request only")?;
                tokio::spawn(async move {
                    while let Some(chunk) = rx.recv().await {
                        if chunk_tx
                            .send(Ok(Frame::data(Bytes::from(chunk))))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
                Ok::<_, BoxError>(AppBody::new(body))
            }
        });
        let (addr, _server) = serve(AppService::new(app)).await;
        tx.send("first").await.unwrap();
        let response = client().request(get(addr, "/")).await.unwrap();
        assert!(response.headers().get("content-length").is_none());
        let mut body = response.into_body();
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "first");
        // The second chunk does not exist yet: the first arrived on its own.
        tx.send("second").await.unwrap();
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "second");
        drop(tx);
        assert!(body.frame().await.is_none());
    })
    .await;
}

#[tokio::test]
async fn head_gets_the_length_and_no_body() {
    bounded(async {
        let (addr, _server) = serve(AppService::new(gateway_app::app())).await;
        let request = Request::builder()
            .method(Method::HEAD)
            .uri(format!("http://{addr}/hello"))
            .body(Full::default())
            .unwrap();
        let response = client().request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-length"], "13");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "");
    })
    .await;
}

#[tokio::test]
async fn error_before_the_head_is_the_error_response() {
    bounded(async {
        let (addr, _server) = serve(AppService::new(gateway_app::app())).await;
        for path in ["/error-before-output", "/panic", "/hop", "/no-start"] {
            let response = client().request(get(addr, path)).await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{path}"
            );
            assert_eq!(response.headers()["content-length"], "59");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(
                body,
                "A server error occurred.  Please contact the administrator."
            );
        }
    })
    .await;
}

#[tokio::test]
async fn error_after_the_head_truncates_the_response() {
    bounded(async {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
        let app = app_fn(move |_environ, start_response: StartResponse| {
            let rx = rx.clone();
            async move {
                start_response.start("200 OK", TEXT)?;
                let rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BoxError>> =
                    rx.lock().await.take().ok_or("one request only")?;
                let body = http_body_util::StreamBody::new(
                    gateway_support::tokio_stream_shim::ReceiverStream(rx),
                );
                Ok::<_, BoxError>(AppBody::new(body))
            }
        });
        let (addr, _server) = serve(AppService::new(app)).await;
        tx.send(Ok(Frame::data(Bytes::from("partial"))))
            .await
            .unwrap();
        let response = client().request(get(addr, "/")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "partial");
        tx.send(Err("error after output".into())).await.unwrap();
        // The chunked response never ends properly: the client sees the failure.
        let rest = body.collect().await;
        assert!(rest.is_err(), "{rest:?}");
    })
    .await;
}

#[tokio::test]
async fn replaced_head_is_sent() {
    bounded(async {
        let (addr, _server) = serve(AppService::new(gateway_app::app())).await;
        let response = client().request(get(addr, "/replace")).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "Service Unavailable");
    })
    .await;
}

#[tokio::test]
async fn client_disconnect_drops_the_app_body() {
    bounded(async {
        let flag = DropFlag::default();
        let flag2 = flag.clone();
        let app = app_fn(move |_environ, start_response: StartResponse| {
            let flag = flag2.clone();
            async move {
                start_response.start("200 OK", TEXT)?;
                // One chunk, then nothing ever again: only a disconnect ends it.
                let (tx, body) = channel_body();
                tx.send(Ok(Frame::data(Bytes::from("tick")))).await.ok();
                tokio::spawn(async move {
                    tx.closed().await;
                });
                Ok::<_, BoxError>(AppBody::new(Tracked::new(body, flag)))
            }
        });
        let (addr, _server) = serve(AppService::new(app)).await;
        let response = client().request(get(addr, "/")).await.unwrap();
        let mut body = response.into_body();
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "tick");
        assert!(!flag.is_set());
        drop(body);
        assert!(flag.wait().await, "the app body was not dropped");
    })
    .await;
}

#[tokio::test]
async fn blocking_app_does_not_stall_other_requests() {
    bounded(async {
        let barrier = Arc::new(Barrier::new(2));
        let app_barrier = barrier.clone();
        let app = blocking_app_fn(move |environ: Environ, start_response: StartResponse| {
            if environ.get("PATH_INFO") == Some(b"/wait") {
                app_barrier.wait();
            }
            start_response.start("200 OK", TEXT)?;
            Ok::<_, BoxError>(vec![Ok::<_, BoxError>(Bytes::from("done"))])
        });
        let (addr, _server) = serve(AppService::new(app)).await;
        let waiting = tokio::spawn(client().request(get(addr, "/wait")));
        // This one completes while the first app blocks its thread on the barrier.
        let response = client().request(get(addr, "/fast")).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "done");
        assert!(!waiting.is_finished());
        let release = tokio::task::spawn_blocking(move || barrier.wait());
        let response = waiting.await.unwrap().unwrap();
        assert_eq!(response.headers()["content-length"], "4");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "done");
        release.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_client_that_stops_reading_frees_a_blocking_apps_thread_after_the_send_timeout() {
    bounded(async {
        /// An endless iterator of 64 KiB chunks that reports its drop (its close).
        struct Endless(std::sync::mpsc::Sender<String>);
        impl Iterator for Endless {
            type Item = Result<Bytes, BoxError>;
            fn next(&mut self) -> Option<Self::Item> {
                Some(Ok(Bytes::from(vec![b'x'; 65536])))
            }
        }
        impl Drop for Endless {
            fn drop(&mut self) {
                let _ = self.0.send("iterator dropped".to_owned());
            }
        }
        let (events, seen) = std::sync::mpsc::channel::<String>();
        let seen = Arc::new(std::sync::Mutex::new(seen));
        let next_event = move || {
            let seen = seen.clone();
            tokio::task::spawn_blocking(move || {
                seen.lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap()
            })
        };
        let app = blocking_app_fn(move |environ: Environ, start_response: StartResponse| {
            let events = events.clone();
            let write = start_response.start("200 OK", TEXT)?;
            if environ.get("PATH_INFO") == Some(b"/write") {
                // Everything through write(), until a write fails.
                loop {
                    if let Err(e) = write.write(vec![b'x'; 65536]) {
                        let _ = events.send(e.to_string());
                        return Err(e);
                    }
                }
            }
            Ok::<_, BoxError>(Endless(events))
        })
        .send_timeout(Duration::from_millis(300));
        assert_eq!(app.get_send_timeout(), Duration::from_millis(300));
        let (addr, _server) = serve(AppService::new(app)).await;

        for (path, event) in [
            ("/iter", "iterator dropped"),
            ("/write", "write(): the client took no output for 300ms"),
        ] {
            let response = client().request(get(addr, path)).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let mut body = response.into_body();
            assert!(body.frame().await.unwrap().unwrap().is_data());
            // The client reads no more: once the buffers are full, the app's thread waits
            // 300 ms, then gives up: the iterator is dropped, or write() fails.
            assert_eq!(next_event().await.unwrap(), event, "{path}");
            // The response was cut: reading it now ends in an error, not a clean end.
            assert!(
                read_to_end(&mut body).await.is_err(),
                "{path}: the stalled response ended as if complete"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_read_of_a_body_the_client_stopped_sending_ends_when_the_response_is_over() {
    use tower::{Service, ServiceBuilder, ServiceExt};
    bounded(async {
        let (events, seen) = std::sync::mpsc::channel::<String>();
        let app = blocking_app_fn(move |environ: Environ, start_response: StartResponse| {
            // Blocks on the body: its client sent one chunk, then nothing.
            let read = environ.input().blocking_read_to_end();
            let _ = events.send(match &read {
                Ok(body) => format!("read {} bytes", body.len()),
                Err(e) => e.to_string(),
            });
            start_response.start("200 OK", TEXT)?;
            Ok::<_, BoxError>(vec![read])
        });
        // tower's timeout drops the response future: the response is over.
        let mut service = ServiceBuilder::new()
            .timeout(Duration::from_millis(300))
            .service(AppService::new(app));
        let (tx, body) = channel_body();
        tx.send(Ok(Frame::data(Bytes::from("the first part"))))
            .await
            .unwrap();
        let request = Request::post("/upload").body(body).unwrap();
        let answer = ServiceExt::<Request<gateway_support::ChannelBody>>::ready(&mut service)
            .await
            .unwrap()
            .call(request)
            .await;
        assert_eq!(answer.unwrap_err().to_string(), "request timed out");
        // The app's thread is not left waiting on the body (the client still holds it open).
        let event = tokio::task::spawn_blocking(move || seen.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap()
            .expect("the app's read of the body is still waiting");
        assert_eq!(
            event,
            "the response is over: the request body can no longer be read"
        );
        // The client's side of the body lived to here: nothing but the closing ended the read.
        drop(tx);
    })
    .await;
}

#[tokio::test]
async fn post_body_is_the_apps_input() {
    bounded(async {
        let app = blocking_app_fn(|environ: Environ, start_response: StartResponse| {
            start_response.start("200 OK", TEXT)?;
            let body = environ.input().blocking_read_to_end()?;
            Ok::<_, BoxError>(vec![Ok::<_, BoxError>(body)])
        });
        let (addr, _server) = serve(AppService::new(app)).await;
        let request = Request::post(format!("http://{addr}/"))
            .body(Full::new(Bytes::from("posted body")))
            .unwrap();
        let response = client().request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "posted body");
    })
    .await;
}

#[tokio::test]
async fn service_app_round_trips_a_tower_service() {
    bounded(async {
        let inner = tower::service_fn(|request: Request<towergate::environ::Input>| async move {
            let method = request.method().clone();
            let uri = request.uri().clone();
            let body = request.into_body().collect().await?.to_bytes();
            let text = format!("{method} {uri} {}", String::from_utf8_lossy(&body));
            Ok::<_, BoxError>(
                http::Response::builder()
                    .header("content-type", "text/plain")
                    .header("x-from", "service")
                    .body(Full::new(Bytes::from(text)))
                    .unwrap(),
            )
        });
        let service = AppService::new(ServiceApp::new(inner)).script_name("/mount");
        let (addr, _server) = serve(service).await;
        let request = Request::post(format!("http://{addr}/mount/echo?q=1"))
            .body(Full::new(Bytes::from("payload")))
            .unwrap();
        let response = client().request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-from"], "service");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "POST /echo?q=1 payload");
    })
    .await;
}

#[allow(dead_code)]
fn _infallible(_: Infallible) {}
