//! A tiny local HTTP target for the newcomer demo (`scripts/demo.sh`), so
//! examples/checks.yaml has something to watch offline:
//!
//! | path | answer |
//! |---|---|
//! | `/` | 200, a page that says Welcome |
//! | `/health` | 200, `{"status":"UP","version":"v1"}` |
//! | `/slow` | 200 after 3 s |
//! | `/status/<code>` | that status |
//! | `/redirect` | 302 to `/` |
//!
//! `cargo run --example demo_target [ADDR]` (default 127.0.0.1:18080).

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};

pub async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let (status, body, location) = match path.as_str() {
        "/" => (200, "<html><body><h1>Welcome to the demo target</h1></body></html>".to_string(), None),
        "/health" => (200, r#"{"status":"UP","version":"v1"}"#.to_string(), None),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (200, "finally".to_string(), None)
        }
        "/redirect" => (302, String::new(), Some("/")),
        p if p.starts_with("/status/") => {
            let code = p.trim_start_matches("/status/").parse().unwrap_or(500);
            (code, format!("status {code}"), None)
        }
        _ => (404, "not found".to_string(), None),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(location) = location {
        response
            .headers_mut()
            .insert(hyper::header::LOCATION, hyper::header::HeaderValue::from_static(location));
    }
    Ok(response)
}

/// Serves [`answer`] on `listener` forever (the tests run it in process).
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

#[allow(dead_code)] // the tests include this file as a module and use `serve`
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18080".to_string());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("demo target listening on http://{addr}");
    serve(listener).await
}
