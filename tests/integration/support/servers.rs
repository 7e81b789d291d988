//! HTTP targets with behaviour per path, a TLS target with a self-signed
//! certificate, and hostile TCP servers (never answer, trickle, endless
//! body, garbage, reset), and a DNS tarpit, all on 127.0.0.1 port 0.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a routed server answers for one path.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: &str) -> Reply {
        Reply { status: 200, body: body.into(), headers: Vec::new(), delay: Duration::ZERO }
    }
    pub fn status(status: u16) -> Reply {
        Reply { status, ..Reply::ok("") }
    }
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply { status, headers: vec![("location", location.into())], ..Reply::ok("") }
    }
    pub fn json(value: serde_json::Value) -> Reply {
        Reply { headers: vec![("content-type", "application/json".into())], ..Reply::ok(&value.to_string()) }
    }
    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Routes = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn respond(reply: Reply) -> Response<BoxBody> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)).boxed());
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in reply.headers {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            response.headers_mut().append(k, v);
        }
    }
    response
}

async fn serve_routes<IO>(io: IO, routes: Routes)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let reply = routes(req.uri().path());
        async move {
            tokio::time::sleep(reply.delay).await;
            Ok::<_, Infallible>(respond(reply))
        }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// A plain HTTP server that answers by path.
pub struct RoutedServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RoutedServer {
    pub async fn start(routes: impl Fn(&str) -> Reply + Send + Sync + 'static) -> RoutedServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind routed server");
        let addr = listener.local_addr().expect("addr");
        let routes: Routes = Arc::new(routes);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                tokio::spawn(serve_routes(stream, routes.clone()));
            }
        });
        RoutedServer { addr, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for RoutedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTPS server with a self-signed certificate for "localhost" and
/// 127.0.0.1, offering h2 and http/1.1 by ALPN.
pub struct TlsServer {
    pub addr: SocketAddr,
    pub not_after: chrono::DateTime<chrono::Utc>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsServer {
    pub async fn start(alpn_h2: bool, routes: impl Fn(&str) -> Reply + Send + Sync + 'static) -> TlsServer {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2036, 1, 2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        config.alpn_protocols =
            if alpn_h2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tls server");
        let addr = listener.local_addr().expect("addr");
        let routes: Routes = Arc::new(routes);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                let routes = routes.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        serve_routes(tls, routes).await;
                    }
                });
            }
        });
        let not_after = chrono::DateTime::parse_from_rfc3339("2036-01-02T00:00:00Z").unwrap().to_utc();
        TlsServer { addr, not_after, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a hostile server treats each connection.
#[derive(Clone, Copy, Debug)]
pub enum Hostile {
    /// Accepts, reads the request, never writes.
    NeverAnswers,
    /// Sends a valid response head, then one body byte a second.
    Trickle,
    /// Sends a chunked body that never ends, as fast as it can.
    EndlessBody,
    /// Sends bytes that are not HTTP.
    Garbage,
    /// Resets the connection (RST) after reading the request.
    Reset,
}

pub struct HostileServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl HostileServer {
    pub async fn start(kind: Hostile) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind hostile server");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                tokio::spawn(misbehave(stream, kind));
            }
        });
        HostileServer { addr, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(stream: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
}

async fn misbehave(mut stream: TcpStream, kind: Hostile) {
    read_request(&mut stream).await;
    match kind {
        Hostile::NeverAnswers => {
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        Hostile::Trickle => {
            if stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n").await.is_err() {
                return;
            }
            for _ in 0..120 {
                if stream.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Hostile::EndlessBody => {
            if stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").await.is_err() {
                return;
            }
            let chunk = {
                let data = vec![b'a'; 64 * 1024];
                let mut c = format!("{:x}\r\n", data.len()).into_bytes();
                c.extend_from_slice(&data);
                c.extend_from_slice(b"\r\n");
                c
            };
            // Bounded so a forgotten server cannot run forever: 16 GiB.
            for _ in 0..262_144 {
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
        Hostile::Garbage => {
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\x00\xff\xfe garbage \x01\x02\r\n\r\n").await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Hostile::Reset => {
            let _ = stream.set_zero_linger();
            drop(stream);
        }
    }
}

/// A port nothing listens on (bound, then released).
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

/// A DNS server that never answers: UDP queries are read and dropped, TCP
/// connections are accepted and held open, silent, on the same port. Or,
/// built by [`DnsTarpit::answering`], one that answers every A query over
/// UDP with one address, late.
pub struct DnsTarpit {
    pub addr: SocketAddr,
    queries: Arc<std::sync::atomic::AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl DnsTarpit {
    pub async fn start() -> DnsTarpit {
        DnsTarpit::serve(None).await
    }

    /// Answers every A query with `ip` after `delay` (other types: no
    /// record), as a slow but honest DNS server.
    pub async fn answering(delay: Duration, ip: std::net::Ipv4Addr) -> DnsTarpit {
        DnsTarpit::serve(Some((delay, ip))).await
    }

    async fn serve(answer: Option<(Duration, std::net::Ipv4Addr)>) -> DnsTarpit {
        // UDP first, then TCP on its port (retried if that port is taken).
        let (udp, tcp) = loop {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind tarpit udp");
            let addr = udp.local_addr().expect("addr");
            if let Ok(tcp) = TcpListener::bind(addr).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().expect("addr");
        let udp = Arc::new(udp);
        let queries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = queries.clone();
        let udp_task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((delay, ip)) = answer else { continue };
                let Some(response) = dns_answer(&buf[..n], ip) else { continue };
                let udp = udp.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = udp.send_to(&response, from).await;
                });
            }
        });
        let counted = queries.clone();
        let tcp_task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = tcp.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                held.push(stream);
            }
        });
        DnsTarpit { addr, queries, tasks: vec![udp_task, tcp_task] }
    }

    /// UDP queries and TCP connections received so far.
    pub fn queries(&self) -> usize {
        self.queries.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The response to a one-question DNS query: `ip` for an A question, no
/// record for any other type. `None` if the query does not parse.
fn dns_answer(query: &[u8], ip: std::net::Ipv4Addr) -> Option<Vec<u8>> {
    // The question's name: labels from byte 12 to a zero length.
    let mut end = 12;
    loop {
        let len = *query.get(end)? as usize;
        end += 1 + len;
        if len == 0 {
            break;
        }
    }
    let qtype = u16::from_be_bytes([*query.get(end)?, *query.get(end + 1)?]);
    let question = query.get(12..end + 4)?;
    let answers: u16 = if qtype == 1 { 1 } else { 0 };
    let mut response = Vec::with_capacity(question.len() + 32);
    response.extend_from_slice(&query[..2]); // id
    response.extend_from_slice(&[0x81, 0x80]); // response, recursion desired and available, no error
    for count in [1, answers, 0, 0] {
        response.extend_from_slice(&u16::to_be_bytes(count));
    }
    response.extend_from_slice(question);
    if answers == 1 {
        // Name (pointer to the question's), A, IN, TTL 60, 4 bytes.
        response.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        response.extend_from_slice(&ip.octets());
    }
    Some(response)
}

impl Drop for DnsTarpit {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
