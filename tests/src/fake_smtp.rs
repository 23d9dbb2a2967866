//! A scriptable remote SMTP server on loopback, standing for "another domain's MX" in relay tests. It is
//! deliberately simple and permissive: plain TCP (no STARTTLS, as some peers), 8BITMIME only when asked,
//! and per-recipient replies chosen by a script.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message the fake accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

/// Decides the reply to `RCPT TO:<address>` on its `attempt`-th time (1-based).
pub type RcptScript = Box<dyn Fn(&str, usize) -> String + Send + Sync>;

pub struct Script {
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub rcpt: RcptScript,
    /// A server that is slow once: wait this long before answering the first message's DATA.
    pub first_data_delay: std::time::Duration,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            eight_bit_mime: true,
            smtputf8: true,
            rcpt: Box::new(|_, _| "250 2.1.5 Ok".into()),
            first_data_delay: std::time::Duration::ZERO,
        }
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    attempts: HashMap<String, usize>,
    connections: usize,
}

pub struct FakeSmtp {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeSmtp {
    pub async fn start(script: Script) -> FakeSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the fake SMTP server");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let (script, shared) = (Arc::new(script), state.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.lock().unwrap().connections += 1;
                tokio::spawn(session(stream, script.clone(), shared.clone()));
            }
        });
        FakeSmtp { addr, state, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// How many connections the server accepted.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// How many times RCPT was given for `address`.
    pub fn attempts(&self, address: &str) -> usize {
        self.state.lock().unwrap().attempts.get(address).copied().unwrap_or(0)
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn session(stream: TcpStream, script: Arc<Script>, state: Arc<Mutex<State>>) {
    let mut stream = BufReader::new(stream);
    let mut transaction: Option<Received> = None;
    let _ = stream.get_mut().write_all(b"220 fake.test ESMTP\r\n").await;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let upper = line.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            let mut lines = vec!["250-fake.test", "250-PIPELINING"];
            if script.eight_bit_mime {
                lines.push("250-8BITMIME");
            }
            if script.smtputf8 {
                lines.push("250-SMTPUTF8");
            }
            lines.push("250 ENHANCEDSTATUSCODES");
            lines.join("\r\n")
        } else if upper.starts_with("HELO") || upper.starts_with("RSET") || upper.starts_with("NOOP") {
            transaction = None;
            "250 2.0.0 Ok".into()
        } else if upper.starts_with("MAIL FROM:") {
            let from = address_in(&line);
            transaction = Some(Received { mail_from: from, rcpt_to: Vec::new(), data: Vec::new() });
            "250 2.1.0 Ok".into()
        } else if upper.starts_with("RCPT TO:") {
            let to = address_in(&line);
            let attempt = {
                let mut state = state.lock().unwrap();
                let count = state.attempts.entry(to.clone()).or_insert(0);
                *count += 1;
                *count
            };
            let reply = (script.rcpt)(&to, attempt);
            if reply.starts_with('2')
                && let Some(t) = transaction.as_mut()
            {
                t.rcpt_to.push(to);
            }
            reply
        } else if upper.starts_with("DATA") {
            match transaction.take().filter(|t| !t.rcpt_to.is_empty()) {
                None => "554 5.5.1 No valid recipients".into(),
                Some(mut t) => {
                    let _ = stream.get_mut().write_all(b"354 go ahead\r\n").await;
                    t.data = read_data(&mut stream).await;
                    let first = {
                        let mut state = state.lock().unwrap();
                        state.received.push(t);
                        state.received.len() == 1
                    };
                    if first {
                        tokio::time::sleep(script.first_data_delay).await;
                    }
                    "250 2.0.0 Ok: queued".into()
                }
            }
        } else if upper.starts_with("QUIT") {
            let _ = stream.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
            return;
        } else {
            "500 5.5.1 Unknown command".into()
        };
        if stream.get_mut().write_all(format!("{reply}\r\n").as_bytes()).await.is_err() {
            return;
        }
    }
}

fn address_in(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_owned()
}

/// Reads a DATA body up to CRLF.CRLF and undoes dot-stuffing.
async fn read_data(stream: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if stream.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
            return data;
        }
        if line == b".\r\n" {
            return data;
        }
        let line = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
        data.extend_from_slice(line);
    }
}
