//! Acceptance: two mail domains, each a whole mailbus of separate processes (`mailbus <role>`, two
//! replicas of relay and of access), used only through the network by clients we did not write:
//! Python's smtplib, imaplib and poplib, swaks, curl (SMTP, IMAP and POP3, each with STARTTLS),
//! fetchmail and mbsync.
//!
//! a.example and b.example route mail to each other's SMTP port; seven.example is a peer without
//! 8BITMIME. The scenarios: the textbook path from a submission on one domain to IMAP on one device and
//! POP3 on another at the other; a reply and a forward; a flag set on one device seen on another; POP3
//! with and without keep; a bounce back in the sender's INBOX; an 8-bit message downgraded for the
//! 7-bit peer and read back intact.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use mailbus_tests::clients::{
    Pop3End, SubmitMode, curl_submit, fetchmail, imap_session, pop3_session, run_program, smtp_submit, swaks_submit,
};
use mailbus_tests::fake_smtp::{FakeSmtp, Script};
use mailbus_tests::infra::Infra;
use mailbus_tests::processes::Replica;
use mailbus_tests::wait_until;
use serde_json::{Value, json};

use crate::{PATIENCE, under_test};

/// One domain's mailbus, as processes.
struct Domain {
    name: &'static str,
    mailbox: Replica,
    smtp: Replica,
    relays: Vec<Replica>,
    access: Vec<Replica>,
}

impl Domain {
    /// The mailbox role and smtp-ingress, over a database and NATS prefix of their own; relays and
    /// access come later, once every domain's SMTP port is known.
    async fn start(name: &'static str, infra: &Infra, logs: &Path) -> (Domain, HashMap<&'static str, String>) {
        let mut env: HashMap<&'static str, String> = HashMap::from([
            ("DATABASE_URL", infra.create_database().await),
            ("NATS_URL", infra.nats_url().to_owned()),
            ("MAILBUS_NATS_PREFIX", format!("acc{}", &uuid::Uuid::new_v4().simple().to_string()[..10])),
            ("MAILBUS_HOSTNAME", format!("mx.{name}")),
            ("MAILBUS_TLS_CERT", infra.tls_cert.display().to_string()),
            ("MAILBUS_TLS_KEY", infra.tls_key.display().to_string()),
            ("MAILBUS_RELAY_RETRY_SCHEDULE", "1s".into()),
            ("RUST_LOG", "warn".into()),
        ]);
        let mailbox = Replica::spawn(under_test(), "mailbox", &format!("{name}-mailbox"), &env, logs);
        mailbox.wait_ready(PATIENCE).await;
        env.insert("MAILBUS_MAILBOX_URL", format!("http://{}", mailbox.addr("MAILBUS_MAILBOX_GRPC_LISTEN")));
        let smtp = Replica::spawn(under_test(), "smtp-ingress", &format!("{name}-smtp"), &env, logs);
        smtp.wait_ready(PATIENCE).await;
        let mut directory =
            mailbus_proto::v1::directory_client::DirectoryClient::connect(env["MAILBUS_MAILBOX_URL"].clone())
                .await
                .unwrap();
        directory.add_domain(mailbus_proto::v1::AddDomainRequest { name: name.into() }).await.unwrap();
        (Domain { name, mailbox, smtp, relays: Vec::new(), access: Vec::new() }, env)
    }

    async fn finish(&mut self, mut env: HashMap<&'static str, String>, transports: String, logs: &Path) {
        env.insert("MAILBUS_RELAY_TRANSPORTS", transports);
        for n in 1..=2 {
            self.relays.push(Replica::spawn(under_test(), "relay", &format!("{}-relay-{n}", self.name), &env, logs));
            self.access.push(Replica::spawn(under_test(), "access", &format!("{}-access-{n}", self.name), &env, logs));
        }
        for replica in self.relays.iter().chain(&self.access) {
            replica.wait_ready(PATIENCE).await;
        }
    }

    async fn add_account(&self, local: &str) -> String {
        let address = format!("{local}@{}", self.name);
        let url = format!("http://{}", self.mailbox.addr("MAILBUS_MAILBOX_GRPC_LISTEN"));
        let mut directory = mailbus_proto::v1::directory_client::DirectoryClient::connect(url).await.unwrap();
        let request = mailbus_proto::v1::AddAccountRequest { address: address.clone(), password: password(local) };
        directory.add_account(request).await.unwrap();
        address
    }

    fn submission(&self) -> SocketAddr {
        self.smtp.addr("MAILBUS_SUBMISSION_LISTEN")
    }

    fn imap(&self, replica: usize) -> SocketAddr {
        self.access[replica].addr("MAILBUS_IMAP_LISTEN")
    }

    fn pop3(&self, replica: usize) -> SocketAddr {
        self.access[replica].addr("MAILBUS_POP3_LISTEN")
    }
}

fn password(local: &str) -> String {
    format!("{local} secret")
}

fn cafile() -> &'static Path {
    &Infra::get().tls_cert
}

/// Submits with smtplib (STARTTLS, AUTH PLAIN) as `user`.
async fn submit(domain: &Domain, user: &str, to: &[&str], message: &str) {
    let local = user.split('@').next().unwrap();
    let credentials = (user, password(local));
    let sent = smtp_submit(
        domain.submission(),
        SubmitMode::StartTls,
        cafile(),
        (credentials.0, &credentials.1),
        user,
        to,
        message.as_bytes(),
    )
    .await;
    assert_eq!(sent.outcome, "ok", "{sent:?}");
}

/// imaplib, logged in as `user` on one access replica: the steps after LOGIN; returns their results.
async fn imap(domain: &Domain, replica: usize, user: &str, steps: Value) -> Vec<Value> {
    let local = user.split('@').next().unwrap();
    let mut all = vec![json!(["login", user, password(local)])];
    all.extend(steps.as_array().unwrap().iter().cloned());
    let results = imap_session(domain.imap(replica), None, Value::Array(all)).await;
    for (n, result) in results.iter().enumerate() {
        assert_eq!(result[0], "OK", "imaplib step {n} for {user}: {results:#?}");
    }
    results[2..].to_vec()
}

/// Fetches `url` with curl, upgraded with STARTTLS (or STLS) and the certificate verified.
async fn curl_starttls(url: &str, user: &str) -> String {
    let cafile = cafile().display().to_string();
    let args: Vec<String> =
        ["--silent", "--show-error", "--ssl-reqd", "--cacert", &cafile, "--user", user, url].map(String::from).to_vec();
    let (ok, read) = run_program("curl", &args, b"").await;
    assert!(ok, "curl {url}: {read}");
    read
}

/// The text imaplib returned for a step, flattened.
fn text(result: &Value) -> String {
    result.to_string()
}

/// Waits until `user`'s INBOX on `domain` holds a message whose header section contains `needle`, and
/// returns its UID (by IMAP SEARCH on replica 0).
async fn wait_for_message(domain: &Domain, user: &str, needle: &str) -> u32 {
    let mut uid = 0;
    wait_until(PATIENCE, &format!("{user} never got a message with {needle:?}"), async || {
        let found = imap(
            domain,
            0,
            user,
            json!([["select", "INBOX"], ["uid", "SEARCH", "HEADER", "Subject", format!("\"{needle}\"")]]),
        )
        .await;
        let listing = text(&found[1]);
        uid = listing.split(|c: char| !c.is_ascii_digit()).filter_map(|d| d.parse().ok()).next_back().unwrap_or(0);
        uid != 0
    })
    .await;
    uid
}

#[tokio::test(flavor = "multi_thread")]
async fn two_domains_and_real_clients_from_submission_to_every_device() {
    let infra = tokio::task::spawn_blocking(Infra::get).await.unwrap();
    let logs = tempfile::tempdir().unwrap();
    let seven_bit = FakeSmtp::start(Script { eight_bit_mime: false, smtputf8: false, ..Script::default() }).await;
    let (mut a, a_env) = Domain::start("a.example", infra, logs.path()).await;
    let (mut b, b_env) = Domain::start("b.example", infra, logs.path()).await;
    let (a_smtp, b_smtp) = (a.smtp.addr("MAILBUS_SMTP_LISTEN"), b.smtp.addr("MAILBUS_SMTP_LISTEN"));
    a.finish(a_env, format!("b.example={b_smtp},seven.example={}", seven_bit.addr()), logs.path()).await;
    b.finish(b_env, format!("a.example={a_smtp}"), logs.path()).await;
    let alice = a.add_account("alice").await;
    let carol = a.add_account("carol").await;
    let bob = b.add_account("bob").await;

    // The textbook path: alice submits on a.example; a relay there hands it to b.example's port 25.
    let lunch = "From: Alice <alice@a.example>\r\nTo: Bob <bob@b.example>\r\nSubject: Lunch on Friday?\r\n\
                 Message-ID: <lunch@a.example>\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n\r\nNoon at the usual place?\r\n";
    submit(&a, &alice, &[&bob], lunch).await;
    let uid = wait_for_message(&b, &bob, "Lunch on Friday").await;
    // Device one: imaplib on the first access replica reads it whole.
    let fetched =
        imap(&b, 0, &bob, json!([["select", "INBOX"], ["uid", "FETCH", uid.to_string(), "(BODY.PEEK[])"]])).await;
    let whole = text(&fetched[1]);
    assert!(whole.contains("Noon at the usual place?") && whole.contains("by mx.b.example"), "{whole}");
    // Device two: fetchmail over POP3 on the second replica, keeping the server copy.
    let device_two = tempfile::tempdir().unwrap();
    let (fetched, said) = fetchmail(b.pop3(1), (&bob, &password("bob")), cafile(), device_two.path(), true).await;
    assert_eq!(fetched, 1, "fetchmail: {said}");
    // Device three: mbsync on the second replica mirrors the INBOX into a Maildir.
    let maildir = tempfile::tempdir().unwrap();
    let mbsync = async || {
        let rc = maildir.path().join("mbsyncrc");
        let mail = maildir.path().join("mail");
        std::fs::create_dir_all(&mail).unwrap();
        std::fs::write(
            &rc,
            format!(
                "IMAPAccount bob\nHost 127.0.0.1\nPort {}\nUser bob@b.example\nPass \"bob secret\"\nSSLType None\nAuthMechs LOGIN\n\n\
                 IMAPStore remote\nAccount bob\n\nMaildirStore local\nPath {m}/\nInbox {m}/INBOX\n\n\
                 Channel bob\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\nSync All\nExpunge Both\nSyncState *\n",
                b.imap(1).port(),
                m = mail.display()
            ),
        )
        .unwrap();
        let (ok, said) = run_program("mbsync", &["-c".into(), rc.display().to_string(), "-a".into()], b"").await;
        assert!(ok, "mbsync: {said}");
        let mut flags = Vec::new();
        for sub in ["new", "cur"] {
            for entry in std::fs::read_dir(mail.join("INBOX").join(sub)).into_iter().flatten() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                flags.push(name.rsplit_once(":2,").map(|(_, f)| f.to_owned()).unwrap_or_default());
            }
        }
        flags
    };
    assert_eq!(mbsync().await.len(), 1);

    // A flag set on device one (IMAP, replica 0) reaches device three (mbsync, replica 1).
    imap(&b, 0, &bob, json!([["select", "INBOX"], ["uid", "STORE", uid.to_string(), "+FLAGS", "(\\Flagged)"]])).await;
    let flags = mbsync().await;
    assert!(flags.len() == 1 && flags[0].contains('F'), "the flag reached the Maildir: {flags:?}");

    // A reply (curl, STARTTLS on 587) goes back to alice, who reads it with curl over IMAP.
    let reply = "From: Bob <bob@b.example>\r\nTo: alice@a.example\r\nSubject: Re: Lunch on Friday?\r\n\
                 In-Reply-To: <lunch@a.example>\r\nMessage-ID: <reply@b.example>\r\n\r\nYes, noon.\r\n";
    let bob_login = ("bob@b.example", "bob secret");
    let (ok, said) = curl_submit(b.submission(), cafile(), bob_login, "alice@a.example", reply.as_bytes()).await;
    assert!(ok, "curl submission: {said}");
    let reply_uid = wait_for_message(&a, &alice, "Re: Lunch").await;
    let read =
        curl_starttls(&format!("imap://{}/INBOX;UID={reply_uid}", a.imap(1)), "alice@a.example:alice secret").await;
    assert!(read.contains("In-Reply-To: <lunch@a.example>") && read.contains("Yes, noon."), "{read}");
    // And over POP3 with STLS, on the other replica.
    let read = curl_starttls(&format!("pop3://{}/1", a.pop3(0)), "alice@a.example:alice secret").await;
    assert!(read.contains("Yes, noon."), "{read}");

    // A forward (swaks, STARTTLS and AUTH) to carol, who reads it over POP3 with poplib.
    let extra = ["--header", "Subject: Fwd: Lunch on Friday?", "--body", "Forwarded: Noon at the usual place?"];
    let (ok, said) = swaks_submit(b.submission(), cafile(), bob_login, &carol, &extra).await;
    assert!(ok, "swaks: {said}");
    wait_for_message(&a, &carol, "Fwd: Lunch").await;
    let session = pop3_session(a.pop3(0), &carol, &password("carol"), Pop3End::Quit).await;
    assert_eq!(session.stat.0, 1);
    let forwarded = String::from_utf8_lossy(&session.messages[0]);
    assert!(forwarded.contains("Forwarded: Noon at the usual place?"), "{forwarded}");

    // POP3 without keep: fetchmail takes bob's message, and it is gone from every device's server view.
    let device_four = tempfile::tempdir().unwrap();
    let (fetched, said) = fetchmail(b.pop3(0), (&bob, &password("bob")), cafile(), device_four.path(), false).await;
    assert_eq!(fetched, 1, "fetchmail: {said}");
    let status = imap(&b, 1, &bob, json!([["status", "INBOX", "(MESSAGES)"]])).await;
    assert!(text(&status[0]).contains("MESSAGES 0"), "{status:?}");
    assert!(mbsync().await.is_empty(), "the Maildir follows the server");

    // A bounce: b.example refuses an unknown user at RCPT, and a.example's relay tells alice.
    let lost = "From: alice@a.example\r\nTo: nobody@b.example\r\nSubject: Anyone there?\r\nMessage-ID: <lost@a.example>\r\n\r\nHello?\r\n";
    submit(&a, &alice, &["nobody@b.example"], lost).await;
    let dsn_uid = wait_for_message(&a, &alice, "Undelivered").await;
    let dsn =
        imap(&a, 0, &alice, json!([["select", "INBOX"], ["uid", "FETCH", dsn_uid.to_string(), "(BODY.PEEK[])"]])).await;
    let report = text(&dsn[1]);
    assert!(report.contains("nobody@b.example") && report.contains("5.1.1"), "{report}");

    // 8-bit text through a peer without 8BITMIME: converted to 7 bits on the way, read back as written.
    let words = "Grüße aus Köln, à bientôt — ¡hasta mañana!";
    let eight_bit = format!(
        "From: alice@a.example\r\nTo: dora@seven.example\r\nSubject: Umlauts\r\nMessage-ID: <8bit@a.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{words}\r\n"
    );
    submit(&a, &alice, &["dora@seven.example"], &eight_bit).await;
    wait_until(PATIENCE, "the 7-bit peer never got the message", async || !seven_bit.received().is_empty()).await;
    let arrived = &seven_bit.received()[0].data;
    assert!(arrived.iter().all(|b| *b < 0x80), "only 7-bit octets to a peer without 8BITMIME");
    let parsed = mail_parser::MessageParser::default().parse(arrived).expect("a message");
    assert_eq!(parsed.body_text(0).map(|t| t.trim_end().to_owned()).as_deref(), Some(words));
    drop((a, b));
}
