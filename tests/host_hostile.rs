//! The CGI host against hostile programs and clients (issue 9): leftover children on the
//! pipes, groups that outlive their leader, shutdown, inherited descriptors, slot and body
//! waits, spool limits, oversized environments, bad framing, reason phrases, symlinks, and
//! axum's `nest_service`. Every test checks the process table and the descriptor count
//! afterwards.
#![cfg(feature = "host")]

#[path = "support/host.rs"]
mod host_support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use host_support::{TempDir, call, chunked_body, eventually, get, is_gone, open_fds, zombies};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use rustix::process::{Pid, Signal, kill_process, test_kill_process_group};
use tower::ServiceExt;
use towergate::host::{CgiBin, CgiProgram, ProgramOptions, ReasonPhrase};

/// The pid a script wrote to `name` in its directory, once it is there.
async fn pid_file(dir: &TempDir, name: &str) -> i32 {
    let path = dir.path().join(name);
    let mut pid = None;
    assert!(
        eventually(|| {
            pid = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| text.trim().parse::<i32>().ok());
            pid.is_some()
        })
        .await,
        "{name} was never written"
    );
    pid.unwrap_or_default()
}

/// Whether no process is left in process group `group`.
fn group_gone(group: i32) -> bool {
    Pid::from_raw(group).is_none_or(|group| test_kill_process_group(group).is_err())
}

/// Asserts that the descriptor count goes back to `before` and that no zombie is left.
async fn assert_clean(before: usize) {
    assert!(
        eventually(|| open_fds() <= before).await,
        "descriptors: {before} before, {} after",
        open_fds()
    );
    assert!(eventually(|| zombies().is_empty()).await, "{:?}", zombies());
}

/// A request body that never sends anything.
fn silent_body() -> impl http_body::Body<Data = Bytes, Error = Infallible> + Send + 'static {
    http_body_util::StreamBody::new(futures_util::stream::pending::<
        Result<http_body::Frame<Bytes>, Infallible>,
    >())
}

/// Sends one byte, then nothing.
fn one_byte_then_silence() -> impl http_body::Body<Data = Bytes, Error = Infallible> + Send + 'static
{
    use futures_util::StreamExt;
    let first = futures_util::stream::iter([Ok(http_body::Frame::data(Bytes::from("x")))]);
    http_body_util::StreamBody::new(first.chain(futures_util::stream::pending()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_leaves_a_child_on_its_pipes_answers_and_its_group_is_ended() {
    let dir = TempDir::new("leftover");
    let script = dir.script(
        "leftover.sh",
        "#!/bin/sh\necho $$ > group\nsleep 300 &\necho $! > child\n\
         printf 'Content-Type: text/plain\\n\\nbye'\n",
    );
    let program = CgiProgram::new(&script).grace(Duration::from_millis(200));
    let before = open_fds();
    for method in ["GET", "HEAD"] {
        let _ = std::fs::remove_file(dir.path().join("group"));
        let _ = std::fs::remove_file(dir.path().join("child"));
        let request = Request::builder()
            .method(method)
            .uri("/")
            .body(String::new())
            .unwrap();
        let answer = call(program.clone(), request).await;
        assert_eq!(answer.status, 200, "{method}");
        assert_eq!(answer.text(), if method == "GET" { "bye" } else { "" });
        let (group, child) = (pid_file(&dir, "group").await, pid_file(&dir, "child").await);
        assert!(
            eventually(|| group_gone(group)).await,
            "{method}: group left"
        );
        assert!(eventually(|| is_gone(child as u32)).await, "{method}");
        assert!(eventually(|| program.shutdown_handle().running() == 0).await);
        assert_clean(before).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_detaches_properly_is_left_alone() {
    let dir = TempDir::new("detach");
    let script = dir.script(
        "detach.sh",
        "#!/bin/sh\nsetsid sleep 300 </dev/null >/dev/null 2>&1 &\necho $! > child\n\
         printf 'Content-Type: text/plain\\n\\ndetached'\n",
    );
    let program = CgiProgram::new(&script).grace(Duration::from_millis(100));
    let before = open_fds();
    let answer = call(program.clone(), get("/")).await;
    assert_eq!(answer.text(), "detached");
    let child = pid_file(&dir, "child").await;
    // The supervisor is done with the program, and the detached one still runs.
    assert!(eventually(|| program.shutdown_handle().running() == 0).await);
    assert!(!is_gone(child as u32), "the detached process was killed");
    assert_clean(before).await;
    if let Some(pid) = Pid::from_raw(child) {
        let _ = kill_process(pid, Signal::KILL);
    }
    assert!(eventually(|| is_gone(child as u32)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_group_is_killed_after_the_grace_even_when_the_leader_dies_of_sigterm() {
    let dir = TempDir::new("group");
    let script = dir.script(
        "group.sh",
        "#!/bin/sh\necho $$ > group\n\
         sh -c 'trap \"\" TERM; echo $$ > member; while :; do sleep 1; done' &\n\
         sleep 300\n",
    );
    let program = CgiProgram::new(&script)
        .timeout(Duration::from_millis(500))
        .grace(Duration::from_millis(300));
    let before = open_fds();
    let answer = call(program.clone(), get("/")).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    let (group, member) = (
        pid_file(&dir, "group").await,
        pid_file(&dir, "member").await,
    );
    assert!(
        eventually(|| group_gone(group)).await,
        "the group outlived the grace"
    );
    assert!(is_gone(member as u32));
    assert_clean(before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_program_answers_503_and_refuses_new_requests() {
    let dir = TempDir::new("shutdown");
    dir.script(
        "stubborn.sh",
        "#!/bin/sh\necho $$ > group\ntrap '' TERM\nsleep 300\n",
    );
    let bin = CgiBin::new(dir.path())
        .mount("/cgi-bin")
        .options(ProgramOptions::new().grace(Duration::from_millis(200)));
    let shutdown = bin.shutdown_handle();
    let before = open_fds();
    let running = tokio::spawn(call(bin.clone(), get("/cgi-bin/stubborn.sh")));
    let group = pid_file(&dir, "group").await;
    assert_eq!(shutdown.running(), 1);
    shutdown.shutdown().await;
    assert_eq!(shutdown.running(), 0);
    // Killed; a member's zombie may wait a moment for init to reap it.
    assert!(
        eventually(|| group_gone(group)).await,
        "the program survived the shutdown"
    );
    let answer = running.await.unwrap();
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers["retry-after"], "1");
    let after = call(bin, get("/cgi-bin/stubborn.sh")).await;
    assert_eq!(after.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_clean(before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_get_no_descriptor_beyond_stdin_stdout_and_stderr() {
    let dir = TempDir::new("fds");
    let script = dir.script(
        "fds.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\n\
         if [ -e /proc/$$/fd/$LEAK ]; then echo leaked; else echo closed; fi\n\
         for fd in 0 1 2; do [ -e /proc/$$/fd/$fd ] && printf '%s ' $fd; done\n",
    );
    // A descriptor without close-on-exec, as a server inherits one.
    let file = std::fs::File::open(&script).unwrap();
    let leak = rustix::io::fcntl_dupfd_cloexec(&file, 200).unwrap();
    rustix::io::fcntl_setfd(&leak, rustix::io::FdFlags::empty()).unwrap();
    assert!(
        !rustix::io::fcntl_getfd(&leak)
            .unwrap()
            .contains(rustix::io::FdFlags::CLOEXEC)
    );
    let number = std::os::fd::AsRawFd::as_raw_fd(&leak).to_string();
    let program = CgiProgram::new(&script).env("LEAK", number);
    let answer = call(program, get("/")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "closed\n0 1 2 ");
    drop(leak);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_house_answers_503_with_retry_after_and_the_wait_is_not_run_time() {
    let dir = TempDir::new("slot-wait");
    let sleeper = dir.script("sleeper.sh", "#!/bin/sh\necho $$ > group\nexec sleep 300\n");
    let program = CgiProgram::new(&sleeper)
        .max_processes(1)
        .slot_wait(Duration::from_millis(200))
        .timeout(Duration::from_secs(30))
        .grace(Duration::from_millis(100));
    let before = open_fds();
    let first = tokio::spawn(call(program.clone(), get("/")));
    let group = pid_file(&dir, "group").await;
    let second = call(program.clone(), get("/")).await;
    assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.headers["retry-after"], "1");
    program.shutdown_handle().shutdown().await;
    assert_eq!(first.await.unwrap().status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(eventually(|| group_gone(group)).await);

    // A queued request's time limit starts when its program does: a second program of
    // 1 s, queued behind the first for 1 s, fits in a 1.8 s limit.
    let slow = dir.script(
        "slow.sh",
        "#!/bin/sh\nsleep 1\nprintf 'Content-Type: text/plain\\n\\nok'\n",
    );
    let program = CgiProgram::new(&slow)
        .max_processes(1)
        .timeout(Duration::from_millis(1800));
    let calls: Vec<_> = (0..2)
        .map(|_| tokio::spawn(call(program.clone(), get("/"))))
        .collect();
    for c in calls {
        let answer = c.await.unwrap();
        assert_eq!(
            (answer.status, answer.text().as_str()),
            (StatusCode::OK, "ok")
        );
    }
    assert_clean(before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_max_waiting_a_request_gets_503_at_once_not_after_its_slot_wait() {
    let dir = TempDir::new("line-full");
    let sleeper = dir.script("sleeper.sh", "#!/bin/sh\necho $$ > group\nexec sleep 300\n");
    // No request may wait: with the one slot taken, the next is refused at once, though it
    // could have waited a minute.
    let program = CgiProgram::new(&sleeper)
        .max_processes(1)
        .max_waiting(0)
        .slot_wait(Duration::from_secs(60))
        .grace(Duration::from_millis(100));
    let before = open_fds();
    let first = tokio::spawn(call(program.clone(), get("/")));
    let group = pid_file(&dir, "group").await;
    let second = tokio::time::timeout(Duration::from_secs(30), call(program.clone(), get("/")))
        .await
        .expect("the refused request waited");
    assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.headers["retry-after"], "1");
    assert_eq!(second.text(), "503 Service Unavailable\n");
    program.shutdown_handle().shutdown().await;
    assert_eq!(first.await.unwrap().status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(eventually(|| group_gone(group)).await);
    assert_clean(before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_upload_holds_no_slot_and_a_stalled_body_gets_408() {
    let dir = TempDir::new("stall");
    let echo = dir.script(
        "echo.sh",
        "#!/bin/sh\necho $$ >> groups\nbody=$(head -c \"$CONTENT_LENGTH\")\n\
         printf 'Content-Type: text/plain\\n\\n%s' \"$body\"\n",
    );
    let program = CgiProgram::new(&echo)
        .max_processes(1)
        .slot_wait(Duration::from_millis(300))
        .body_timeout(Duration::from_millis(1500))
        .grace(Duration::from_millis(100));
    let before = open_fds();
    // An upload that never sends its byte: no program starts, so the slot stays free.
    let idle = Request::post("/")
        .header("content-length", "1")
        .body(silent_body())
        .unwrap();
    let idle = tokio::spawn(call(program.clone(), idle));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let normal = Request::post("/").body(String::from("hi")).unwrap();
    let normal = call(program.clone(), normal).await;
    assert_eq!(
        (normal.status, normal.text().as_str()),
        (StatusCode::OK, "hi")
    );
    assert_eq!(idle.await.unwrap().status, StatusCode::REQUEST_TIMEOUT);

    // A body that stalls after its first byte, while its program waits for the rest: the
    // program is ended and the answer is 408.
    let stalled = Request::post("/")
        .header("content-length", "10")
        .body(one_byte_then_silence())
        .unwrap();
    let answer = call(program.clone(), stalled).await;
    assert_eq!(answer.status, StatusCode::REQUEST_TIMEOUT);
    let groups = std::fs::read_to_string(dir.path().join("groups")).unwrap();
    for group in groups.lines().filter_map(|l| l.parse::<i32>().ok()) {
        assert!(eventually(|| group_gone(group)).await);
    }
    assert_clean(before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooling_stops_at_the_body_limit_and_the_shared_budget() {
    let dir = TempDir::new("spool");
    let count = dir.script(
        "count.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s' \"$CONTENT_LENGTH\"\n",
    );
    let hold = dir.script("hold.sh", "#!/bin/sh\necho $$ > group\nexec sleep 300\n");
    let before = open_fds();
    // Over max_body: 413, and the body is read no further than the limit.
    let polled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = polled.clone();
    let endless = futures_util::stream::repeat_with(move || {
        counter.fetch_add(10, std::sync::atomic::Ordering::Relaxed);
        Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"0123456789")))
    });
    let request = Request::post("/")
        .body(http_body_util::StreamBody::new(endless))
        .unwrap();
    let program = CgiProgram::new(&count).max_body(100).spool_memory(16);
    let answer = call(program, request).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(polled.load(std::sync::atomic::Ordering::Relaxed), 110);

    // Two spools share 30 bytes: while the first request's 20 bytes wait for its program,
    // a second of 20 gets 503; once the first program is gone, it passes.
    let options = ProgramOptions::new()
        .spool_limit(30)
        .spool_memory(8)
        .timeout(Duration::from_millis(1500))
        .grace(Duration::from_millis(100));
    let holder = CgiProgram::new(&hold).options(options.clone());
    let counter = CgiProgram::new(&count).options(options);
    let twenty = || {
        Request::post("/")
            .body(chunked_body(vec![Bytes::from("0123456789"); 2]))
            .unwrap()
    };
    let first = tokio::spawn(call(holder.clone(), twenty()));
    let group = pid_file(&dir, "group").await;
    let second = call(counter.clone(), twenty()).await;
    assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.headers["retry-after"], "1");
    assert_eq!(first.await.unwrap().status, StatusCode::GATEWAY_TIMEOUT);
    assert!(eventually(|| group_gone(group)).await);
    let third = call(counter, twenty()).await;
    assert_eq!(
        (third.status, third.text().as_str()),
        (StatusCode::OK, "20")
    );
    assert_clean(before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deadline_covers_every_redirect_hop_and_the_first_slot_is_freed() {
    let dir = TempDir::new("hops");
    dir.script(
        "linger",
        "#!/bin/sh\necho $$ > group\nprintf 'Location: /cgi-bin/hello\\n\\n'\nexec sleep 300\n",
    );
    dir.script(
        "closed",
        "#!/bin/sh\necho $$ > group\nprintf 'Location: /cgi-bin/hello\\n\\n'\nexec >&-\nexec sleep 300\n",
    );
    dir.script(
        "hello",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello'\n",
    );
    dir.script(
        "loop",
        "#!/bin/sh\nsleep 0.3\nprintf 'Location: /cgi-bin/loop\\n\\n'\n",
    );
    let before = open_fds();
    let bin = CgiBin::new(dir.path()).mount("/cgi-bin").options(
        ProgramOptions::new()
            .max_processes(1)
            .slot_wait(Duration::from_secs(2))
            .grace(Duration::from_millis(200))
            .timeout(Duration::from_millis(1000)),
    );
    // The lingering first program (holding its output, or having closed it) is ended and
    // reaped before its target needs the slot.
    for name in ["linger", "closed"] {
        let _ = std::fs::remove_file(dir.path().join("group"));
        let answer = call(bin.clone(), get(&format!("/cgi-bin/{name}"))).await;
        assert_eq!(
            (answer.status, answer.text().as_str()),
            (StatusCode::OK, "hello"),
            "{name}"
        );
        let group = pid_file(&dir, "group").await;
        assert!(eventually(|| group_gone(group)).await, "{name}");
    }
    // Ten hops of 0.3 s each do not fit in one 1 s limit.
    let answer = call(bin, get("/cgi-bin/loop")).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_clean(before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_too_large_for_exec_is_a_431_and_nothing_runs() {
    let dir = TempDir::new("environ");
    let script = dir.script(
        "ran.sh",
        "#!/bin/sh\ntouch ran\nprintf 'Content-Type: text/plain\\n\\nran'\n",
    );
    let program = CgiProgram::new(&script);
    let before = open_fds();
    let huge = "a".repeat(200 * 1024);
    let request = Request::get("/")
        .header("x-big", &huge)
        .body(String::new())
        .unwrap();
    let answer = call(program.clone(), request).await;
    assert_eq!(answer.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // Many headers under the per-string limit, over the total.
    let mut request = Request::get("/");
    let part = "b".repeat(60 * 1024);
    for i in 0..20 {
        request = request.header(format!("x-part-{i}"), &part);
    }
    let answer = call(program.clone(), request.body(String::new()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(!dir.path().join("ran").exists());
    assert_eq!(call(program, get("/")).await.text(), "ran");
    assert_clean(before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_from_a_program_is_checked_and_enforced() {
    let dir = TempDir::new("length");
    let script = |name: &str, head: &str, body: &str| {
        dir.script(
            name,
            &format!("#!/bin/sh\nprintf 'Content-Type: text/plain\\n{head}\\n{body}'\n"),
        )
    };
    let before = open_fds();
    for (name, head) in [
        ("abc.sh", "Content-Length: abc\\n"),
        ("two.sh", "Content-Length: 3\\nContent-Length: 4\\n"),
    ] {
        let answer = call(CgiProgram::new(script(name, head, "abc")), get("/")).await;
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{name}");
    }
    // Longer than declared: cut at the length.
    let long = script("long.sh", "Content-Length: 3\\n", "abcdef");
    let answer = call(CgiProgram::new(long), get("/")).await;
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (StatusCode::OK, "abc")
    );
    assert_eq!(answer.headers["content-length"], "3");
    // Shorter than declared: the body ends with an error, not as a whole.
    let short = script("short.sh", "Content-Length: 10\\n", "abc");
    let response = CgiProgram::new(short).oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    let collected = tokio::time::timeout(Duration::from_secs(20), response.into_body().collect())
        .await
        .expect("the body ended");
    assert!(collected.is_err(), "a short body passed off as whole");
    assert_clean(before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_programs_chunked_framing_is_a_502_never_body_bytes() {
    let dir = TempDir::new("chunked");
    let cgi = dir.script(
        "chunked.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n3\\r\\nabc\\r\\n0\\r\\n\\r\\n'\n",
    );
    let nph = dir.script(
        "nph-chunked.sh",
        "#!/bin/sh\nprintf 'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n3\\r\\nabc\\r\\n0\\r\\n\\r\\n'\n",
    );
    let before = open_fds();
    let answer = call(CgiProgram::new(cgi), get("/")).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    let answer = call(CgiProgram::new(nph).nph(true), get("/")).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_clean(before).await;
}

/// Serves `program` over real hyper HTTP/1.1 on 127.0.0.1 for one connection and returns
/// the raw response to a `GET /`.
async fn raw_http1(program: CgiProgram) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = hyper::service::service_fn(move |request| program.clone().oneshot(request));
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .await;
    });
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), client.read_to_end(&mut raw))
        .await
        .expect("the response ended")
        .unwrap();
    server.await.unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_programs_reason_phrase_reaches_hypers_wire_and_an_unknown_status_gets_none() {
    let dir = TempDir::new("reason");
    let fine = dir.script(
        "fine.sh",
        "#!/bin/sh\nprintf 'Status: 299 Fine Thanks\\nContent-Type: text/plain\\n\\nok'\n",
    );
    let bare = dir.script(
        "bare.sh",
        "#!/bin/sh\nprintf 'Status: 999\\nContent-Type: text/plain\\n\\nok'\n",
    );
    let before = open_fds();
    let raw = raw_http1(CgiProgram::new(&fine)).await;
    assert!(raw.starts_with("HTTP/1.1 299 Fine Thanks\r\n"), "{raw}");
    let raw = raw_http1(CgiProgram::new(&bare)).await;
    assert!(raw.starts_with("HTTP/1.1 999 \r\n"), "{raw}");
    let answer = call(CgiProgram::new(&bare), get("/")).await;
    assert_eq!(answer.status, 999);
    let reason = answer.extensions.get::<ReasonPhrase>().unwrap();
    assert_eq!(reason.as_bytes(), b"");
    assert_clean(before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_out_of_the_cgi_bin_is_refused_unless_allowed() {
    let outer = TempDir::new("symlink");
    outer.script(
        "outside/secret",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\noutside'\n",
    );
    outer.script(
        "cgi/inside",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\ninside'\n",
    );
    let cgi = outer.path().join("cgi");
    std::os::unix::fs::symlink(outer.path().join("outside/secret"), cgi.join("escape")).unwrap();
    std::os::unix::fs::symlink("inside", cgi.join("alias")).unwrap();
    let bin = CgiBin::new(&cgi).mount("/cgi-bin");
    let before = open_fds();
    let answer = call(bin.clone(), get("/cgi-bin/escape")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_ne!(answer.text(), "outside");
    let answer = call(bin.clone(), get("/cgi-bin/alias")).await;
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (StatusCode::OK, "inside")
    );
    let answer = call(bin.follow_symlinks(true), get("/cgi-bin/escape")).await;
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (StatusCode::OK, "outside")
    );
    assert_clean(before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgi_bin_answers_the_same_under_axum_route_service_and_nest_service() {
    let dir = TempDir::new("axum");
    dir.script(
        "where",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s|%s|%s' \"$SCRIPT_NAME\" \"$PATH_INFO\" \"$REQUEST_URI\"\n",
    );
    let bin = CgiBin::new(dir.path()).mount("/cgi-bin");
    // A gateway app at the same place answers the same way: AppService's script_name takes
    // a stripped or an unstripped path alike.
    let app = towergate::gateway::app_fn(
        |environ: towergate::Environ, start: towergate::gateway::StartResponse| async move {
            start.start("200 OK", [("Content-Type", "text/plain")])?;
            let var =
                |k: &str| String::from_utf8_lossy(environ.get(k).unwrap_or_default()).into_owned();
            let text = format!("{}|{}", var("SCRIPT_NAME"), var("PATH_INFO"));
            Ok::<_, towergate::BoxError>(towergate::gateway::AppBody::from(text))
        },
    );
    let service = towergate::service::AppService::new(app).script_name("/gw");
    let routed = axum::Router::new()
        .route_service("/cgi-bin/{*program}", bin.clone())
        .route_service("/gw/{*rest}", service.clone());
    let nested = axum::Router::new()
        .nest_service("/cgi-bin", bin)
        .nest_service("/gw", service);
    let before = open_fds();
    for (name, router) in [("route_service", routed), ("nest_service", nested)] {
        let answer = call(router.clone(), get("/cgi-bin/where/a%20b/c?x=1")).await;
        assert_eq!(answer.status, 200, "{name}");
        assert_eq!(
            answer.text(),
            "/cgi-bin/where|/a b/c|/cgi-bin/where/a%20b/c?x=1",
            "{name}"
        );
        let answer = call(router, get("/gw/a%20b/c")).await;
        assert_eq!(
            (answer.status.as_u16(), answer.text().as_str()),
            (200, "/gw|/a b/c"),
            "{name}"
        );
    }
    assert_clean(before).await;
}
