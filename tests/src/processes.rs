//! mailbus roles as separate processes, each with its own listening ports, for the tests that need what
//! only processes give: one tracing subscriber (and `service.name`) per replica, and `kill -9`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mailbus_devstack::free_port;

/// The variable naming a role's `/metrics` `/healthz` `/readyz` listener; `None` for no such role.
pub fn metrics_var(role: &str) -> Option<&'static str> {
    Some(match role {
        "mailbox" => "MAILBUS_MAILBOX_METRICS_LISTEN",
        "relay" => "MAILBUS_RELAY_METRICS_LISTEN",
        "smtp-ingress" => "MAILBUS_SMTP_METRICS_LISTEN",
        "access" => "MAILBUS_ACCESS_METRICS_LISTEN",
        "http" => "MAILBUS_HTTP_METRICS_LISTEN",
        _ => return None,
    })
}

/// One `mailbus <role>` process. Every `*_LISTEN` address is a free loopback port of its own, kept
/// across restarts; stdout and stderr go to `log`.
pub struct Replica {
    binary: PathBuf,
    pub role: &'static str,
    pub name: String,
    pub env: HashMap<&'static str, String>,
    pub log: PathBuf,
    child: Option<tokio::process::Child>,
}

impl Replica {
    /// Starts `<binary> <role>` (a test's `env!("CARGO_BIN_EXE_mailbus-under-test")`) with `shared`
    /// settings plus its own ports, `OTEL_SERVICE_NAME` `mailbus-<role>` and `service.instance.id` = `name`.
    pub fn spawn(
        binary: &Path,
        role: &'static str,
        name: &str,
        shared: &HashMap<&'static str, String>,
        logs: &Path,
    ) -> Replica {
        let mut env = shared.clone();
        for var in mailbus::settings::VARS.iter().filter(|v| v.name.ends_with("_LISTEN")) {
            env.insert(var.name, format!("127.0.0.1:{}", free_port().expect("a free port")));
        }
        for (name, value) in crate::stack::NO_SENDER_AUTH {
            env.entry(name).or_insert_with(|| value.to_string());
        }
        env.insert("OTEL_SERVICE_NAME", format!("mailbus-{role}"));
        env.insert("OTEL_RESOURCE_ATTRIBUTES", format!("service.instance.id={name}"));
        let mut replica = Replica {
            binary: binary.to_owned(),
            role,
            name: name.to_owned(),
            env,
            log: logs.join(format!("{name}.log")),
            child: None,
        };
        replica.start();
        replica
    }

    /// Starts the process (again), with the same settings and ports; its log is appended to.
    pub fn start(&mut self) {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("opening a role log");
        let child = tokio::process::Command::new(&self.binary)
            .arg(self.role)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(file.try_clone().expect("a second handle on the log"))
            .stderr(file)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting a mailbus role");
        self.child = Some(child);
    }

    /// `kill -9`, and waits until the process is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|child| child.id())
    }

    pub fn addr(&self, var: &str) -> SocketAddr {
        self.env[var].parse().expect("a listen address")
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.addr(metrics_var(self.role).expect("a role with a metrics listener"))
    }

    /// Waits until `/readyz` answers 200. If it never does, the failure carries the end of the
    /// replica's log, since the scratch directory holding the whole log is gone once the next test run
    /// starts.
    pub async fn wait_ready(&self, limit: Duration) {
        let addr = self.metrics_addr();
        let deadline = tokio::time::Instant::now() + limit;
        while http_get(addr, "/readyz").await.is_none_or(|(status, _)| status != OK) {
            if tokio::time::Instant::now() >= deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                panic!(
                    "{} never became ready (waited {limit:?}; log: {}); its last lines:\n{tail}",
                    self.name,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// This replica's `/metrics`.
    pub async fn metrics(&self) -> String {
        let (status, body) = http_get(self.metrics_addr(), "/metrics").await.expect("reaching /metrics");
        assert_eq!(status, OK, "{} /metrics", self.name);
        body
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// The status line of a successful answer to [`http_get`].
pub const OK: &str = "HTTP/1.0 200 OK";

/// A minimal HTTP/1.0 GET (what Prometheus and the health checks do): (status line, body), or `None`
/// when nothing answers within five seconds.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        Some((head.lines().next().unwrap_or_default().to_owned(), body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange).await.ok().flatten()
}
