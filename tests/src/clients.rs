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

/// How a POP3 client connects and logs in.
#[derive(Debug, Clone, Default)]
pub struct Pop3Options {
    pub tls: Option<Pop3Tls>,
    /// The certificate to verify the server against.
    pub cafile: Option<std::path::PathBuf>,
    /// AUTH PLAIN (RFC 5034, with an initial response) instead of USER/PASS.
    pub auth_plain: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pop3Tls {
    /// STLS on the plain port (RFC 2595).
    Stls,
    /// TLS from the first byte (port 995).
    Implicit,
}

fn pop3_args(server: SocketAddr, user: &str, end: &str, options: &Pop3Options) -> Vec<String> {
    let mut args = vec![server.ip().to_string(), server.port().to_string(), user.to_owned(), end.to_owned()];
    match options.tls {
        Some(Pop3Tls::Stls) => args.extend(["--tls".into(), "stls".into()]),
        Some(Pop3Tls::Implicit) => args.extend(["--tls".into(), "implicit".into()]),
        None => {}
    }
    if let Some(cafile) = &options.cafile {
        args.extend(["--cafile".into(), cafile.display().to_string()]);
    }
    if options.auth_plain {
        args.extend(["--auth".into(), "plain".into()]);
    }
    args
}

fn parse_pop3(result: &Value) -> Result<Pop3Session, String> {
    if let Some(error) = result["error"].as_str() {
        return Err(error.to_owned());
    }
    let pairs = |key: &str| -> Vec<(u64, String)> {
        result[key]
            .as_array()
            .expect("array")
            .iter()
            .map(|pair| {
                let second = pair[1].as_str().map(str::to_owned).unwrap_or_else(|| pair[1].to_string());
                (pair[0].as_u64().expect("number"), second)
            })
            .collect()
    };
    Ok(Pop3Session {
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
    })
}

fn end_word(end: Pop3End) -> &'static str {
    match end {
        Pop3End::DeleteAndQuit => "dele-quit",
        Pop3End::DeleteAndDrop => "dele-drop",
        Pop3End::Quit => "quit",
    }
}

/// Logs in with USER/PASS in the clear, runs STAT, LIST, UIDL, RETR of each message, then ends as `end`
/// says. Panics if the login is refused.
pub async fn pop3_session(server: SocketAddr, user: &str, password: &str, end: Pop3End) -> Pop3Session {
    pop3_session_with(server, user, password, end, &Pop3Options::default())
        .await
        .unwrap_or_else(|error| panic!("POP3 login as {user} refused: {error}"))
}

/// Like [`pop3_session`], with TLS and AUTH options; `Err` holds the server's refusal of the login.
pub async fn pop3_session_with(
    server: SocketAddr,
    user: &str,
    password: &str,
    end: Pop3End,
    options: &Pop3Options,
) -> Result<Pop3Session, String> {
    let args = pop3_args(server, user, end_word(end), options);
    let result = run("pop3_session.py", &args, Some(format!("{password}\n").as_bytes())).await;
    parse_pop3(&result)
}

/// A POP3 session that stays logged in (holding the maildrop lock) until dropped or killed.
pub struct HeldPop3 {
    pub child: tokio::process::Child,
    pub login: Result<Pop3Session, String>,
    /// Closing it ends the session (without QUIT).
    _stdin: tokio::process::ChildStdin,
}

/// Logs in and keeps the session open.
pub async fn pop3_hold(server: SocketAddr, user: &str, password: &str, options: &Pop3Options) -> HeldPop3 {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut child = tokio::process::Command::new("python3")
        .arg(script("pop3_session.py"))
        .args(pop3_args(server, user, "hold", options))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 is needed for the client tests");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(format!("{password}\n").as_bytes()).await.expect("writing the password");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut line = String::new();
    stdout.read_line(&mut line).await.expect("reading the held session's report");
    let result: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("pop3 hold printed {line:?}: {e}"));
    HeldPop3 { child, login: parse_pop3(&result), _stdin: stdin }
}

/// A bare SMTP connection for the tests that need exact bytes on the wire (pipelining, BDAT, smuggling,
/// open-relay attempts). The real-client tests use smtplib, swaks and curl instead.
pub struct SmtpRaw {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
}

/// One SMTP reply: its code and its lines' texts joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawReply {
    pub code: u16,
    pub text: String,
}

impl SmtpRaw {
    /// Connects and returns the connection with its greeting.
    pub async fn connect(server: SocketAddr) -> (SmtpRaw, RawReply) {
        let stream = tokio::net::TcpStream::connect(server).await.expect("connecting to SMTP");
        let mut raw = SmtpRaw { stream: tokio::io::BufReader::new(stream) };
        let greeting = raw.reply().await;
        (raw, greeting)
    }

    /// Writes bytes as they are.
    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.get_mut().write_all(bytes).await.expect("writing to SMTP");
    }

    /// Reads one (possibly multi-line) reply; code 0 when the server closed the connection.
    pub async fn reply(&mut self) -> RawReply {
        use tokio::io::AsyncBufReadExt;
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(std::time::Duration::from_secs(30), self.stream.read_line(&mut line))
                .await
                .expect("no SMTP reply within 30 s")
                .expect("reading from SMTP");
            if read == 0 {
                return RawReply { code: 0, text: lines.join("\n") };
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            lines.push(line.get(4..).unwrap_or_default().to_owned());
            if line.as_bytes().get(3) != Some(&b'-') {
                return RawReply { code, text: lines.join("\n") };
            }
        }
    }

    /// Sends one command line (CRLF added) and reads its reply.
    pub async fn command(&mut self, line: &str) -> RawReply {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }
}

/// What a submission session with smtplib saw.
#[derive(Debug, Clone)]
pub struct Submission {
    /// EHLO keywords before STARTTLS (empty for implicit TLS).
    pub features_before_tls: Vec<String>,
    /// EHLO keywords on the encrypted connection.
    pub features: Vec<String>,
    /// "ok", or the stage that failed and the server's code and text.
    pub outcome: String,
    pub code: u16,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitMode {
    /// Port 587: STARTTLS, AUTH PLAIN, send.
    StartTls,
    /// Port 465: TLS from the first byte, AUTH LOGIN, send.
    ImplicitTls,
    /// STARTTLS but no AUTH.
    StartTlsNoAuth,
    /// Port 25 style: STARTTLS, no AUTH.
    Mx,
}

/// Sends `message` with smtplib over TLS (verifying the server against `cafile`), authenticating as `user`.
pub async fn smtp_submit(
    server: SocketAddr,
    mode: SubmitMode,
    cafile: &std::path::Path,
    (user, password): (&str, &str),
    from: &str,
    to: &[&str],
    message: &[u8],
) -> Submission {
    let mode = match mode {
        SubmitMode::StartTls => "starttls",
        SubmitMode::ImplicitTls => "tls",
        SubmitMode::StartTlsNoAuth => "starttls-noauth",
        SubmitMode::Mx => "mx",
    };
    let mut args = vec![
        server.ip().to_string(),
        server.port().to_string(),
        mode.to_owned(),
        cafile.display().to_string(),
        user.to_owned(),
        from.to_owned(),
    ];
    args.extend(to.iter().map(|t| t.to_string()));
    let mut input = format!("{password}\n").into_bytes();
    input.extend_from_slice(message);
    let result = run("smtp_submit.py", &args, Some(&input)).await;
    let words = |key: &str| -> Vec<String> {
        result[key]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    Submission {
        features_before_tls: words("features_before_tls"),
        features: words("features"),
        outcome: result["outcome"].as_str().unwrap_or_default().to_owned(),
        code: result["code"].as_u64().unwrap_or(0) as u16,
        text: result["text"].as_str().unwrap_or_default().to_owned(),
    }
}

/// Runs an imaplib session: each step is `["method", args...]` (see `tests/clients/imap_session.py`);
/// returns one `[type, data]` per step, after the greeting at index 0.
pub async fn imap_session(server: SocketAddr, tls: Option<(&str, &std::path::Path)>, steps: Value) -> Vec<Value> {
    let mut args = vec![server.ip().to_string(), server.port().to_string()];
    if let Some((mode, cafile)) = tls {
        args.extend(["--tls".into(), mode.into(), "--cafile".into(), cafile.display().to_string()]);
    }
    let stdin = steps.to_string();
    match run("imap_session.py", &args, Some(stdin.as_bytes())).await {
        Value::Array(results) => results,
        other => panic!("imap_session.py printed {other}"),
    }
}

/// An IMAP session over a bare socket that turns on COMPRESS=DEFLATE (`tests/clients/imap_compress.py`,
/// with Python's zlib): `mode` is `fetch`, `corrupt` or `bomb`; `tls` is `Some(cafile)` for implicit TLS.
pub async fn imap_compress(
    server: SocketAddr,
    tls: Option<&std::path::Path>,
    (user, password): (&str, &str),
    mode: &str,
) -> Value {
    let mut args = vec![server.ip().to_string(), server.port().to_string()];
    if let Some(cafile) = tls {
        args.extend(["--tls".into(), "implicit".into(), "--cafile".into(), cafile.display().to_string()]);
    }
    let stdin = serde_json::json!({ "user": user, "password": password, "mode": mode }).to_string();
    run("imap_compress.py", &args, Some(stdin.as_bytes())).await
}

/// Runs a ManageSieve session with the `managesieve` library (PyPI): STARTTLS (verifying `cafile`),
/// AUTHENTICATE PLAIN, then each step `["method", args...]` (see `tests/clients/managesieve_session.py`).
pub async fn managesieve_session(
    server: SocketAddr,
    cafile: &std::path::Path,
    (user, password): (&str, &str),
    steps: Value,
) -> Value {
    let args = [server.ip().to_string(), server.port().to_string(), cafile.display().to_string()];
    let stdin = serde_json::json!({ "user": user, "password": password, "steps": steps }).to_string();
    run("managesieve_session.py", &args, Some(stdin.as_bytes())).await
}

/// Reads INBOX with IMAPClient (PyPI): `mode` is `structure` (ENVELOPE, BODYSTRUCTURE and FLAGS of every
/// message, as IMAPClient parsed them) or `idle <seconds>` (the responses an IDLE brought).
pub async fn imapclient_session(server: SocketAddr, user: &str, password: &str, mode: &[&str]) -> Value {
    let mut args = vec![server.ip().to_string(), server.port().to_string(), user.to_owned()];
    args.extend(mode.iter().map(|m| m.to_string()));
    run("imapclient_session.py", &args, Some(password.as_bytes())).await
}

/// Runs a command-line client with `stdin`; returns whether it exited 0, and its output (stdout then
/// stderr).
pub async fn run_program(program: &str, args: &[String], stdin: &[u8]) -> (bool, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is needed (deploy/prerequisites installs it): {e}"));
    child.stdin.take().expect("stdin is piped").write_all(stdin).await.expect("writing to the client");
    let output = child.wait_with_output().await.expect("running the client");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Polls a POP3 account once with fetchmail over STLS (verifying `cafile` for `mx.test`), each message
/// into a file `msg.*` of `dir`; `keep` leaves them on the server (and fetches only new ones next time).
/// Returns how many files `dir` holds, and what fetchmail said.
pub async fn fetchmail(
    server: SocketAddr,
    (user, password): (&str, &str),
    cafile: &std::path::Path,
    dir: &std::path::Path,
    keep: bool,
) -> (usize, String) {
    let rc = dir.join("fetchmailrc");
    // uidl is a server option (fetchmail keeps its own record of what it has seen); keep a user option.
    let (uidl, keep) = if keep { ("uidl", "keep") } else { ("", "nokeep") };
    std::fs::write(
        &rc,
        format!(
            "set no bouncemail\npoll {} port {} protocol pop3 {uidl} auth password\n  user '{user}' there with password '{password}' is 'root' here\n  {keep} sslproto 'TLS1.2+' sslcertck sslcertfile '{}' sslcommonname mx.test\n  mda \"/bin/sh -c 'cat > {}/msg.$$'\"\n",
            server.ip(),
            server.port(),
            cafile.display(),
            dir.display()
        ),
    )
    .expect("writing the fetchmailrc");
    std::fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod fetchmailrc");
    let args: Vec<String> = vec![
        "-f".into(),
        rc.display().to_string(),
        "-i".into(),
        dir.join("ids").display().to_string(),
        "--nosyslog".into(),
    ];
    let (_, output) = run_program("fetchmail", &args, b"").await;
    let fetched = std::fs::read_dir(dir)
        .expect("reading the fetchmail directory")
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("msg.")))
        .count();
    (fetched, output)
}

/// Submits with swaks: STARTTLS (verifying `cafile`), AUTH PLAIN as `user`, from `user` to `to`; `extra`
/// are more swaks options (`--header`, `--body`, `--pipeline`). Returns whether swaks succeeded, and
/// what it said.
pub async fn swaks_submit(
    server: SocketAddr,
    cafile: &std::path::Path,
    (user, password): (&str, &str),
    to: &str,
    extra: &[&str],
) -> (bool, String) {
    let (server, cafile) = (server.to_string(), cafile.display().to_string());
    let mut args = vec![
        "--server",
        &server,
        "--tls",
        "--tls-verify",
        "--tls-ca-path",
        &cafile,
        "--auth",
        "PLAIN",
        "--auth-user",
        user,
        "--auth-password",
        password,
        "--from",
        user,
        "--to",
        to,
    ];
    args.extend(extra);
    let args: Vec<String> = args.into_iter().map(String::from).collect();
    run_program("swaks", &args, b"").await
}

/// Submits `message` with curl: STARTTLS required (verifying `cafile`), AUTH as `user`, from `user` to
/// `to`. Returns whether curl succeeded, and what it said.
pub async fn curl_submit(
    server: SocketAddr,
    cafile: &std::path::Path,
    (user, password): (&str, &str),
    to: &str,
    message: &[u8],
) -> (bool, String) {
    let args: Vec<String> = [
        &format!("smtp://{server}"),
        "--ssl-reqd",
        "--cacert",
        &cafile.display().to_string(),
        "--user",
        &format!("{user}:{password}"),
        "--mail-from",
        user,
        "--mail-rcpt",
        to,
        "--upload-file",
        "-",
        "--silent",
        "--show-error",
    ]
    .map(String::from)
    .to_vec();
    run_program("curl", &args, message).await
}

/// One DKIM-Signature as dkimpy judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimVerdict {
    pub domain: String,
    pub selector: String,
    pub algorithm: String,
    pub ok: bool,
}

/// Verifies every DKIM-Signature of `message` with dkimpy (`dkim_verify.py`), its key look-ups answered
/// from `records` (`(name, TXT value)`) and nothing else.
pub async fn dkim_verify(message: &[u8], records: &[(String, String)]) -> Vec<DkimVerdict> {
    let args: Vec<String> = records.iter().map(|(name, value)| format!("{name}={value}")).collect();
    let result = run("dkim_verify.py", &args, Some(message)).await;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    result["signatures"]
        .as_array()
        .expect("a signatures list")
        .iter()
        .map(|s| DkimVerdict {
            domain: text(&s["d"]),
            selector: text(&s["s"]),
            algorithm: text(&s["a"]),
            ok: s["ok"] == true,
        })
        .collect()
}

/// The ARC chain of `message` as dkimpy judged it (`arc_verify.py`): its `cv` ("pass", "fail", "none")
/// and dkimpy's comment, its key look-ups answered from `records` (`(name, TXT value)`) and nothing else.
pub async fn arc_verify(message: &[u8], records: &[(String, String)]) -> (String, String) {
    let args: Vec<String> = records.iter().map(|(name, value)| format!("{name}={value}")).collect();
    let result = run("arc_verify.py", &args, Some(message)).await;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (text(&result["cv"]), text(&result["comment"]))
}
