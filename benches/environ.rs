//! environ ⇄ request conversions with 20 headers: time and allocations per operation
//! (DESIGN.md target: under 2 µs each way).
//!
//! `cargo bench --bench environ`

use divan::{AllocProfiler, Bencher, black_box};
use http::Request;
use towergate::Environ;
use towergate::environ::EnvironBuilder;

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

#[path = "common/request.rs"]
mod request;

fn main() {
    divan::main();
}

/// A browser-like request with 20 headers.
fn request() -> Request<()> {
    request::browser_request("/app/users/42/profile?tab=settings&lang=en")
}

#[divan::bench]
fn request_to_environ(bencher: Bencher) {
    let request = request();
    let builder = EnvironBuilder::new().script_name("/app");
    bencher.bench_local(|| builder.build(black_box(&request)));
}

#[divan::bench]
fn environ_to_request(bencher: Bencher) {
    let environ = EnvironBuilder::new().script_name("/app").build(&request());
    bencher
        .with_inputs(|| environ.clone())
        .bench_local_values(|environ: Environ| environ.into_request());
}
