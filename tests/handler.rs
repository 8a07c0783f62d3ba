//! The handler engine through the in-memory transport: wsgiref's behaviours (REFERENCE §4,
//! §4.6), byte for byte, and where DESIGN.md decides differently, its decision.

#[path = "support/gateway.rs"]
mod gateway_support;

use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gateway_support::{DropFlag, Tracked};
use http_body::Frame;
use http_body_util::StreamBody;
use towergate::environ::Input;
use towergate::gateway::{AppBody, Chunks, FileWrapper, StartResponse, app_fn, blocking_app_fn};
use towergate::handler::{CgiHandler, Handler, SimpleHandler, Transport};
use towergate::lint::Lint;
use towergate::{BoxError, Environ};

const TEXT: [(&str, &str); 1] = [("Content-Type", "text/plain")];
const ERROR_PAGE: &str = "Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 59\r\n\r\nA server error occurred.  Please contact the administrator.";

fn environ() -> Environ {
    Environ::from_vars([
        ("REQUEST_METHOD", "GET"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", "/"),
        ("QUERY_STRING", ""),
    ])
}

/// Runs `app` with a CGI head over `environ`, returning the output as text.
async fn cgi<A>(app: A, environ: Environ) -> (String, Result<(), towergate::handler::Error>)
where
    A: towergate::gateway::App,
    A::Body: 'static,
{
    let mut handler = SimpleHandler::base_cgi(Vec::new(), environ);
    let result = handler.run(&app).await;
    (String::from_utf8(handler.into_transport()).unwrap(), result)
}

fn chunks_app(
    status: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    chunks: Vec<&'static str>,
) -> impl towergate::gateway::App<Body = AppBody> {
    app_fn(move |_environ, start_response: StartResponse| {
        let headers = headers.clone();
        let chunks = chunks.clone();
        async move {
            start_response.start(status, headers)?;
            Ok::<_, BoxError>(AppBody::chunks(chunks))
        }
    })
}

#[tokio::test]
async fn empty_first_chunk_does_not_send_the_head() {
    // wsgiref sends the head on the empty first item; PEP 3333 and DESIGN.md wait for the
    // first non-empty chunk, and the body is then whole: it gets a length.
    let (out, result) = cgi(
        chunks_app("200 OK", TEXT.to_vec(), vec!["", "abc"]),
        environ(),
    )
    .await;
    assert_eq!(
        out,
        "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc"
    );
    assert!(result.is_ok());
}

#[tokio::test]
async fn one_empty_chunk_gives_content_length_zero() {
    let (out, _) = cgi(chunks_app("200 OK", vec![], vec![""]), environ()).await;
    assert_eq!(out, "Status: 200 OK\r\nContent-Length: 0\r\n\r\n");
}

#[tokio::test]
async fn two_chunks_get_no_length() {
    let (out, _) = cgi(chunks_app("200 OK", vec![], vec!["ab", "cd"]), environ()).await;
    assert_eq!(
        out,
        "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nabcd"
    );
}

#[tokio::test]
async fn streamed_chunks_get_no_length() {
    let app = app_fn(|_environ, start_response: StartResponse| async move {
        start_response.start("200 OK", TEXT)?;
        let frames = [
            Ok::<_, BoxError>(Frame::data(Bytes::from("a"))),
            Ok(Frame::data(Bytes::from("b"))),
        ];
        Ok::<_, BoxError>(AppBody::new(StreamBody::new(futures_util::stream::iter(
            frames,
        ))))
    });
    let (out, _) = cgi(app, environ()).await;
    assert_eq!(out, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nab");
}

#[tokio::test]
async fn app_content_length_is_sent_as_is() {
    let app = chunks_app("200 OK", vec![("Content-Length", "10")], vec!["ab"]);
    let (out, _) = cgi(app, environ()).await;
    assert_eq!(
        out,
        "Status: 200 OK\r\nContent-Length: 10\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nab"
    );
}

#[tokio::test]
async fn no_content_gets_neither_length_nor_body() {
    // wsgiref adds `Content-Length: 0` to a 204; DESIGN.md: 1xx/204/304 get none.
    let (out, _) = cgi(
        chunks_app("204 No Content", vec![], vec!["ignored"]),
        environ(),
    )
    .await;
    assert_eq!(out, "Status: 204 No Content\r\n\r\n");
}

#[tokio::test]
async fn swallowed_bad_status_still_fails_the_response() {
    let app = app_fn(|_environ, start_response: StartResponse| async move {
        let _ = start_response.start("200", TEXT);
        Ok::<_, BoxError>(AppBody::from("x"))
    });
    let (out, result) = cgi(app, environ()).await;
    assert_eq!(out, ERROR_PAGE);
    assert!(result.is_ok());
}

#[tokio::test]
async fn a_call_after_a_failed_call_without_an_error_is_fatal() {
    let app = app_fn(|_environ, start_response: StartResponse| async move {
        let _ = start_response.start("20 OK", TEXT);
        let second = start_response.start("200 OK", TEXT).unwrap_err();
        assert_eq!(
            second.to_string(),
            "start_response: called twice without an error (headers already set)"
        );
        Ok::<_, BoxError>(AppBody::from("x"))
    });
    assert_eq!(cgi(app, environ()).await.0, ERROR_PAGE);
}

/// A body that yields `partial`, then calls `start_response` with its error, which re-raises.
struct Reraise {
    start_response: StartResponse,
    step: u8,
}

impl http_body::Body for Reraise {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.step += 1;
        std::task::Poll::Ready(match self.step {
            1 => Some(Ok(Frame::data(Bytes::from("partial")))),
            2 => {
                let error: BoxError = "late failure".into();
                let raised = self
                    .start_response
                    .start_with_error("500 Oops", TEXT, error)
                    .unwrap_err();
                Some(Err(raised))
            }
            _ => None,
        })
    }
}

#[tokio::test]
async fn start_response_with_an_error_after_output_reraises_it() {
    let app = app_fn(|_environ, start_response: StartResponse| async move {
        start_response.start("200 OK", Vec::<(&str, &str)>::new())?;
        Ok::<_, BoxError>(Reraise {
            start_response,
            step: 0,
        })
    });
    let (out, result) = cgi(app, environ()).await;
    assert_eq!(
        out,
        "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\npartial"
    );
    let err = result.unwrap_err();
    assert!(err.is_app());
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "late failure"
    );
}

#[tokio::test]
async fn start_response_with_an_error_before_output_replaces_the_head() {
    let app = app_fn(|_environ, start_response: StartResponse| async move {
        start_response.start("200 OK", TEXT)?;
        let error: BoxError = "oops".into();
        start_response.start_with_error("500 Oops", TEXT, error)?;
        Ok::<_, BoxError>(AppBody::from("oops"))
    });
    let (out, _) = cgi(app, environ()).await;
    assert_eq!(
        out,
        "Status: 500 Oops\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\noops"
    );
}

#[tokio::test]
async fn origin_server_writes_a_status_line_with_date_and_server() {
    let mut handler = SimpleHandler::new(Vec::new(), environ())
        .with_handler(Handler::simple().server_software("demo/1.0"));
    handler
        .run(&chunks_app("200 OK", TEXT.to_vec(), vec!["hi"]))
        .await
        .unwrap();
    let out = String::from_utf8(handler.into_transport()).unwrap();
    assert!(out.starts_with("HTTP/1.0 200 OK\r\nDate: "), "{out}");
    assert!(
        out.ends_with(
            " GMT\r\nServer: demo/1.0\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn origin_server_sets_server_software_in_the_environ() {
    let app = app_fn(
        |environ: Environ, start_response: StartResponse| async move {
            start_response.start("200 OK", TEXT)?;
            Ok::<_, BoxError>(AppBody::from(
                environ.get_bytes("SERVER_SOFTWARE").unwrap_or_default(),
            ))
        },
    );
    let mut handler = SimpleHandler::new(Vec::new(), environ()).with_handler(
        Handler::simple()
            .server_software("demo/1.0")
            .http_version(http::Version::HTTP_11),
    );
    handler.run(&app).await.unwrap();
    let out = String::from_utf8(handler.into_transport()).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\ndemo/1.0"), "{out}");
}

#[tokio::test]
async fn http_09_client_gets_the_body_only() {
    let mut environ = environ();
    environ.insert("SERVER_PROTOCOL", "HTTP/0.9");
    let mut handler = SimpleHandler::new(Vec::new(), environ);
    handler
        .run(&chunks_app("200 OK", TEXT.to_vec(), vec!["hi"]))
        .await
        .unwrap();
    assert_eq!(handler.transport(), b"hi");
}

#[tokio::test]
async fn head_request_gets_the_head_and_the_length_only() {
    let mut environ = environ();
    environ.insert("REQUEST_METHOD", "HEAD");
    let (out, _) = cgi(chunks_app("200 OK", TEXT.to_vec(), vec!["hello"]), environ).await;
    assert_eq!(
        out,
        "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
    );
}

#[tokio::test]
async fn custom_error_response_is_used_before_the_head() {
    let seen = Arc::new(Mutex::new(String::new()));
    let seen2 = seen.clone();
    let hook = move |error: &BoxError| {
        *seen2.lock().unwrap() = error.to_string();
        http::Response::builder()
            .status(503)
            .header("content-type", "text/plain")
            .body(Bytes::from("busy\n"))
            .unwrap()
    };
    let app = app_fn(|_environ, _start_response| async move {
        Err::<AppBody, BoxError>("database down".into())
    });
    let mut handler = SimpleHandler::base_cgi(Vec::new(), environ()).with_handler(
        Handler::base_cgi()
            .traceback_limit(Some(0))
            .with_error_response(hook),
    );
    handler.run(&app).await.unwrap();
    assert_eq!(
        handler.transport(),
        b"Status: 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nbusy\n"
    );
    assert_eq!(*seen.lock().unwrap(), "database down");
}

/// A transport whose client is gone.
struct Gone;

impl Transport for Gone {
    fn write(&mut self, _data: &[u8]) -> io::Result<()> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn body_is_dropped_on_success_error_and_disconnect() {
    for (path, gone) in [("ok", false), ("error", false), ("ok", true)] {
        let flag = DropFlag::default();
        let flag2 = flag.clone();
        let app = app_fn(move |_environ, start_response: StartResponse| {
            let flag = flag2.clone();
            async move {
                start_response.start("200 OK", TEXT)?;
                let frames: Vec<Result<Frame<Bytes>, BoxError>> = if path == "ok" {
                    vec![
                        Ok(Frame::data(Bytes::from("a"))),
                        Ok(Frame::data(Bytes::from("b"))),
                    ]
                } else {
                    vec![Ok(Frame::data(Bytes::from("a"))), Err("late".into())]
                };
                let body = StreamBody::new(futures_util::stream::iter(frames));
                Ok::<_, BoxError>(Tracked::new(body, flag))
            }
        });
        let handler = Handler::base_cgi();
        let result = if gone {
            handler.run(&app, environ(), Gone).await
        } else {
            handler.run(&app, environ(), Vec::new()).await
        };
        assert!(flag.is_set(), "{path} gone={gone}");
        match (path, gone) {
            ("ok", false) => assert!(result.is_ok()),
            ("error", _) => assert!(result.unwrap_err().is_app()),
            _ => assert!(result.unwrap_err().is_disconnect()),
        }
    }
}

#[tokio::test]
async fn blocking_app_runs_off_the_calling_thread_and_writes_first() {
    let caller = std::thread::current().id();
    let app = blocking_app_fn(move |_environ, start_response: StartResponse| {
        assert_ne!(std::thread::current().id(), caller);
        let write = start_response.start("200 OK", TEXT)?;
        write.write("a")?;
        Ok::<_, BoxError>(vec![Ok::<_, BoxError>("b"), Ok("c")])
    });
    let (out, _) = cgi(app, environ()).await;
    assert_eq!(out, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nabc");
}

#[tokio::test]
async fn blocking_app_with_one_chunk_gets_a_length() {
    let app = blocking_app_fn(|_environ, start_response: StartResponse| {
        start_response.start("200 OK", TEXT)?;
        Ok::<_, BoxError>(vec![Ok::<_, BoxError>("abc")])
    });
    let (out, _) = cgi(app, environ()).await;
    assert_eq!(
        out,
        "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc"
    );
}

#[tokio::test]
async fn blocking_app_panic_is_the_error_page() {
    let app = blocking_app_fn(
        |_environ,
         _start_response: StartResponse|
         -> Result<Vec<Result<Bytes, BoxError>>, BoxError> { panic!("blocking boom") },
    );
    assert_eq!(cgi(app, environ()).await.0, ERROR_PAGE);
}

#[tokio::test]
async fn file_wrapper_is_read_in_blocks_by_an_in_memory_transport() {
    let path = std::env::temp_dir().join(format!("towergate-handler-file-{}", std::process::id()));
    std::fs::write(&path, "x".repeat(20_000)).unwrap();
    let file_path = path.clone();
    let app = app_fn(move |_environ, start_response: StartResponse| {
        let file_path = file_path.clone();
        async move {
            start_response.start("200 OK", TEXT)?;
            let file = FileWrapper::new(std::fs::File::open(&file_path)?)?;
            Ok::<_, BoxError>(AppBody::from(file))
        }
    });
    let (out, _) = cgi(app, environ()).await;
    std::fs::remove_file(&path).unwrap();
    let head = "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 20000\r\n\r\n";
    assert!(out.starts_with(head), "{}", &out[..80]);
    assert_eq!(out.len(), head.len() + 20_000);
}

#[tokio::test]
async fn cgi_handler_reads_exactly_content_length_of_input() {
    let app = app_fn(
        |environ: Environ, start_response: StartResponse| async move {
            start_response.start("200 OK", TEXT)?;
            let line = environ.input().read_line(usize::MAX).await?;
            let rest = environ.input().read_to_end().await?;
            Ok::<_, BoxError>(AppBody::chunks([line, Bytes::from_static(b"|"), rest]))
        },
    );
    let mut environ = environ();
    environ.insert("REQUEST_METHOD", "POST");
    environ.insert("CONTENT_LENGTH", "9");
    let mut out = Vec::new();
    CgiHandler::new()
        .serve_with(
            &app,
            environ,
            io::Cursor::new(b"one\ntwo\nthree".to_vec()),
            &mut out,
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\none\n|two\nt"
    );
}

#[tokio::test]
async fn iis_handler_strips_the_repeated_script_name() {
    let app = app_fn(
        |environ: Environ, start_response: StartResponse| async move {
            start_response.start("200 OK", TEXT)?;
            Ok::<_, BoxError>(AppBody::from(
                environ.get_bytes("PATH_INFO").unwrap_or_default(),
            ))
        },
    );
    let mut environ = environ();
    environ.insert("SCRIPT_NAME", "/app.cgi");
    environ.insert("PATH_INFO", "/app.cgi/users");
    let mut out = Vec::new();
    CgiHandler::iis()
        .serve_with(&app, environ, io::empty(), &mut out)
        .await
        .unwrap();
    assert_eq!(
        out,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\n/users"
    );
}

#[tokio::test]
async fn lint_violation_names_its_rule() {
    let seen = Arc::new(Mutex::new(String::new()));
    let seen2 = seen.clone();
    let hook = move |error: &BoxError| {
        *seen2.lock().unwrap() = error.to_string();
        http::Response::new(Bytes::new())
    };
    let app = Lint::new(chunks_app("200 OK", TEXT.to_vec(), vec!["x"]));
    let mut environ = environ();
    environ.insert("SCRIPT_NAME", "/");
    let handler = Handler::base_cgi().with_error_response(hook);
    handler.run(&app, environ, Vec::new()).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        "lint: environ.script-name: SCRIPT_NAME is / (the root is the empty SCRIPT_NAME)"
    );

    // A conforming app passes.
    let (out, _) = cgi(
        Lint::new(chunks_app("200 OK", TEXT.to_vec(), vec!["x"])),
        super_environ(),
    )
    .await;
    assert_eq!(
        out,
        "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx"
    );
}

fn super_environ() -> Environ {
    environ()
}

#[tokio::test]
async fn lint_refuses_a_body_chunk_before_start_response() {
    let app = Lint::new(app_fn(
        |_environ, _start_response: StartResponse| async move {
            Ok::<_, BoxError>(Chunks::new(["early"]))
        },
    ));
    assert_eq!(cgi(app, environ()).await.0, ERROR_PAGE);
}

#[tokio::test]
async fn input_given_to_simple_handler_is_the_apps() {
    let app = app_fn(
        |environ: Environ, start_response: StartResponse| async move {
            start_response.start("200 OK", TEXT)?;
            Ok::<_, BoxError>(AppBody::from(environ.input().read_to_end().await?))
        },
    );
    let mut handler = SimpleHandler::base_cgi(Vec::new(), environ())
        .streams(Input::from_bytes("posted"), Default::default());
    handler.run(&app).await.unwrap();
    assert_eq!(
        handler.transport(),
        b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nposted"
    );
}

#[tokio::test]
async fn blocking_app_start_response_with_an_error_after_output_reraises() {
    let app = blocking_app_fn(|_environ, start_response: StartResponse| {
        let write = start_response.start("200 OK", TEXT)?;
        write.write("partial")?;
        let error: BoxError = "late".into();
        let back = start_response
            .start_with_error("500 Oops", TEXT, error)
            .unwrap_err();
        Err::<Vec<Result<Bytes, BoxError>>, BoxError>(back)
    });
    let (out, result) = cgi(app, environ()).await;
    assert_eq!(
        out,
        "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\npartial"
    );
    assert!(result.unwrap_err().is_app());
}

#[tokio::test]
async fn async_write_after_the_head_is_refused() {
    let app = app_fn(|_environ, start_response: StartResponse| async move {
        let write = start_response.start("200 OK", TEXT)?;
        Ok::<_, BoxError>(Reraise2 { write, step: 0 })
    });
    let (out, result) = cgi(app, environ()).await;
    assert_eq!(
        out,
        "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst"
    );
    assert_eq!(
        std::error::Error::source(&result.unwrap_err())
            .unwrap()
            .to_string(),
        "write() after the head was sent: an async app's write() output must precede its body"
    );
}

#[tokio::test]
async fn a_write_made_while_the_first_chunk_is_produced_precedes_that_chunk() {
    let app = app_fn(|_environ, start_response: StartResponse| async move {
        let write = start_response.start("200 OK", TEXT)?;
        Ok::<_, BoxError>(WritesThenYields { write, step: 0 })
    });
    let (out, result) = cgi(app, environ()).await;
    assert_eq!(
        out,
        "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nwrittenyielded"
    );
    result.unwrap();
}

/// A body that, asked for its first chunk, writes through the writer and then yields.
struct WritesThenYields {
    write: towergate::gateway::Writer,
    step: u8,
}

impl http_body::Body for WritesThenYields {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.step += 1;
        std::task::Poll::Ready(match self.step {
            1 => Some(
                self.write
                    .write("written")
                    .map(|()| Frame::data(Bytes::from("yielded"))),
            ),
            _ => None,
        })
    }
}

/// A body that yields a chunk, then writes through the writer (not allowed for async apps).
struct Reraise2 {
    write: towergate::gateway::Writer,
    step: u8,
}

impl http_body::Body for Reraise2 {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.step += 1;
        std::task::Poll::Ready(match self.step {
            1 => Some(Ok(Frame::data(Bytes::from("first")))),
            2 => Some(
                self.write
                    .write("second")
                    .map(|()| Frame::data(Bytes::new())),
            ),
            _ => None,
        })
    }
}
