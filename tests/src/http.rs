//! HTTP for the http role's tests, through curl (a real client): one exchange as curl saw it, Basic
//! credentials, and a JMAP API request.

use std::net::SocketAddr;

use serde_json::Value;

/// One HTTP exchange as curl saw it.
pub struct Reply {
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Runs curl against `addr` with `args` (method, headers, data) on `path`.
pub async fn curl(addr: SocketAddr, path: &str, args: &[&str]) -> Reply {
    let url = format!("http://{addr}{path}");
    let mut command = tokio::process::Command::new("curl");
    command.args(["-s", "-i", "--http1.1", "--max-time", "20", "-H", "Expect:"]).args(args).arg(&url);
    let output = command.output().await.expect("running curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer from {url}: {text:?}"));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply { status, headers, body: body.to_owned() }
}

/// An `Authorization: Basic` header line.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Authorization: Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// POSTs a JMAP request.
pub async fn api(addr: SocketAddr, auth: &str, request: &Value) -> Reply {
    let body = request.to_string();
    curl(addr, "/jmap/api", &["-H", auth, "-H", "Content-Type: application/json", "--data-binary", &body]).await
}
