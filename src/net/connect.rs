//! TCP for the one-shot exchange: connecting to the first of a name's
//! addresses that accepts, within the caller's deadline, and a stream
//! whose graceful shutdown costs no system call.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// No address accepted; the message names the last failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(pub String);

/// Connects to the first address that accepts, giving each attempt an
/// equal share of the time left so a black-holed first address does not
/// eat the whole deadline.
pub async fn connect_any(addresses: &[SocketAddr], deadline: Instant) -> Result<TcpStream, ConnectError> {
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
    Err(ConnectError(message))
}

/// A short description of an I/O error, as results store it.
pub fn describe_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset by peer".into(),
        ConnectionAborted => "connection aborted".into(),
        _ => e.to_string(),
    }
}

/// A TCP stream whose graceful shutdown is a no-op. hyper shuts the write
/// side down when a `Connection: close` exchange ends; the check drops the
/// socket right after, and `close` sends the FIN anyway, so the
/// `shutdown(2)` would be one more system call per check for nothing.
pub struct ClosingStream(pub TcpStream);

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
    use std::time::Duration;

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
        // The class (refused) is given by `net::http`.
        assert!(failure.0.starts_with("all 2 addresses failed"), "{}", failure.0);
    }
}
