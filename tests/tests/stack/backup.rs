//! The backup and restore drill, with `deploy/backup` and `deploy/restore` as an operator runs them:
//! mail delivered and one message held in the queue (its domain's server down), a backup taken while
//! everything runs, everything destroyed (the NATS store deleted, the roles stopped), a new database and
//! a new nats-server, the restore, and then every message back with the same UIDs, flags and
//! UIDVALIDITY, and the held message delivered once when its server is back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mailbus_devstack::Nats;
use mailbus_tests::clients::{SubmitMode, imap_session, smtp_send, smtp_submit};
use mailbus_tests::fake_smtp::{FakeSmtp, Script};
use mailbus_tests::{Infra, TestStack};
use serde_json::json;

use crate::admin::admin_with_env;
use crate::mail_tools::imap_state;
use crate::{PATIENCE, message};

async fn start_nats(store: PathBuf) -> Nats {
    let port = mailbus_devstack::free_port().unwrap();
    tokio::task::spawn_blocking(move || Nats::start(&store, port)).await.unwrap().expect("starting nats-server")
}

/// Runs `deploy/<script> <dir>` with the roles' settings, the binary under test and PostgreSQL's tools.
async fn script(name: &str, dir: &Path, database_url: &str, nats_url: &str, prefix: &str) -> (bool, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(name);
    let pg_bin = mailbus_devstack::find_pg_bin().unwrap();
    // `mailbus` refuses MAILBUS_* names it does not know (tests/run sets MAILBUS_TEST_REPORT), so the
    // scripts get none but the ones given here.
    let inherited = std::env::vars().map(|(name, _)| name).filter(|name| name.starts_with("MAILBUS_"));
    let mut command = tokio::process::Command::new(path);
    for name in inherited {
        command.env_remove(name);
    }
    let output = command
        .arg(dir)
        .env("DATABASE_URL", database_url)
        .env("NATS_URL", nats_url)
        .env("MAILBUS_NATS_PREFIX", prefix)
        .env("MAILBUS", crate::under_test())
        .env("PATH", format!("{}:{}", pg_bin.display(), std::env::var("PATH").unwrap_or_default()))
        .output()
        .await
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

async fn queue_list(stack: &TestStack) -> String {
    let relay = format!("http://{}", stack.relay_grpc.unwrap());
    let env = [("MAILBUS_RELAY_URL", relay.as_str())];
    admin_with_env(stack, &["queue", "list"], "", &env).await.1
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_backup_keeps_uids_and_uidvalidity_and_delivers_held_mail_once() {
    let infra = tokio::task::spawn_blocking(Infra::get).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let prefix = format!("bk{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut first_nats = start_nats(work.path().join("nats-1")).await;
    let stack = TestStack::builder().nats(&first_nats.url()).set("MAILBUS_NATS_PREFIX", &prefix).start().await;
    let account = stack.add_account("ann@example.org", "ann pw").await;
    for subject in ["one", "two"] {
        let sent =
            smtp_send(stack.smtp_addr(), "sender@example.net", &["ann@example.org"], &message("ann", subject)).await;
        assert!(matches!(sent, mailbus_tests::clients::SmtpOutcome::Accepted { .. }), "{sent:?}");
    }
    let steps = json!([
        ["login", "ann@example.org", "ann pw"],
        ["select", "INBOX"],
        ["uid", "store", "1", "+FLAGS", "(\\Flagged)"]
    ]);
    // Delivery is asynchronous: wait for both before flagging.
    stack.wait_for_inbox(account, 2, PATIENCE).await;
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert!(results[1..].iter().all(|r| r[0] == "OK"), "{results:?}");
    // Mail for a domain whose server is down (every remote domain goes to a closed port): held.
    let sent = smtp_submit(
        stack.submission.unwrap(),
        SubmitMode::StartTls,
        &infra.tls_cert,
        ("ann@example.org", "ann pw"),
        "ann@example.org",
        &["bob@remote.test"],
        &message("bob@remote.test", "held"),
    )
    .await;
    assert_eq!(sent.outcome, "ok", "{sent:?}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !queue_list(&stack).await.contains("attempts 1") {
        assert!(tokio::time::Instant::now() < deadline, "the relay never tried: {}", queue_list(&stack).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = imap_state(&stack, "ann@example.org", "ann pw", "INBOX").await;
    assert_eq!(before.0.len(), 2, "{before:?}");
    assert!(before.0[0].contains("\\Flagged"), "{before:?}");

    let backup = work.path().join("backup");
    let (ok, output) = script("backup", &backup, &stack.database_url, &first_nats.url(), &prefix).await;
    assert!(ok, "deploy/backup: {output}");
    assert!(output.contains(&format!("{prefix}_queue")), "the queue is in it: {output}");
    let (ok, output) = script("backup", &backup, &stack.database_url, &first_nats.url(), &prefix).await;
    assert!(!ok && output.contains("already exists"), "a backup never overwrites one: {output}");

    // Everything destroyed: the roles, the NATS server and its store; a new database and NATS.
    stack.stop().await;
    first_nats.kill();
    std::fs::remove_dir_all(work.path().join("nats-1")).unwrap();
    let second_nats = start_nats(work.path().join("nats-2")).await;
    let database_url = infra.create_database().await;
    let (ok, output) = script("restore", &backup, &database_url, &second_nats.url(), &prefix).await;
    assert!(ok, "deploy/restore: {output}");

    let remote = FakeSmtp::start(Script::default()).await;
    let stack = TestStack::builder()
        .nats(&second_nats.url())
        .set("MAILBUS_NATS_PREFIX", &prefix)
        .set("DATABASE_URL", &database_url)
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("*={}", remote.addr()))
        .start()
        .await;
    let after = imap_state(&stack, "ann@example.org", "ann pw", "INBOX").await;
    assert_eq!(after, before, "same messages, UIDs, flags and UIDVALIDITY");
    assert!(queue_list(&stack).await.contains("bob@remote.test"), "the held message is queued again");

    let relay = format!("http://{}", stack.relay_grpc.unwrap());
    let (code, _, stderr) =
        admin_with_env(&stack, &["queue", "retry", "--all"], "", &[("MAILBUS_RELAY_URL", &relay)]).await;
    assert_eq!(code, 0, "{stderr}");
    stack.wait_for_empty_queue(PATIENCE).await;
    let received = remote.received();
    assert_eq!(received.len(), 1, "delivered once: {:?}", received.iter().map(|r| &r.rcpt_to).collect::<Vec<_>>());
    assert_eq!(received[0].rcpt_to, ["bob@remote.test"]);
    assert!(String::from_utf8_lossy(&received[0].data).contains("Subject: held"));
    let later = imap_state(&stack, "ann@example.org", "ann pw", "INBOX").await;
    assert_eq!(later, before, "nothing delivered locally twice");
    stack.stop().await;
}
