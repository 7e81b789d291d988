//! The plain-text dialogue before a TLS handshake (STARTTLS), for the
//! protocols a TLS check may speak first: SMTP, IMAP, POP3, FTP and
//! PostgreSQL. Each is the shortest exchange its RFC allows: the
//! greeting, the upgrade command, and the server's go-ahead.
//!
//! Lines are read a byte at a time and capped, and nothing beyond the
//! go-ahead is read: a byte the server sent after it would belong to the
//! plain-text side, and taking it into the TLS stream would let a peer
//! inject data (the STARTTLS command-injection class of bugs).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::model::StartTls;

/// Longest line read.
const MAX_LINE: usize = 1024;
/// Most lines of one reply (an SMTP EHLO answer lists extensions).
const MAX_LINES: usize = 64;

/// Why the upgrade did not happen; the text is stored as the result's message.
#[derive(Debug, thiserror::Error)]
pub enum StartTlsError {
    #[error("STARTTLS ({protocol}): {0}", protocol = .1)]
    Io(String, &'static str),
    #[error("STARTTLS ({protocol}): the server answered {answer}", protocol = .0, answer = .1)]
    Refused(&'static str, String),
}

/// Speaks `protocol` on `stream` until the server agrees to start TLS.
pub async fn negotiate<S>(protocol: StartTls, stream: &mut S) -> Result<(), StartTlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = protocol.as_str();
    let mut d = Dialogue { stream, name };
    match protocol {
        StartTls::Smtp => {
            d.expect_reply("220").await?;
            d.send(b"EHLO sentryk8s\r\n").await?;
            d.expect_reply("250").await?;
            d.send(b"STARTTLS\r\n").await?;
            d.expect_reply("220").await
        }
        StartTls::Ftp => {
            d.expect_reply("220").await?;
            d.send(b"AUTH TLS\r\n").await?;
            d.expect_reply("234").await
        }
        StartTls::Pop3 => {
            d.expect_line("+OK").await?;
            d.send(b"STLS\r\n").await?;
            d.expect_line("+OK").await
        }
        StartTls::Imap => {
            d.expect_line("* OK").await?;
            d.send(b"a1 STARTTLS\r\n").await?;
            // Untagged lines may come first; the tagged one answers.
            for _ in 0..MAX_LINES {
                let line = d.line().await?;
                if let Some(answer) = line.strip_prefix("a1 ") {
                    return if answer.to_ascii_uppercase().starts_with("OK") {
                        Ok(())
                    } else {
                        Err(StartTlsError::Refused(name, quote(&line)))
                    };
                }
            }
            Err(StartTlsError::Io("no tagged answer".into(), name))
        }
        StartTls::Postgres => {
            // SSLRequest: length 8, code 80877103.
            d.send(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?;
            let mut answer = [0u8; 1];
            d.stream.read_exact(&mut answer).await.map_err(|e| d.io(e))?;
            match answer[0] {
                b'S' => Ok(()),
                b'N' => Err(StartTlsError::Refused(name, "N (TLS not enabled on the server)".into())),
                other => Err(StartTlsError::Refused(name, format!("byte 0x{other:02x}, not S or N"))),
            }
        }
    }
}

struct Dialogue<'s, S> {
    stream: &'s mut S,
    name: &'static str,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Dialogue<'_, S> {
    fn io(&self, e: std::io::Error) -> StartTlsError {
        let why = match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "the server closed the connection".to_string(),
            _ => crate::net::connect::describe_io(&e),
        };
        StartTlsError::Io(why, self.name)
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), StartTlsError> {
        self.stream.write_all(bytes).await.map_err(|e| self.io(e))
    }

    /// One line, without its end, a byte at a time (see the module doc).
    async fn line(&mut self) -> Result<String, StartTlsError> {
        let mut line = Vec::with_capacity(128);
        loop {
            let mut byte = [0u8; 1];
            self.stream.read_exact(&mut byte).await.map_err(|e| self.io(e))?;
            match byte[0] {
                b'\n' => break,
                b => line.push(b),
            }
            if line.len() > MAX_LINE {
                return Err(StartTlsError::Io(format!("a line longer than {MAX_LINE} bytes"), self.name));
            }
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// A line that starts with `prefix`.
    async fn expect_line(&mut self, prefix: &str) -> Result<(), StartTlsError> {
        let line = self.line().await?;
        if line.starts_with(prefix) {
            Ok(())
        } else {
            Err(StartTlsError::Refused(self.name, quote(&line)))
        }
    }

    /// An SMTP/FTP reply (`250-…` continued until `250 …`) of `code`.
    async fn expect_reply(&mut self, code: &str) -> Result<(), StartTlsError> {
        for _ in 0..MAX_LINES {
            let line = self.line().await?;
            if !line.starts_with(code) {
                return Err(StartTlsError::Refused(self.name, quote(&line)));
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
        Err(StartTlsError::Io(format!("a reply of more than {MAX_LINES} lines"), self.name))
    }
}

fn quote(line: &str) -> String {
    let printable: String = line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    format!("\"{}\"", crate::net::http::excerpt(&printable, 80))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the dialogue against a scripted peer: `script` is what the
    /// server writes, `expected` what it must have read.
    async fn dialogue(protocol: StartTls, script: &[u8]) -> (Result<(), StartTlsError>, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(4096);
        server.write_all(script).await.unwrap();
        // The script is all the server says: then end of file.
        server.shutdown().await.unwrap();
        let result = negotiate(protocol, &mut client).await;
        drop(client);
        let mut sent = Vec::new();
        server.read_to_end(&mut sent).await.unwrap();
        (result, sent)
    }

    #[tokio::test]
    async fn each_protocol_upgrades() {
        let smtp = b"220-mail ESMTP\r\n220 ready\r\n250-mail\r\n250-STARTTLS\r\n250 OK\r\n220 go ahead\r\n";
        let (ok, sent) = dialogue(StartTls::Smtp, smtp).await;
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(sent, b"EHLO sentryk8s\r\nSTARTTLS\r\n");
        let (ok, sent) =
            dialogue(StartTls::Imap, b"* OK IMAP4rev1\r\n* BYE? no\r\na1 OK Begin TLS\r\n").await;
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(sent, b"a1 STARTTLS\r\n");
        let (ok, sent) = dialogue(StartTls::Pop3, b"+OK POP3\r\n+OK Begin TLS\r\n").await;
        assert!(ok.is_ok() && sent == b"STLS\r\n", "{ok:?}");
        let (ok, sent) = dialogue(StartTls::Ftp, b"220 FTP\r\n234 AUTH TLS OK\r\n").await;
        assert!(ok.is_ok() && sent == b"AUTH TLS\r\n", "{ok:?}");
        let (ok, sent) = dialogue(StartTls::Postgres, b"S").await;
        assert!(ok.is_ok() && sent == [0, 0, 0, 8, 4, 210, 22, 47], "{ok:?}");
    }

    #[tokio::test]
    async fn refusals_name_the_answer() {
        let (err, _) = dialogue(StartTls::Smtp, b"220 ready\r\n250 OK\r\n454 TLS not available\r\n").await;
        assert_eq!(
            err.unwrap_err().to_string(),
            "STARTTLS (smtp): the server answered \"454 TLS not available\""
        );
        let (err, _) = dialogue(StartTls::Postgres, b"N").await;
        assert_eq!(
            err.unwrap_err().to_string(),
            "STARTTLS (postgres): the server answered N (TLS not enabled on the server)"
        );
        let (err, _) = dialogue(StartTls::Imap, b"* OK\r\na1 NO nope\r\n").await;
        assert!(err.unwrap_err().to_string().contains("a1 NO nope"));
        let (err, _) = dialogue(StartTls::Pop3, b"+OK\r\n").await;
        assert_eq!(err.unwrap_err().to_string(), "STARTTLS (pop3): the server closed the connection");
        let long = vec![b'2'; 2000];
        let (err, _) = dialogue(StartTls::Smtp, &long).await;
        assert!(err.unwrap_err().to_string().contains("longer than 1024"));
    }
}
