//! Real FastCGI PHP servers for the client tests: Debian's php-fpm (`php-fpm8.2 -F -y
//! CONFIG`, its own pool in a temporary directory) and `php-cgi -b 127.0.0.1:PORT`, both on
//! 127.0.0.1 or a Unix socket, serving a document root with PHP scripts that echo what they
//! get. Each is stopped by pid (SIGTERM, then SIGKILL) and reaped when dropped, which also
//! removes the directory.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::server::{self, Process};

/// How long php-fpm or php-cgi may take to stop after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// A script that echoes its request, one `name=value` line each, then the headers it got
/// (sorted, `header name: value`) and the body.
pub const ECHO_PHP: &str = r#"<?php
header('Content-Type: text/plain');
header('X-Echo: yes');
echo "method=", $_SERVER['REQUEST_METHOD'], "\n";
echo "script_name=", $_SERVER['SCRIPT_NAME'], "\n";
echo "script_filename=", $_SERVER['SCRIPT_FILENAME'], "\n";
echo "path_info=", $_SERVER['PATH_INFO'] ?? '', "\n";
echo "query=", $_SERVER['QUERY_STRING'], "\n";
echo "content_length=", $_SERVER['CONTENT_LENGTH'] ?? '', "\n";
echo "http_proxy=", isset($_SERVER['HTTP_PROXY']) ? 'set' : 'unset', "\n";
echo "http_authorization=", $_SERVER['HTTP_AUTHORIZATION'] ?? 'unset', "\n";
echo "document_root=", $_SERVER['DOCUMENT_ROOT'] ?? '', "\n";
$headers = getallheaders();
ksort($headers);
foreach ($headers as $name => $value) {
    echo "header ", strtolower($name), ": ", $value, "\n";
}
echo "body=", file_get_contents('php://input');
"#;

/// The scripts of the document root every server gets.
pub const SCRIPTS: &[(&str, &str)] = &[
    ("echo.php", ECHO_PHP),
    ("hello.php", "<?php echo 'Hello, world!';\n"),
    (
        "status.php",
        "<?php header('Status: 299 Fine'); header('Content-Type: text/plain'); echo 'fine';\n",
    ),
    ("redirect.php", "<?php header('Location: /hello.php'); \n"),
    // A Location with status 200: PHP writes no Status field, so this is a local redirect
    // (RFC 3875 §6.2.2) for the gateway to serve.
    (
        "local_redirect.php",
        "<?php header('Location: /sub/?q=1'); http_response_code(200);\n",
    ),
    (
        "loop.php",
        "<?php header('Location: /loop.php'); http_response_code(200);\n",
    ),
    (
        "big.php",
        "<?php header('Content-Type: application/octet-stream'); $n = (int)($_GET['n'] ?? 1); for ($i = 0; $i < $n; $i++) { echo str_repeat('x', 65536); flush(); }\n",
    ),
    (
        "stderr.php",
        "<?php error_log('a line for the log'); header('Content-Type: text/plain'); echo 'logged';\n",
    ),
    (
        "pid.php",
        "<?php header('Content-Type: text/plain'); echo getmypid();\n",
    ),
];

/// Writes [`SCRIPTS`] into `dir`.
pub fn write_scripts(dir: &Path) {
    for (name, text) in SCRIPTS {
        std::fs::write(dir.join(name), text).expect("write a PHP script");
    }
    // A directory index, which only the gateway's routing finds (`/sub/` →
    // `sub/index.php`).
    std::fs::create_dir_all(dir.join("sub")).expect("create sub/");
    std::fs::write(dir.join("sub/index.php"), ECHO_PHP).expect("write sub/index.php");
}

/// Where a PHP server listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp,
    Unix,
}

/// A running php-fpm.
pub struct PhpFpm {
    process: Option<Process>,
    /// `HOST:PORT` or `unix:PATH`, as the client and `--php` take it.
    pub address: String,
    /// The temporary directory: the configuration, the socket, the log, and `www/`.
    pub dir: PathBuf,
}

impl PhpFpm {
    /// The document root (`DIR/www`, with [`SCRIPTS`]).
    pub fn root(&self) -> PathBuf {
        self.dir.join("www")
    }

    /// php-fpm's error log (the workers' output too).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("php-fpm.log")).unwrap_or_default()
    }

    /// Starts php-fpm with a static pool of `children` workers that each serve
    /// `max_requests` requests (0: no limit) before php-fpm replaces them. Fails the test,
    /// with the reason, when it is not installed or does not start.
    pub fn start(listen: Listen, children: u32, max_requests: u32) -> PhpFpm {
        let binary = server::find_binary("php-fpm8.2", true)
            .or_else(|| server::find_binary("php-fpm", true))
            .expect("php-fpm8.2 is not installed (bash scripts/test.sh installs php-fpm)");
        let dir = server::temp_dir("php-fpm");
        let www = dir.join("www");
        std::fs::create_dir_all(&www).expect("create www");
        write_scripts(&www);
        let root = rustix_is_root();
        server::on_free_port(|port| {
            let (listen_line, address) = match listen {
                Listen::Tcp => (format!("127.0.0.1:{port}"), format!("127.0.0.1:{port}")),
                Listen::Unix => {
                    let socket = dir.join("fpm.sock");
                    (
                        socket.display().to_string(),
                        format!("unix:{}", socket.display()),
                    )
                }
            };
            let config = format!(
                "[global]\n\
                 error_log = {dir}/php-fpm.log\n\
                 pid = {dir}/php-fpm.pid\n\
                 daemonize = no\n\
                 [test]\n\
                 {user}\
                 listen = {listen_line}\n\
                 pm = static\n\
                 pm.max_children = {children}\n\
                 pm.max_requests = {max_requests}\n\
                 catch_workers_output = yes\n\
                 clear_env = yes\n\
                 php_admin_value[error_log] = {dir}/php-fpm.log\n\
                 php_admin_flag[log_errors] = on\n",
                dir = dir.display(),
                user = if root {
                    "user = root\ngroup = root\n"
                } else {
                    ""
                },
            );
            std::fs::write(dir.join("php-fpm.conf"), config).expect("write php-fpm.conf");
            let mut command = Command::new(&binary);
            command
                .env_clear()
                .args(["-F", "-y"])
                .arg(dir.join("php-fpm.conf"));
            if root {
                command.arg("-R");
            }
            let stderr = std::fs::File::create(dir.join("php-fpm.stderr")).expect("stderr file");
            let mut process = Process::spawn(&mut command, stderr, STOP_LIMIT);
            let log = || {
                std::fs::read_to_string(dir.join("php-fpm.log")).unwrap_or_default()
                    + &std::fs::read_to_string(dir.join("php-fpm.stderr")).unwrap_or_default()
            };
            let ready = match listen {
                Listen::Tcp => server::wait_for_port("php-fpm", &mut process, port, log),
                Listen::Unix => {
                    let socket = dir.join("fpm.sock");
                    server::wait_ready(
                        "php-fpm",
                        server::START_LIMIT,
                        &mut [("php-fpm", &mut process)],
                        "",
                        log,
                        || server::socket_accepts(&socket),
                    )
                }
            };
            ready.map(|()| (process, address))
        })
        .map(|(process, address)| PhpFpm {
            process: Some(process),
            address,
            dir: dir.clone(),
        })
        .unwrap_or_else(|e| {
            server::remove_dir(&dir);
            panic!("php-fpm did not start: {e}")
        })
    }
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
        server::remove_dir(&self.dir);
    }
}

/// A running `php-cgi -b 127.0.0.1:PORT`.
pub struct PhpCgi {
    process: Option<Process>,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// The temporary directory, with `www/`.
    pub dir: PathBuf,
}

impl PhpCgi {
    /// The document root (`DIR/www`, with [`SCRIPTS`]).
    pub fn root(&self) -> PathBuf {
        self.dir.join("www")
    }

    /// Starts `php-cgi -b` on a free port with `children` workers
    /// (`PHP_FCGI_CHILDREN`).
    pub fn start(children: u32) -> PhpCgi {
        let binary = server::find_binary("php-cgi", true)
            .expect("php-cgi is not installed (bash scripts/test.sh installs php-cgi)");
        let dir = server::temp_dir("php-cgi");
        let www = dir.join("www");
        std::fs::create_dir_all(&www).expect("create www");
        write_scripts(&www);
        server::on_free_port(|port| {
            let stderr_path = dir.join("php-cgi.stderr");
            let mut command = Command::new(&binary);
            command
                .env_clear()
                .env("PHP_FCGI_CHILDREN", children.to_string())
                .env("PHP_FCGI_MAX_REQUESTS", "0")
                .arg("-b")
                .arg(format!("127.0.0.1:{port}"));
            let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
            let mut process = Process::spawn(&mut command, Stdio::from(stderr), STOP_LIMIT);
            let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
            server::wait_for_port("php-cgi", &mut process, port, log)
                .map(|()| (process, format!("127.0.0.1:{port}")))
        })
        .map(|(process, address)| PhpCgi {
            process: Some(process),
            address,
            dir: dir.clone(),
        })
        .unwrap_or_else(|e| {
            server::remove_dir(&dir);
            panic!("php-cgi did not start: {e}")
        })
    }
}

impl Drop for PhpCgi {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
        server::remove_dir(&self.dir);
    }
}

/// Whether the tests run as root (php-fpm then needs `-R` and a pool user).
fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}
