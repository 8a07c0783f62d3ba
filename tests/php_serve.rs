//! `towergate serve DIR --php ADDR` through the real CLI binary and a real php-fpm: Caddy's
//! `php_fastcgi` routing (`/d/` index, `PATH_INFO`), traversal and dotfiles refused, other
//! files served statically.
#![cfg(all(feature = "cli", feature = "fastcgi"))]

#[path = "support/php.rs"]
mod php;
mod support;
#[path = "support/towergate.rs"]
mod towergate_support;
// `support::wire`, under the name `crate::wire` that `support/towergate.rs` uses.
use support::wire;

use php::{Listen, PhpFpm};
use towergate_support::{Towergate, exchange, get};
use wire::WireResponse;

/// php-fpm on `listen` and `towergate serve ROOT --php ADDR` in front of it, with a
/// directory index, dotfiles, a file outside the root and a static file.
fn start(listen: Listen) -> (PhpFpm, Towergate) {
    let fpm = PhpFpm::start(listen, 2, 0);
    let root = fpm.root();
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::create_dir_all(root.join(".hidden")).unwrap();
    std::fs::write(root.join("d/index.php"), php::ECHO_PHP).unwrap();
    std::fs::write(root.join(".secret.php"), "<?php echo 'secret';\n").unwrap();
    std::fs::write(root.join(".hidden/x.php"), "<?php echo 'hidden';\n").unwrap();
    std::fs::write(fpm.dir.join("outside.php"), "<?php echo 'outside';\n").unwrap();
    std::fs::write(root.join("notes.txt"), "<?php not run ?>\n").unwrap();
    let server = Towergate::start(&root, &["--php", &fpm.address]);
    (fpm, server)
}

fn raw_get(server: &Towergate, target: &str) -> WireResponse {
    let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    WireResponse::parse(&exchange(server.addr, request.as_bytes()), false)
}

#[test]
fn php_files_run_through_php_fpm_as_caddy_routes_them() {
    let (fpm, server) = start(Listen::Tcp);
    let root = std::fs::canonicalize(fpm.root()).unwrap();

    let response = get(server.addr, "/hello.php");
    assert_eq!(response.status(), 200, "{}", server.log());
    assert_eq!(response.text(), "Hello, world!");

    // PATH_INFO after `.php/`, decoded; SCRIPT_FILENAME the real file.
    let response = get(server.addr, "/echo.php/a/b%20c?x=1");
    assert_eq!(response.status(), 200);
    let text = response.text();
    assert!(
        text.starts_with(&format!(
            "method=GET\nscript_name=/echo.php\nscript_filename={}/echo.php\npath_info=/a/b c\nquery=x=1\n",
            root.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("\ndocument_root={}\n", root.display())),
        "{text}"
    );

    // `/d/` runs `/d/index.php`; `/d` is redirected there first.
    let response = get(server.addr, "/d/?q=2");
    assert_eq!(response.status(), 200);
    assert!(
        response.text().starts_with(&format!(
            "method=GET\nscript_name=/d/index.php\nscript_filename={}/d/index.php\npath_info=\nquery=q=2\n",
            root.display()
        )),
        "{}",
        response.text()
    );
    let response = get(server.addr, "/d?q=2");
    assert_eq!(response.status(), 308);
    assert_eq!(response.header("location"), Some("/d/?q=2"));

    // A POST body reaches the script.
    let request = wire::post_request(server.port(), "/echo.php", "text/plain", b"posted");
    let response = WireResponse::parse(&exchange(server.addr, &request), false);
    assert_eq!(response.status(), 200);
    assert!(
        response.text().ends_with("\nbody=posted"),
        "{}",
        response.text()
    );

    // Other files are static: PHP source is never run from them.
    let response = get(server.addr, "/notes.txt");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text(), "<?php not run ?>\n");
}

#[test]
fn nothing_outside_the_directory_and_no_dotfile_runs() {
    let (fpm, server) = start(Listen::Unix);
    for target in [
        "/../outside.php",
        "/%2e%2e/outside.php",
        "/d/..%2F..%2Foutside.php",
        "/d/%2E%2E/%2E%2E/outside.php",
        "/.secret.php",
        "/%2Esecret.php",
        "/.hidden/x.php",
        "/.hidden/",
    ] {
        let response = raw_get(&server, target);
        assert_eq!(response.status(), 404, "{target}: {}", response.text());
        for secret in ["outside", "secret", "hidden"] {
            assert_ne!(response.text(), secret, "{target}");
        }
    }
    // The scripts were never asked for.
    assert!(!fpm.log().contains("outside.php"), "{}", fpm.log());
    // And php-fpm serves the rest over the Unix socket.
    assert_eq!(get(server.addr, "/hello.php").text(), "Hello, world!");
}
