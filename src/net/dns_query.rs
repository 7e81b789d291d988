//! One DNS question to one server, over UDP or TCP, for the DNS check:
//! the raw response (every record, the response code), not the stub
//! resolver's interpretation of it. The caller holds the deadline; the
//! server's address is judged by the deny list like any target.
//!
//! `dns://system` asks the first server of `/etc/resolv.conf`, read once.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use hickory_resolver::proto::op::{Message, MessageType, OpCode, Query};
use hickory_resolver::proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::model::kinds::DnsTransport;

/// Largest UDP response read (EDNS payloads are at most this in practice).
const MAX_UDP: usize = 4096;

/// Why no usable response came back. The texts are stored as results'
/// messages.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("invalid question: {0}")]
    Question(String),
    #[error("{0}")]
    Io(String),
    #[error("the response is not DNS: {0}")]
    Malformed(String),
}

/// The first name server the system is configured with (`dns://system`).
pub fn system_server() -> Option<IpAddr> {
    static SERVER: OnceLock<Option<IpAddr>> = OnceLock::new();
    *SERVER.get_or_init(|| {
        let (config, _) = hickory_resolver::system_conf::read_system_conf().ok()?;
        config.name_servers().first().map(|s| s.ip)
    })
}

/// Asks `server` for `name`'s records of `record_type`, recursion
/// desired. A truncated UDP answer is asked again over TCP.
pub async fn ask(
    server: SocketAddr,
    name: &str,
    record_type: &str,
    transport: DnsTransport,
) -> Result<Message, QueryError> {
    let name = Name::from_utf8(name).map_err(|e| QueryError::Question(e.to_string()))?;
    let record_type: RecordType =
        record_type.parse().map_err(|_| QueryError::Question(record_type.into()))?;
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, record_type));
    let request = message.to_vec().map_err(|e| QueryError::Question(e.to_string()))?;
    let id = message.metadata.id;
    if transport == DnsTransport::Udp {
        let response = over_udp(server, &request, id).await?;
        if !response.metadata.truncation {
            return Ok(response);
        }
    }
    over_tcp(server, &request, id).await
}

fn io(e: std::io::Error) -> QueryError {
    QueryError::Io(crate::net::connect::describe_io(&e))
}

async fn over_udp(server: SocketAddr, request: &[u8], id: u16) -> Result<Message, QueryError> {
    let local: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    socket.send(request).await.map_err(io)?;
    let mut buf = vec![0u8; MAX_UDP];
    // Datagrams of other ids (a late answer to nobody) are skipped; the
    // caller's deadline ends the wait.
    loop {
        let n = socket.recv(&mut buf).await.map_err(io)?;
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.metadata.id == id && m.metadata.message_type == MessageType::Response => return Ok(m),
            Ok(_) => continue,
            Err(e) => return Err(QueryError::Malformed(e.to_string())),
        }
    }
}

async fn over_tcp(server: SocketAddr, request: &[u8], id: u16) -> Result<Message, QueryError> {
    let mut stream = TcpStream::connect(server).await.map_err(io)?;
    let length = u16::try_from(request.len()).map_err(|_| QueryError::Question("too long".into()))?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    stream.write_all(&framed).await.map_err(io)?;
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).await.map_err(io)?;
    let mut buf = vec![0u8; u16::from_be_bytes(length) as usize];
    stream.read_exact(&mut buf).await.map_err(io)?;
    let m = Message::from_vec(&buf).map_err(|e| QueryError::Malformed(e.to_string()))?;
    if m.metadata.id != id || m.metadata.op_code != OpCode::Query {
        return Err(QueryError::Malformed("the answer is for another question".into()));
    }
    Ok(m)
}
