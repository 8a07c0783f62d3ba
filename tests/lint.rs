//! `LintLayer` in a `ServiceBuilder`: responses of any tower service checked against HTTP's
//! rules (errors before the head become a 500, after it a body error), and gateway apps
//! checked the way `wsgiref.validate` checks them.
#![cfg(feature = "gateway")]

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::stream;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use tower::{Layer, ServiceBuilder, ServiceExt};
use towergate::gateway::{AppBody, StartResponse, app_fn};
use towergate::lint::{LintLayer, Violation};
use towergate::service::AppService;
use towergate::{BoxError, Environ};

type Chunks = StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// A body of `chunks`, with no size hint.
fn streamed(chunks: &[&'static str]) -> Chunks {
    let frames: Vec<_> = chunks
        .iter()
        .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
        .collect();
    StreamBody::new(stream::iter(frames))
}

/// The response `respond()` makes, to a `method` request, through the lint.
async fn linted<B>(
    method: Method,
    respond: impl Fn() -> Response<B> + Clone + Send + 'static,
) -> Response<towergate::lint::ResponseBody<B>>
where
    B: http_body::Body + Send + 'static,
{
    let service =
        ServiceBuilder::new()
            .layer(LintLayer::new())
            .service_fn(move |_request: Request<()>| {
                let respond = respond.clone();
                async move { Ok::<_, Infallible>(respond()) }
            });
    let request = Request::builder().method(method).body(()).unwrap();
    service.oneshot(request).await.unwrap()
}

fn rule<B>(response: &Response<B>) -> Option<&'static str> {
    response
        .extensions()
        .get::<Violation>()
        .map(Violation::rule)
}

/// Asserts the response was replaced before its head for breaking `expected`.
async fn assert_refused<B>(response: Response<towergate::lint::ResponseBody<B>>, expected: &str)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(rule(&response), Some(expected));
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.starts_with(&format!("lint: {expected}: ")), "{text}");
}

/// The body's frames until it ends or fails: the data, and the error's text if it failed.
async fn drain<B>(body: B) -> (Vec<u8>, Option<String>)
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut body = body;
    let mut data = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(chunk) = frame.data_ref() {
                    data.extend_from_slice(chunk);
                }
            }
            Err(e) => return (data, Some(e.to_string())),
        }
    }
    (data, None)
}

#[tokio::test]
async fn a_conforming_response_passes_untouched() {
    let response = linted(Method::GET, || {
        Response::builder()
            .header("content-type", "text/plain")
            .header("content-length", "5")
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .body(streamed(&["he", "llo"]))
            .unwrap()
    })
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(rule(&response), None);
    assert_eq!(response.headers().get_all("set-cookie").iter().count(), 2);
    assert_eq!(drain(response.into_body()).await, (b"hello".to_vec(), None));

    // HEAD with the GET's Content-Length and no body; 304 likewise.
    let response = linted(Method::HEAD, || {
        Response::builder()
            .header("content-length", "5")
            .body(Empty::<Bytes>::new())
            .unwrap()
    })
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(drain(response.into_body()).await, (Vec::new(), None));
    let response = linted(Method::GET, || {
        Response::builder()
            .status(304)
            .header("content-length", "5")
            .body(Empty::<Bytes>::new())
            .unwrap()
    })
    .await;
    assert_eq!(response.status(), 304);
}

#[tokio::test]
async fn hop_by_hop_headers_are_refused() {
    for name in [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "te",
    ] {
        let response = linted(Method::GET, move || {
            Response::builder()
                .header(name, "x")
                .body(Full::new(Bytes::from("hi")))
                .unwrap()
        })
        .await;
        assert_refused(response, "response.hop-by-hop").await;
    }
    // ... except a 101's Connection and Upgrade.
    let response = linted(Method::GET, || {
        Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Empty::<Bytes>::new())
            .unwrap()
    })
    .await;
    assert_eq!(response.status(), 101);
}

#[tokio::test]
async fn informational_final_statuses_and_statuses_past_599_are_refused() {
    for status in [100, 103, 600, 999] {
        let response = linted(Method::GET, move || {
            Response::builder()
                .status(status)
                .body(Empty::<Bytes>::new())
                .unwrap()
        })
        .await;
        assert_refused(response, "response.status").await;
    }
}

#[tokio::test]
async fn content_length_must_be_a_number_agree_and_match_a_known_body() {
    let cases: [(&[&str], &str); 4] = [
        (&["abc"], "hello"),
        (&["5", "6"], "hello"),
        (&["+5"], "hello"),
        (&["4"], "hello"),
    ];
    for (lengths, body) in cases {
        let response = linted(Method::GET, move || {
            let mut builder = Response::builder();
            for length in lengths {
                builder = builder.header("content-length", *length);
            }
            builder.body(Full::new(Bytes::from(body))).unwrap()
        })
        .await;
        assert_refused(response, "response.content-length").await;
    }
    // Repeated equal values are fine.
    let response = linted(Method::GET, || {
        Response::builder()
            .header("content-length", "5")
            .header("content-length", "5")
            .body(Full::new(Bytes::from("hello")))
            .unwrap()
    })
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn content_length_on_204_is_refused() {
    let response = linted(Method::GET, || {
        Response::builder()
            .status(204)
            .header("content-length", "0")
            .body(Empty::<Bytes>::new())
            .unwrap()
    })
    .await;
    assert_refused(response, "response.content-length").await;
}

#[tokio::test]
async fn a_known_body_on_head_204_or_304_is_refused_before_the_head() {
    for (method, status) in [(Method::HEAD, 200), (Method::GET, 204), (Method::GET, 304)] {
        let response = linted(method, move || {
            Response::builder()
                .status(status)
                .body(Full::new(Bytes::from("body")))
                .unwrap()
        })
        .await;
        assert_refused(response, "response.no-body").await;
    }
}

#[tokio::test]
async fn a_streamed_body_that_breaks_a_rule_ends_with_an_error() {
    // Longer than its Content-Length: the data up to the excess chunk, then the error.
    let response = linted(Method::GET, || {
        Response::builder()
            .header("content-length", "3")
            .body(streamed(&["ab", "cd"]))
            .unwrap()
    })
    .await;
    assert_eq!(response.status(), 200);
    let (data, error) = drain(response.into_body()).await;
    assert_eq!(data, b"ab");
    let error = error.expect("a body error");
    assert!(
        error.starts_with("lint: response.content-length: "),
        "{error}"
    );

    // Shorter.
    let response = linted(Method::GET, || {
        Response::builder()
            .header("content-length", "9")
            .body(streamed(&["ab", "cd"]))
            .unwrap()
    })
    .await;
    let (data, error) = drain(response.into_body()).await;
    assert_eq!(data, b"abcd");
    assert!(error.unwrap().contains("short of its Content-Length 9"));

    // Data on a HEAD response.
    let response = linted(Method::HEAD, || {
        Response::builder().body(streamed(&["", "x"])).unwrap()
    })
    .await;
    let (data, error) = drain(response.into_body()).await;
    assert_eq!(data, b"");
    assert!(error.unwrap().starts_with("lint: response.no-body: "));
}

#[tokio::test]
async fn the_layer_over_a_gateway_app_checks_it_like_wsgiref_validate() {
    let environ = || {
        Environ::from_vars([
            ("REQUEST_METHOD", "GET"),
            ("SERVER_NAME", "localhost"),
            ("SERVER_PORT", "80"),
            ("SCRIPT_NAME", ""),
            ("PATH_INFO", "/"),
            ("QUERY_STRING", ""),
        ])
    };
    let without_content_type = LintLayer::new().layer(app_fn(
        |_environ: Environ, start_response: StartResponse| async move {
            start_response.start("200 OK", Vec::<(String, String)>::new())?;
            Ok::<_, BoxError>(AppBody::from("hi"))
        },
    ));
    let mut handler = towergate::handler::SimpleHandler::base_cgi(Vec::new(), environ());
    handler.run(&without_content_type).await.unwrap();
    assert!(
        handler
            .transport()
            .starts_with(b"Status: 500 Internal Server Error\r\n")
    );

    // Through AppService and the response lint as well: one ServiceBuilder.
    let good = LintLayer::new().layer(app_fn(
        |_environ: Environ, start_response: StartResponse| async move {
            start_response.start("200 OK", [("Content-Type", "text/plain")])?;
            Ok::<_, BoxError>(AppBody::from("hi"))
        },
    ));
    let service = ServiceBuilder::new()
        .layer(LintLayer::new())
        .service(AppService::new(good));
    let request = Request::get("/")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(rule(&response), None);
    assert_eq!(drain(response.into_body()).await, (b"hi".to_vec(), None));
}
