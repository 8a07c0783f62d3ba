//! The per-request overhead of the gateway side: a hello app through `AppService` next to
//! the same answer from a native `tower::service_fn`, and the handler engine alone
//! (`SimpleHandler` running the hello app into a `Vec`). Time and allocations per request
//! (DESIGN.md target: a gateway app in hyper at ≥ 0.95× the native requests/s).
//!
//! `cargo bench --bench gateway`

use std::convert::Infallible;

use bytes::Bytes;
use divan::{AllocProfiler, Bencher, black_box};
use http::{Request, Response, header};
use http_body_util::{BodyExt, Empty, Full};
use tower::ServiceExt;
use towergate::gateway::{App, AppBody, StartResponse, app_fn};
use towergate::handler::SimpleHandler;
use towergate::service::AppService;
use towergate::{BoxError, Environ};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

/// The hello app of `examples/bench_gateway.rs`.
fn hello() -> impl App<Body = AppBody> + Clone {
    app_fn(|_: Environ, start_response: StartResponse| async move {
        start_response.start("200 OK", [("Content-Type", "text/plain")])?;
        Ok::<_, BoxError>(AppBody::from(Bytes::from_static(b"Hello, world!")))
    })
}

/// A GET as hyper hands it over: a few headers, an empty body.
fn request() -> Request<Empty<Bytes>> {
    Request::get("/")
        .header("host", "127.0.0.1:8000")
        .header("user-agent", "wrk")
        .header("accept", "*/*")
        .body(Empty::new())
        .expect("valid request")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

/// The floor: a native `service_fn` answering hello, oneshot, body collected.
#[divan::bench]
fn native_service_fn(bencher: Bencher) {
    let runtime = runtime();
    let service = tower::service_fn(|_: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Full::new(Bytes::from_static(b"Hello, world!")))
                .unwrap_or_default(),
        )
    });
    bencher.with_inputs(request).bench_local_values(|request| {
        runtime.block_on(async {
            // A copy of the service, as hyper-util's glue clones it per request.
            let response = service.oneshot(request).await.expect("infallible");
            let body = response.into_body().collect().await.expect("body");
            black_box(body.to_bytes())
        })
    });
}

/// The hello app through `AppService`, oneshot, body collected.
#[divan::bench]
fn app_service(bencher: Bencher) {
    let runtime = runtime();
    let service = AppService::new(hello());
    bencher.with_inputs(request).bench_local_values(|request| {
        runtime.block_on(async {
            let response = service.clone().oneshot(request).await.expect("infallible");
            let body = response.into_body().collect().await.expect("body");
            black_box(body.to_bytes())
        })
    });
}

/// The handler engine alone: `SimpleHandler` running the hello app into a `Vec` (the
/// environ is built outside the measurement).
#[divan::bench]
fn simple_handler(bencher: Bencher) {
    let runtime = runtime();
    let app = hello();
    let environ = Environ::from_vars([("REQUEST_METHOD", "GET"), ("SERVER_PROTOCOL", "HTTP/1.1")]);
    bencher
        .with_inputs(|| environ.clone())
        .bench_local_values(|environ| {
            runtime.block_on(async {
                let mut handler = SimpleHandler::new(Vec::with_capacity(256), environ);
                handler.run(&app).await.expect("run");
                black_box(handler.into_transport())
            })
        });
}

/// The environ `AppService` builds for the request above (part of `app_service`).
#[divan::bench]
fn environ_of_request(bencher: Bencher) {
    let builder = towergate::environ::EnvironBuilder::new();
    let request = request();
    bencher.bench_local(|| builder.build(black_box(&request)));
}

/// The hello app's `start_response` call alone (part of `app_service`).
#[divan::bench]
fn start_response(bencher: Bencher) {
    bencher.bench_local(|| {
        let start_response = StartResponse::detached();
        black_box(start_response.start("200 OK", [("Content-Type", "text/plain")])).is_ok()
    });
}
