//! POP3 as mail clients see it: STLS and 995, AUTH PLAIN, the plaintext policy, the deletion policies,
//! the maildrop lock across replicas, and real clients (poplib, curl, fetchmail).

use std::collections::HashMap;
use std::process::Stdio;

use mailbus_proto::v1 as pb;
use mailbus_tests::clients::{
    self, Pop3End, Pop3Options, Pop3Tls, SmtpOutcome, pop3_hold, pop3_session, pop3_session_with, run_program,
    smtp_send,
};
use mailbus_tests::{Infra, TestStack, wait_until};

use crate::{PATIENCE, message};

fn tls(mode: Pop3Tls) -> Pop3Options {
    Pop3Options { tls: Some(mode), cafile: Some(Infra::get().tls_cert.clone()), auth_plain: false }
}

async fn deliver(stack: &TestStack, to: &str, subject: &str) {
    let sent = smtp_send(stack.smtp_addr(), "sender@example.net", &[to], &message(to, subject)).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { code: 250, .. }), "{sent:?}");
}

async fn count(stack: &TestStack, account_id: i64, mailbox: &str) -> usize {
    let request = pb::ListMessagesRequest { account_id, mailbox: mailbox.into() };
    stack.mailbox().await.list_messages(request).await.unwrap().into_inner().messages.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_need_tls_unless_allowed_and_work_over_stls_995_and_auth_plain() {
    let stack = TestStack::builder().set("MAILBUS_POP3_PLAINTEXT_AUTH", "never").start().await;
    let mia = stack.add_account("mia@example.org", "mia pw").await;
    deliver(&stack, "mia@example.org", "tls").await;
    stack.wait_for_inbox(mia, 1, PATIENCE).await;

    let clear =
        pop3_session_with(stack.pop3_addr(), "mia@example.org", "mia pw", Pop3End::Quit, &Default::default()).await;
    let refusal = clear.expect_err("USER/PASS in the clear must be refused");
    assert!(refusal.starts_with("-ERR [AUTH] Plaintext authentication disallowed"), "{refusal}");

    let stls =
        pop3_session_with(stack.pop3_addr(), "mia@example.org", "mia pw", Pop3End::Quit, &tls(Pop3Tls::Stls)).await;
    assert_eq!(stls.unwrap().stat.0, 1);
    let mut implicit = tls(Pop3Tls::Implicit);
    implicit.auth_plain = true;
    let pop3s = stack.pop3s.expect("pop3s listener");
    let sasl = pop3_session_with(pop3s, "mia@example.org", "mia pw", Pop3End::Quit, &implicit).await;
    assert_eq!(sasl.unwrap().stat.0, 1);
    let wrong = pop3_session_with(pop3s, "mia@example.org", "nope", Pop3End::Quit, &implicit).await;
    assert_eq!(wrong.unwrap_err(), "-ERR [AUTH] Authentication failed");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_login_failures_end_the_session() {
    let stack = TestStack::start().await;
    stack.add_account("ned@example.org", "right").await;
    let (mut pop, _) = mailbus_tests::clients::SmtpRaw::connect(stack.pop3_addr()).await;
    let mut replies = Vec::new();
    for _ in 0..3 {
        pop.send(b"USER ned@example.org\r\nPASS wrong\r\n").await;
        replies.push(pop.reply().await.text);
        replies.push(pop.reply().await.text);
    }
    // SmtpRaw reads lines; a POP3 line's "text" is after its first four characters.
    assert!(replies[1].ends_with("[AUTH] Authentication failed"), "{replies:?}");
    assert!(replies[5].ends_with("[AUTH] Too many authentication failures"), "{replies:?}");
    assert_eq!(pop.reply().await.code, 0, "then the server closes the connection");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dele_follows_the_sites_policy() {
    for (policy, inbox_after, trash_after) in [("expunge", 0, 0), ("trash", 0, 1), ("keep", 1, 0)] {
        let stack = TestStack::builder().set("MAILBUS_POP3_DELETE", policy).start().await;
        let owen = stack.add_account("owen@example.org", "pw").await;
        deliver(&stack, "owen@example.org", policy).await;
        stack.wait_for_inbox(owen, 1, PATIENCE).await;
        let session = pop3_session(stack.pop3_addr(), "owen@example.org", "pw", Pop3End::DeleteAndQuit).await;
        assert!(session.quit.unwrap_or_default().starts_with("+OK"), "{policy}");
        assert_eq!(count(&stack, owen, "INBOX").await, inbox_after, "{policy}: INBOX");
        assert_eq!(count(&stack, owen, "Trash").await, trash_after, "{policy}: Trash");
        stack.stop().await;
    }
}

/// Starts an access role as a separate process of the real binary, sharing the stack's NATS and mailbox.
async fn access_process(stack: &TestStack) -> (tokio::process::Child, std::net::SocketAddr) {
    let port = || format!("127.0.0.1:{}", mailbus_devstack::free_port().unwrap());
    let pop3 = port();
    let mut env: HashMap<String, String> = HashMap::new();
    for name in ["NATS_URL", "MAILBUS_NATS_PREFIX", "MAILBUS_MAILBOX_URL", "MAILBUS_TLS_CERT", "MAILBUS_TLS_KEY"] {
        env.insert(name.into(), stack.settings.string(name).unwrap());
    }
    env.insert("MAILBUS_POP3_LOCK_TTL_SECS".into(), stack.settings.string("MAILBUS_POP3_LOCK_TTL_SECS").unwrap());
    env.insert("MAILBUS_POP3_LISTEN".into(), pop3.clone());
    for name in ["MAILBUS_POP3S_LISTEN", "MAILBUS_ACCESS_GRPC_LISTEN", "MAILBUS_ACCESS_METRICS_LISTEN"] {
        env.insert(name.into(), port());
    }
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailbus-under-test"))
        .arg("access")
        .env_clear()
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = pop3.parse().unwrap();
    wait_until(PATIENCE, "the second access replica never listened", async || {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    (child, addr)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_maildrop_lock_spans_replicas_and_a_killed_holder_frees_it() {
    let stack = TestStack::builder().set("MAILBUS_POP3_LOCK_TTL_SECS", "2").start().await;
    stack.add_account("pia@example.org", "pw").await;
    let (mut replica, replica_pop3) = access_process(&stack).await;

    let held = pop3_hold(replica_pop3, "pia@example.org", "pw", &Default::default()).await;
    assert!(held.login.is_ok(), "{:?}", held.login.as_ref().err());
    let second =
        pop3_session_with(stack.pop3_addr(), "pia@example.org", "pw", Pop3End::Quit, &Default::default()).await;
    assert_eq!(second.unwrap_err(), "-ERR [IN-USE] Mailbox is locked by another session");

    // The holder's replica dies without a word: its lease runs out and the maildrop is free again.
    replica.kill().await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let again =
            pop3_session_with(stack.pop3_addr(), "pia@example.org", "pw", Pop3End::Quit, &Default::default()).await;
        match again {
            Ok(_) => break,
            Err(error) if error.contains("[IN-USE]") && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(error) => panic!("the lock was never released: {error}"),
        }
    }
    drop(held);

    // A session that ends releases the lock at once, QUIT or not.
    let dropped = pop3_hold(stack.pop3_addr(), "pia@example.org", "pw", &Default::default()).await;
    assert!(dropped.login.is_ok());
    drop(dropped);
    wait_until(PATIENCE, "a closed session kept the lock", async || {
        pop3_session_with(stack.pop3_addr(), "pia@example.org", "pw", Pop3End::Quit, &Default::default()).await.is_ok()
    })
    .await;
    stack.stop().await;
}

async fn run(program: &str, args: &[String]) -> (bool, String) {
    run_program(program, args, b"").await
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_reads_over_pop3_and_pop3s() {
    let stack = TestStack::start().await;
    let quinn = stack.add_account("quinn@example.org", "q pw").await;
    deliver(&stack, "quinn@example.org", "curl-pop3").await;
    stack.wait_for_inbox(quinn, 1, PATIENCE).await;
    let user = "quinn@example.org:q pw".to_owned();
    let (ok, listing) = run(
        "curl",
        &[
            "--silent".into(),
            "--show-error".into(),
            "--user".into(),
            user.clone(),
            format!("pop3://{}/", stack.pop3_addr()),
        ],
    )
    .await;
    assert!(ok, "{listing}");
    assert!(listing.starts_with("1 "), "LIST over curl: {listing}");
    let cafile = Infra::get().tls_cert.display().to_string();
    let url = format!("pop3s://{}/1", stack.pop3s.unwrap());
    let (ok, retrieved) =
        run("curl", &["--silent".into(), "--show-error".into(), "--cacert".into(), cafile, "--user".into(), user, url])
            .await;
    assert!(ok, "{retrieved}");
    assert!(retrieved.contains("Subject: curl-pop3"), "{retrieved}");
    stack.stop().await;
}

/// Polls rex's account once with fetchmail into `dir` and returns how many messages it fetched in all.
async fn fetchmail(stack: &TestStack, dir: &std::path::Path, keep: bool) -> usize {
    let credentials = ("rex@example.org", "rex pw");
    let (fetched, output) = clients::fetchmail(stack.pop3_addr(), credentials, &Infra::get().tls_cert, dir, keep).await;
    assert!(!output.contains("error"), "fetchmail said: {output}");
    fetched
}

#[tokio::test(flavor = "multi_thread")]
async fn fetchmail_keeps_and_fetches_only_new_mail_or_removes_it() {
    let stack = TestStack::start().await;
    let rex = stack.add_account("rex@example.org", "rex pw").await;
    let dir = tempfile::tempdir().unwrap();
    deliver(&stack, "rex@example.org", "first").await;
    deliver(&stack, "rex@example.org", "second").await;
    stack.wait_for_inbox(rex, 2, PATIENCE).await;
    assert_eq!(fetchmail(&stack, dir.path(), true).await, 2);
    assert_eq!(count(&stack, rex, "INBOX").await, 2, "keep leaves the server copy");
    deliver(&stack, "rex@example.org", "third").await;
    stack.wait_for_inbox(rex, 3, PATIENCE).await;
    assert_eq!(fetchmail(&stack, dir.path(), true).await, 3, "the second poll fetches only the new message");
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(fetchmail(&stack, fresh.path(), false).await, 3);
    assert_eq!(count(&stack, rex, "INBOX").await, 0, "without keep the server copy is removed");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_says_sys_temp_to_idle_sessions_and_deletes_nothing() {
    use sqlx::Connection as _;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let stack = TestStack::start().await;
    let pia = stack.add_account("pia@example.org", "pw").await;
    deliver(&stack, "pia@example.org", "kept").await;
    stack.wait_for_inbox(pia, 1, PATIENCE).await;
    // The loopback policy allows USER/PASS in the clear; DELE marks the message, and QUIT never comes.
    let stream = tokio::net::TcpStream::connect(stack.pop3_addr()).await.unwrap();
    let mut pop = tokio::io::BufReader::new(stream);
    let mut line = String::new();
    pop.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("+OK"), "{line}");
    for command in ["USER pia@example.org", "PASS pw", "DELE 1"] {
        pop.get_mut().write_all(format!("{command}\r\n").as_bytes()).await.unwrap();
        line.clear();
        pop.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("+OK"), "{command}: {line}");
    }
    let database_url = stack.database_url.clone();
    let stopping = tokio::spawn(stack.stop());
    line.clear();
    pop.read_line(&mut line).await.unwrap();
    assert_eq!(line, "-ERR [SYS/TEMP] server shutting down\r\n");
    tokio::time::timeout(PATIENCE, stopping).await.expect("shutdown finished").unwrap();
    // RFC 1939 §6: without QUIT there is no UPDATE state, so the marked message stays.
    let mut db = sqlx::PgConnection::connect(&database_url).await.unwrap();
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM mailbox_entries WHERE message_id IS NOT NULL")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(kept, 1);
}
