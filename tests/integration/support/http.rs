//! A minimal HTTP/1.0 GET for probing the ops server and RabbitMQ's metrics
//! endpoint (no client crate needed).
//!
//! Shared with the benchmarks: `bench/common/mod.rs` includes this file with
//! `#[path]`, so it refers to nothing outside itself.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Returns (status, body) or an error string; gives up after 10 s.
pub async fn get(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String), String> {
    get_within(addr, path, Duration::from_secs(10)).await
}

/// Returns (status, body) or an error string; gives up after `limit`.
pub async fn get_within(
    addr: std::net::SocketAddr,
    path: &str,
    limit: Duration,
) -> Result<(u16, String), String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status")?;
        Ok((status, body.to_string()))
    };
    tokio::time::timeout(limit, attempt).await.map_err(|_| "timed out".to_string())?
}
