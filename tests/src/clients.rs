//! Real mail clients: Python's smtplib and poplib, through the scripts in `tests/clients/`, which print
//! one JSON object each.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::Value;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients").join(name)
}

async fn run(name: &str, args: &[String], stdin: Option<&[u8]>) -> Value {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new("python3");
    command.arg(script(name)).args(args).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = command.spawn().expect("python3 is needed for the client tests");
    let mut input = child.stdin.take().expect("stdin is piped");
    input.write_all(stdin.unwrap_or_default()).await.expect("writing to the client");
    drop(input);
    let output = child.wait_with_output().await.expect("running the client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{name} failed: {stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{name} printed {stdout:?}: {e}"))
}

/// What the SMTP server said to one `sendmail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpOutcome {
    /// The end-of-data reply.
    Accepted { code: u16, text: String },
    /// Every recipient was refused: their codes.
    RecipientsRefused(Vec<(String, u16)>),
    /// MAIL or DATA was refused.
    Refused { code: u16, text: String },
}

/// Sends `message` with smtplib's `sendmail` (EHLO, MAIL, RCPT…, DATA).
pub async fn smtp_send(server: SocketAddr, from: &str, to: &[&str], message: &[u8]) -> SmtpOutcome {
    let mut args = vec![server.ip().to_string(), server.port().to_string(), from.to_owned()];
    args.extend(to.iter().map(|t| t.to_string()));
    let result = run("smtp_send.py", &args, Some(message)).await;
    let code = result["code"].as_u64().unwrap_or(0) as u16;
    let text = result["text"].as_str().unwrap_or_default().to_owned();
    match result["outcome"].as_str() {
        Some("accepted") => SmtpOutcome::Accepted { code, text },
        Some("recipients_refused") => SmtpOutcome::RecipientsRefused(
            result["refused"]
                .as_object()
                .expect("refused map")
                .iter()
                .map(|(rcpt, code)| (rcpt.clone(), code.as_u64().unwrap_or(0) as u16))
                .collect(),
        ),
        _ => SmtpOutcome::Refused { code, text },
    }
}

/// What a POP3 session saw.
#[derive(Debug, Clone)]
pub struct Pop3Session {
    pub stat: (u64, u64),
    /// (message number, size)
    pub list: Vec<(u64, u64)>,
    /// (message number, unique id)
    pub uidl: Vec<(u64, String)>,
    /// RETR of every message, in order, as the client reassembled it (CRLF line endings).
    pub messages: Vec<Vec<u8>>,
    /// The QUIT response, when the session ended with QUIT.
    pub quit: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pop3End {
    /// DELE every message, then QUIT.
    DeleteAndQuit,
    /// DELE every message, then drop the connection without QUIT.
    DeleteAndDrop,
    /// Just QUIT.
    Quit,
}

/// Logs in with USER/PASS, runs STAT, LIST, UIDL, RETR of each message, then ends as `end` says.
pub async fn pop3_session(server: SocketAddr, user: &str, password: &str, end: Pop3End) -> Pop3Session {
    let end = match end {
        Pop3End::DeleteAndQuit => "dele-quit",
        Pop3End::DeleteAndDrop => "dele-drop",
        Pop3End::Quit => "quit",
    };
    let args = [server.ip().to_string(), server.port().to_string(), user.to_owned(), end.to_owned()];
    let result = run("pop3_session.py", &args, Some(format!("{password}\n").as_bytes())).await;
    let pairs = |key: &str| -> Vec<(u64, String)> {
        result[key]
            .as_array()
            .expect("array")
            .iter()
            .map(|pair| {
                (
                    pair[0].as_u64().expect("number"),
                    pair[1].as_str().map(str::to_owned).unwrap_or_else(|| pair[1].to_string()),
                )
            })
            .collect()
    };
    Pop3Session {
        stat: (result["stat"][0].as_u64().expect("count"), result["stat"][1].as_u64().expect("size")),
        list: pairs("list").into_iter().map(|(n, size)| (n, size.parse().expect("size"))).collect(),
        uidl: pairs("uidl"),
        messages: result["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m.as_str().expect("latin-1 text").chars().map(|c| c as u8).collect())
            .collect(),
        quit: result["quit"].as_str().map(str::to_owned),
    }
}
