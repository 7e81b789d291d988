//! Where an HTTP check is timed: one request on a fresh connection, phase by
//! phase, under one hard deadline.
//!
//! The connection is built by hand (system resolver → `TcpStream` → rustls →
//! hyper's low-level `client::conn`) instead of through a pooled client, so
//! that every phase is observed and timed on its own: DNS, TCP connect, TLS
//! handshake, time to the first response byte, and the total. The check's
//! timeout wraps all of it — resolution, every redirect hop, the body read —
//! so a server that trickles a byte a second ends at the deadline like one
//! that never answers. The body is read up to a limit and no further, and
//! only kept in memory when an assertion needs it.
//!
//! Phase times are summed over redirect hops; `total_ms` is wall time.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Version};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use url::{Host, Position, Url};

use super::assertions::{self, Observed, RegexCache};
use crate::model::{CheckOutcome, CheckSpec, ErrorClass, Timings};
use crate::net::tls::{self, TlsConfigs, TlsSetupError};

/// Longest deadline honoured, whatever a spec says: keeps a mistyped
/// timeout from pinning a concurrency slot for hours.
pub use crate::model::bounds::MAX_TIMEOUT;
/// Longest error message stored.
const MAX_MESSAGE_CHARS: usize = 240;
/// Response head size limit (status line + headers), HTTP/1 and HTTP/2.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Settings shared by every check of a worker.
#[derive(Debug, Clone)]
pub struct CheckerOptions {
    /// Body bytes read when the spec sets no limit.
    pub body_limit: u64,
    /// User-Agent of checks that do not set one.
    pub user_agent: String,
    /// Addresses never connected to (`worker.deny_targets`); empty is off.
    pub deny: crate::net::deny::DenyList,
}

/// Runs checks. Cheap to share: holds the TLS configurations and the
/// compiled-regex cache.
pub struct HttpChecker {
    tls: TlsConfigs,
    options: CheckerOptions,
    regexes: RegexCache,
    user_agent: HeaderValue,
}

/// A check's outcome plus what only tests and diagnostics need.
#[derive(Debug, Clone)]
pub struct Probe {
    pub outcome: CheckOutcome,
    /// HTTP version of the final response.
    pub version: Option<Version>,
}

/// Why a check failed before assertions could run.
#[derive(Debug)]
struct Failure {
    class: ErrorClass,
    message: String,
}

impl Failure {
    fn new(class: ErrorClass, message: impl Into<String>) -> Failure {
        Failure { class, message: message.into() }
    }
}

/// Where the check is, for the timeout message.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Dns,
    Connect,
    Tls,
    FirstByte,
    Body,
}

impl Phase {
    fn describe(self) -> &'static str {
        match self {
            Phase::Dns => "resolving the name",
            Phase::Connect => "connecting",
            Phase::Tls => "in the TLS handshake",
            Phase::FirstByte => "waiting for the response",
            Phase::Body => "reading the body",
        }
    }
}

/// What the check observed so far; survives the deadline cutting it short.
struct Progress {
    deadline: Instant,
    timings: Timings,
    phase: Phase,
    status: Option<u16>,
    version: Option<Version>,
    bytes_read: u64,
    cert_expires_at: Option<chrono::DateTime<Utc>>,
}

/// The final response of a check.
struct Response {
    body: Option<Vec<u8>>,
    body_exceeded: bool,
}

/// One hop's response head.
struct Hop {
    status: u16,
    location: Option<String>,
    body: Option<Vec<u8>>,
    body_exceeded: bool,
}

/// The request of one hop.
struct Outgoing<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
    body: &'a Bytes,
    keep_body: bool,
    limit: u64,
    tls_verify: bool,
}

fn add(slot: &mut Option<f64>, since: Instant) {
    let ms = since.elapsed().as_secs_f64() * 1000.0;
    *slot = Some(slot.unwrap_or(0.0) + ms);
}

fn short(message: String) -> String {
    assertions::excerpt(&message, MAX_MESSAGE_CHARS)
}

impl HttpChecker {
    pub fn new(options: CheckerOptions) -> Result<HttpChecker, TlsSetupError> {
        let user_agent = HeaderValue::from_str(&options.user_agent)
            .unwrap_or_else(|_| HeaderValue::from_static("sentryk8s"));
        Ok(HttpChecker { tls: TlsConfigs::new()?, options, regexes: RegexCache::default(), user_agent })
    }

    /// Runs one check to its outcome; never panics, never outlives the
    /// spec's timeout by more than scheduling jitter.
    pub async fn run(&self, spec: &CheckSpec) -> CheckOutcome {
        self.probe(spec).await.outcome
    }

    /// Like [`run`](Self::run), also reporting the HTTP version.
    pub async fn probe(&self, spec: &CheckSpec) -> Probe {
        let started_at = Utc::now();
        let start = Instant::now();
        let timeout = Duration::from_millis(spec.timeout_ms).min(MAX_TIMEOUT);
        let mut progress = Progress {
            deadline: start + timeout,
            timings: Timings::default(),
            phase: Phase::Dns,
            status: None,
            version: None,
            bytes_read: 0,
            cert_expires_at: None,
        };
        let deadline = progress.deadline;
        // Boxed: the whole exchange is a state machine of several KiB, and
        // an unboxed one is copied each time the check's future moves.
        let result = tokio::time::timeout_at(deadline, Box::pin(self.execute(spec, &mut progress))).await;
        progress.timings.total_ms = start.elapsed().as_secs_f64() * 1000.0;
        let mut outcome = CheckOutcome {
            started_at,
            success: false,
            error_class: None,
            error_message: None,
            status_code: progress.status,
            timings: progress.timings,
            bytes_read: progress.bytes_read,
            cert_expires_at: progress.cert_expires_at,
            failed_assertions: Vec::new(),
        };
        let fail = |outcome: &mut CheckOutcome, failure: Failure| {
            outcome.error_class = Some(failure.class);
            outcome.error_message = Some(short(failure.message));
        };
        match result {
            Err(_) => fail(
                &mut outcome,
                Failure::new(
                    ErrorClass::Timeout,
                    format!("timed out after {} ms {}", timeout.as_millis(), progress.phase.describe()),
                ),
            ),
            Ok(Err(failure)) => fail(&mut outcome, failure),
            Ok(Ok(response)) => {
                let observed = Observed {
                    status: progress.status.unwrap_or(0),
                    total_ms: outcome.timings.total_ms,
                    body: response.body.as_deref(),
                    cert_expires_at: progress.cert_expires_at,
                    now: Utc::now(),
                };
                let mut failed = assertions::evaluate(&spec.expect, &observed, &self.regexes);
                if response.body_exceeded {
                    failed.push(format!("body larger than the {}-byte limit", self.body_limit(spec)));
                }
                if failed.is_empty() {
                    outcome.success = true;
                } else {
                    outcome.error_class = Some(ErrorClass::Assertion);
                    outcome.error_message = Some(short(failed.join("; ")));
                    outcome.failed_assertions = failed;
                }
            }
        }
        Probe { outcome, version: progress.version }
    }

    fn body_limit(&self, spec: &CheckSpec) -> u64 {
        spec.body_limit.unwrap_or(self.options.body_limit).max(1)
    }

    /// The request, following redirects.
    async fn execute(&self, spec: &CheckSpec, p: &mut Progress) -> Result<Response, Failure> {
        let mut url = Url::parse(&spec.url)
            .map_err(|e| Failure::new(ErrorClass::Protocol, format!("invalid URL: {e}")))?;
        let mut method = Method::from_bytes(spec.method.as_bytes())
            .map_err(|_| Failure::new(ErrorClass::Protocol, "invalid HTTP method"))?;
        let mut headers = self.request_headers(spec)?;
        let spec_header_names: Vec<HeaderName> =
            spec.headers.keys().filter_map(|k| HeaderName::from_bytes(k.as_bytes()).ok()).collect();
        let mut body = Bytes::from(spec.body.clone().unwrap_or_default());
        let keep_body = assertions::needs_body(&spec.expect);
        let limit = self.body_limit(spec);
        let mut visited: Vec<Url> = Vec::new();
        loop {
            let out = Outgoing {
                method: &method,
                headers: &headers,
                body: &body,
                keep_body,
                limit,
                tls_verify: spec.tls_verify,
            };
            let hop = self.exchange(&url, &out, p).await?;
            let follow = spec.max_redirects > 0 && matches!(hop.status, 301 | 302 | 303 | 307 | 308);
            let Some(location) = hop.location.filter(|_| follow) else {
                return Ok(Response { body: hop.body, body_exceeded: hop.body_exceeded });
            };
            if visited.len() >= spec.max_redirects as usize {
                return Err(Failure::new(
                    ErrorClass::Protocol,
                    format!("more than {} redirects", spec.max_redirects),
                ));
            }
            let next = url.join(&location).map_err(|_| {
                Failure::new(ErrorClass::Protocol, format!("redirect {} has an invalid Location", hop.status))
            })?;
            visited.push(url.clone());
            if visited.contains(&next) {
                return Err(Failure::new(
                    ErrorClass::Protocol,
                    format!("redirect loop: hop {} leads back to an earlier URL", visited.len()),
                ));
            }
            if next.origin() != url.origin() {
                // Headers declared for one origin never travel to another:
                // any of them may be a credential (X-Api-Key, Private-Token),
                // and Host names the first origin's virtual host. The
                // defaults (User-Agent, Accept) are put back.
                for name in &spec_header_names {
                    headers.remove(name);
                }
                headers.remove(hyper::header::AUTHORIZATION);
                headers.remove(hyper::header::COOKIE);
                headers.remove(hyper::header::PROXY_AUTHORIZATION);
                headers.entry(hyper::header::USER_AGENT).or_insert_with(|| self.user_agent.clone());
                headers.entry(hyper::header::ACCEPT).or_insert_with(|| HeaderValue::from_static("*/*"));
            }
            if matches!(hop.status, 301..=303) && method != Method::HEAD {
                method = Method::GET;
                body = Bytes::new();
                headers.remove(hyper::header::CONTENT_TYPE);
            }
            url = next;
        }
    }

    fn request_headers(&self, spec: &CheckSpec) -> Result<HeaderMap, Failure> {
        let mut headers = HeaderMap::with_capacity(spec.headers.len() + 3);
        for (name, value) in &spec.headers {
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
            headers.insert(hyper::header::USER_AGENT, self.user_agent.clone());
        }
        if !headers.contains_key(hyper::header::ACCEPT) {
            headers.insert(hyper::header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        if !headers.contains_key(hyper::header::AUTHORIZATION) {
            if let Some(value) = basic_auth(&spec.url) {
                headers.insert(hyper::header::AUTHORIZATION, value);
            }
        }
        Ok(headers)
    }

    /// One hop: resolve, connect, TLS, request, response, body.
    async fn exchange(&self, url: &Url, out: &Outgoing<'_>, p: &mut Progress) -> Result<Hop, Failure> {
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(Failure::new(
                    ErrorClass::Protocol,
                    format!("unsupported URL scheme \"{}\"", assertions::excerpt(other, 20)),
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
                let resolved = tokio::net::lookup_host((name, port)).await;
                add(&mut p.timings.dns_ms, started);
                let addresses: Vec<SocketAddr> = resolved
                    .map_err(|e| Failure::new(ErrorClass::Dns, format!("cannot resolve {name}: {e}")))?
                    .collect();
                if addresses.is_empty() {
                    return Err(Failure::new(ErrorClass::Dns, format!("{name} has no address")));
                }
                let server_name = ServerName::try_from(name.to_string()).map_err(|_| {
                    Failure::new(ErrorClass::Protocol, format!("{name} is not a valid server name"))
                })?;
                (addresses, server_name)
            }
        };

        let addresses = self.options.deny.filter(addresses).map_err(|(ip, range)| {
            Failure::new(
                ErrorClass::Blocked,
                format!(
                    "blocked: {ip} is in {range}, on the deny-list (worker.deny_targets); not connecting"
                ),
            )
        })?;

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
    ) -> Result<Hop, Failure>
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
                read_response(response, out, p).await
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
                read_response(response, out, p).await
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

/// `https://user:pass@host/` means basic auth (the checks file documents
/// it); the userinfo itself is never sent or shown.
fn basic_auth(url: &str) -> Option<HeaderValue> {
    use base64::Engine;
    let url = Url::parse(url).ok()?;
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let credentials =
        format!("{}:{}", percent_decode(url.username()), percent_decode(url.password().unwrap_or("")));
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// `%XX` sequences to bytes (userinfo is percent-encoded in a URL);
/// malformed sequences are kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (other, _) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How long hyper's HTTP/2 background tasks may outlive the check's deadline.
const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// Spawns hyper's background tasks so that they end at a deadline.
#[derive(Clone)]
struct DeadlineExecutor {
    deadline: Instant,
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
    p: &mut Progress,
) -> Result<Hop, Failure> {
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
    Ok(Hop { status, location, body: kept, body_exceeded: exceeded })
}

/// Connects to the first address that accepts, giving each attempt an
/// equal share of the time left so a black-holed first address does not
/// eat the whole deadline.
async fn connect_any(addresses: &[SocketAddr], deadline: Instant) -> Result<TcpStream, Failure> {
    let mut last_error = String::new();
    for (i, address) in addresses.iter().enumerate() {
        let left = addresses.len() - i;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let share = remaining / left as u32;
        match tokio::time::timeout(share, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last_error = format!("{address}: {}", describe_io(&e)),
            Err(_) => last_error = format!("{address}: no answer within {} ms", share.as_millis()),
        }
    }
    let message = if addresses.len() > 1 {
        format!("all {} addresses failed, last {last_error}", addresses.len())
    } else {
        format!("cannot connect to {last_error}")
    };
    Err(Failure::new(ErrorClass::Refused, message))
}

fn describe_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset by peer".into(),
        ConnectionAborted => "connection aborted".into(),
        _ => e.to_string(),
    }
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

/// A TCP stream whose graceful shutdown is a no-op. hyper shuts the write
/// side down when a `Connection: close` exchange ends; the check drops the
/// socket right after, and `close` sends the FIN anyway, so the
/// `shutdown(2)` would be one more system call per check for nothing.
struct ClosingStream(TcpStream);

impl AsyncRead for ClosingStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClosingStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_userinfo_becomes_basic_auth() {
        let value = basic_auth("https://al%40ice:s%3Acret@example.test/").unwrap();
        // base64("al@ice:s:cret")
        assert_eq!(value.to_str().unwrap(), "Basic YWxAaWNlOnM6Y3JldA==");
        assert!(value.is_sensitive());
        assert!(basic_auth("https://example.test/").is_none());
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    #[tokio::test]
    async fn connect_tries_the_next_address_when_one_refuses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = listener.local_addr().unwrap();
        let refused = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        let stream = connect_any(&[refused, good], deadline).await.expect("second address");
        assert_eq!(stream.peer_addr().unwrap(), good);
        let failure = connect_any(&[refused, refused], deadline).await.unwrap_err();
        assert_eq!(failure.class, ErrorClass::Refused);
        assert!(failure.message.starts_with("all 2 addresses failed"), "{}", failure.message);
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
