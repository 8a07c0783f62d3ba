//! `cgi_axum` as a FastCGI application behind real web servers, each with the configuration
//! the `towergate::fastcgi` docs show: the route contract (DESIGN.md) holds through each as
//! it does under CGI.
#![cfg(feature = "fastcgi")]

#[path = "support/fcgi_servers.rs"]
mod fcgi_servers;
mod support;

use fcgi_servers::check_contract;

#[test]
fn nginx_over_tcp_with_a_keep_alive_upstream() {
    check_contract(&fcgi_servers::nginx_tcp());
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
