//! A CGI request with any environment and any standard input is answered with a CGI head,
//! or refused as "not CGI", never a panic or a hang.
#![no_main]

use std::convert::Infallible;

use libfuzzer_sys::fuzz_target;
use towergate::Environ;
use towergate::cgi::{Builder, RequestBody};

fuzz_target!(|data: &[u8]| {
    let (env, stdin) = match data.iter().position(|&b| b == 0xff) {
        Some(split) => (&data[..split], &data[split + 1..]),
        None => (data, &[][..]),
    };
    let environ = Environ::from_vars(env.split(|&b| b == 0).filter_map(|entry| {
        let eq = entry.iter().position(|&b| b == b'=')?;
        Some((entry[..eq].to_vec(), entry[eq + 1..].to_vec()))
    }));
    let service = tower_service_fn(|request: http::Request<RequestBody>| async move {
        Ok::<_, Infallible>(http::Response::new(request.into_body()))
    });
    let mut out = Vec::new();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let result = runtime.block_on(Builder::new().serve_with(
        service,
        environ,
        std::io::Cursor::new(stdin.to_vec()),
        &mut out,
    ));
    match result {
        Err(e) if e.is_not_cgi() => assert!(out.is_empty()),
        _ => assert!(out.starts_with(b"Status: "), "{:?}", String::from_utf8_lossy(&out)),
    }
});

/// `tower::service_fn` without the tower dependency.
fn tower_service_fn<F>(f: F) -> ServiceFn<F> {
    ServiceFn(f)
}

struct ServiceFn<F>(F);

impl<F, Fut, Req, Res> tower_service::Service<Req> for ServiceFn<F>
where
    F: FnMut(Req) -> Fut,
    Fut: std::future::Future<Output = Result<Res, Infallible>>,
{
    type Response = Res;
    type Error = Infallible;
    type Future = Fut;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Fut {
        (self.0)(request)
    }
}
