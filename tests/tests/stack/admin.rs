//! `mailbus admin` as an operator's script runs it: the real binary, passwords on standard input, and
//! exit codes to branch on.

use std::process::Stdio;

use mailbus::roles::Role;
use mailbus_tests::TestStack;
use tokio::io::AsyncWriteExt;

pub(crate) async fn admin(stack: &TestStack, args: &[&str], stdin: &str) -> (i32, String, String) {
    admin_with_env(stack, args, stdin, &[]).await
}

/// As `admin`, with these variables in its environment too.
pub(crate) async fn admin_with_env(
    stack: &TestStack,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailbus-under-test"))
        .arg("admin")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .env("MAILBUS_MAILBOX_URL", stack.mailbox_url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running mailbus admin");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).await.unwrap();
    let output = child.wait_with_output().await.unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(output.stdout), text(output.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_creates_domains_and_accounts_with_passwords_from_stdin() {
    let stack = TestStack::builder().roles(&[Role::Mailbox, Role::Access]).start().await;
    assert_eq!(admin(&stack, &["domain", "add", "Example.COM"], "").await.0, 0);
    let (code, _, stderr) = admin(&stack, &["domain", "add", "example.com"], "").await;
    assert_eq!(code, 3, "a duplicate has its own exit code: {stderr}");
    let (code, stdout, stderr) = admin(&stack, &["account", "add", "Grace@example.com"], "pass word\n").await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("account grace@example.com added"), "{stdout}");
    let (code, _, stderr) = admin(&stack, &["account", "add", "heidi@unhosted.org"], "pw\n").await;
    assert_eq!(code, 1);
    assert!(stderr.contains("not hosted"), "{stderr}");
    assert_eq!(admin(&stack, &["account", "add", "ivan@example.com"], "\n").await.0, 1, "empty passwords are refused");
    let (code, stdout, _) = admin(&stack, &["account", "list"], "").await;
    assert_eq!(code, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("ADDRESS"), "{stdout}");
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[1].starts_with("grace@example.com") && lines[1].contains("active"), "{stdout}");
    // The password given on stdin is the one that works.
    let session = mailbus_tests::clients::pop3_session(
        stack.pop3_addr(),
        "grace@example.com",
        "pass word",
        mailbus_tests::clients::Pop3End::Quit,
    )
    .await;
    assert_eq!(session.stat, (0, 0));
    let (code, _, stderr) = admin(&stack, &["domain", "add", "bad domain"], "").await;
    assert_eq!(code, 1, "{stderr}");
    stack.stop().await;
}

/// SIGTERM (what Docker and Kubernetes send) stops `mailbus all` cleanly and promptly.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_shuts_every_role_down_gracefully() {
    let infra = tokio::task::spawn_blocking(mailbus_tests::Infra::get).await.unwrap();
    let port = || format!("127.0.0.1:{}", mailbus_devstack::free_port().unwrap());
    let smtp = port();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailbus-under-test"));
    command
        .arg("all")
        .env_clear()
        .env("DATABASE_URL", infra.create_database().await)
        .env("NATS_URL", infra.nats_url())
        .env("MAILBUS_NATS_PREFIX", format!("sig{}", &uuid::Uuid::new_v4().simple().to_string()[..8]))
        .env("MAILBUS_SMTP_LISTEN", &smtp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for var in mailbus::settings::VARS.iter().filter(|v| v.name.ends_with("_LISTEN") && v.name != "MAILBUS_SMTP_LISTEN")
    {
        command.env(var.name, port());
    }
    let mailbox_grpc = port();
    command
        .env("MAILBUS_MAILBOX_GRPC_LISTEN", &mailbox_grpc)
        .env("MAILBUS_MAILBOX_URL", format!("http://{mailbox_grpc}"));
    let mut child = command.spawn().unwrap();
    // Serving SMTP means every role has bound.
    let deadline = tokio::time::Instant::now() + crate::PATIENCE;
    let mut banner = String::new();
    while !banner.starts_with("220 ") {
        assert!(tokio::time::Instant::now() < deadline, "mailbus all never greeted");
        if let Ok(mut stream) = tokio::net::TcpStream::connect(&smtp).await {
            let mut buf = [0u8; 128];
            let n = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await.unwrap_or(0);
            banner = String::from_utf8_lossy(&buf[..n]).into_owned();
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let pid = child.id().expect("running") as i32;
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let status = tokio::time::timeout(crate::PATIENCE, child.wait()).await.expect("shutdown took too long").unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_manages_aliases_quotas_passwords_and_disabled_accounts() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    assert_eq!(admin(&stack, &["domain", "add", "example.com"], "").await.0, 0);
    for who in ["judy", "ken"] {
        let (code, _, stderr) = admin(&stack, &["account", "add", &format!("{who}@example.com")], "pw\n").await;
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, stdout, stderr) =
        admin(&stack, &["alias", "add", "sales@example.com", "judy@example.com", "ken@example.com"], "").await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "alias sales@example.com -> judy@example.com, ken@example.com");
    let (code, _, stderr) = admin(&stack, &["alias", "add", "judy@example.com", "ken@example.com"], "").await;
    assert_eq!(code, 3, "an alias over an account is 'already exists': {stderr}");
    let (code, _, stderr) = admin(&stack, &["alias", "add", "x@example.com", "nobody@example.com"], "").await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no account nobody@example.com"), "{stderr}");
    assert_eq!(admin(&stack, &["alias", "add", "@example.com", "ken@example.com"], "").await.0, 0);
    let (_, stdout, _) = admin(&stack, &["alias", "list"], "").await;
    let lines: Vec<&str> = stdout.lines().map(str::trim_end).collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["ALIAS", "TARGETS"]);
    assert!(lines[1].starts_with("@example.com") && lines[1].ends_with("ken@example.com"), "{stdout}");
    assert!(lines[2].starts_with("sales@example.com") && lines[2].ends_with("judy@example.com, ken@example.com"));
    assert_eq!(admin(&stack, &["alias", "remove", "sales@example.com", "ken@example.com"], "").await.0, 0);
    assert_eq!(admin(&stack, &["alias", "remove", "sales@example.com"], "").await.0, 0);
    assert_eq!(admin(&stack, &["alias", "remove", "sales@example.com"], "").await.0, 1);

    let (code, stdout, stderr) =
        admin(&stack, &["quota", "set", "judy@example.com", "--storage", "2M", "--messages", "1000"], "").await;
    assert_eq!(code, 0, "{stderr}");
    let row: Vec<&str> = stdout.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, ["judy@example.com", "0", "2097152", "0", "1000", "0%"], "{stdout}");
    let (code, _, stderr) = admin(&stack, &["quota", "set", "judy@example.com", "--storage", "2X"], "").await;
    assert_ne!(code, 0, "{stderr}");
    assert_eq!(admin(&stack, &["quota", "set", "judy@example.com", "--storage", "none"], "").await.0, 0);
    let (_, stdout, _) = admin(&stack, &["quota", "show", "--domain", "example.com"], "").await;
    let judy: Vec<&str> = stdout.lines().find(|l| l.starts_with("judy")).unwrap().split_whitespace().collect();
    assert_eq!(judy, ["judy@example.com", "0", "-", "0", "1000", "0%"], "{stdout}");

    assert!(stack.authenticates("judy@example.com", "pw").await);
    assert_eq!(admin(&stack, &["account", "passwd", "judy@example.com"], "fresh pw\n").await.0, 0);
    assert!(!stack.authenticates("judy@example.com", "pw").await);
    assert!(stack.authenticates("judy@example.com", "fresh pw").await);
    let (code, stdout, _) = admin(&stack, &["account", "disable", "judy@example.com"], "").await;
    assert_eq!((code, stdout.trim()), (0, "account judy@example.com disabled"));
    assert!(!stack.authenticates("judy@example.com", "fresh pw").await);
    let (_, stdout, _) = admin(&stack, &["account", "list"], "").await;
    assert!(stdout.lines().any(|l| l.starts_with("judy@example.com") && l.contains("disabled")), "{stdout}");
    assert_eq!(admin(&stack, &["account", "enable", "judy@example.com"], "").await.0, 0);
    assert!(stack.authenticates("judy@example.com", "fresh pw").await);
    // An account's change log goes with it (its mailboxes' creation is in it).
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url).await.unwrap();
    let logged = async |db: &mut sqlx::PgConnection| -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM changes WHERE account_id = (SELECT id FROM accounts WHERE address = 'ken@example.com')
                OR account_id NOT IN (SELECT id FROM accounts)",
        )
        .fetch_one(db)
        .await
        .unwrap()
    };
    assert!(logged(&mut db).await > 0);
    assert_eq!(admin(&stack, &["account", "remove", "ken@example.com"], "").await.0, 0);
    assert_eq!(admin(&stack, &["account", "remove", "ken@example.com"], "").await.0, 1);
    assert_eq!(logged(&mut db).await, 0, "no change of a removed account is left");
    let (_, stdout, _) = admin(&stack, &["alias", "list"], "").await;
    assert_eq!(stdout.lines().count(), 1, "the catch-all went with its only target: {stdout}");
    stack.stop().await;
}
