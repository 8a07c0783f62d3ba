//! Soak: 3,000 requests through a real `towergate serve`, 16 clients at a time, mixing
//! hostile CGI programs (a child left holding stdout, SIGTERM ignored, a hang, a garbage
//! head, a huge head) with hostile clients (slowloris, a disconnect mid-body, a trickled
//! upload) and normal traffic. Afterwards the server's descriptor count and the process
//! table are back where they started: no program, no child of a program, no zombie.
#![cfg(feature = "cli")]

#[path = "support/host.rs"]
mod host_support;
#[path = "support/towergate.rs"]
mod towergate_support;
#[path = "support/wire.rs"]
#[allow(dead_code, unreachable_pub)]
mod wire;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use host_support::TempDir;
use towergate_support::{Towergate, closed_by_server, connect, eventually, exchange};

const REQUESTS: usize = 3_000;
const CLIENTS: usize = 16;

/// What one request of the mix is, by its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Hello,
    StaticKeepAlive,
    GarbageHead,
    HugeHead,
    LeavesChild,
    IgnoresTerm,
    Hangs,
    Slowloris,
    DisconnectMidBody,
    TrickledUpload,
}

fn kind(i: usize) -> Kind {
    match i % 100 {
        60..=69 => Kind::StaticKeepAlive,
        70..=73 => Kind::GarbageHead,
        74..=75 => Kind::HugeHead,
        76..=79 => Kind::DisconnectMidBody,
        80..=81 => Kind::TrickledUpload,
        82 => Kind::Slowloris,
        83 => Kind::Hangs,
        84 => Kind::LeavesChild,
        85 if i % 300 == 85 => Kind::IgnoresTerm,
        _ => Kind::Hello,
    }
}

fn status_of(raw: &[u8]) -> u16 {
    std::str::from_utf8(raw.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

fn get(addr: SocketAddr, path: &str) -> Vec<u8> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes())
}

/// Runs request `i`; returns the status seen (0: none, the connection was closed).
fn run(addr: SocketAddr, i: usize) -> u16 {
    match kind(i) {
        Kind::Hello => {
            let raw = get(addr, "/cgi-bin/hello");
            let status = status_of(&raw);
            if status == 200 {
                let response = wire::WireResponse::parse(&raw, false);
                assert_eq!(response.text(), "hello", "{response:?}");
            }
            status
        }
        Kind::StaticKeepAlive => {
            // Two requests on one connection (the second closes it).
            let raw = exchange(
                addr,
                b"GET /index.html HTTP/1.1\r\nHost: soak\r\n\r\n\
                  GET /index.html HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n",
            );
            let text = String::from_utf8_lossy(&raw);
            assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{text}");
            assert_eq!(text.matches("static file\n").count(), 2, "{text}");
            200
        }
        Kind::GarbageHead => status_of(&get(addr, "/cgi-bin/garbage")),
        Kind::HugeHead => status_of(&get(addr, "/cgi-bin/huge")),
        Kind::LeavesChild => status_of(&get(addr, "/cgi-bin/leaves-child")),
        Kind::IgnoresTerm => status_of(&get(addr, "/cgi-bin/ignores-term")),
        Kind::Hangs => status_of(&get(addr, "/cgi-bin/hangs")),
        Kind::Slowloris => {
            let mut stream = connect(addr);
            let _ = stream.write_all(b"GET /cgi-bin/hello HTTP/1.1\r\nHost: so");
            let (closed, sent) = closed_by_server(&mut stream);
            assert!(closed, "a slowloris connection stayed open");
            status_of(&sent)
        }
        Kind::DisconnectMidBody => {
            let mut stream = connect(addr);
            let _ = stream.write_all(
                b"POST /cgi-bin/echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n",
            );
            let _ = stream.write_all(&[b'x'; 1000]);
            0
        }
        Kind::TrickledUpload => {
            let mut stream = connect(addr);
            let _ = stream.write_all(
                b"POST /cgi-bin/echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 10\r\n\r\n",
            );
            for _ in 0..3 {
                let _ = stream.write_all(b"t");
                std::thread::sleep(Duration::from_millis(100));
            }
            0
        }
    }
}

#[test]
fn thousands_of_hostile_requests_leave_no_descriptor_and_no_process_behind() {
    let dir = TempDir::new("soak");
    dir.file("index.html", "static file\n");
    dir.script(
        "cgi-bin/hello",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello'\n",
    );
    dir.script(
        "cgi-bin/echo",
        "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\n\\n'\nexec cat\n",
    );
    dir.script("cgi-bin/garbage", "#!/bin/sh\necho 'no head at all'\n");
    dir.script(
        "cgi-bin/huge",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\nX-Huge: '\nhead -c 200000 /dev/zero | tr '\\0' a\nprintf '\\n\\nbody'\n",
    );
    // Exits at once, leaving a child that holds its stdout and stderr.
    dir.script(
        "cgi-bin/leaves-child",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nbye'\nsleep 300 &\n",
    );
    dir.script(
        "cgi-bin/ignores-term",
        "#!/bin/sh\ntrap '' TERM\nsleep 300 &\nwait\nwait\n",
    );
    dir.script("cgi-bin/hangs", "#!/bin/sh\nexec sleep 300\n");

    let server = Towergate::start(
        dir.path(),
        &[
            "--timeout",
            "2",
            "--max-processes",
            "16",
            "--max-connections",
            "64",
            "--header-timeout",
            "1",
            "--idle-timeout",
            "1",
        ],
    );
    let addr = server.addr;
    // Warm up (the runtime's lazily opened descriptors), then take the baseline.
    for path in ["/index.html", "/cgi-bin/hello", "/cgi-bin/garbage"] {
        let _ = get(addr, path);
    }
    assert!(eventually(|| server.programs().is_empty()));
    let baseline = server.open_fds();

    let next = Arc::new(AtomicUsize::new(0));
    let seen: Arc<Mutex<BTreeMap<(Kind, u16), usize>>> = Arc::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let next = next.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= REQUESTS {
                        break;
                    }
                    let status = run(addr, i);
                    *seen.lock().unwrap().entry((kind(i), status)).or_default() += 1;
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client failed");
    }
    let seen = seen.lock().unwrap().clone();
    let count = |kind: Kind, status: u16| seen.get(&(kind, status)).copied().unwrap_or(0);
    let total = |kind: Kind| {
        seen.iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, n)| n)
            .sum::<usize>()
    };

    // Every answer is one the kind allows (503: no process slot in time, under load).
    for &(kind, status) in seen.keys() {
        let allowed: &[u16] = match kind {
            Kind::Hello | Kind::LeavesChild => &[200, 503],
            Kind::StaticKeepAlive => &[200],
            Kind::GarbageHead | Kind::HugeHead => &[502, 503],
            Kind::IgnoresTerm | Kind::Hangs => &[504, 503],
            Kind::Slowloris => &[0, 408],
            Kind::DisconnectMidBody | Kind::TrickledUpload => &[0],
        };
        assert!(allowed.contains(&status), "{kind:?} got {status}: {seen:?}");
    }
    assert!(count(Kind::Hello, 200) > total(Kind::Hello) / 2, "{seen:?}");
    assert!(count(Kind::GarbageHead, 502) > 0, "{seen:?}");
    assert!(count(Kind::HugeHead, 502) > 0, "{seen:?}");
    assert!(count(Kind::Hangs, 504) > 0, "{seen:?}");

    // The server's descriptors and the process table return to where they started.
    let drained = eventually(|| server.open_fds() <= baseline && server.programs().is_empty());
    let fds = server.open_fds();
    let left = server.programs();
    let mut left_fds = String::new();
    if !drained {
        for entry in std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(target) = std::fs::read_link(entry.path()) {
                left_fds.push_str(&format!("{} ", target.display()));
            }
        }
    }
    assert!(
        drained,
        "descriptors {fds} (baseline {baseline}): {left_fds}; programs left: {left:?}; {seen:?}"
    );
    let children = towergate_support::children_of(server.pid());
    assert!(children.is_empty(), "children of the server: {children:?}");

    let (status, log) = server.stop();
    assert!(status.success(), "{status}");
    assert!(!log.contains("panicked"), "{log}");
    let mut response = Vec::new();
    let _ = std::net::TcpStream::connect(addr).map(|mut s| s.read_to_end(&mut response));
    assert!(response.is_empty());
}
