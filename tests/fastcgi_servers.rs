//! `cgi_axum` as a FastCGI application behind real web servers, each with the configuration
//! the `towergate::fastcgi` docs show: the route contract (DESIGN.md) holds through each as
//! it does under CGI.
#![cfg(all(unix, feature = "fastcgi"))]

#[path = "support/fcgi_servers.rs"]
mod fcgi_servers;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use fcgi_servers::check_contract;

#[test]
fn nginx_over_tcp_with_a_keep_alive_upstream() {
    check_contract(&fcgi_servers::nginx_tcp());
}

/// `/count` answers only once the whole body is read, so nginx sends all of it (unlike
/// `/echo`, whose early head makes nginx stop sending). The documented config keeps nginx's
/// default `client_max_body_size` of 1 MiB: the body stays under it.
#[test]
fn nginx_sends_a_whole_upload_to_count() {
    let gateway = fcgi_servers::nginx_tcp();
    let body: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i * 13 + i / 509) as u8)
        .collect();
    let request = support::wire::post_request(
        gateway.port(),
        "/app/count",
        "application/octet-stream",
        &body,
    );
    let response = gateway.send(&request);
    assert_eq!(
        response.status(),
        200,
        "{response:?}\n{}",
        gateway.error_log()
    );
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert_eq!(response.text(), "1000000");
}

#[test]
fn nginx_over_a_unix_socket_from_spawn_fcgi() {
    check_contract(&fcgi_servers::nginx_spawn_fcgi());
}

#[test]
fn lighttpd_starting_the_app_with_bin_path() {
    check_contract(&fcgi_servers::lighttpd());
}

#[test]
fn apache_mod_proxy_fcgi_with_enablereuse() {
    check_contract(&fcgi_servers::apache_proxy_fcgi());
}

#[test]
fn apache_mod_fcgid_starting_the_app() {
    check_contract(&fcgi_servers::apache_fcgid());
}

#[test]
fn an_nginx_upstream_over_two_backends_loses_no_request_when_one_stops() {
    let gateway = fcgi_servers::nginx_over(&["127.0.0.2", "127.0.0.3"]);
    check_contract(&gateway);
    let served = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..100 {
                    let response = gateway.get("/app/info");
                    assert_eq!(
                        response.status(),
                        200,
                        "{response:?}\n{}",
                        gateway.error_log()
                    );
                    assert!(response.text().starts_with("method=GET\npath=/info\n"));
                    served.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Mid-run, once a quarter of the requests are served, stop the first backend
        // (SIGTERM: it stops accepting and closes its idle kept-alive connections).
        while served.load(Ordering::Relaxed) < 100 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        gateway.backends[0].stop();
    });
    assert_eq!(served.into_inner(), 400);
    let response = gateway.get("/app/");
    assert_eq!(response.status(), 200, "{}", gateway.error_log());
}
