//! `mailbus admin mail import --imap-host` against a real Dovecot that the test starts (Maildir store in
//! a temporary directory, a passwd-file, TLS with the harness's generated certificate), filled over
//! IMAP by imaplib: the import is compared with the source message by message over imaplib (folders,
//! flags and keywords, INTERNALDATE, size, octets), a second run adds nothing, STARTTLS with the
//! certificate trusted works as IMAPS does, an untrusted certificate is refused, and a connection cut
//! in the middle of the run ends with a report and a state that the next run completes.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mailbus::roles::Role;
use mailbus_tests::TestStack;
use mailbus_tests::clients::imap_session;
use mailbus_tests::dovecot::{Protocol, ThrowawayDovecot, Tls};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::admin::admin_with_env;
use crate::mail_import::{Shown, fetched};

const SOURCE_USER: &str = "src@example.net";
const SOURCE_PASSWORD: &str = "source pw";

fn message(subject: &str, body: &str) -> String {
    format!("From: Old <old@example.net>\r\nTo: src@example.net\r\nSubject: {subject}\r\n\r\n{body}\r\n")
}

/// The source's folders (Dovecot's `.` delimiter; `Gesendet` is \Sent by configuration) and messages:
/// flags, keywords, internal dates, 8-bit text, two identical copies, and one large message last.
fn source_steps() -> serde_json::Value {
    let large = large_body();
    json!([
        ["login", SOURCE_USER, SOURCE_PASSWORD],
        ["create", "Lists"],
        ["create", "Lists.rust"],
        ["create", "Gesendet"],
        ["create", "Entw&APw-rfe"],
        ["subscribe", "Lists.rust"],
        ["append", "INBOX", "(\\Seen)", "\"01-Feb-2024 10:00:00 +0100\"", message("one", "First.")],
        [
            "append",
            "INBOX",
            "(\\Flagged $Work)",
            "\"15-Mar-2023 23:59:59 -0500\"",
            message("two", "Gr\u{fc}\u{df}e, 8-bit.")
        ],
        ["append", "INBOX", null, "\"02-Jan-2020 08:00:00 +0000\"", message("same", "Twice.")],
        ["append", "INBOX", null, "\"02-Jan-2020 08:00:00 +0000\"", message("same", "Twice.")],
        ["append", "Entw&APw-rfe", "(\\Draft)", "\"03-Jan-2021 09:30:00 +0200\"", message("draft", "Not sent.")],
        ["append", "Gesendet", "(\\Seen \\Answered)", "\"04-Apr-2022 12:00:00 +0000\"", message("sent", "Sent.")],
        ["append", "Lists.rust", "(\\Seen)", "\"05-May-2025 05:05:05 +0000\"", message("large", &large)],
    ])
}

fn large_body() -> String {
    (0..2600).map(|n| format!("line {n:05} of a long message, to make the last one big.......\r\n")).collect()
}

/// A source an mbox can hold (no folder with both messages and children, which mbox files cannot be):
/// flags, keywords, internal dates in several zones, 8-bit text, two identical copies, body lines that
/// start with `From ` and `>From `, and a large message.
fn mbox_source_steps() -> serde_json::Value {
    let quoting =
        "From here on, says the first line.\r\n>From quoted, mboxrd would say.\r\n\r\nFrom the start of a paragraph.";
    json!([
        ["login", SOURCE_USER, SOURCE_PASSWORD],
        ["create", "Archive.2024"],
        ["create", "Gesendet"],
        ["create", "Entw&APw-rfe"],
        ["append", "INBOX", "(\\Seen)", "\"01-Feb-2024 10:00:00 +0100\"", message("one", quoting)],
        [
            "append",
            "INBOX",
            "(\\Flagged $Work)",
            "\"15-Mar-2023 23:59:59 -0500\"",
            message("two", "Gr\u{fc}\u{df}e, 8-bit.")
        ],
        ["append", "INBOX", null, "\"02-Jan-2020 08:00:00 +0000\"", message("same", "Twice.")],
        ["append", "INBOX", null, "\"02-Jan-2020 08:00:00 +0000\"", message("same", "Twice.")],
        ["append", "Entw&APw-rfe", "(\\Draft)", "\"03-Jan-2021 09:30:00 +0200\"", message("draft", "Not sent.")],
        ["append", "Gesendet", "(\\Seen \\Answered)", "\"04-Apr-2022 12:00:00 +0000\"", message("sent", "Sent.")],
        ["append", "Archive.2024", "(\\Seen)", "\"05-May-2025 05:05:05 +0000\"", message("large", &large_body())],
    ])
}

/// Our name for a source folder: `/` for `.`, and the SPECIAL-USE folder onto the account's own.
fn ours(source: &str) -> String {
    if source == "Gesendet" { "Sent".to_owned() } else { source.replace('.', "/") }
}

/// Every selectable folder LIST shows, by its wire name, with its messages in UID order.
async fn view(addr: SocketAddr, tls: Option<(&str, &Path)>, user: &str, password: &str) -> Vec<(String, Vec<Shown>)> {
    let results = imap_session(addr, tls, json!([["login", user, password], ["list"]])).await;
    assert_eq!(results[1][0], "OK", "{results:?}");
    let mut names: Vec<String> = results[2][1]
        .as_array()
        .unwrap_or_else(|| panic!("LIST: {results:?}"))
        .iter()
        .filter_map(|line| line.as_str())
        .filter(|line| !line.contains("\\Noselect"))
        .map(|line| line.split_once(") \"").unwrap().1.split_once("\" ").unwrap().1.trim_matches('"').to_owned())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let steps = json!([
            ["login", user, password],
            ["select", name, true],
            ["uid", "fetch", "1:*", "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"],
        ]);
        let results = imap_session(addr, tls, steps).await;
        assert_eq!(results[2][0], "OK", "select {name}: {results:?}");
        out.push((name, fetched(&results[3])));
    }
    out
}

/// Each source folder's messages are the account's, in the same order, with the same flags, dates,
/// sizes and octets; nothing else in the account holds mail.
fn check(source: &[(String, Vec<Shown>)], imported: &[(String, Vec<Shown>)], ours: fn(&str) -> String) {
    for (name, messages) in source {
        let target = ours(name);
        let (_, got) = imported.iter().find(|(n, _)| *n == target).unwrap_or_else(|| panic!("no {target}"));
        assert_eq!(got, messages, "{name} imported as {target}");
    }
    let expected: usize = source.iter().map(|(_, m)| m.len()).sum();
    let total: usize = imported.iter().map(|(_, m)| m.len()).sum();
    assert_eq!(total, expected, "nothing more than the source: {imported:?}");
}

/// A TCP relay to `target` that can cut the server's side after a number of octets, as a source that
/// drops the connection mid-run; it counts what it relayed from the server on each connection.
struct CuttingProxy {
    addr: SocketAddr,
    relayed: Arc<AtomicUsize>,
    cut_after: Arc<AtomicUsize>,
}

impl CuttingProxy {
    async fn start(target: SocketAddr) -> CuttingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let relayed = Arc::new(AtomicUsize::new(0));
        let cut_after = Arc::new(AtomicUsize::new(usize::MAX));
        let (count, cut) = (relayed.clone(), cut_after.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(target).await.unwrap();
                count.store(0, Ordering::SeqCst);
                tokio::spawn(relay(client, server, count.clone(), cut.load(Ordering::SeqCst)));
            }
        });
        CuttingProxy { addr, relayed, cut_after }
    }
}

async fn relay(client: tokio::net::TcpStream, server: tokio::net::TcpStream, count: Arc<AtomicUsize>, cut: usize) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut server_write).await });
    let mut buffer = vec![0u8; 16 * 1024];
    while let Ok(read) = server_read.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        let allowed = cut.saturating_sub(count.load(Ordering::SeqCst)).min(read);
        if client_write.write_all(&buffer[..allowed]).await.is_err() {
            break;
        }
        count.fetch_add(allowed, Ordering::SeqCst);
        if allowed < read {
            break;
        }
    }
    upstream.abort();
}

fn import_args<'a>(address: &'a str, host: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["mail", "import", address, "--imap-host", host, "--imap-user", SOURCE_USER];
    args.extend(["--imap-password-env", "SOURCE_IMAP_PASSWORD"]);
    args.extend(extra);
    args
}

const PASSWORD_ENV: &[(&str, &str)] = &[("SOURCE_IMAP_PASSWORD", SOURCE_PASSWORD)];

/// The `messages N (` count of a summary line.
fn added(stdout: &str) -> usize {
    let from = stdout.rfind("messages ").unwrap_or_else(|| panic!("no summary: {stdout}")) + "messages ".len();
    stdout[from..].split_whitespace().next().unwrap().parse().unwrap()
}

/// A Dovecot with TLS on the harness's certificate, filled over IMAPS by imaplib, and what it serves.
async fn filled_dovecot() -> (ThrowawayDovecot, Vec<(String, Vec<Shown>)>) {
    filled_dovecot_with(source_steps()).await
}

/// As [`filled_dovecot`], with these imaplib steps (seven messages).
async fn filled_dovecot_with(steps: serde_json::Value) -> (ThrowawayDovecot, Vec<(String, Vec<Shown>)>) {
    let infra = tokio::task::spawn_blocking(mailbus_tests::Infra::get).await.unwrap();
    let cert = infra.tls_cert.clone();
    let key = infra.tls_key.clone();
    let dovecot = tokio::task::spawn_blocking(move || {
        let tls = Tls { cert: &cert, key: &key };
        let users = [SOURCE_USER.to_owned()];
        let hashes = [format!("{{PLAIN}}{SOURCE_PASSWORD}")];
        ThrowawayDovecot::start_with(Protocol::Imap, &users, &hashes, &[Vec::new()], Some(tls))
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("starting Dovecot (deploy/prerequisites installs dovecot-imapd): {e:#}"));
    let imaps = dovecot.tls_addr.unwrap();
    let source_tls = Some(("implicit", infra.tls_cert.as_path()));
    let results = imap_session(imaps, source_tls, steps).await;
    assert!(results[1..].iter().all(|r| r[0] == "OK"), "filling Dovecot: {results:?}");
    let source = view(imaps, source_tls, SOURCE_USER, SOURCE_PASSWORD).await;
    assert_eq!(source.iter().map(|(_, m)| m.len()).sum::<usize>(), 7, "{source:?}");
    (dovecot, source)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_dovecot_imports_over_tls_message_by_message_and_again_adds_nothing() {
    let infra = tokio::task::spawn_blocking(mailbus_tests::Infra::get).await.unwrap();
    let (dovecot, source) = filled_dovecot().await;
    let imaps = dovecot.tls_addr.unwrap();
    let stack = TestStack::builder().roles(&[Role::Mailbox, Role::Access]).start().await;
    for user in ["ann@example.org", "bea@example.org", "cid@example.org"] {
        stack.add_account(user, "pw").await;
    }
    let host = imaps.to_string();

    // The password only from a file or the environment, and it must be given.
    let (code, _, stderr) = admin_with_env(&stack, &import_args("ann@example.org", &host, &[]), "", &[]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("reading the password from $SOURCE_IMAP_PASSWORD"), "{stderr}");
    let mut no_password = vec!["mail", "import", "ann@example.org", "--imap-host", &host, "--imap-user", "x"];
    let (code, _, stderr) = admin_with_env(&stack, &no_password, "", &[]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("--imap-password-file or --imap-password-env"), "{stderr}");
    no_password.extend(["--imap-password", "secret"]);
    assert_eq!(admin_with_env(&stack, &no_password, "", &[]).await.0, 2, "no password on the command line");
    // IMAPS with a self-signed certificate: refused unless trusted or --insecure.
    let (code, _, stderr) = admin_with_env(&stack, &import_args("ann@example.org", &host, &[]), "", PASSWORD_ENV).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("TLS with the source failed") && stderr.contains("certificate"), "{stderr}");
    let (code, stdout, stderr) =
        admin_with_env(&stack, &import_args("ann@example.org", &host, &["--insecure"]), "", PASSWORD_ENV).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("messages 7 (") && stdout.contains("refused 0"), "{stdout}");
    let imported = view(stack.imap_addr(), None, "ann@example.org", "pw").await;
    check(&source, &imported, ours);
    // Subscriptions come along: Lists/rust was subscribed at the source, Lists was not.
    let lsub = imap_session(stack.imap_addr(), None, json!([["login", "ann@example.org", "pw"], ["lsub"]])).await;
    let subscribed: Vec<&str> = lsub[2][1]
        .as_array()
        .unwrap_or_else(|| panic!("LSUB: {lsub:?}"))
        .iter()
        .filter_map(|line| line.as_str()?.rsplit_once("\"/\" "))
        .map(|(_, name)| name.trim_matches('"'))
        .collect();
    assert!(subscribed.contains(&"Lists/rust"), "{subscribed:?}");
    assert!(!subscribed.contains(&"Lists") && !subscribed.contains(&"Entw&APw-rfe"), "{subscribed:?}");

    // Again, over STARTTLS with the certificate trusted: nothing is added.
    let ca = infra.tls_cert.display().to_string();
    let plain_port = dovecot.addr.to_string();
    let starttls = ["--imap-security", "starttls", "--imap-ca", ca.as_str()];
    let (code, stdout, stderr) =
        admin_with_env(&stack, &import_args("ann@example.org", &plain_port, &starttls), "", PASSWORD_ENV).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("messages 0 (0 bytes), skipped 7"), "{stdout}");
    assert_eq!(view(stack.imap_addr(), None, "ann@example.org", "pw").await, imported);

    // A source that drops the connection mid-run: measure a whole run through the relay, then cut the
    // next one at 60% of it, inside the large last message.
    let proxy = CuttingProxy::start(imaps).await;
    let through = proxy.addr.to_string();
    let insecure = ["--insecure"];
    let (code, stdout, stderr) =
        admin_with_env(&stack, &import_args("bea@example.org", &through, &insecure), "", PASSWORD_ENV).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let whole = proxy.relayed.load(Ordering::SeqCst);
    proxy.cut_after.store(whole * 6 / 10, Ordering::SeqCst);
    let (code, stdout, stderr) =
        admin_with_env(&stack, &import_args("cid@example.org", &through, &insecure), "", PASSWORD_ENV).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("connection to the source lost"), "{stderr}");
    assert!(stderr.contains("run it again to resume"), "{stderr}");
    let first = added(&stdout);
    assert!(first > 0 && first < 7, "the cut came mid-run: {stdout}");
    let (code, stdout, stderr) =
        admin_with_env(&stack, &import_args("cid@example.org", &host, &insecure), "", PASSWORD_ENV).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(added(&stdout), 7 - first, "{stdout}");
    assert!(stdout.contains(&format!("skipped {first} ")), "{stdout}");
    check(&source, &view(stack.imap_addr(), None, "cid@example.org", "pw").await, ours);
    stack.stop().await;
    drop(dovecot);
}

/// The Maildir a real Dovecot wrote (its `.`-separated Maildir++ folders, flags in the file names,
/// keywords in `dovecot-keywords`, INTERNALDATE as the files' mtimes) imports as Dovecot serves it over
/// IMAP. A Maildir holds no SPECIAL-USE attributes (they were Dovecot's configuration), so `Gesendet`
/// keeps its name here. Then the other way (the issue: an export "readable by Dovecot"): our Maildir
/// export, put in place of the Dovecot user's own Maildir, is served by Dovecot exactly as the source was.
#[tokio::test(flavor = "multi_thread")]
async fn a_maildir_written_by_dovecot_imports_as_dovecot_serves_it_and_our_export_is_served_alike() {
    let (dovecot, source) = filled_dovecot().await;
    let maildir = dovecot.dir.path().join("mail").join(SOURCE_USER).join("Maildir");
    assert!(maildir.join(".Lists.rust").is_dir(), "Dovecot's Maildir++ layout in {}", maildir.display());
    let stack = TestStack::builder().roles(&[Role::Mailbox, Role::Access]).start().await;
    stack.add_account("dan@example.org", "pw").await;
    let path = maildir.display().to_string();
    let (code, stdout, stderr) =
        admin_with_env(&stack, &["mail", "import", "dan@example.org", "--maildir", &path], "", &[]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("messages 7 (") && stdout.contains("refused 0"), "{stdout}");
    let maildir_name = |name: &str| name.replace('.', "/");
    check(&source, &view(stack.imap_addr(), None, "dan@example.org", "pw").await, maildir_name);

    // The Dovecot user's Maildir (and Dovecot's indexes in it) moves aside; our export takes its place.
    std::fs::rename(&maildir, maildir.with_file_name("Maildir.dovecot")).unwrap();
    let (code, stdout, stderr) =
        admin_with_env(&stack, &["mail", "export", "dan@example.org", "--maildir", &path], "", &[]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("messages 7 ("), "{stdout}");
    let status = std::process::Command::new("chown").args(["-R", "65534:65534", &path]).status().unwrap();
    assert!(status.success(), "chown of the export for Dovecot's mail processes");
    let imaps = dovecot.tls_addr.unwrap();
    let tls = mailbus_tests::Infra::get().tls_cert.clone();
    let served = view(imaps, Some(("implicit", tls.as_path())), SOURCE_USER, SOURCE_PASSWORD).await;
    check(&source, &served, str::to_owned);
    stack.stop().await;
    drop(dovecot);
}

/// An mbox written by a real tool: `doveadm backup` of the Dovecot user into an mbox location (Dovecot's
/// mbox: a "folder internal data" pseudo-message first, `X-UID:`, `Status:`, `X-Status:`,
/// `X-Keywords:` and `Content-Length:` fields, body lines starting with `From ` left unquoted, the
/// internal date in UTC on the `From ` line) imports as Dovecot serves the source over IMAP: the same
/// messages, octets, flags and keywords, and internal dates as instants (mbox keeps no zone).
#[tokio::test(flavor = "multi_thread")]
async fn an_mbox_written_by_doveadm_imports_as_dovecot_serves_the_source() {
    let (dovecot, source) = filled_dovecot_with(mbox_source_steps()).await;
    let mbox = dovecot.dir.path().join("mbox");
    std::fs::create_dir(&mbox).unwrap();
    // doveadm writes as the mail user, which Dovecot's own directories belong to.
    let owner = std::process::Command::new("chown").arg("65534:65534").arg(&mbox).status().unwrap();
    assert!(owner.success());
    let conf = dovecot.dir.path().join("dovecot.conf");
    let location = format!("mbox:{0}:INBOX={0}/inbox", mbox.display());
    let output = std::process::Command::new("doveadm")
        .arg("-c")
        .arg(&conf)
        .args(["backup", "-u", SOURCE_USER, &location])
        .output()
        .unwrap();
    assert!(output.status.success(), "doveadm backup: {}", String::from_utf8_lossy(&output.stderr));
    let inbox = String::from_utf8_lossy(&std::fs::read(mbox.join("inbox")).unwrap()).into_owned();
    assert!(inbox.contains("FOLDER INTERNAL DATA") && inbox.contains("\nX-UID: 1\n"), "{inbox}");
    assert!(inbox.contains("\n\nFrom here on, says") && inbox.contains("\nContent-Length: "), "{inbox}");
    assert!(mbox.join("Archive/2024").is_file(), "Dovecot's mbox layout in {}", mbox.display());

    let stack = TestStack::builder().roles(&[Role::Mailbox, Role::Access]).start().await;
    stack.add_account("eve@example.org", "pw").await;
    let path = mbox.display().to_string();
    let (code, stdout, stderr) =
        admin_with_env(&stack, &["mail", "import", "eve@example.org", "--mbox", &path], "", &[]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("messages 7 (") && stdout.contains("refused 0"), "{stdout}");
    let mbox_name = |name: &str| name.replace('.', "/");
    check(&source, &view(stack.imap_addr(), None, "eve@example.org", "pw").await, mbox_name);
    stack.stop().await;
    drop(dovecot);
}
