//! `MountLayer` in memory: the request it hands the service is the one `cgi::run` builds from
//! the same request's environ, and requests outside the prefix never reach the service.

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceExt};
use towergate::Environ;
use towergate::environ::EnvironBuilder;
use towergate::ext::{
    ConnectInfo, FullUri, Https, PathInfo, RemoteAddr, RemotePort, RequestExt, RequestUri,
    ScriptName, ServerName, ServerPort,
};
use towergate::layer::MountLayer;

/// A service that returns the request it was given as the response's extension.
fn echo_request()
-> impl tower::Service<Request<()>, Response = Response<String>, Error = Infallible, Future = impl Send>
+ Clone {
    tower::service_fn(|request: Request<()>| async move {
        let (parts, ()) = request.into_parts();
        let mut response = Response::new(String::new());
        response.extensions_mut().insert(parts);
        Ok::<_, Infallible>(response)
    })
}

async fn seen(layer: MountLayer, request: Request<()>) -> http::request::Parts {
    let response = layer.layer(echo_request()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    response
        .extensions()
        .get::<http::request::Parts>()
        .cloned()
        .expect("the service was called")
}

fn connected(mut request: Request<()>) -> Request<()> {
    request.extensions_mut().insert(ConnectInfo {
        remote: "192.0.2.7:50123".parse().unwrap(),
        local: Some("198.51.100.1:8443".parse().unwrap()),
    });
    request
}

#[tokio::test]
async fn the_service_sees_what_a_cgi_program_sees() {
    let request = || {
        connected(
            Request::get("/my%20app/a%2Fb/c?x=1&y=%41")
                .header("host", "example.com:8080")
                .header("x-custom", "1")
                .body(())
                .unwrap(),
        )
    };
    let parts = seen(MountLayer::new("/my app/"), request()).await;

    // What cgi::run would build from the environ a web server gives the same request.
    let builder = EnvironBuilder::new().script_name("/my app");
    let cgi = builder.build(&request()).into_request().unwrap();

    assert_eq!(parts.uri, "/a%2Fb/c?x=1&y=%41");
    assert_eq!(parts.uri, *cgi.uri());
    assert_eq!(parts.script_name(), "/my app");
    assert_eq!(parts.path_info(), "/a/b/c");
    assert_eq!(parts.full_uri().unwrap(), "/my%20app/a%2Fb/c?x=1&y=%41");
    assert_eq!(parts.remote_addr().unwrap(), "192.0.2.7");
    assert_eq!(parts.remote_port(), Some(50123));
    assert_eq!(parts.server_name().unwrap(), "example.com");
    assert_eq!(parts.server_port(), Some(8080));
    assert!(!parts.is_https());
    let e = &parts.extensions;
    let c = cgi.extensions();
    assert_eq!(e.get::<ScriptName>(), c.get::<ScriptName>());
    assert_eq!(e.get::<PathInfo>(), c.get::<PathInfo>());
    assert_eq!(e.get::<RemoteAddr>(), c.get::<RemoteAddr>());
    assert_eq!(e.get::<RemotePort>(), c.get::<RemotePort>());
    assert_eq!(e.get::<ServerName>(), c.get::<ServerName>());
    assert_eq!(e.get::<ServerPort>(), c.get::<ServerPort>());
    assert_eq!(e.get::<Https>(), c.get::<Https>());
    assert_eq!(e.get::<RequestUri>(), c.get::<RequestUri>());
    assert_eq!(e.get::<FullUri>(), c.get::<FullUri>());
    let environ = e.get::<Environ>().unwrap();
    let cgi_environ = c.get::<Environ>().unwrap();
    assert!(environ.iter().eq(cgi_environ.iter()));
    assert_eq!(environ.get("SCRIPT_NAME"), Some(&b"/my app"[..]));
    assert!(environ.multithread() && !environ.multiprocess() && !environ.run_once());
    // The headers are the client's own.
    assert_eq!(parts.headers["x-custom"], "1");
    assert_eq!(parts.headers["host"], "example.com:8080");
}

#[tokio::test]
async fn the_mount_point_itself_is_the_apps_root() {
    for target in ["/app", "/app/", "/app?q=1", "/%61pp/"] {
        let parts = seen(
            MountLayer::new("/app"),
            Request::get(target).body(()).unwrap(),
        )
        .await;
        assert_eq!(parts.uri.path(), "/", "{target}");
        assert_eq!(parts.script_name(), "/app");
    }
}

#[tokio::test]
async fn full_path_keeps_the_prefix_in_the_uri() {
    let layer = MountLayer::new("/app").full_path(true);
    let parts = seen(layer, Request::get("/app/a?b").body(()).unwrap()).await;
    assert_eq!(parts.uri, "/app/a?b");
    assert_eq!(parts.path_info(), "/a");
}

#[tokio::test]
async fn at_the_root_every_request_is_inside() {
    let parts = seen(MountLayer::root(), Request::get("/x/y").body(()).unwrap()).await;
    assert_eq!(parts.uri, "/x/y");
    assert_eq!(parts.script_name(), "");
    assert_eq!(parts.path_info(), "/x/y");
}

#[tokio::test]
async fn the_environ_builder_settings_apply() {
    let layer = MountLayer::new("/app").environ(
        EnvironBuilder::new()
            .script_name("/ignored")
            .https(true)
            .server_software("test/1"),
    );
    let parts = seen(layer, Request::get("/app/a").body(()).unwrap()).await;
    assert!(parts.is_https());
    assert_eq!(parts.script_name(), "/app");
    let environ = parts.environ().unwrap();
    assert_eq!(environ.get("SERVER_SOFTWARE"), Some(&b"test/1"[..]));
    assert_eq!(environ.get("SERVER_PORT"), Some(&b"443"[..]));
}

#[tokio::test]
async fn a_request_outside_the_prefix_is_404_and_never_reaches_the_service() {
    let service = MountLayer::new("/app").layer(tower::service_fn(|_: Request<()>| async {
        panic!("the service must not be called");
        #[allow(unreachable_code)]
        Ok::<Response<String>, Infallible>(Response::new(String::new()))
    }));
    for target in ["/", "/application", "/ap", "/other/app", "/%61pplication"] {
        let response = service
            .clone()
            .oneshot(Request::get(target).body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{target}");
        assert!(response.body().is_empty());
    }
}
