//! The webmail's browser tests: a scenario of `tests/browser/` (a node script driving Debian's chromium
//! through playwright-core) run against a stack, with the little protocol the scenarios share: the
//! environment names the stack and the accounts, a line `{"request":"deliver","subject":…}` on the
//! script's stdout asks the test for a delivery (answered on its stdin once done), and the last line of
//! stdout is the scenario's result as JSON. And `Trap`, a loopback HTTP server that records every
//! request, so a test can prove a hostile mail made the browser fetch nothing.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// How long one scenario may take, start of chromium included.
const SCENARIO_LIMIT: Duration = Duration::from_secs(240);

/// `tests/browser/`, where the scenarios and their `node_modules` live.
pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// What a scenario printed last, and everything it said on stderr (for the failure message).
pub struct Outcome {
    pub result: Value,
    pub stderr: String,
}

/// Runs `tests/browser/<name>` with `env`; each delivery the script asks for is made by `deliver` (with
/// the requested subject) before the script is told it happened. Panics with the script's stderr if it
/// fails, prints no JSON, or runs past `SCENARIO_LIMIT`.
pub async fn run_scenario<F, Fut>(name: &str, env: &[(&str, String)], mut deliver: F) -> Outcome
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core/package.json").exists(),
        "playwright-core is missing: run `. deploy/prerequisites` (npm ci in tests/browser)"
    );
    let mut child = tokio::process::Command::new("node")
        .arg(name)
        .current_dir(&dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is needed for the browser tests (deploy/prerequisites installs it)");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text).await;
        text
    });
    let conversation = async {
        let mut last = None;
        while let Some(line) = stdout.next_line().await.expect("reading the scenario's stdout") {
            let Ok(value) = serde_json::from_str::<Value>(&line) else { continue };
            if value["request"] == "deliver" {
                deliver(value["subject"].as_str().unwrap_or_default().to_owned()).await;
                let answer = format!("{}\n", json!({"delivered": true}));
                stdin.write_all(answer.as_bytes()).await.expect("answering the scenario");
                continue;
            }
            last = Some(value);
        }
        last
    };
    let last = tokio::time::timeout(SCENARIO_LIMIT, conversation).await;
    if last.is_err() {
        let _ = child.start_kill();
    }
    let status = child.wait().await.expect("waiting for node");
    let stderr = stderr.await.unwrap_or_default();
    let Ok(last) = last else {
        panic!("{name} ran past {SCENARIO_LIMIT:?}; its stderr:\n{stderr}");
    };
    let result = last.unwrap_or_else(|| panic!("{name} printed no result ({status}); its stderr:\n{stderr}"));
    assert!(status.success() && result["ok"] == true, "{name} failed ({status}): {result:#}\nits stderr:\n{stderr}");
    Outcome { result, stderr }
}

/// Where a test keeps what it produced (screenshots): `$MAILBUS_TEST_OUTPUT/<test>` or `<base>/<test>`,
/// emptied first, and printed.
pub fn output_dir(base: &Path, test: &str) -> PathBuf {
    let root = std::env::var_os("MAILBUS_TEST_OUTPUT").map(PathBuf::from).unwrap_or_else(|| base.to_path_buf());
    let dir = root.join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the test's output directory");
    println!("{test}: screenshots in {}", dir.display());
    dir
}

/// A loopback HTTP server that answers every request with an empty 200 and remembers its request line.
pub struct Trap {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Trap {
    pub async fn start() -> Trap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the trap");
        let addr = listener.local_addr().expect("the trap's address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    let mut line = String::new();
                    let _ = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await;
                    record.lock().unwrap().push(format!("{peer}: {}", line.trim_end()));
                    let _ = reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                });
            }
        });
        Trap { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every connection so far, with its first line.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.task.abort();
    }
}
