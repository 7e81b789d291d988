//! A local HTTP target whose status, latency and body the test controls,
//! and which counts the requests it received.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Behavior {
    pub status: u16,
    pub delay: Duration,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior { status: 200, delay: Duration::ZERO, body: "ok".into(), headers: Vec::new() }
    }
}

pub struct TestTarget {
    pub addr: SocketAddr,
    behavior: Arc<Mutex<Behavior>>,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl TestTarget {
    pub async fn start(behavior: Behavior) -> TestTarget {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind target");
        let addr = listener.local_addr().expect("target addr");
        let behavior = Arc::new(Mutex::new(behavior));
        let requests = Arc::new(AtomicU64::new(0));
        let task = {
            let behavior = behavior.clone();
            let requests = requests.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let behavior = behavior.clone();
                    let requests = requests.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |_req| {
                            let behavior = behavior.lock().map(|b| b.clone()).unwrap_or_default();
                            requests.fetch_add(1, Ordering::SeqCst);
                            async move {
                                tokio::time::sleep(behavior.delay).await;
                                let mut response = Response::new(Full::new(Bytes::from(behavior.body)));
                                *response.status_mut() = StatusCode::from_u16(behavior.status)
                                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                                for (k, v) in behavior.headers {
                                    if let (Ok(k), Ok(v)) = (
                                        hyper::header::HeaderName::from_bytes(k.as_bytes()),
                                        hyper::header::HeaderValue::from_str(&v),
                                    ) {
                                        response.headers_mut().append(k, v);
                                    }
                                }
                                Ok::<_, Infallible>(response)
                            }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        TestTarget { addr, behavior, requests, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn set(&self, behavior: Behavior) {
        if let Ok(mut b) = self.behavior.lock() {
            *b = behavior;
        }
    }

    pub fn set_status(&self, status: u16) {
        if let Ok(mut b) = self.behavior.lock() {
            b.status = status;
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for TestTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}
