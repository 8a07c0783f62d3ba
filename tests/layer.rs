//! Connection addresses without glue, through real servers on 127.0.0.1: an axum server
//! built with `into_make_service_with_connect_info` (feature `axum`), and a plain hyper-util
//! accept loop with `ConnectInfoLayer`, give `CgiProgram`, `CgiBin`, `AppService` and a
//! `MountLayer`ed router the client's address and port and the server's port.
#![cfg(all(unix, feature = "axum", feature = "host", feature = "gateway"))]

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use support::wire::WireResponse;
use tower::ServiceBuilder;
use towergate::BoxError;
use towergate::ext::RequestExt;
use towergate::gateway::{AppBody, StartResponse, app_fn};
use towergate::host::{CgiBin, CgiProgram};
use towergate::layer::{ConnectInfoLayer, MountLayer};
use towergate::service::AppService;

const LIMIT: Duration = Duration::from_secs(20);

/// A shell CGI program printing the three variables under test.
const SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
                      printf '%s %s %s' \"$REMOTE_ADDR\" \"$REMOTE_PORT\" \"$SERVER_PORT\"\n";

/// A directory holding the program as `addrs`, removed when dropped.
struct CgiDir(PathBuf);

impl CgiDir {
    fn new() -> CgiDir {
        let dir = support::server::temp_dir("layer-cgi");
        let program = dir.join("addrs");
        std::fs::write(&program, SCRIPT).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        CgiDir(dir)
    }
}

impl Drop for CgiDir {
    fn drop(&mut self) {
        support::server::remove_dir(&self.0);
    }
}

/// The router under test: every kind of service that builds an environ, each printing
/// `REMOTE_ADDR REMOTE_PORT SERVER_PORT`.
fn router(cgi: &Path) -> Router {
    let gateway = app_fn(
        |environ: towergate::Environ, start_response: StartResponse| async move {
            start_response.start("200 OK", [("Content-Type", "text/plain")])?;
            let var = |name| environ.get_str(name).unwrap_or("-").to_owned();
            let line = format!(
                "{} {} {}",
                var("REMOTE_ADDR"),
                var("REMOTE_PORT"),
                var("SERVER_PORT")
            );
            Ok::<_, BoxError>(AppBody::from(line))
        },
    );
    let mounted = ServiceBuilder::new()
        .layer(MountLayer::new("/mounted"))
        .service(Router::new().route(
            "/addrs",
            get(|request: axum::extract::Request| async move {
                let environ = request.environ().expect("the environ extension");
                format!(
                    "{} {} {}",
                    request
                        .remote_addr()
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                    request.remote_port().unwrap_or(0),
                    environ.get_str("SERVER_PORT").unwrap_or("-"),
                )
            }),
        ));
    Router::new()
        .route_service(
            "/program",
            CgiProgram::new(cgi.join("addrs")).script_name("/program"),
        )
        .route_service("/cgi-bin/{*rest}", CgiBin::new(cgi).mount("/cgi-bin"))
        .route_service("/gateway", AppService::new(gateway))
        .nest_service("/mounted", mounted)
}

/// Sends a GET for `target` with `host` as the Host header; returns the client's port and
/// the response.
fn get_from_client(port: u16, target: &str, host: &str) -> (u16, WireResponse) {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let client_port = stream.local_addr().unwrap().port();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    (client_port, WireResponse::parse(&raw, false))
}

/// Each service answers `127.0.0.1 CLIENT_PORT server_port`.
async fn assert_addresses(port: u16, host: String, server_port: u16) {
    for target in ["/program", "/cgi-bin/addrs", "/gateway", "/mounted/addrs"] {
        let host = host.clone();
        let (client_port, response) =
            tokio::task::spawn_blocking(move || get_from_client(port, target, &host))
                .await
                .unwrap();
        assert_eq!(response.status(), 200, "{target}: {response:?}");
        assert_eq!(
            response.text(),
            format!("127.0.0.1 {client_port} {server_port}"),
            "{target}"
        );
    }
}

async fn bind() -> (tokio::net::TcpListener, u16) {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_connect_info_socket_addr_needs_no_glue() {
    let cgi = CgiDir::new();
    let (listener, port) = bind().await;
    let app = router(&cgi.0).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let checked = tokio::time::timeout(
        LIMIT,
        assert_addresses(port, format!("127.0.0.1:{port}"), port),
    );
    checked.await.expect("the test's time bound");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_connect_info_of_towergate_gives_the_local_port_too() {
    let cgi = CgiDir::new();
    let (listener, port) = bind().await;
    let app = router(&cgi.0).into_make_service_with_connect_info::<towergate::ext::ConnectInfo>();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    // No port in Host: SERVER_PORT comes from the connection's local address.
    let checked = tokio::time::timeout(LIMIT, assert_addresses(port, "127.0.0.1".into(), port));
    checked.await.expect("the test's time bound");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hyper_accept_loop_needs_one_layer() {
    let cgi = CgiDir::new();
    let (listener, port) = bind().await;
    let app = router(&cgi.0);
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, remote)) = listener.accept().await else {
                return;
            };
            let service = ServiceBuilder::new()
                .layer(ConnectInfoLayer::new(remote, stream.local_addr().ok()))
                .service(app.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                    .await;
            });
        }
    });
    let checked = tokio::time::timeout(LIMIT, assert_addresses(port, "127.0.0.1".into(), port));
    checked.await.expect("the test's time bound");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_connection_info_the_addresses_are_unset() {
    let cgi = CgiDir::new();
    let (listener, port) = bind().await;
    let app = router(&cgi.0).into_make_service();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (_, response) = tokio::task::spawn_blocking(move || {
        get_from_client(port, "/gateway", &format!("127.0.0.1:{port}"))
    })
    .await
    .unwrap();
    assert_eq!(response.text(), format!("- - {port}"));
    server.abort();
}
