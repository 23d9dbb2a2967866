//! A lock-step SMTP client over plain TCP: each command waits for its reply (no PIPELINING), and every
//! failure is an error rather than a panic. The no-loss test drives its load with it, and the benchmarks
//! (the `mailbus-bench` crate) theirs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest wait for one reply; a server that takes longer is stuck, not slow.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Reply {
    pub code: u16,
    /// The last line, without CRLF.
    pub text: String,
}

/// One plain-TCP SMTP connection: each command waits for its reply (no PIPELINING).
pub struct SmtpClient {
    stream: BufReader<TcpStream>,
}

impl SmtpClient {
    /// Connects, reads the greeting and says EHLO bench.localhost.
    pub async fn open(addr: SocketAddr) -> anyhow::Result<SmtpClient> {
        SmtpClient::open_as(addr, "bench.localhost").await
    }

    /// Connects, reads the greeting and says EHLO `domain`.
    pub async fn open_as(addr: SocketAddr, domain: &str) -> anyhow::Result<SmtpClient> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        // The final ".\r\n" is a small write right after the body: without this Nagle would hold it.
        stream.set_nodelay(true)?;
        let mut client = SmtpClient { stream: BufReader::new(stream) };
        client.expect(220, "greeting").await?;
        client.command(&format!("EHLO {domain}\r\n")).await?;
        client.expect(250, "EHLO").await?;
        Ok(client)
    }

    /// AUTH PLAIN with an initial response.
    pub async fn auth_plain(&mut self, user: &str, password: &str) -> anyhow::Result<()> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.command(&format!("AUTH PLAIN {token}\r\n")).await?;
        self.expect(235, "AUTH PLAIN").await
    }

    pub async fn command(&mut self, line: &str) -> anyhow::Result<()> {
        self.stream.get_mut().write_all(line.as_bytes()).await.context("writing to the server")
    }

    pub async fn reply(&mut self) -> anyhow::Result<Reply> {
        let mut line = String::new();
        loop {
            line.clear();
            let read = tokio::time::timeout(REPLY_TIMEOUT, self.stream.read_line(&mut line))
                .await
                .context("no reply within a minute")?
                .context("reading a reply")?;
            ensure!(read > 0, "the server closed the connection");
            let code = line.get(..3).and_then(|c| c.parse().ok()).with_context(|| format!("bad reply {line:?}"))?;
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(Reply { code, text: line.trim_end().to_owned() });
            }
        }
    }

    pub async fn expect(&mut self, code: u16, what: &str) -> anyhow::Result<()> {
        let reply = self.reply().await?;
        ensure!(reply.code == code, "{what}: {}", reply.text);
        Ok(())
    }

    /// MAIL, RCPT, DATA, the message (which must need no dot-stuffing), "."; returns the final reply,
    /// or the first refusal (then after RSET). The message is accepted when the code is 250.
    pub async fn send(&mut self, from: &str, to: &str, message: &[u8]) -> anyhow::Result<Reply> {
        Ok(self.send_timed(from, to, message).await?.0)
    }

    /// [`SmtpClient::send`], also returning how long the final reply took from writing the "." line;
    /// `None` when the transaction was refused before the message was sent.
    pub async fn send_timed(
        &mut self,
        from: &str,
        to: &str,
        message: &[u8],
    ) -> anyhow::Result<(Reply, Option<Duration>)> {
        for (command, wanted) in
            [(format!("MAIL FROM:<{from}>\r\n"), 250), (format!("RCPT TO:<{to}>\r\n"), 250), ("DATA\r\n".into(), 354)]
        {
            self.command(&command).await?;
            let reply = self.reply().await?;
            if reply.code != wanted {
                if reply.code != 421 {
                    self.command("RSET\r\n").await?;
                    self.reply().await?;
                }
                return Ok((reply, None));
            }
        }
        self.stream.get_mut().write_all(message).await.context("writing the message")?;
        let start = Instant::now();
        self.command(".\r\n").await?;
        let reply = self.reply().await?;
        Ok((reply, Some(start.elapsed())))
    }

    pub async fn quit(mut self) {
        if self.command("QUIT\r\n").await.is_ok() {
            let _ = self.reply().await;
        }
    }
}
