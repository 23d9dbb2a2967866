//! The end of an end-to-end run: when the last message is readable over IMAP. One logged-in IMAP session
//! per mailbox asks `STATUS INBOX (MESSAGES)` (RFC 3501 §6.3.10) until the count reaches what the load got
//! accepted for that mailbox; the same watcher serves mailbus and Dovecot, so both ends are seen alike.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::REPLY_TIMEOUT;

/// How long the watcher waits before asking a mailbox again.
const POLL: Duration = Duration::from_millis(50);

/// A logged-in IMAP session that can count a mailbox's messages.
pub struct StatusSession {
    stream: BufReader<TcpStream>,
    tag: u32,
}

impl StatusSession {
    /// Connects over plain TCP and logs in (LOGIN, RFC 3501 §6.2.3).
    pub async fn login(server: SocketAddr, user: &str, password: &str) -> anyhow::Result<StatusSession> {
        let stream = TcpStream::connect(server).await.with_context(|| format!("connecting to IMAP {server}"))?;
        let mut session = StatusSession { stream: BufReader::new(stream), tag: 0 };
        let mut greeting = String::new();
        read_line(&mut session.stream, &mut greeting).await?;
        ensure!(greeting.starts_with("* OK"), "IMAP greeting: {greeting:?}");
        session
            .command(&format!("LOGIN \"{user}\" \"{password}\""))
            .await
            .with_context(|| format!("login as {user}"))?;
        Ok(session)
    }

    /// The untagged lines a command got, once it ended in OK.
    async fn command(&mut self, line: &str) -> anyhow::Result<String> {
        self.tag += 1;
        let tag = format!("w{}", self.tag);
        self.stream.get_mut().write_all(format!("{tag} {line}\r\n").as_bytes()).await?;
        let mut said = String::new();
        loop {
            let mut reply = String::new();
            read_line(&mut self.stream, &mut reply).await?;
            if let Some(status) = reply.strip_prefix(&format!("{tag} ")) {
                ensure!(status.starts_with("OK"), "IMAP {line:?}: {reply}");
                return Ok(said);
            }
            said.push_str(&reply);
        }
    }

    /// `STATUS INBOX (MESSAGES)`.
    pub async fn messages(&mut self) -> anyhow::Result<usize> {
        let status = self.command("STATUS INBOX (MESSAGES)").await?;
        parse_messages(&status).with_context(|| format!("no MESSAGES in {status:?}"))
    }

    pub async fn logout(mut self) {
        let _ = self.command("LOGOUT").await;
    }
}

async fn read_line(stream: &mut BufReader<TcpStream>, line: &mut String) -> anyhow::Result<()> {
    let read = tokio::time::timeout(REPLY_TIMEOUT, stream.read_line(line))
        .await
        .context("no IMAP reply within a minute")??;
    ensure!(read > 0, "the IMAP server closed the connection");
    Ok(())
}

/// The count in `* STATUS INBOX (MESSAGES 20)`.
fn parse_messages(status: &str) -> Option<usize> {
    let rest = status.split("MESSAGES ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Logs in as each user (four at a time), in order.
pub async fn login_all(server: SocketAddr, users: &[String], password: &str) -> anyhow::Result<Vec<StatusSession>> {
    futures::stream::iter(users)
        .map(|user| StatusSession::login(server, user, password))
        .buffered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Waits until each session's INBOX holds at least its expected count, taking the mailboxes one after
/// the other (a mailbox seen full stays full), and returns when the last was seen full; `None`, after
/// saying how far it got, when `limit` passed first.
pub async fn wait_until_full(
    sessions: &mut [StatusSession],
    expected: &[usize],
    limit: Duration,
) -> anyhow::Result<Option<Instant>> {
    let start = Instant::now();
    for (index, (session, &wanted)) in sessions.iter_mut().zip(expected).enumerate() {
        loop {
            let messages = session.messages().await?;
            if messages >= wanted {
                break;
            }
            if start.elapsed() > limit {
                println!(
                    "NOT VISIBLE: mailbox {} of {} shows {messages} of {wanted} messages after {} s",
                    index + 1,
                    expected.len(),
                    limit.as_secs()
                );
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(Some(Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_read_from_a_status_reply() {
        assert_eq!(parse_messages("* STATUS INBOX (MESSAGES 2000)\r\n"), Some(2000));
        assert_eq!(parse_messages("* STATUS \"INBOX\" (MESSAGES 0 UIDNEXT 1)\r\n"), Some(0));
        assert_eq!(parse_messages("* STATUS INBOX ()\r\n"), None);
    }
}
