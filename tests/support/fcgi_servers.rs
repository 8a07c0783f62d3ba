//! Real web servers in front of `cgi_axum` running as a FastCGI application, each with the
//! configuration the `towergate::fastcgi` docs show: nginx (keep-alive upstream, over TCP
//! or a Unix socket from spawn-fcgi, or over several backends), lighttpd (`bin-path`),
//! Apache `mod_proxy_fcgi` and `mod_fcgid`. Plus [`check_contract`], the route contract of
//! `cgi_axum` (DESIGN.md) asserted through any of them.
//!
//! Everything (configs, sockets, logs) lives in a temporary directory; every process is
//! stopped by pid and reaped when the [`Gateway`] is dropped. Declared from the test file
//! with `#[path = "support/fcgi_servers.rs"]`.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::example_bin;
use crate::support::server::{self, Process};
use crate::support::wire::{self, WireResponse, post_request};

/// How long a server or the app may take to stop after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// The `text` block after `marker` in `src/fastcgi/mod.rs` (the `towergate::fastcgi`
/// docs), so that the tests run exactly what the docs tell users to.
pub fn doc_block(marker: &str) -> String {
    server::doc_block_in(include_str!("../../src/fastcgi/mod.rs"), marker)
}

/// `cgi_axum` started as systemd does with socket activation: a listening socket the
/// test bound, on descriptor 0.
pub struct Backend {
    process: std::sync::Mutex<Process>,
    /// `HOST:PORT`, for an nginx `server` line.
    pub addr: String,
    log: PathBuf,
}

impl Backend {
    /// `cgi_axum` listening on `ip` (a free port), its standard error in `dir`.
    pub fn tcp(ip: &str, dir: &Path) -> Backend {
        let listener = TcpListener::bind((ip, 0)).expect("bind the app's socket");
        let addr = listener.local_addr().expect("local address").to_string();
        let log = dir.join(format!("app-{addr}.log"));
        let stderr = std::fs::File::create(&log).expect("the app's log");
        let child = Command::new(example_bin("cgi_axum"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::from(OwnedFd::from(listener)))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start cgi_axum");
        Backend {
            process: std::sync::Mutex::new(Process::new(child, STOP_LIMIT)),
            addr,
            log,
        }
    }

    /// What the app wrote to standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the app (SIGTERM: it finishes what is in flight, then exits) and reaps it.
    pub fn stop(&self) {
        self.process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop();
    }
}

/// A web server (and whatever it needs) in front of `cgi_axum`, mounted at `/app`.
pub struct Gateway {
    name: &'static str,
    /// Stopped in order when dropped: the web server first.
    processes: Vec<Process>,
    pub backends: Vec<Backend>,
    port: u16,
    dir: PathBuf,
    logs: Vec<&'static str>,
}

impl Gateway {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The web server's logs so far, then the apps' standard error.
    pub fn error_log(&self) -> String {
        let mut out = String::new();
        for name in &self.logs {
            out += &std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        }
        for backend in &self.backends {
            out += &backend.log();
        }
        out
    }

    /// Sends `request` (a complete HTTP/1.1 request saying `Connection: close`) and reads
    /// the response until the server closes the connection.
    pub fn send(&self, request: &[u8]) -> WireResponse {
        wire::send(self.name, self.port, request, || self.error_log())
    }

    /// `GET target` over HTTP/1.1, with `extra` header lines (each ending in CRLF).
    pub fn get_with(&self, target: &str, extra: &str) -> WireResponse {
        self.send(wire::get_request(self.port, target, extra).as_bytes())
    }

    pub fn get(&self, target: &str) -> WireResponse {
        self.get_with(target, "")
    }

    /// Starts `command` (the web server, with its config written by `config(port)`) on a
    /// free port, failing the test with its logs if it does not start.
    fn start_server(
        &mut self,
        binary: &Path,
        config: impl Fn(u16) -> String,
        config_name: &str,
        args: impl Fn(&Path) -> Vec<std::ffi::OsString>,
    ) {
        let dir = self.dir.clone();
        let logs = self.logs.clone();
        let error_log = move || {
            logs.iter()
                .map(|n| std::fs::read_to_string(dir.join(n)).unwrap_or_default())
                .collect::<String>()
        };
        let started = server::on_free_port(|port| {
            let path = self.dir.join(config_name);
            std::fs::write(&path, config(port)).expect("write the server's config");
            let mut command = Command::new(binary);
            command
                .args(args(&path))
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("LANG", "C");
            let mut child = Process::spawn(&mut command, Stdio::piped(), STOP_LIMIT);
            server::wait_for_port(self.name, &mut child, port, &error_log).map(|()| (child, port))
        });
        match started {
            Ok((child, port)) => {
                self.port = port;
                self.processes.insert(0, child);
            }
            Err(e) => panic!("{} did not start: {e}", self.name),
        }
    }

    fn new(name: &'static str, logs: Vec<&'static str>) -> Gateway {
        let dir = server::temp_dir(name);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the temporary directory");
        Gateway {
            name,
            processes: Vec::new(),
            backends: Vec::new(),
            port: 0,
            dir,
            logs,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for process in &mut self.processes {
            process.stop();
        }
        for backend in &self.backends {
            backend.stop();
        }
        server::remove_dir(&self.dir);
    }
}

fn find(name: &str, package: &str) -> PathBuf {
    server::find_binary(name, true).unwrap_or_else(|| {
        panic!(
            "{name} is not installed: the FastCGI tests need it \
             (`bash scripts/test.sh` installs it, or `apt-get install {package}`)"
        )
    })
}

/// nginx with the documented keep-alive upstream, over `servers` (nginx `server` lines'
/// addresses: `HOST:PORT` or `unix:PATH`).
fn nginx_config(dir: &Path, port: u16, servers: &[String]) -> String {
    let d = dir.display().to_string();
    let block = doc_block("//! ## nginx, with a keep-alive upstream");
    for placeholder in ["    server 127.0.0.1:9000;\n", "127.0.0.1:8080;"] {
        assert!(
            block.contains(placeholder),
            "{placeholder} is not in {block}"
        );
    }
    let lines: String = servers
        .iter()
        .map(|s| format!("    server {s};\n"))
        .collect();
    let block = block
        .replace("    server 127.0.0.1:9000;\n", &lines)
        .replace("127.0.0.1:8080;", &format!("127.0.0.1:{port};"));
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n\
         access_log off;\nclient_body_temp_path {d}/body;\nfastcgi_temp_path {d}/fastcgi;\n\
         proxy_temp_path {d}/proxy;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
         {block}}}\n"
    )
}

fn start_nginx(gateway: &mut Gateway, servers: &[String]) {
    let binary = find("nginx", "nginx-light");
    let dir = gateway.dir.clone();
    gateway.start_server(
        &binary,
        |port| nginx_config(&dir, port, servers),
        "nginx.conf",
        |config| {
            vec![
                "-p".into(),
                dir.clone().into(),
                "-e".into(),
                dir.join("error.log").into(),
                "-c".into(),
                config.into(),
            ]
        },
    );
}

/// nginx → `cgi_axum` on a TCP socket on 127.0.0.1, started with the socket on
/// descriptor 0 (systemd socket activation).
pub fn nginx_tcp() -> Gateway {
    nginx_over(&["127.0.0.1"])
}

/// nginx → one `cgi_axum` per address in `ips` (the scale-out upstream).
pub fn nginx_over(ips: &[&str]) -> Gateway {
    let mut gateway = Gateway::new("fcgi-nginx", vec!["error.log"]);
    for ip in ips {
        gateway.backends.push(Backend::tcp(ip, &gateway.dir));
    }
    let servers: Vec<String> = gateway.backends.iter().map(|b| b.addr.clone()).collect();
    start_nginx(&mut gateway, &servers);
    gateway
}

/// nginx → `cgi_axum` on a Unix socket, started by spawn-fcgi with the documented command.
pub fn nginx_spawn_fcgi() -> Gateway {
    let mut gateway = Gateway::new("fcgi-spawn", vec!["error.log", "app.log"]);
    let socket = gateway.dir.join("app.sock");
    let command = doc_block("//! ## spawn-fcgi");
    let app = example_bin("cgi_axum");
    let command = command
        .replace("/run/app.sock", &socket.display().to_string())
        .replace("/srv/app", &app.display().to_string());
    let mut words = command.split_whitespace();
    assert_eq!(words.next(), Some("spawn-fcgi"), "{command}");
    let log = std::fs::File::create(gateway.dir.join("app.log")).expect("app.log");
    let mut spawn = Command::new(find("spawn-fcgi", "spawn-fcgi"));
    spawn.args(words).env_clear().env("PATH", "/usr/bin:/bin");
    gateway
        .processes
        .push(Process::spawn(&mut spawn, log, STOP_LIMIT));
    let dir = gateway.dir.clone();
    let ready = || server::socket_accepts(&socket);
    let log = || std::fs::read_to_string(dir.join("app.log")).unwrap_or_default();
    let mut children: Vec<(&str, &mut Process)> = gateway
        .processes
        .iter_mut()
        .map(|p| ("spawn-fcgi", p))
        .collect();
    server::wait_ready(
        "spawn-fcgi",
        server::START_LIMIT,
        &mut children,
        "\n",
        log,
        ready,
    )
    .unwrap_or_else(|e| panic!("spawn-fcgi did not start the app: {e}"));
    start_nginx(&mut gateway, &[format!("unix:{}", socket.display())]);
    gateway
}

/// lighttpd with `mod_fastcgi` starting `cgi_axum` itself (`bin-path`).
pub fn lighttpd() -> Gateway {
    let mut gateway = Gateway::new("fcgi-lighttpd", vec!["error.log"]);
    let d = gateway.dir.display().to_string();
    for sub in ["htdocs", "tmp", "run"] {
        std::fs::create_dir_all(gateway.dir.join(sub)).expect("lighttpd directories");
    }
    let app = example_bin("cgi_axum").display().to_string();
    let block = doc_block("//! ## lighttpd (`mod_fastcgi`)");
    for placeholder in [
        "\"/srv/htdocs\"",
        "\"/srv/app\"",
        "/var/log/lighttpd/",
        "\"/var/tmp\"",
        "\"/run/lighttpd/",
        "= 8080\n",
    ] {
        assert!(
            block.contains(placeholder),
            "{placeholder} is not in {block}"
        );
    }
    let config = move |port: u16| {
        block
            .replace("\"/srv/htdocs\"", &format!("\"{d}/htdocs\""))
            .replace("\"/srv/app\"", &format!("\"{app}\""))
            .replace("/var/log/lighttpd/", &format!("{d}/"))
            .replace("\"/var/tmp\"", &format!("\"{d}/tmp\""))
            .replace("\"/run/lighttpd/", &format!("\"{d}/run/"))
            .replace("= 8080\n", &format!("= {port}\n"))
    };
    let binary = find("lighttpd", "lighttpd");
    gateway.start_server(&binary, config, "lighttpd.conf", |config| {
        vec!["-D".into(), "-f".into(), config.into()]
    });
    gateway
}

fn apache_binary() -> PathBuf {
    server::find_binary("apache2", false).unwrap_or_else(|| {
        panic!(
            "apache2 is not installed: the FastCGI tests need it \
             (`bash scripts/test.sh` installs it, or `apt-get install apache2`)"
        )
    })
}

fn apache_config(block: &str, dir: &Path, port: u16) -> String {
    let d = dir.display().to_string();
    for placeholder in ["\"/var/log/apache2/", "\"/run/apache2/", ":8080\n"] {
        assert!(
            block.contains(placeholder),
            "{placeholder} is not in {block}"
        );
    }
    block
        .replace("\"/srv/", &format!("\"{d}/"))
        .replace("\"/var/log/apache2/", &format!("\"{d}/"))
        .replace("\"/run/apache2/", &format!("\"{d}/"))
        .replace(":8080\n", &format!(":{port}\n"))
}

fn start_apache(gateway: &mut Gateway, block: String) {
    let dir = gateway.dir.clone();
    gateway.start_server(
        &apache_binary(),
        |port| apache_config(&block, &dir, port),
        "httpd.conf",
        |config| vec!["-DFOREGROUND".into(), "-f".into(), config.into()],
    );
}

/// Apache `mod_proxy_fcgi` (`enablereuse=on`) → `cgi_axum` on 127.0.0.1.
pub fn apache_proxy_fcgi() -> Gateway {
    let mut gateway = Gateway::new("fcgi-apache-proxy", vec!["error.log"]);
    let backend = Backend::tcp("127.0.0.1", &gateway.dir);
    let block = doc_block("//! ## Apache 2.4 (`mod_proxy_fcgi`)");
    assert!(block.contains("127.0.0.1:9000"), "{block}");
    let block = block.replace("127.0.0.1:9000", &backend.addr);
    gateway.backends.push(backend);
    start_apache(&mut gateway, block);
    gateway
}

/// Apache `mod_fcgid` starting a copy of `cgi_axum` itself, as www-data.
pub fn apache_fcgid() -> Gateway {
    let mut gateway = Gateway::new("fcgi-apache-fcgid", vec!["error.log"]);
    let bin = gateway.dir.join("fcgi-bin");
    std::fs::create_dir_all(&bin).expect("fcgi-bin");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // A copy, readable and executable by www-data wherever the build output lives.
    let app = bin.join("app");
    std::fs::copy(example_bin("cgi_axum"), &app).expect("copy cgi_axum");
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let block = doc_block("//! ## Apache 2.4 (`mod_fcgid`)");
    start_apache(&mut gateway, block);
    gateway
}

#[track_caller]
fn assert_status(response: &WireResponse, status: u16, gateway: &Gateway) {
    assert_eq!(
        response.status(),
        status,
        "{response:?}\nerror log:\n{}",
        gateway.error_log()
    );
}

/// The route contract of `cgi_axum` (DESIGN.md), mounted at `/app`, through `gateway`.
pub fn check_contract(gateway: &Gateway) {
    // The root, many times: kept-alive connections are reused.
    for _ in 0..20 {
        let response = gateway.get("/app/");
        assert_status(&response, 200, gateway);
        assert_eq!(response.text(), "hello from axum over CGI");
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }

    let response = gateway.get("/app/info?x=1");
    assert_status(&response, 200, gateway);
    let text = response.text();
    assert!(
        text.starts_with(
            "method=GET\npath=/info\nquery=x=1\nSCRIPT_NAME=/app\nPATH_INFO=/info\n\
             QUERY_STRING=x=1\nREMOTE_ADDR=127.0.0.1\n"
        ),
        "{text}"
    );
    assert!(
        text.ends_with("SERVER_PROTOCOL=HTTP/1.1\nHTTPS=\n"),
        "{text}"
    );

    let port = gateway.port();
    let head =
        format!("HEAD /app/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let response = gateway.send(head.as_bytes());
    assert_status(&response, 200, gateway);
    assert!(response.body.is_empty(), "{response:?}");

    // Less than a Unix socket's buffer (about 200 KiB): nginx stops sending a request body
    // once the echo's head arrives (see the nginx section of the docs), so all of it must
    // be in flight by then.
    let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let request = post_request(port, "/app/echo", "application/octet-stream", &body);
    let response = gateway.send(&request);
    assert_status(&response, 200, gateway);
    assert_eq!(
        response.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(response.body.len(), body.len());
    assert!(response.body == body, "the echoed body differs");

    let chunked = format!(
        "POST /app/echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    );
    let response = gateway.send(chunked.as_bytes());
    assert_status(&response, 200, gateway);
    assert_eq!(response.text(), "hello world");

    let response = gateway.get("/app/cookies");
    assert_status(&response, 200, gateway);
    assert_eq!(response.header_all("set-cookie"), ["a=1", "b=2"]);
    assert!(response.body.is_empty());

    let response = gateway.get("/app/status/418");
    assert_status(&response, 418, gateway);
    assert!(response.body.is_empty());

    let response = gateway.get_with(
        "/app/headers",
        "X-Test: one\r\nUser-Agent: towergate-test\r\n",
    );
    assert_status(&response, 200, gateway);
    let text = response.text();
    assert!(text.contains("\nx-test: one\n"), "{text}");
    assert!(text.contains("\nuser-agent: towergate-test\n"), "{text}");

    let response = gateway.get("/app/stream?n=20&bytes=100000");
    assert_status(&response, 200, gateway);
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert!(
        response.header("content-length").is_none(),
        "{:?}",
        response.headers
    );
    assert_eq!(response.body, vec![b'x'; 2_000_000]);

    let response = gateway.get("/app/redirect");
    assert_status(&response, 302, gateway);
    assert_eq!(response.header("location"), Some("/"));

    let response = gateway.get("/app/panic");
    assert_status(&response, 500, gateway);
    assert_eq!(
        response.text(),
        "A server error occurred.  Please contact the administrator."
    );
    // The app is still there.
    let response = gateway.get("/app/");
    assert_status(&response, 200, gateway);
}
