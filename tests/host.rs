//! The CGI host (`towergate::host::CgiProgram`) running real programs: shell, Perl and
//! Python scripts, the crate's own `cgi_axum` example, and hostile programs.
#![cfg(feature = "host")]

#[path = "support/host.rs"]
mod host_support;
mod support;

use std::time::Duration;

use bytes::Bytes;
use host_support::{TempDir, call, chunked_body, eventually, get, is_gone, zombies};
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;
use towergate::ext::{ConnectInfo, RemoteUser};
use towergate::host::{CgiProgram, ReasonPhrase, Stderr};

const HELLO_SH: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nHello from sh'\n";
const PRINTENV_SH: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nenv | sort\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_script_answers() {
    let dir = TempDir::new("hello");
    let program = CgiProgram::new(dir.script("hello.sh", HELLO_SH));
    let answer = call(program, get("/")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "text/plain");
    assert_eq!(answer.body, "Hello from sh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_is_the_meta_variables_and_nothing_else() {
    let dir = TempDir::new("env");
    let program = CgiProgram::new(dir.script("printenv.sh", PRINTENV_SH))
        .script_name("/app/")
        .env("EXTRA", "1")
        .env("PATH", "/usr/bin:/bin")
        .inherit_env("TOWERGATE_SURELY_UNSET");
    let mut request = Request::get("/app/a%20b/c?x=1&y=2")
        .version(http::Version::HTTP_10)
        .header("host", "[::1]:8443")
        .header("authorization", "Basic c2VjcmV0")
        .header("proxy", "http://evil.example")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("x-custom", "yes")
        .body(String::new())
        .unwrap();
    request.extensions_mut().insert(ConnectInfo {
        remote: "192.0.2.9:5000".parse().unwrap(),
        local: Some("127.0.0.1:8443".parse().unwrap()),
    });
    request.extensions_mut().insert(RemoteUser::from("alice"));
    let answer = call(program.clone(), request).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let var = |name: &str| answer.var(name);
    assert_eq!(var("SERVER_PROTOCOL").as_deref(), Some("HTTP/1.0"));
    assert_eq!(var("SERVER_NAME").as_deref(), Some("[::1]"));
    assert_eq!(var("SERVER_PORT").as_deref(), Some("8443"));
    assert_eq!(var("REMOTE_ADDR").as_deref(), Some("192.0.2.9"));
    assert_eq!(var("REMOTE_PORT").as_deref(), Some("5000"));
    assert_eq!(var("REMOTE_USER").as_deref(), Some("alice"));
    assert_eq!(var("SCRIPT_NAME").as_deref(), Some("/app"));
    assert_eq!(var("PATH_INFO").as_deref(), Some("/a b/c"));
    assert_eq!(var("QUERY_STRING").as_deref(), Some("x=1&y=2"));
    assert_eq!(var("REQUEST_METHOD").as_deref(), Some("GET"));
    assert_eq!(var("GATEWAY_INTERFACE").as_deref(), Some("CGI/1.1"));
    assert_eq!(var("HTTP_COOKIE").as_deref(), Some("a=1; b=2"));
    assert_eq!(var("HTTP_X_CUSTOM").as_deref(), Some("yes"));
    assert_eq!(var("EXTRA").as_deref(), Some("1"));
    assert_eq!(var("PATH").as_deref(), Some("/usr/bin:/bin"));
    assert_eq!(
        var("SCRIPT_FILENAME").as_deref(),
        Some(program.path().to_str().unwrap())
    );
    assert_eq!(var("HTTP_AUTHORIZATION"), None);
    assert_eq!(var("HTTP_PROXY"), None);
    assert_eq!(var("CONTENT_LENGTH"), None);
    // Nothing of the test process's environment leaks (HOME, USER, CARGO_*, RUST_*).
    for leak in ["HOME", "USER", "CARGO_MANIFEST_DIR", "RUST_BACKTRACE"] {
        assert_eq!(var(leak), None, "{leak} leaked");
    }
    // The working directory is the program's directory (RFC 3875 §7.2).
    assert_eq!(
        var("PWD").map(std::path::PathBuf::from),
        Some(dir.path().to_path_buf())
    );

    let program = program.pass_authorization(true);
    let request = Request::get("/app")
        .header("authorization", "Basic c2VjcmV0")
        .body(String::new())
        .unwrap();
    let answer = call(program, request).await;
    assert_eq!(
        answer.var("HTTP_AUTHORIZATION").as_deref(),
        Some("Basic c2VjcmV0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perl_script_echoes_a_post() {
    let dir = TempDir::new("perl");
    let script = dir.script(
        "echo.pl",
        r#"#!/usr/bin/perl
use strict;
binmode STDIN; binmode STDOUT;
my $len = $ENV{CONTENT_LENGTH} || 0;
my $body = '';
while (length($body) < $len) {
    my $n = read(STDIN, $body, $len - length($body), length($body));
    last unless $n;
}
print "Status: 200 OK\r\n";
print "Content-Type: $ENV{CONTENT_TYPE}\r\n";
print "X-Length: $len\r\n\r\n";
print $body;
"#,
    );
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let request = Request::post("/")
        .header("content-type", "application/octet-stream")
        .header("content-length", body.len())
        .body(http_body_util::Full::new(Bytes::from(body.clone())))
        .unwrap();
    let answer = call(CgiProgram::new(script), request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "application/octet-stream");
    assert_eq!(answer.headers["x-length"], "200000");
    assert_eq!(answer.body, body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_script_sees_its_request() {
    let dir = TempDir::new("python");
    let script = dir.script(
        "info.py",
        r#"#!/usr/bin/env python3
import os, sys
data = sys.stdin.buffer.read(int(os.environ.get("CONTENT_LENGTH") or 0))
sys.stdout.write("Status: 202 Accepted Gladly\n")
sys.stdout.write("Content-Type: text/plain; charset=utf-8\n")
sys.stdout.write("Set-Cookie: a=1\nSet-Cookie: b=2\n\n")
sys.stdout.write(os.environ["REQUEST_METHOD"] + " " + os.environ.get("PATH_INFO", "") + " " + data.decode())
"#,
    );
    let request = Request::put("/py/x")
        .header("content-length", "5")
        .body(String::from("howdy"))
        .unwrap();
    let answer = call(CgiProgram::new(script).script_name("/py"), request).await;
    assert_eq!(answer.status, 202);
    assert_eq!(
        answer
            .extensions
            .get::<ReasonPhrase>()
            .map(|r| r.as_bytes()),
        Some(&b"Accepted Gladly"[..])
    );
    assert_eq!(answer.headers.get_all("set-cookie").iter().count(), 2);
    assert_eq!(answer.body, "PUT /x howdy");
}

fn cgi_axum() -> CgiProgram {
    CgiProgram::new(support::example_bin("cgi_axum")).script_name("/app")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_the_crates_own_cgi_axum_example() {
    let answer = call(cgi_axum(), get("/app/")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "hello from axum over CGI");

    let request = Request::post("/app/echo")
        .header("content-type", "application/x-test")
        .header("content-length", "11")
        .body(String::from("echo\x00 bytes"))
        .unwrap();
    let answer = call(cgi_axum(), request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "application/x-test");
    assert_eq!(answer.body, "echo\x00 bytes");

    let answer = call(cgi_axum(), get("/app/cookies")).await;
    let cookies: Vec<_> = answer.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);

    let answer = call(cgi_axum(), get("/app/status/418")).await;
    assert_eq!(answer.status, 418);
    assert!(answer.body.is_empty());

    let answer = call(cgi_axum(), get("/app/stream?n=4&bytes=3")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "xxxxxxxxxxxx");

    let answer = call(cgi_axum(), get("/app/info?q=1")).await;
    assert!(
        answer.text().contains("SCRIPT_NAME=/app\n"),
        "{}",
        answer.text()
    );
    assert!(answer.text().contains("PATH_INFO=/info\n"));
    assert!(answer.text().contains("QUERY_STRING=q=1\n"));
    assert!(answer.text().contains("SERVER_NAME=example.com\n"));

    let answer = call(cgi_axum(), get("/app/redirect")).await;
    assert_eq!(answer.status, 302);
    assert_eq!(answer.headers["location"], "/");

    let answer = call(cgi_axum(), get("/app/panic")).await;
    assert_eq!(answer.status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_is_spooled_so_content_length_is_exact() {
    let dir = TempDir::new("spool");
    let script = dir.script(
        "len.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s:%s:' \"$CONTENT_LENGTH\" \"${HTTP_TRANSFER_ENCODING:-none}\"\nhead -c \"${CONTENT_LENGTH:-0}\"\n",
    );
    let chunks = || vec![Bytes::from("abc"), Bytes::from("defg"), Bytes::from("hi")];
    for memory in [1 << 20, 4] {
        let request = Request::post("/")
            .header("transfer-encoding", "chunked")
            .body(chunked_body(chunks()))
            .unwrap();
        let program = CgiProgram::new(&script)
            .spool_memory(memory)
            .spool_dir(dir.path());
        let answer = call(program, request).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, "9:none:abcdefghi", "spool_memory {memory}");
    }
    // No spool file is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("spool"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Over the limit: 413, the program never runs.
    let request = Request::post("/").body(chunked_body(chunks())).unwrap();
    let answer = call(CgiProgram::new(&script).max_body(5), request).await;
    assert_eq!(answer.status, 413);
    let request = Request::post("/")
        .header("content-length", "9")
        .body(String::from("abcdefghi"))
        .unwrap();
    let answer = call(CgiProgram::new(&script).max_body(5), request).await;
    assert_eq!(answer.status, 413);

    // Streamed unspooled: no CONTENT_LENGTH, the program reads to end of file.
    let cat = dir.script(
        "cat.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s:%s:' \"${CONTENT_LENGTH:-unset}\" \"$HTTP_TRANSFER_ENCODING\"\ncat\n",
    );
    let request = Request::post("/").body(chunked_body(chunks())).unwrap();
    let answer = call(CgiProgram::new(cat).spool(false), request).await;
    assert_eq!(answer.body, "unset:chunked:abcdefghi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_output_is_a_502() {
    let dir = TempDir::new("malformed");
    let cases = [
        ("silent", "#!/bin/sh\nexit 0\n"),
        (
            "no-blank-line",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\n'\n",
        ),
        (
            "bad-status",
            "#!/bin/sh\nprintf 'Status: twohundred\\nContent-Type: text/plain\\n\\nx'\n",
        ),
        (
            "no-content-type",
            "#!/bin/sh\nprintf 'X-Thing: 1\\n\\nbody'\n",
        ),
        (
            "garbage",
            "#!/bin/sh\nprintf 'this is not a header\\n\\n'\n",
        ),
        (
            "huge-line",
            "#!/bin/sh\nprintf 'X-Big: '\nhead -c 1048576 /dev/zero | tr '\\0' a\nprintf '\\nContent-Type: text/plain\\n\\n'\n",
        ),
        (
            "many-fields",
            "#!/bin/sh\ni=0\nwhile [ $i -lt 200 ]; do echo \"X-F$i: v\"; i=$((i+1)); done\nprintf 'Content-Type: text/plain\\n\\n'\n",
        ),
    ];
    for (name, text) in cases {
        let program = CgiProgram::new(dir.script(name, text));
        let answer = call(program, get("/")).await;
        assert_eq!(answer.status, 502, "{name}: {}", answer.text());
    }
    // The 1 MiB line stops the head at the line limit; the program is killed and reaped.
    assert!(eventually(|| zombies().is_empty()).await, "{:?}", zombies());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_never_answers_times_out_with_504_and_is_killed() {
    let dir = TempDir::new("sleep");
    let pidfile = dir.path().join("pid");
    let script = dir.script(
        "sleep.sh",
        &format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 1000\n",
            pidfile.display()
        ),
    );
    let program = CgiProgram::new(script)
        .timeout(Duration::from_millis(500))
        .grace(Duration::from_millis(200));
    let answer = call(program, get("/")).await;
    assert_eq!(answer.status, 504);
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        eventually(|| is_gone(pid)).await,
        "program {pid} still there"
    );
    assert!(zombies().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_ignores_sigterm_is_killed_after_the_grace() {
    let dir = TempDir::new("stubborn");
    let pidfile = dir.path().join("pid");
    let script = dir.script(
        "stubborn.sh",
        &format!(
            "#!/bin/sh\ntrap '' TERM\necho $$ > {}\nwhile :; do sleep 1; done\n",
            pidfile.display()
        ),
    );
    let program = CgiProgram::new(script)
        .timeout(Duration::from_millis(300))
        .grace(Duration::from_millis(300));
    let answer = call(program, get("/")).await;
    assert_eq!(answer.status, 504);
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        eventually(|| is_gone(pid)).await,
        "program {pid} still there"
    );
    assert!(eventually(|| zombies().is_empty()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_output_stops_when_the_client_goes_away() {
    let dir = TempDir::new("endless");
    let script = dir.script(
        "yes.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\nX-Pid: %s\\n\\n' $$\nexec yes\n",
    );
    let response = CgiProgram::new(script).oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    let pid: u32 = response.headers()["x-pid"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut body = response.into_body();
    let mut read = 0;
    while read < 1 << 20 {
        let frame = body.frame().await.unwrap().unwrap();
        read += frame.into_data().map_or(0, |d| d.len());
    }
    drop(body); // the client went away
    assert!(
        eventually(|| is_gone(pid)).await,
        "program {pid} still there"
    );
    assert!(zombies().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_never_reads_a_large_post_does_not_deadlock() {
    let dir = TempDir::new("noread");
    let script = dir.script(
        "noread.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nnot reading'\n",
    );
    let body = Bytes::from(vec![b'p'; 10 << 20]);
    let request = Request::post("/")
        .header("content-length", body.len())
        .body(http_body_util::Full::new(body))
        .unwrap();
    let answer = call(CgiProgram::new(script), request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "not reading");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_writes_megabytes_before_reading_does_not_deadlock() {
    let dir = TempDir::new("writefirst");
    let script = dir.script(
        "writefirst.sh",
        "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\n\\n'\nhead -c 4194304 /dev/zero\nwc -c\n",
    );
    let body = Bytes::from(vec![b'p'; 10 << 20]);
    let request = Request::post("/")
        .header("content-length", body.len())
        .body(http_body_util::Full::new(body))
        .unwrap();
    let answer = call(CgiProgram::new(script), request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body.len(), (4 << 20) + "10485760\n".len());
    assert!(answer.body.ends_with(b"10485760\n"));
}

/// Linux: a large body's standard input pipe is grown to 1 MiB before it is fed, and a
/// large output, read through a grown standard output pipe in larger reads, arrives intact.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_goes_through_grown_pipes_intact() {
    let dir = TempDir::new("bigpipes");
    let script = dir.script(
        "echo.py",
        "#!/usr/bin/env python3\n\
         import fcntl, sys\n\
         data = sys.stdin.buffer.read()\n\
         size = fcntl.fcntl(0, 1032)  # F_GETPIPE_SZ\n\
         out = sys.stdout.buffer\n\
         out.write(b'Content-Type: application/octet-stream\\nX-Stdin-Pipe: %d\\n\\n' % size)\n\
         out.write(data)\n\
         out.write(data)\n",
    );
    let input: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    let request = Request::post("/")
        .header("content-length", input.len())
        .body(http_body_util::Full::new(Bytes::from(input.clone())))
        .unwrap();
    let answer = call(CgiProgram::new(script), request).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["x-stdin-pipe"], "1048576");
    assert_eq!(answer.body.len(), 2 * input.len());
    assert!(answer.body[..input.len()] == input[..]);
    assert!(answer.body[input.len()..] == input[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_dying_mid_body_truncates_the_body() {
    let dir = TempDir::new("dies");
    let script = dir.script(
        "dies.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\npartial'\nkill -9 $$\necho never\n",
    );
    let answer = call(CgiProgram::new(script), get("/")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "partial");
    assert!(eventually(|| zombies().is_empty()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_flooding_stderr_still_answers() {
    let dir = TempDir::new("stderr");
    let script = dir.script(
        "flood.sh",
        "#!/bin/sh\nhead -c 2097152 /dev/zero | tr '\\0' e | fold -w 100 >&2\nprintf 'Content-Type: text/plain\\n\\nstill here'\n",
    );
    for stderr in [Stderr::Log, Stderr::Null] {
        let answer = call(CgiProgram::new(&script).stderr(stderr), get("/")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, "still here");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_local_and_client() {
    let dir = TempDir::new("redirect");
    let script = dir.script(
        "r.sh",
        "#!/bin/sh\ncase \"$PATH_INFO\" in\n\
         /local) printf 'Location: /r/target?q=1\\n\\n' ;;\n\
         /target) printf 'Content-Type: text/plain\\n\\ntarget %s %s' \"$REQUEST_METHOD\" \"$QUERY_STRING\" ;;\n\
         /client) printf 'Location: http://example.org/x\\n\\n' ;;\n\
         /loop) printf 'Location: /r/loop\\n\\n' ;;\n\
         esac\n",
    );
    let program = CgiProgram::new(script).script_name("/r");
    let request = Request::post("/r/local")
        .header("content-length", "3")
        .body(String::from("abc"))
        .unwrap();
    let answer = call(program.clone(), request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "target GET q=1");

    let answer = call(program.clone(), get("/r/client")).await;
    assert_eq!(answer.status, 302);
    assert_eq!(answer.headers["location"], "http://example.org/x");

    let answer = call(program.clone().max_redirects(3), get("/r/loop")).await;
    assert_eq!(answer.status, 500);

    // Through a configured service.
    let elsewhere = tower::service_fn(|request: Request<String>| async move {
        Ok::<_, std::convert::Infallible>(http::Response::new(format!(
            "elsewhere {}",
            request.uri()
        )))
    });
    let answer = call(program.local_redirect(elsewhere), get("/r/local")).await;
    assert_eq!(answer.body, "elsewhere /r/target?q=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_bodies_are_discarded_and_nph_is_parsed() {
    let dir = TempDir::new("head");
    let hello = dir.script("hello.sh", HELLO_SH);
    let request = Request::head("/").body(String::new()).unwrap();
    let answer = call(CgiProgram::new(hello), request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "text/plain");
    assert!(answer.body.is_empty());

    let nph = dir.script(
        "nph.sh",
        "#!/bin/sh\nprintf 'HTTP/1.1 203 Quite Alright\\r\\nContent-Type: text/plain\\r\\nConnection: close\\r\\n\\r\\nraw body'\n",
    );
    let answer = call(CgiProgram::new(nph).nph(true), get("/")).await;
    assert_eq!(answer.status, 203);
    assert_eq!(
        answer
            .extensions
            .get::<ReasonPhrase>()
            .map(|r| r.as_bytes()),
        Some(&b"Quite Alright"[..])
    );
    assert!(!answer.headers.contains_key("connection"));
    assert_eq!(answer.body, "raw body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_is_a_500() {
    let answer = call(CgiProgram::new("/nonexistent/program"), get("/")).await;
    assert_eq!(answer.status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_processes_queues_requests_and_503s_past_the_timeout() {
    let dir = TempDir::new("slots");
    let script = dir.script(
        "slow.sh",
        "#!/bin/sh\nsleep 0.2\nprintf 'Content-Type: text/plain\\n\\nok'\n",
    );
    let program = CgiProgram::new(&script).max_processes(2);
    let calls: Vec<_> = (0..6)
        .map(|_| tokio::spawn(call(program.clone(), get("/"))))
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().status, 200);
    }
    // One slot, held by a program that runs past the time limit: the next request waits
    // its slot_wait, then gets 503 with Retry-After.
    let sleeper = dir.script("sleeper.sh", "#!/bin/sh\nexec sleep 5\n");
    let program = CgiProgram::new(sleeper)
        .max_processes(1)
        .slot_wait(Duration::from_millis(100))
        .timeout(Duration::from_millis(600))
        .grace(Duration::from_millis(100));
    let first = tokio::spawn(call(program.clone(), get("/")));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = call(program, get("/")).await;
    assert_eq!(first.await.unwrap().status, 504);
    assert_eq!(second.status, 503);
    assert_eq!(second.headers["retry-after"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_zombies_and_no_fd_growth_over_a_thousand_requests() {
    let dir = TempDir::new("thousand");
    let script = dir.script("hello.sh", HELLO_SH);
    let program = CgiProgram::new(script);
    // Warm up (the runtime's own descriptors, the child reaper).
    for _ in 0..10 {
        assert_eq!(call(program.clone(), get("/")).await.status, 200);
    }
    let before = host_support::open_fds();
    for round in 0..100 {
        let calls: Vec<_> = (0..10)
            .map(|_| tokio::spawn(call(program.clone(), get("/"))))
            .collect();
        for c in calls {
            let answer = c.await.unwrap();
            assert_eq!(answer.status, 200, "round {round}");
            assert_eq!(answer.body, "Hello from sh");
        }
    }
    assert!(eventually(|| zombies().is_empty()).await, "{:?}", zombies());
    assert!(
        eventually(|| host_support::open_fds() <= before + 2).await,
        "fds grew from {before} to {}",
        host_support::open_fds()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_request_body_does_not_hang() {
    let dir = TempDir::new("failing");
    let script = dir.script(
        "cat.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\ncat\n",
    );
    let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = vec![
        Ok(http_body::Frame::data(Bytes::from("abc"))),
        Err(std::io::Error::other("client reset")),
    ];
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    let request = Request::post("/").body(body).unwrap();
    let answer = call(CgiProgram::new(&script), request).await;
    assert_eq!(answer.status, 400);
    let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = vec![
        Ok(http_body::Frame::data(Bytes::from("abc"))),
        Err(std::io::Error::other("client reset")),
    ];
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    let request = Request::post("/").body(body).unwrap();
    let answer = call(CgiProgram::new(&script).spool(false), request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "abc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_after_the_head_ends_the_body_with_an_error() {
    let dir = TempDir::new("late");
    let script = dir.script(
        "late.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nstarted'\nexec sleep 30\n",
    );
    let program = CgiProgram::new(script)
        .timeout(Duration::from_millis(500))
        .grace(Duration::from_millis(100));
    let response = program.oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    let collected = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
        .await
        .expect("the body ended");
    assert!(collected.is_err(), "a truncated body must not end cleanly");
    assert!(eventually(|| zombies().is_empty()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_bodies_of_unknown_length_are_spooled_and_the_protocol_is_real() {
    let dir = TempDir::new("h2");
    let script = dir.script(
        "h2.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s %s %s ' \"$SERVER_PROTOCOL\" \"$CONTENT_LENGTH\" \"$HOME\"\nhead -c \"$CONTENT_LENGTH\"\n",
    );
    let request = Request::post("https://example.com/upload")
        .version(http::Version::HTTP_2)
        .body(chunked_body(vec![Bytes::from("h2 "), Bytes::from("body")]))
        .unwrap();
    let home = std::env::var("HOME").unwrap_or_default();
    let answer = call(CgiProgram::new(script).inherit_env("HOME"), request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), format!("HTTP/2.0 7 {home} h2 body"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_lines_become_tracing_records() {
    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // nextest runs each test in its own process: the global default is this test's alone.
    let _ = tracing::subscriber::set_global_default(subscriber);

    let dir = TempDir::new("stderr-log");
    let script = dir.script(
        "warn.sh",
        "#!/bin/sh\necho 'first complaint' >&2\nprintf 'Content-Type: text/plain\\n\\nok'\necho 'second complaint' >&2\n",
    );
    let answer = call(CgiProgram::new(&script), get("/")).await;
    assert_eq!(answer.body, "ok");
    let logged = || String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(
        eventually(|| logged().contains("second complaint")).await,
        "{}",
        logged()
    );
    let log = logged();
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("first complaint"), "{log}");
    assert!(log.contains(&script.display().to_string()), "{log}");
}
