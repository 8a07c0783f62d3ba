//! The cgi-bin directory service (`towergate::host::CgiBin`): dispatch, traversal refusals,
//! NPH names, and a load run through a real hyper server.
#![cfg(feature = "host")]

#[path = "support/host.rs"]
mod host_support;
mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use host_support::{TempDir, call, eventually, get, zombies};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use towergate::ext::ConnectInfo;
use towergate::host::{CgiBin, ProgramOptions, ReasonPhrase};

const SHOW: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s|%s|%s' \"$SCRIPT_NAME\" \"$PATH_INFO\" \"$QUERY_STRING\"\n";

fn bin(dir: &TempDir) -> CgiBin {
    CgiBin::new(dir.path()).mount("/cgi-bin/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_and_path_info_are_split_at_the_first_segment() {
    let dir = TempDir::new("bin-split");
    dir.script("show", SHOW);
    dir.script("with space", SHOW);
    let answer = call(bin(&dir), get("/cgi-bin/show/a/b%20c?x=1")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "/cgi-bin/show|/a/b c|x=1");
    let answer = call(bin(&dir), get("/cgi-bin/show")).await;
    assert_eq!(answer.body, "/cgi-bin/show||");
    let answer = call(bin(&dir), get("/cgi-bin/with%20space/")).await;
    assert_eq!(answer.body, "/cgi-bin/with space|/|");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_hidden_and_non_executable_never_run() {
    let outer = TempDir::new("bin-traversal");
    let marker = outer.path().join("ran");
    // A program outside the directory that would leave a mark if it ran.
    outer.script(
        "outside",
        &format!(
            "#!/bin/sh\ntouch {}\nprintf 'Content-Type: text/plain\\n\\nescaped'\n",
            marker.display()
        ),
    );
    outer.script(
        "cgi/.hidden",
        &format!(
            "#!/bin/sh\ntouch {}\nprintf 'Content-Type: text/plain\\n\\nhidden'\n",
            marker.display()
        ),
    );
    outer.file("cgi/plain", "#!/bin/sh\necho no\n");
    outer.script("cgi/show", SHOW);
    std::fs::create_dir_all(outer.path().join("cgi/subdir")).unwrap();
    let bin = CgiBin::new(outer.path().join("cgi")).mount("/cgi-bin");

    let cases = [
        ("/cgi-bin/../outside", 404),
        ("/cgi-bin/..", 404),
        ("/cgi-bin/%2e%2e/outside", 404),
        ("/cgi-bin/..%2Foutside", 404),
        ("/cgi-bin/..%2foutside", 404),
        ("/cgi-bin/show%2F..%2F..%2Foutside", 404),
        ("/cgi-bin/%2E%2E%5Coutside", 404),
        ("/cgi-bin/.hidden", 404),
        ("/cgi-bin/%2ehidden", 404),
        ("/cgi-bin/plain", 403),
        ("/cgi-bin/subdir", 404),
        ("/cgi-bin/missing", 404),
        ("/cgi-bin/", 404),
        ("/cgi-bin", 404),
        ("/cgi-binx/show", 404),
        ("/other/show", 404),
        ("/cgi-bin//show", 404),
    ];
    for (path, status) in cases {
        let answer = call(bin.clone(), get(path)).await;
        assert_eq!(answer.status, status, "{path}");
    }
    assert!(!marker.exists(), "a program outside the directory ran");
    // The same directory still serves its real programs.
    assert_eq!(call(bin, get("/cgi-bin/show/x")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nph_names_run_as_nph_and_local_redirects_reach_neighbours() {
    let dir = TempDir::new("bin-nph");
    dir.script(
        "nph-raw",
        "#!/bin/sh\nprintf 'HTTP/1.0 200 Raw OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nraw'\n",
    );
    dir.script(
        "go",
        "#!/bin/sh\nprintf 'Location: /cgi-bin/show/there?z=9\\n\\n'\n",
    );
    dir.script("show", SHOW);
    let answer = call(bin(&dir), get("/cgi-bin/nph-raw")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer
            .extensions
            .get::<ReasonPhrase>()
            .map(|r| r.as_bytes()),
        Some(&b"Raw OK"[..])
    );
    assert_eq!(answer.body, "raw");
    let answer = call(bin(&dir), get("/cgi-bin/go")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "/cgi-bin/show|/there|z=9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_options_apply_to_every_program() {
    let dir = TempDir::new("bin-options");
    dir.script(
        "env",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s|%s' \"$GREETING\" \"$(pwd)\"\n",
    );
    dir.script("sleepy", "#!/bin/sh\nexec sleep 30\n");
    let bin = bin(&dir).options(
        ProgramOptions::new()
            .env("GREETING", "hi")
            .timeout(Duration::from_millis(500))
            .grace(Duration::from_millis(100)),
    );
    let answer = call(bin.clone(), get("/cgi-bin/env")).await;
    assert_eq!(answer.text(), format!("hi|{}", dir.path().display()));
    let answer = call(bin, get("/cgi-bin/sleepy")).await;
    assert_eq!(answer.status, 504);
    assert!(eventually(|| zombies().is_empty()).await);
}

/// A real hyper server on 127.0.0.1 running the crate's `cgi_hello` through a `CgiBin`.
async fn start_server(bin: CgiBin) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        loop {
            let Ok((stream, remote)) = listener.accept().await else {
                continue;
            };
            let bin = bin.clone();
            let service =
                hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo {
                        remote,
                        local: Some(local),
                    });
                    let mut bin = bin.clone();
                    async move {
                        Ok::<_, Infallible>(
                            tower::Service::call(&mut bin, request)
                                .await
                                .unwrap_or_else(|e| match e {}),
                        )
                    }
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (local, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_run_through_a_real_server_has_no_errors() {
    const REQUESTS: usize = 3000;
    const CONCURRENCY: usize = 32;
    let dir = TempDir::new("bin-load");
    std::fs::copy(support::example_bin("cgi_hello"), dir.path().join("hello")).unwrap();
    dir.script(
        "echo",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\ncat\n",
    );
    let bin = bin(&dir).options(
        ProgramOptions::new()
            .max_processes(16)
            .timeout(Duration::from_secs(30)),
    );
    let (addr, server) = start_server(bin).await;

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONCURRENCY)
        .build_http();
    let client = Arc::new(client);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let client = client.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut errors = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= REQUESTS {
                        return errors;
                    }
                    // Every tenth request posts a body through a shell script.
                    let (request, expected) = if i % 10 == 0 {
                        let body = format!("body {i}");
                        let request = Request::post(format!("http://{addr}/cgi-bin/echo"))
                            .body(Full::new(Bytes::from(body.clone())))
                            .unwrap();
                        (request, body)
                    } else {
                        let request = Request::get(format!("http://{addr}/cgi-bin/hello/{i}"))
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                        (request, "Hello, world!".to_owned())
                    };
                    let result = async {
                        let response = client.request(request).await.map_err(|e| e.to_string())?;
                        let status = response.status();
                        let body = response
                            .into_body()
                            .collect()
                            .await
                            .map_err(|e| e.to_string())?
                            .to_bytes();
                        if status != 200 || body != expected.as_bytes() {
                            return Err(format!("request {i}: {status} {body:?}"));
                        }
                        Ok(())
                    };
                    if let Err(error) = result.await {
                        errors.push(error);
                    }
                }
            })
        })
        .collect();
    let mut errors = Vec::new();
    let run = async {
        for worker in workers {
            errors.extend(worker.await.unwrap());
        }
    };
    tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the load run finished within 300 s");
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert!(eventually(|| zombies().is_empty()).await, "{:?}", zombies());
    server.abort();
}
