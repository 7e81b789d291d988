//! A minimal SMTP receiver (RFC 5321's happy path: EHLO/HELO, MAIL, RCPT,
//! DATA, RSET, NOOP, QUIT) that keeps every message it accepts. No TLS:
//! channels under test say `tls: none`. It counts the connections it
//! accepts, and can play a tarpit: answer normally up to one command, then
//! never answer again while holding the connection open, the server that
//! would keep a sender busy forever without a deadline on the whole session.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and body, dot-unstuffed).
    pub data: String,
}

impl Mail {
    /// A header's value (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn body(&self) -> String {
        self.data.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
    }
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    /// TCP connections accepted so far.
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpServer {
    /// A server that answers every command.
    pub async fn start() -> SmtpServer {
        SmtpServer::serve(None).await
    }

    /// A tarpit: greets, answers normally until a line starting with
    /// `command` (say "EHLO" or "DATA", case-insensitive) arrives, then
    /// never answers again and never closes.
    pub async fn stalling_at(command: &'static str) -> SmtpServer {
        SmtpServer::serve(Some(command)).await
    }

    async fn serve(stall_at: Option<&'static str>) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let addr = listener.local_addr().expect("smtp addr");
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let task = {
            let (mails, connections) = (mails.clone(), connections.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let mails = mails.clone();
                    tokio::spawn(async move {
                        let (read, mut write) = stream.into_split();
                        let mut lines = BufReader::new(read);
                        let _ = write.write_all(b"220 sentryk8s-test ESMTP\r\n").await;
                        let mut current = Mail::default();
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let upper = line.to_ascii_uppercase();
                            if stall_at.is_some_and(|c| upper.starts_with(&c.to_ascii_uppercase())) {
                                // Say nothing, for ever: the task never ends, so the
                                // socket it owns stays open.
                                std::future::pending::<()>().await;
                            }
                            let reply: &[u8] = if upper.starts_with("EHLO") {
                                b"250-sentryk8s-test\r\n250 8BITMIME\r\n"
                            } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
                                b"250 ok\r\n"
                            } else if upper.starts_with("MAIL FROM:") {
                                current = Mail { from: line[10..].trim().to_string(), ..Mail::default() };
                                b"250 ok\r\n"
                            } else if upper.starts_with("RCPT TO:") {
                                current.to.push(line[8..].trim().to_string());
                                b"250 ok\r\n"
                            } else if upper.starts_with("RSET") {
                                current = Mail::default();
                                b"250 ok\r\n"
                            } else if upper.starts_with("DATA") {
                                let _ = write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await;
                                let mut data = String::new();
                                loop {
                                    line.clear();
                                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                        return;
                                    }
                                    if line == ".\r\n" {
                                        break;
                                    }
                                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                                }
                                current.data = data;
                                mails.lock().unwrap().push(std::mem::take(&mut current));
                                b"250 queued\r\n"
                            } else if upper.starts_with("QUIT") {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                return;
                            } else {
                                b"502 not implemented\r\n"
                            };
                            if write.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            })
        };
        SmtpServer { addr, mails, connections, task }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    /// TCP connections accepted so far, whether or not a mail followed.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
