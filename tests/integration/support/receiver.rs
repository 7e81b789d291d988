//! A local notification receiver: records every request (path, headers,
//! JSON body) and answers by path as the test says: always 200, fail the
//! first N times, always fail, or hold the first request open forever (a
//! receiver that never answers, so the sender is caught mid-send). It also
//! counts the TCP connections it accepts, so a test can tell "never
//! connected to" from "connected, but sent nothing".

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// 200 (202 for paths containing "pagerduty", as PagerDuty answers).
    Ok,
    /// 500 for the first `n` requests, then 200.
    FailFirst(usize),
    /// Always 500.
    AlwaysFail,
    /// The first request is never answered; later ones get 200.
    HoldFirst,
    /// 200 after a delay (milliseconds).
    Slow(u64),
}

#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub raw: Vec<u8>,
    pub body: serde_json::Value,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    modes: Arc<Mutex<HashMap<String, Mode>>>,
    /// TCP connections accepted so far.
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let modes: Arc<Mutex<HashMap<String, Mode>>> = Arc::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let task = {
            let (requests, modes, connections) = (requests.clone(), modes.clone(), connections.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (requests, modes) = (requests.clone(), modes.clone());
                    tokio::spawn(async move {
                        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            let (requests, modes) = (requests.clone(), modes.clone());
                            async move {
                                let path = req.uri().path().to_string();
                                let headers = req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                                    })
                                    .collect();
                                let raw = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes().to_vec())
                                    .unwrap_or_default();
                                let body = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
                                let seen = {
                                    let mut all = requests.lock().unwrap();
                                    all.push(Request { path: path.clone(), headers, raw, body });
                                    all.iter().filter(|r| r.path == path).count()
                                };
                                let mode = modes.lock().unwrap().get(&path).copied().unwrap_or(Mode::Ok);
                                let status = match mode {
                                    Mode::Ok => 200,
                                    Mode::FailFirst(n) if seen <= n => 500,
                                    Mode::FailFirst(_) => 200,
                                    Mode::AlwaysFail => 500,
                                    Mode::HoldFirst if seen == 1 => {
                                        std::future::pending::<()>().await;
                                        500
                                    }
                                    Mode::HoldFirst => 200,
                                    Mode::Slow(ms) => {
                                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                                        200
                                    }
                                };
                                let status =
                                    if status == 200 && path.contains("pagerduty") { 202 } else { status };
                                let mut response =
                                    Response::new(Full::new(Bytes::from_static(b"{\"status\":\"ok\"}")));
                                *response.status_mut() =
                                    StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
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
        Receiver { addr, requests, modes, connections, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, path: &str, mode: Mode) {
        self.modes.lock().unwrap().insert(path.to_string(), mode);
    }

    /// Every request to `path`, in arrival order.
    pub fn at(&self, path: &str) -> Vec<Request> {
        self.requests.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    /// TCP connections accepted so far, whether or not a request followed.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn all(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
