//! A bare line-protocol connection (IMAP, POP3, SMTP) from a chosen loopback source address, for the tests
//! that play a hostile client: exact bytes on the wire, many connections, and a second address
//! (127.0.0.2) that stands for everyone else behind the attacker.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// How long a test waits for one line before it fails.
const LINE_WAIT: Duration = Duration::from_secs(30);

pub struct RawClient {
    stream: BufReader<TcpStream>,
}

/// Opens a TCP connection to `server` from `source` (any 127.0.0.0/8 address reaches loopback on Linux).
pub async fn connect_from(source: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if source.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(server).await
}

impl RawClient {
    pub async fn connect(source: &str, server: SocketAddr) -> RawClient {
        let stream = connect_from(source.parse().expect("a source address"), server).await.expect("connecting");
        RawClient { stream: BufReader::new(stream) }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.expect("writing");
    }

    /// Writes as much of `bytes` as the server takes; a server that closes the connection on the way is
    /// what some tests expect, so a write error only ends the writing.
    pub async fn send_until_closed(&mut self, bytes: &[u8]) -> usize {
        let mut sent = 0;
        for chunk in bytes.chunks(64 * 1024) {
            if self.stream.get_mut().write_all(chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    }

    /// The next line without its line end; `None` when the server closed the connection.
    pub async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        let read = tokio::time::timeout(LINE_WAIT, self.stream.read_line(&mut line))
            .await
            .expect("no line from the server in time");
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
        }
    }

    /// The next `n` octets exactly (an IMAP literal's), line ends and all.
    pub async fn octets(&mut self, n: usize) -> Vec<u8> {
        let mut octets = vec![0; n];
        tokio::time::timeout(LINE_WAIT, self.stream.read_exact(&mut octets))
            .await
            .expect("no octets from the server in time")
            .expect("reading octets");
        octets
    }

    /// Lines until one starts with `prefix` (returned), or `None` if the connection ends first.
    pub async fn line_starting(&mut self, prefix: &str) -> Option<String> {
        loop {
            let line = self.line().await?;
            if line.starts_with(prefix) {
                return Some(line);
            }
        }
    }

    /// Reads what is left until the server closes, and returns the lines.
    pub async fn rest(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.line().await {
            lines.push(line);
        }
        lines
    }

    pub fn into_inner(self) -> TcpStream {
        self.stream.into_inner()
    }
}
