//! The one-shot HTTP exchange every outbound request makes, a check's or an
//! alert channel's: resolve, judge the addresses by the deny list, connect,
//! TLS, send one request, read the response head and the body up to a cap
//! (and, for a client with a [`BodyBudget`], within the budget it shares).
//! HTTP/1.1, or HTTP/2 when the server picks it by ALPN.
//!
//! The connection is built by hand (resolver → `TcpStream` → rustls →
//! hyper's low-level `client::conn`) instead of through a pooled client, so
//! that every phase is observed and timed on its own into a [`Progress`]
//! the caller holds: DNS, TCP connect, TLS handshake and time to the first
//! response byte. The caller owns the deadline (a check's spans every
//! redirect hop) and reads the progress after cutting an exchange short;
//! [`Client::send`] is the version with a deadline of its own. Nothing here
//! outlives the deadline: hyper's HTTP/2 tasks are spawned under it.
//!
//! It knows nothing of checks: redirects, assertions and what "up" means
//! are the caller's (`probe::http`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Version};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use url::{Host, Position, Url};

use super::auth::basic_auth;
use super::budget::BodyBudget;
use super::connect::{connect_any, describe_io, ClosingStream, ConnectError};
use super::deny::{self, DenyList};
use super::resolve;
use super::tls::{self, TlsConfigs, TlsSetupError};
use crate::model::{ErrorClass, Timings};

/// Response head size limit (status line + headers), HTTP/1 and HTTP/2.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Why an exchange failed, classed as a check result stores it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub class: ErrorClass,
    pub message: String,
}

impl Failure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Failure {
        Failure { class, message: message.into() }
    }

    /// The deadline passed during `phase`.
    pub fn timed_out(timeout: Duration, phase: Phase) -> Failure {
        Failure::new(
            ErrorClass::Timeout,
            format!("timed out after {} ms {}", timeout.as_millis(), phase.describe()),
        )
    }
}

/// No address accepted the connection.
impl From<ConnectError> for Failure {
    fn from(e: ConnectError) -> Failure {
        Failure::new(ErrorClass::Refused, e.0)
    }
}

/// Where an exchange is, for the timeout message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Dns,
    Connect,
    Tls,
    FirstByte,
    Body,
    /// A DNS check waiting for its answer.
    Query,
}

impl Phase {
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Dns => "resolving the name",
            Phase::Connect => "connecting",
            Phase::Tls => "in the TLS handshake",
            Phase::FirstByte => "waiting for the response",
            Phase::Body => "reading the body",
            Phase::Query => "waiting for the DNS answer",
        }
    }
}

/// What the exchanges observed so far; survives the deadline cutting them
/// short. Phase times are summed over the exchanges that share it.
#[derive(Debug)]
pub struct Progress {
    /// When every exchange sharing this progress must have ended.
    pub deadline: Instant,
    pub timings: Timings,
    pub phase: Phase,
    /// Status of the last response head read.
    pub status: Option<u16>,
    /// HTTP version of the last response head read.
    pub version: Option<Version>,
    /// Body bytes read of the last response.
    pub bytes_read: u64,
    /// notAfter of the last TLS peer's leaf certificate.
    pub cert_expires_at: Option<DateTime<Utc>>,
}

impl Progress {
    pub fn new(deadline: Instant) -> Progress {
        Progress {
            deadline,
            timings: Timings::default(),
            phase: Phase::Dns,
            status: None,
            version: None,
            bytes_read: 0,
            cert_expires_at: None,
        }
    }
}

/// The request of one exchange.
pub struct Outgoing<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    /// Keep the body read in memory (only when someone looks at it).
    pub keep_body: bool,
    /// Body bytes read at most; one more marks the body as too large.
    pub limit: u64,
    /// Verify the server's certificate and name.
    pub tls_verify: bool,
}

/// One exchange's response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub location: Option<String>,
    /// The body read, when `keep_body` asked for it.
    pub body: Option<Vec<u8>>,
    /// The body went on past `limit`.
    pub body_exceeded: bool,
    /// The share of the client's body budget the kept body holds; released
    /// when dropped, so the caller keeps it as long as the body.
    pub body_permit: Option<OwnedSemaphorePermit>,
}

/// Makes exchanges; cheap to share (holds the TLS configurations and the
/// deny list).
pub struct Client {
    tls: TlsConfigs,
    /// Addresses never connected to; empty is off.
    deny: DenyList,
    /// What kept bodies may hold; `None` is unbounded (alert channels
    /// keep no body).
    body_budget: Option<BodyBudget>,
}

fn add(slot: &mut Option<f64>, since: Instant) {
    let ms = since.elapsed().as_secs_f64() * 1000.0;
    *slot = Some(slot.unwrap_or(0.0) + ms);
}

/// At most `max` characters of `text` (something a peer or a check author
/// wrote), marked when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// The headers of a request: the declared ones, then `User-Agent` and
/// `Accept: */*` unless declared, then basic auth from the URL's userinfo
/// unless an `Authorization` is declared.
pub fn request_headers(
    declared: &BTreeMap<String, String>,
    user_agent: &HeaderValue,
    url: &Url,
) -> Result<HeaderMap, Failure> {
    let mut headers = HeaderMap::with_capacity(declared.len() + 3);
    for (name, value) in declared {
        // Never echo a header value: it may be a token.
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            Failure::new(ErrorClass::Protocol, format!("invalid request header name {name:?}"))
        })?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            Failure::new(ErrorClass::Protocol, format!("invalid value of request header {name}"))
        })?;
        headers.append(name, value);
    }
    if !headers.contains_key(hyper::header::USER_AGENT) {
        headers.insert(hyper::header::USER_AGENT, user_agent.clone());
    }
    if !headers.contains_key(hyper::header::ACCEPT) {
        headers.insert(hyper::header::ACCEPT, HeaderValue::from_static("*/*"));
    }
    if !headers.contains_key(hyper::header::AUTHORIZATION) {
        if let Some(value) = basic_auth(url) {
            headers.insert(hyper::header::AUTHORIZATION, value);
        }
    }
    Ok(headers)
}

impl Client {
    pub fn new(deny: DenyList) -> Result<Client, TlsSetupError> {
        Ok(Client { tls: TlsConfigs::new()?, deny, body_budget: None })
    }

    /// A client whose kept bodies share `budget`: an exchange that cannot
    /// get budget for more body bytes stops reading and fails.
    pub fn with_body_budget(deny: DenyList, budget: BodyBudget) -> Result<Client, TlsSetupError> {
        Ok(Client { tls: TlsConfigs::new()?, deny, body_budget: Some(budget) })
    }

    /// One exchange under its own deadline, `timeout` from now (what an
    /// alert channel makes; a check times several hops under one).
    pub async fn send(&self, url: &Url, out: &Outgoing<'_>, timeout: Duration) -> Result<Reply, Failure> {
        let mut progress = Progress::new(Instant::now() + timeout);
        let deadline = progress.deadline;
        match tokio::time::timeout_at(deadline, Box::pin(self.exchange(url, out, &mut progress))).await {
            Ok(result) => result,
            Err(_) => Err(Failure::timed_out(timeout, progress.phase)),
        }
    }

    /// One exchange: resolve, connect, TLS, request, response, body. The
    /// caller bounds it by `p.deadline` (connection attempts share what is
    /// left of it).
    pub async fn exchange(&self, url: &Url, out: &Outgoing<'_>, p: &mut Progress) -> Result<Reply, Failure> {
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(Failure::new(
                    ErrorClass::Protocol,
                    format!("unsupported URL scheme \"{}\"", excerpt(other, 20)),
                ))
            }
        };
        let host = url.host().ok_or_else(|| Failure::new(ErrorClass::Protocol, "URL has no host"))?;
        let port = url.port_or_known_default().unwrap_or(if https { 443 } else { 80 });

        p.phase = Phase::Dns;
        let (addresses, server_name) = match host {
            Host::Ipv4(ip) => (vec![SocketAddr::new(IpAddr::V4(ip), port)], ServerName::IpAddress(ip.into())),
            Host::Ipv6(ip) => (vec![SocketAddr::new(IpAddr::V6(ip), port)], ServerName::IpAddress(ip.into())),
            Host::Domain(name) => {
                let started = Instant::now();
                let resolved = resolve::lookup(name, port).await;
                add(&mut p.timings.dns_ms, started);
                let addresses = resolved.map_err(|e| Failure::new(ErrorClass::Dns, e.to_string()))?;
                let server_name = ServerName::try_from(name.to_string()).map_err(|_| {
                    Failure::new(ErrorClass::Protocol, format!("{name} is not a valid server name"))
                })?;
                (addresses, server_name)
            }
        };

        let addresses = self
            .deny
            .filter(addresses)
            .map_err(|(ip, range)| Failure::new(ErrorClass::Blocked, deny::blocked_message(ip, &range)))?;

        p.phase = Phase::Connect;
        let started = Instant::now();
        let stream = connect_any(&addresses, p.deadline).await;
        add(&mut p.timings.connect_ms, started);
        // No TCP_NODELAY: hyper writes a request (head and body) in one
        // writev, which Nagle never delays, so the setsockopt would be a
        // wasted system call per check.
        let stream = ClosingStream(stream?);

        if !https {
            return self.http(stream, false, url, out, p).await;
        }
        p.phase = Phase::Tls;
        let started = Instant::now();
        let config = if out.tls_verify { self.tls.verify.clone() } else { self.tls.no_verify.clone() };
        let connector = tokio_rustls::TlsConnector::from(config);
        let handshake = connector.connect(server_name, stream).await;
        add(&mut p.timings.tls_ms, started);
        let stream = handshake.map_err(|e| {
            Failure::new(ErrorClass::Tls, format!("TLS handshake failed: {}", tls::describe_error(&e)))
        })?;
        let (_, session) = stream.get_ref();
        if let Some(leaf) = session.peer_certificates().and_then(|c| c.first()) {
            p.cert_expires_at = tls::not_after(leaf);
        }
        let h2 = session.alpn_protocol() == Some(b"h2");
        self.http(stream, h2, url, out, p).await
    }

    /// The HTTP exchange on an established connection.
    async fn http<IO>(
        &self,
        io: IO,
        h2: bool,
        url: &Url,
        out: &Outgoing<'_>,
        p: &mut Progress,
    ) -> Result<Reply, Failure>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        p.phase = Phase::FirstByte;
        let request = build_request(url, out, h2)?;
        let io = TokioIo::new(io);
        if h2 {
            // hyper runs an HTTP/2 connection in tasks of its own; they must
            // not outlive the check (a peer that stops reading would keep one
            // writing forever), so they are spawned under its deadline.
            let executor = DeadlineExecutor { deadline: p.deadline + DEADLINE_GRACE };
            let (mut sender, connection) = hyper::client::conn::http2::Builder::new(executor)
                .max_header_list_size(MAX_HEADER_BYTES as u32)
                .handshake::<_, Full<Bytes>>(io)
                .await
                .map_err(|e| hyper_failure(&e))?;
            let work = async {
                let started = Instant::now();
                let response = sender.send_request(request).await.map_err(|e| hyper_failure(&e))?;
                add(&mut p.timings.first_byte_ms, started);
                read_response(response, out, self.body_budget.as_ref(), p).await
            };
            drive(connection, work).await
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
                .max_buf_size(MAX_HEADER_BYTES)
                .handshake::<_, Full<Bytes>>(io)
                .await
                .map_err(|e| hyper_failure(&e))?;
            let work = async {
                let started = Instant::now();
                let response = sender.send_request(request).await.map_err(|e| hyper_failure(&e))?;
                add(&mut p.timings.first_byte_ms, started);
                read_response(response, out, self.body_budget.as_ref(), p).await
            };
            drive(connection, work).await
        }
    }
}

fn build_request(url: &Url, out: &Outgoing<'_>, h2: bool) -> Result<Request<Full<Bytes>>, Failure> {
    fn invalid<E>(_: E) -> Failure {
        Failure::new(ErrorClass::Protocol, "cannot build the request from the URL")
    }
    let mut builder = Request::builder().method(out.method.clone());
    if h2 {
        // HTTP/2 takes :scheme and :authority from an absolute URI.
        // Without the userinfo: credentials travel as Authorization only.
        let uri = format!(
            "{}://{}{}",
            url.scheme(),
            &url[Position::BeforeHost..Position::AfterPort],
            &url[Position::BeforePath..Position::AfterQuery]
        );
        builder = builder.uri(uri).version(Version::HTTP_2);
    } else {
        let path = &url[Position::BeforePath..Position::AfterQuery];
        builder = builder.uri(if path.is_empty() { "/" } else { path });
        // A Host header in the spec wins (checking one virtual host by IP).
        if !out.headers.contains_key(hyper::header::HOST) {
            let authority = &url[Position::BeforeHost..Position::AfterPort];
            builder = builder.header(hyper::header::HOST, HeaderValue::from_str(authority).map_err(invalid)?);
        }
        // A fresh connection per check: tell the server not to keep it.
        if !out.headers.contains_key(hyper::header::CONNECTION) {
            builder = builder.header(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    let mut request = builder.body(Full::new(out.body.clone())).map_err(invalid)?;
    for (name, value) in out.headers {
        if !(h2 && name == hyper::header::HOST) {
            request.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(request)
}

/// How long hyper's HTTP/2 background tasks may outlive the check's deadline.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// Spawns hyper's background tasks so that they end at a deadline.
#[derive(Clone)]
pub struct DeadlineExecutor {
    pub deadline: Instant,
}

impl<F> hyper::rt::Executor<F> for DeadlineExecutor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(tokio::time::timeout_at(self.deadline, fut));
    }
}

/// Polls the connection and the request together, in this task: when the
/// deadline drops the check, an HTTP/1 connection goes with it (HTTP/2's
/// own tasks end by [`DeadlineExecutor`]).
async fn drive<C, W, T>(connection: C, work: W) -> Result<T, Failure>
where
    C: std::future::Future<Output = Result<(), hyper::Error>>,
    W: std::future::Future<Output = Result<T, Failure>>,
{
    tokio::pin!(connection);
    tokio::pin!(work);
    let mut connection_done = false;
    loop {
        tokio::select! {
            biased;
            result = &mut work => return result,
            // A failed connection fails the request too, with the cause; a
            // finished one (Connection: close) leaves buffered data to read.
            _ = &mut connection, if !connection_done => connection_done = true,
        }
    }
}

/// Reads status, Location and the body (up to the limit).
async fn read_response(
    response: hyper::Response<hyper::body::Incoming>,
    out: &Outgoing<'_>,
    budget: Option<&BodyBudget>,
    p: &mut Progress,
) -> Result<Reply, Failure> {
    let status = response.status().as_u16();
    p.status = Some(status);
    p.version = Some(response.version());
    p.phase = Phase::Body;
    let location =
        response.headers().get(hyper::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut body = response.into_body();
    let mut kept = if out.keep_body { Some(Vec::new()) } else { None };
    let mut read: u64 = 0;
    let mut exceeded = false;
    let mut permit: Option<OwnedSemaphorePermit> = None;
    p.bytes_read = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let mut f = hyper_failure(&e);
            f.message = format!("{} (while reading the body)", f.message);
            f
        })?;
        let Some(data) = frame.data_ref() else { continue };
        let room = out.limit - read;
        let take = (data.len() as u64).min(room);
        if let Some(kept) = kept.as_mut() {
            let needed = kept.len() + take as usize;
            if needed > kept.capacity() {
                // Grow by doubling, never past the limit. The budget pays
                // for capacity (what the allocator holds), and for the old
                // buffer too while the new one is filled from it.
                let grow = needed.max(kept.capacity() * 2).min(out.limit as usize).max(needed);
                let new = match budget {
                    Some(budget) => budget
                        .charge(grow)
                        .map_err(|refused| Failure::new(ErrorClass::Assertion, refused.to_string()))?,
                    None => None,
                };
                kept.reserve_exact(grow - kept.len());
                permit = new;
            }
            kept.extend_from_slice(&data[..take as usize]);
        }
        read += take;
        p.bytes_read = read;
        if (data.len() as u64) > room {
            // One byte past the limit is enough to know: stop reading.
            exceeded = true;
            break;
        }
    }
    Ok(Reply { status, location, body: kept, body_exceeded: exceeded, body_permit: permit })
}

/// Maps hyper's errors onto error classes with a short message.
fn hyper_failure(error: &hyper::Error) -> Failure {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Failure::new(ErrorClass::Protocol, describe_io(io));
        }
        cause = c.source();
    }
    let message = if error.is_parse() {
        format!("invalid HTTP response: {error}")
    } else if error.is_incomplete_message() {
        "connection closed before the response was complete".to_string()
    } else {
        match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        }
    };
    Failure::new(ErrorClass::Protocol, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_headers_win_over_the_defaults() {
        let ua = HeaderValue::from_static("sentryk8s-test");
        let url = Url::parse("https://u:p@example.test/").unwrap();
        let declared = BTreeMap::from([("Accept".to_string(), "text/plain".to_string())]);
        let headers = request_headers(&declared, &ua, &url).unwrap();
        assert_eq!(headers["accept"], "text/plain");
        assert_eq!(headers["user-agent"], "sentryk8s-test");
        assert!(headers["authorization"].is_sensitive());
        let bad = BTreeMap::from([("bad header".to_string(), "v".to_string())]);
        let failure = request_headers(&bad, &ua, &url).unwrap_err();
        assert_eq!(
            (failure.class, failure.message.as_str()),
            (ErrorClass::Protocol, "invalid request header name \"bad header\"")
        );
        let secret = BTreeMap::from([("X-Secret".to_string(), "a\nb".to_string())]);
        let failure = request_headers(&secret, &ua, &url).unwrap_err();
        // The value may be a token: never quoted.
        assert_eq!(failure.message, "invalid value of request header x-secret");
    }

    #[test]
    fn excerpts_cut_on_characters() {
        assert_eq!(excerpt("héllo", 2), "hé…");
        assert_eq!(excerpt("hi", 2), "hi");
    }

    #[test]
    fn timeouts_name_the_phase() {
        let f = Failure::timed_out(Duration::from_millis(300), Phase::Body);
        assert_eq!(
            (f.class, f.message.as_str()),
            (ErrorClass::Timeout, "timed out after 300 ms reading the body")
        );
    }

    #[test]
    fn a_failed_connect_is_refused() {
        let failure = Failure::from(ConnectError("cannot connect to 127.0.0.1:1: connection refused".into()));
        assert_eq!(failure.class, ErrorClass::Refused);
        assert_eq!(failure.message, "cannot connect to 127.0.0.1:1: connection refused");
    }

    #[test]
    fn http1_requests_use_origin_form_and_close() {
        let url = Url::parse("http://example.test:8080/a/b?c=d#frag").unwrap();
        let headers = HeaderMap::new();
        let out = Outgoing {
            method: &Method::GET,
            headers: &headers,
            body: &Bytes::new(),
            keep_body: false,
            limit: 10,
            tls_verify: true,
        };
        let request = build_request(&url, &out, false).unwrap();
        assert_eq!(request.uri(), "/a/b?c=d");
        assert_eq!(request.headers()["host"], "example.test:8080");
        assert_eq!(request.headers()["connection"], "close");
        let request = build_request(&url, &out, true).unwrap();
        assert_eq!(request.uri(), "http://example.test:8080/a/b?c=d");
        let with_user = Url::parse("https://u:p@example.test/x").unwrap();
        assert_eq!(build_request(&with_user, &out, true).unwrap().uri(), "https://example.test/x");
        assert!(request.headers().get("host").is_none());

        let mut headers = HeaderMap::new();
        headers.insert(hyper::header::HOST, HeaderValue::from_static("vhost.test"));
        let out = Outgoing { headers: &headers, ..out };
        let request = build_request(&url, &out, false).unwrap();
        assert_eq!(request.headers().get_all("host").iter().collect::<Vec<_>>(), vec!["vhost.test"]);
    }
}
