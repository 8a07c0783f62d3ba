//! The gateway app of the examples (`gateway_cgi`, `gateway_hyper`, `demo`): one path per
//! behaviour of the gateway contract. It dispatches on `PATH_INFO` only, so it works mounted
//! under any `SCRIPT_NAME`.
#![allow(dead_code, unreachable_pub)]

use bytes::Bytes;
use http_body::Frame;
use http_body_util::StreamBody;
use towergate::gateway::{App, AppBody, StartResponse, app_fn};
use towergate::{BoxError, Environ};

const TEXT: [(&str, &str); 1] = [("Content-Type", "text/plain")];

/// The app: see `DESIGN.md` ("examples/gateway_cgi.rs") for what each path does.
pub fn app() -> impl App<Body = AppBody, Future: Send + 'static> + Clone + Send + Sync + 'static {
    app_fn(
        |environ: Environ, start_response: StartResponse| async move {
            let path = environ.get("PATH_INFO").unwrap_or_default().to_vec();
            route(&path, environ, start_response).await
        },
    )
}

async fn route(
    path: &[u8],
    environ: Environ,
    start_response: StartResponse,
) -> Result<AppBody, BoxError> {
    match path {
        b"/hello" => {
            start_response.start("200 OK", TEXT)?;
            Ok(AppBody::from("Hello, world!"))
        }
        b"/chunks" => {
            start_response.start("200 OK", TEXT)?;
            Ok(AppBody::chunks(["ab", "cd"]))
        }
        b"/empty" => {
            start_response.start("200 OK", TEXT)?;
            Ok(AppBody::empty())
        }
        b"/write" => {
            let write = start_response.start("200 OK", TEXT)?;
            write.write("via-write")?;
            Ok(AppBody::from("+iter"))
        }
        b"/start-twice" => {
            start_response.start("200 OK", TEXT)?;
            start_response.start("200 OK", TEXT)?;
            Ok(AppBody::from("unreachable"))
        }
        b"/hop" => {
            start_response.start(
                "200 OK",
                [("Content-Type", "text/plain"), ("Connection", "close")],
            )?;
            Ok(AppBody::from("unreachable"))
        }
        b"/bad-status" => {
            start_response.start("20 OK", TEXT)?;
            Ok(AppBody::from("unreachable"))
        }
        b"/error-before-output" => {
            start_response.start("200 OK", TEXT)?;
            Err("error before output".into())
        }
        b"/error-after-output" => {
            start_response.start("200 OK", TEXT)?;
            let chunks: [Result<Frame<Bytes>, BoxError>; 2] = [
                Ok(Frame::data(Bytes::from_static(b"partial"))),
                Err("error after output".into()),
            ];
            Ok(AppBody::new(StreamBody::new(futures_util::stream::iter(
                chunks,
            ))))
        }
        b"/replace" => {
            start_response.start("200 OK", TEXT)?;
            let error: BoxError = "the backend is down".into();
            start_response.start_with_error("503 Service Unavailable", TEXT, error)?;
            Ok(AppBody::from("Service Unavailable"))
        }
        b"/panic" => panic!("the app panicked"),
        b"/sleep" => {
            // Needs the runtime's timer.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            start_response.start("200 OK", TEXT)?;
            Ok(AppBody::from("slept"))
        }
        b"/echo" => {
            let body = environ.input().read_to_end().await?;
            start_response.start("200 OK", TEXT)?;
            Ok(AppBody::from(body))
        }
        b"/no-start" => Ok(AppBody::from("a body without start_response")),
        b"/environ" => {
            start_response.start("200 OK", TEXT)?;
            let mut lines: Vec<String> = environ
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        String::from_utf8_lossy(k),
                        String::from_utf8_lossy(v)
                    )
                })
                .collect();
            lines.extend(
                environ
                    .gateway_keys()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}")),
            );
            lines.push(format!("wsgi.file_wrapper={}", environ.file_wrapper()));
            lines.sort();
            let mut body = lines.join("\n");
            body.push('\n');
            Ok(AppBody::from(body))
        }
        b"/file" => {
            let Some(name) = environ.get_str("FILE") else {
                start_response.start("404 Not Found", TEXT)?;
                return Ok(AppBody::from("no FILE meta-variable\n"));
            };
            // The environ's file wrapper: a CGI handler sends the file whole (sendfile).
            let file = environ.wrap_file(std::fs::File::open(name)?)?;
            start_response.start("200 OK", [("Content-Type", "application/octet-stream")])?;
            Ok(AppBody::from(file))
        }
        _ => {
            start_response.start("404 Not Found", TEXT)?;
            Ok(AppBody::from("Not Found\n"))
        }
    }
}
