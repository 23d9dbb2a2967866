//! The webmail end to end. Over HTTP (curl): logging in through the form makes a server-side session
//! behind an HttpOnly, Secure, SameSite=Strict cookie; every state-changing request authenticated by that
//! cookie is refused without the session's CSRF token or from another origin; logging out ends the
//! session on the server; failed webmail logins are throttled with IMAP's. In a real browser (Debian's
//! chromium, driven by the scenarios of `tests/browser/`): a person's day with the webmail, checked
//! afterwards over IMAP, POP3 and JMAP; and a hostile mail that runs nothing and fetches nothing.

use std::net::SocketAddr;
use std::path::Path;

use mailbus_tests::browser::{Trap, output_dir, run_scenario};
use mailbus_tests::clients::{Pop3End, imap_session, pop3_session, smtp_send, swaks_submit};
use mailbus_tests::http::{Reply, api, basic, curl};
use mailbus_tests::{Infra, TestStack, wait_until};
use serde_json::{Value, json};

use crate::PATIENCE;

const USING: [&str; 3] = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:submission"];
const ALICE: (&str, &str) = ("alice@example.org", "alice pw");
const BOB: (&str, &str) = ("bob@example.org", "bob pw");

fn set_cookies(reply: &Reply) -> Vec<&str> {
    reply.headers.iter().filter(|(n, _)| n == "set-cookie").map(|(_, v)| v.as_str()).collect()
}

/// The value a `Set-Cookie` of the reply gives cookie `name`.
fn cookie_value<'r>(reply: &'r Reply, name: &str) -> Option<&'r str> {
    set_cookies(reply).into_iter().find_map(|c| c.strip_prefix(name)?.strip_prefix('=')?.split(';').next())
}

/// A browser as curl plays one: the cookie jar is two strings.
struct Browser {
    addr: SocketAddr,
    origin: String,
}

impl Browser {
    fn new(addr: SocketAddr) -> Browser {
        Browser { addr, origin: format!("http://{addr}") }
    }

    /// The login form: its CSRF cookie and the token in its hidden field.
    async fn login_form(&self) -> (String, String) {
        let page = curl(self.addr, "/", &[]).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let cookie =
            cookie_value(&page, "__Secure-mailbus_login_csrf").expect("the login form sets its CSRF cookie").to_owned();
        let field = page.body.split("name=\"csrf\" value=\"").nth(1).and_then(|rest| rest.split('"').next());
        (cookie, field.expect("the form carries the token").to_owned())
    }

    /// Posts the login form; `origin` is the Origin header to send.
    async fn post_login(&self, (user, password): (&str, &str), cookie: &str, csrf: &str, origin: &str) -> Reply {
        let (user, password, csrf) =
            (format!("username={user}"), format!("password={password}"), format!("csrf={csrf}"));
        let cookie = format!("Cookie: __Secure-mailbus_login_csrf={cookie}");
        let origin = format!("Origin: {origin}");
        let args = ["-H", &cookie, "-H", &origin, "--data-urlencode", &user, "--data-urlencode", &password];
        curl(self.addr, "/webmail/login", &[&args[..], &["--data-urlencode", &csrf]].concat()).await
    }

    /// Logs in as a person would; returns the session cookie and the session document.
    async fn login(&self, credentials: (&str, &str)) -> (String, Value) {
        let (cookie, csrf) = self.login_form().await;
        let reply = self.post_login(credentials, &cookie, &csrf, &self.origin).await;
        assert_eq!((reply.status, reply.header("location")), (303, Some("/")), "{}", reply.body);
        let session = cookie_value(&reply, "__Host-mailbus_session").expect("a session cookie").to_owned();
        let document =
            curl(self.addr, "/webmail/session", &["-H", &format!("Cookie: __Host-mailbus_session={session}")]).await;
        assert_eq!(document.status, 200, "{}", document.body);
        (session, document.json())
    }
}

/// A JMAP request carried by the session cookie, with `headers` beside it.
async fn cookie_api(addr: SocketAddr, session: &str, headers: &[String], body: &Value) -> Reply {
    let cookie = format!("Cookie: __Host-mailbus_session={session}");
    let mut args = vec!["-H", &cookie, "-H", "Content-Type: application/json"];
    for header in headers {
        args.extend(["-H", header.as_str()]);
    }
    let body = body.to_string();
    args.extend(["--data-binary", &body]);
    curl(addr, "/jmap/api", &args).await
}

#[tokio::test(flavor = "multi_thread")]
async fn webmail_sessions_are_server_side_and_cookie_changes_need_the_csrf_token_and_our_origin() {
    let stack = TestStack::start().await;
    stack.add_account(ALICE.0, ALICE.1).await;
    let addr = stack.http_addr();
    let browser = Browser::new(addr);

    // The login page: strict policy, and a double-submit token in an HttpOnly cookie and the form.
    let page = curl(addr, "/", &[]).await;
    let policy = page.header("content-security-policy").expect("a policy");
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let login_cookie = set_cookies(&page).into_iter().find(|c| c.starts_with("__Secure-mailbus_login_csrf=")).unwrap();
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"), "{login_cookie}");
    assert!(page.body.contains("data-test=\"login-form\""), "the login form: {}", page.body);
    // From elsewhere over plain HTTP, with no https public URL to send the browser to: why it cannot log in.
    let plain = curl(addr, "/", &["-H", "Host: mail.example.org"]).await;
    assert_eq!(plain.status, 403, "{}", plain.body);
    assert!(plain.body.contains("needs HTTPS") && !plain.body.contains("login-form"), "{}", plain.body);

    // The form's token must match the cookie, and the form must come from our origin.
    let (cookie, csrf) = browser.login_form().await;
    let forged = browser.post_login(ALICE, &cookie, "forged", &browser.origin).await;
    assert_eq!((forged.status, forged.header("location")), (303, Some("/?error=csrf")));
    assert!(cookie_value(&forged, "__Host-mailbus_session").is_none());
    let foreign = browser.post_login(ALICE, &cookie, &csrf, "https://evil.test").await;
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    let wrong = browser.post_login((ALICE.0, "wrong"), &cookie, &csrf, &browser.origin).await;
    assert_eq!((wrong.status, wrong.header("location")), (303, Some("/?error=credentials")));
    assert!(cookie_value(&wrong, "__Host-mailbus_session").is_none());

    // A login: the cookie is locked down, the session document has what the page needs.
    let reply = browser.post_login(ALICE, &cookie, &csrf, &browser.origin).await;
    assert_eq!((reply.status, reply.header("location")), (303, Some("/")), "{}", reply.body);
    let set =
        set_cookies(&reply).into_iter().find(|c| c.starts_with("__Host-mailbus_session=")).expect("session cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{attribute} missing: {set}");
    }
    let (session, document) = browser.login(ALICE).await;
    assert_eq!(document["username"], ALICE.0);
    let account = document["accountId"].as_str().expect("accountId").to_owned();
    let token = document["csrfToken"].as_str().expect("csrfToken").to_owned();
    assert_eq!(document["session"]["primaryAccounts"]["urn:ietf:params:jmap:mail"], account);
    let with_cookie = format!("Cookie: __Host-mailbus_session={session}");
    let app = curl(addr, "/", &["-H", &with_cookie]).await;
    assert!(app.body.contains("/webmail/assets/app.js?v="), "the app page for a session: {}", app.body);
    assert!(cookie_value(&app, "__Secure-mailbus_login_csrf").is_none(), "no login form for a session");

    // A state-changing JMAP request on the cookie: refused without the token, with a wrong one, or from
    // another origin (by Origin or by Fetch Metadata); accepted with the token from our origin.
    let create = json!({"using": USING, "methodCalls": [["Mailbox/set", {"accountId": account, "create": {"m": {"name": "Made by CSRF"}}}, "0"]]});
    let token_header = format!("X-CSRF-Token: {token}");
    let ours = format!("Origin: http://{addr}");
    for (headers, why) in [
        (vec![], "no token"),
        (vec!["X-CSRF-Token: wrong".to_owned()], "a wrong token"),
        (vec![token_header.clone(), "Origin: https://evil.test".to_owned()], "another origin"),
        (vec![token_header.clone(), "Origin: null".to_owned()], "an opaque origin"),
        (vec![token_header.clone(), "Sec-Fetch-Site: cross-site".to_owned()], "a cross-site fetch"),
        (vec![token_header.clone(), "Sec-Fetch-Site: same-site".to_owned()], "a sibling site"),
    ] {
        let reply = cookie_api(addr, &session, &headers, &create).await;
        assert_eq!(reply.status, 403, "{why}: {}", reply.body);
    }
    let mailboxes = api(
        addr,
        &basic(ALICE.0, ALICE.1),
        &json!({"using": USING, "methodCalls": [["Mailbox/get", {"accountId": account}, "0"]]}),
    )
    .await;
    assert!(!mailboxes.body.contains("Made by CSRF"), "a refused request changed nothing");
    let headers = [token_header.clone(), ours.clone(), "Sec-Fetch-Site: same-origin".to_owned()];
    let reply = cookie_api(addr, &session, &headers, &create).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.json()["methodResponses"][0][1]["created"]["m"]["id"].is_string(), "{}", reply.body);

    // Uploads are changes too; downloads, the session and push are reads and need only the cookie.
    let upload_path = format!("/jmap/upload/{account}/");
    let plain_upload = ["-H", &with_cookie, "-H", "Content-Type: text/plain", "--data-binary", "hello"];
    assert_eq!(curl(addr, &upload_path, &plain_upload).await.status, 403);
    let upload = curl(addr, &upload_path, &[&plain_upload[..], &["-H", &token_header]].concat()).await;
    assert_eq!(upload.status, 201, "{}", upload.body);
    let blob = upload.json()["blobId"].as_str().expect("blobId").to_owned();
    let download =
        curl(addr, &format!("/jmap/download/{account}/{blob}/a.txt?type=text/plain"), &["-H", &with_cookie]).await;
    assert_eq!((download.status, download.body.as_str()), (200, "hello"));
    assert_eq!(curl(addr, "/jmap/session", &["-H", &with_cookie]).await.status, 200);

    // Another session of the same account has its own token.
    let (other, other_document) = browser.login(ALICE).await;
    assert_ne!(other_document["csrfToken"], document["csrfToken"]);
    let reply = cookie_api(addr, &other, std::slice::from_ref(&token_header), &create).await;
    assert_eq!(reply.status, 403, "one session's token is not another's: {}", reply.body);

    // Logging out needs the token too, then ends the session on the server whatever the browser keeps.
    let refused = curl(addr, "/webmail/logout", &["-X", "POST", "-H", &with_cookie, "-H", &ours]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(curl(addr, "/webmail/session", &["-H", &with_cookie]).await.status, 200, "still logged in");
    let out =
        curl(addr, "/webmail/logout", &["-X", "POST", "-H", &with_cookie, "-H", &ours, "-H", &token_header]).await;
    assert_eq!((out.status, out.header("location")), (303, Some("/?logged_out=1")), "{}", out.body);
    assert!(set_cookies(&out).iter().any(|c| c.starts_with("__Host-mailbus_session=;") && c.contains("Max-Age=0")));
    let after = curl(addr, "/webmail/session", &["-H", &with_cookie]).await;
    assert_eq!(after.status, 401, "{}", after.body);
    assert!(after.header("www-authenticate").is_none(), "no Basic dialog over the page");
    let reply = cookie_api(addr, &session, &headers, &create).await;
    assert_eq!(reply.status, 401, "the old cookie is dead: {}", reply.body);
    let home = curl(addr, "/", &["-H", &with_cookie]).await;
    assert!(cookie_value(&home, "__Secure-mailbus_login_csrf").is_some(), "the login form again");
    // The other session lives on.
    let other_cookie = format!("Cookie: __Host-mailbus_session={other}");
    assert_eq!(curl(addr, "/webmail/session", &["-H", &other_cookie]).await.status, 200);

    // Logging in again in a browser that has a session ends that one (it may be someone else's login).
    let (form_cookie, csrf) = browser.login_form().await;
    let both = format!("Cookie: __Secure-mailbus_login_csrf={form_cookie}; __Host-mailbus_session={other}");
    let origin = format!("Origin: {}", browser.origin);
    let fields =
        ["--data-urlencode", &format!("username={}", ALICE.0), "--data-urlencode", &format!("password={}", ALICE.1)];
    let csrf_field = format!("csrf={csrf}");
    let args = [&["-H", &both, "-H", &origin][..], &fields[..], &["--data-urlencode", &csrf_field]].concat();
    let again = curl(addr, "/webmail/login", &args).await;
    assert_eq!((again.status, again.header("location")), (303, Some("/")), "{}", again.body);
    assert!(cookie_value(&again, "__Host-mailbus_session").is_some_and(|new| new != other));
    assert_eq!(curl(addr, "/webmail/session", &["-H", &other_cookie]).await.status, 401, "the earlier session ended");

    // A new password ends what the old one opened: the browser's session, a bearer token, and the
    // verified password the role remembers. A change of anything else (the quota) ends nothing.
    let latest = format!("Cookie: __Host-mailbus_session={}", cookie_value(&again, "__Host-mailbus_session").unwrap());
    let old_password = basic(ALICE.0, ALICE.1);
    let issued = curl(addr, "/jmap/token", &["-X", "POST", "-H", &old_password]).await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    let bearer = format!("Authorization: Bearer {}", issued.json()["access_token"].as_str().unwrap());
    let update = |password: Option<&str>, quota_messages: Option<u64>| mailbus_proto::v1::UpdateAccountRequest {
        address: ALICE.0.into(),
        password: password.map(str::to_owned),
        quota_messages,
        ..Default::default()
    };
    let alive = async |header: &str| {
        let path = if header.starts_with("Cookie:") { "/webmail/session" } else { "/jmap/session" };
        curl(addr, path, &["-H", header]).await.status == 200
    };
    assert!(alive(&latest).await && alive(&bearer).await);
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url).await.unwrap();
    let epoch = async |db: &mut sqlx::PgConnection| -> i64 {
        sqlx::query_scalar("SELECT credential_epoch FROM accounts WHERE address = 'alice@example.org'")
            .fetch_one(db)
            .await
            .unwrap()
    };
    let first_epoch = epoch(&mut db).await;
    // An EventSource of the old token, with a ping every 5 s: it ends at the first ping after the
    // change (curl gives up after 30 s otherwise, and says so in its exit status).
    let url = format!("http://{addr}/jmap/eventsource?types=*&ping=5");
    let listener = tokio::process::Command::new("curl")
        .args(["-s", "-i", "-N", "--max-time", "30", "-H", &bearer, &url])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting curl");
    stack.directory().await.update_account(update(None, Some(1000))).await.unwrap();
    assert_eq!(epoch(&mut db).await, first_epoch, "a quota change leaves the credential epoch");
    assert!(alive(&latest).await && alive(&bearer).await, "a quota change ends no session");
    stack.directory().await.update_account(update(Some("new alice pw"), None)).await.unwrap();
    assert_eq!(epoch(&mut db).await, first_epoch + 1, "a new password moves it");
    wait_until(PATIENCE, "the token of the old password is refused", async || !alive(&bearer).await).await;
    assert_eq!(curl(addr, "/jmap/session", &["-H", &bearer]).await.status, 401);
    let ended = curl(addr, "/webmail/session", &["-H", &latest]).await;
    assert_eq!(ended.status, 401, "the session of the old password is over: {}", ended.body);
    assert_eq!(curl(addr, "/jmap/session", &["-H", &old_password]).await.status, 401, "the old password");
    let heard = listener.wait_with_output().await.unwrap();
    assert!(heard.status.success(), "the EventSource of the old token ended: {:?}", heard.status);
    let text = String::from_utf8_lossy(&heard.stdout);
    assert!(text.starts_with("HTTP/1.1 200") && text.contains("text/event-stream"), "it was open until then: {text}");
    let new_password = basic(ALICE.0, "new alice pw");
    assert_eq!(curl(addr, "/jmap/session", &["-H", &new_password]).await.status, 200, "the new password");
    let reissued = curl(addr, "/jmap/token", &["-X", "POST", "-H", &new_password]).await;
    let bearer = format!("Authorization: Bearer {}", reissued.json()["access_token"].as_str().unwrap());
    assert!(alive(&bearer).await, "a token of the new password works");
    assert!(browser.login(("alice@example.org", "new alice pw")).await.1.is_object(), "and so does the webmail");
    // A new address ends them too: the name they were opened with is gone.
    let rename =
        mailbus_proto::v1::RenameAccountRequest { address: ALICE.0.into(), new_address: "alice.b@example.org".into() };
    stack.directory().await.rename_account(rename).await.unwrap();
    wait_until(PATIENCE, "the token of the old address is refused", async || !alive(&bearer).await).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webmail_logins_share_the_failed_login_throttle_with_imap() {
    let stack = TestStack::builder().set("MAILBUS_AUTH_MAX_FAILURES_PER_IP", "3").start().await;
    stack.add_account(ALICE.0, ALICE.1).await;
    let browser = Browser::new(stack.http_addr());
    let (cookie, csrf) = browser.login_form().await;
    let mut tries = 0;
    loop {
        tries += 1;
        let reply = browser.post_login((ALICE.0, "guess"), &cookie, &csrf, &browser.origin).await;
        match reply.header("location") {
            Some("/?error=credentials") => assert!(tries <= 3, "still guessing after {tries} failures"),
            Some("/?error=throttled") => break,
            other => panic!("a failed login answered {} {other:?}", reply.status),
        }
    }
    // Throttled: even the right password is refused, over the webmail and over IMAP alike.
    let right = browser.post_login(ALICE, &cookie, &csrf, &browser.origin).await;
    assert_eq!(right.header("location"), Some("/?error=throttled"));
    assert!(cookie_value(&right, "__Host-mailbus_session").is_none());
    let results = imap_session(stack.imap_addr(), None, json!([["login", ALICE.0, ALICE.1]])).await;
    assert_eq!(results[1][0], "error", "IMAP refuses the address the webmail throttled: {results:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webmail_is_served_over_tls_or_to_this_machine_only() {
    let stack = TestStack::builder().set("MAILBUS_HTTP_PUBLIC_URL", "https://mail.example.org").start().await;
    let addr = stack.http_addr();
    // A browser keeps no Secure cookie from a non-local http: origin, so it is sent to the public URL.
    let local = curl(addr, "/", &[]).await;
    assert_eq!(local.status, 200, "a browser on this machine is served: {}", local.body);
    let remote = curl(addr, "/?error=csrf", &["-H", "Host: mail.example.org"]).await;
    assert_eq!((remote.status, remote.header("location")), (308, Some("https://mail.example.org/?error=csrf")));
    let login = curl(addr, "/webmail/login", &["-H", "Host: mail.example.org", "--data", "username=x"]).await;
    assert_eq!((login.status, login.header("location")), (308, Some("https://mail.example.org/webmail/login")));
    assert!(local.header("strict-transport-security").is_none(), "HSTS means nothing over plain HTTP");
    // Over TLS: served, and the browser is told to keep to TLS (RFC 6797).
    let https = stack.https.expect("the stack serves HTTPS");
    let url = format!("https://127.0.0.1:{}/", https.port());
    let output = tokio::process::Command::new("curl")
        .args(["-s", "-i", "-k", "--http1.1", "--max-time", "20", "-H", "Host: mail.example.org", &url])
        .output()
        .await
        .expect("running curl");
    let text = String::from_utf8_lossy(&output.stdout).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("\r\nstrict-transport-security: max-age=31536000\r\n"), "{text}");
    stack.stop().await;
}

fn cafile() -> &'static Path {
    &Infra::get().tls_cert
}

/// What every scenario is told: the stack's HTTPS address, the two accounts, where to put screenshots.
fn scenario_env(stack: &TestStack, screenshots: &Path) -> Vec<(&'static str, String)> {
    let https = stack.https.expect("the stack serves HTTPS");
    vec![
        ("MAILBUS_URL", format!("https://127.0.0.1:{}", https.port())),
        ("MAILBUS_USER", ALICE.0.to_owned()),
        ("MAILBUS_PASSWORD", ALICE.1.to_owned()),
        ("MAILBUS_USER2", BOB.0.to_owned()),
        ("MAILBUS_PASSWORD2", BOB.1.to_owned()),
        ("MAILBUS_SCREENSHOTS", screenshots.display().to_string()),
        ("CHROMIUM", "/usr/bin/chromium".to_owned()),
    ]
}

/// Bob sends alice a text message with `subject` through authenticated submission, with swaks.
async fn swaks_to_alice(stack: &TestStack, subject: &str) {
    let subject = format!("Subject: {subject}");
    let body = format!("Hello Alice,\n\nthis is {subject:?}.\n\nBob");
    let extra = ["--header", subject.as_str(), "--body", body.as_str()];
    let submission = stack.submission.expect("submission listener");
    let (ok, said) = swaks_submit(submission, cafile(), BOB, ALICE.0, &extra).await;
    assert!(ok, "swaks failed:\n{said}");
}

/// The emails of `account` whose subject is `subject`, with the properties asked for.
async fn emails(stack: &TestStack, account: i64, filter: Value, properties: &[&str]) -> Vec<Value> {
    let query =
        stack.jmap_call(account, "Email/query", json!({"accountId": format!("a{account}"), "filter": filter})).await;
    let ids = query[0].1["ids"].clone();
    let got = stack
        .jmap_call(
            account,
            "Email/get",
            json!({"accountId": format!("a{account}"), "ids": ids, "properties": properties}),
        )
        .await;
    got[0].1["list"].as_array().cloned().unwrap_or_default()
}

async fn mailbox_id(stack: &TestStack, account: i64, name: &str) -> String {
    let got = stack.jmap_call(account, "Mailbox/get", json!({"accountId": format!("a{account}"), "ids": null})).await;
    let list = got[0].1["list"].as_array().cloned().unwrap_or_default();
    let found = list.iter().find(|m| m["name"] == name).unwrap_or_else(|| panic!("no mailbox {name}: {list:?}"));
    found["id"].as_str().expect("id").to_owned()
}

/// IMAP's view: whether a SEARCH in `mailbox` for `criteria` finds anything.
fn imap_found(result: &Value) -> bool {
    result[0] == "OK" && result[1][0].as_str().is_some_and(|hits| !hits.trim().is_empty())
}

#[tokio::test(flavor = "multi_thread")]
async fn webmail_in_a_browser_reads_replies_forwards_moves_searches_and_sees_new_mail_as_imap_and_pop3_do() {
    let stack = TestStack::start().await;
    let alice = stack.add_account(ALICE.0, ALICE.1).await;
    let bob = stack.add_account(BOB.0, BOB.1).await;
    for (delivered, subject) in ["Welcome", "Second", "Third"].into_iter().enumerate() {
        swaks_to_alice(&stack, subject).await;
        // One at a time, so that they arrive in this order.
        stack.wait_for_inbox(alice, delivered + 1, PATIENCE).await;
    }
    // IMAP first: a folder and a flag the browser must show.
    let steps = json!([
        ["login", ALICE.0, ALICE.1],
        ["create", "FromImap"],
        ["select", "INBOX"],
        ["search", null, "SUBJECT", "\"Welcome\""],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert_eq!(results[2][0], "OK", "{results:?}");
    let welcome_seq = results[4][1][0].as_str().expect("Welcome's number").trim().to_owned();
    let steps =
        json!([["login", ALICE.0, ALICE.1], ["select", "INBOX"], ["store", welcome_seq, "+FLAGS", "(\\Flagged)"]]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert_eq!(results[3][0], "OK", "{results:?}");

    let screenshots = output_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "webmail-main-flow");
    let env = scenario_env(&stack, &screenshots);
    let outcome = run_scenario("mail.mjs", &env, async |subject: String| {
        swaks_to_alice(&stack, &subject).await;
        let filter = json!({"subject": subject});
        wait_until(PATIENCE, "the delivery asked for arrives", async || {
            !emails(&stack, alice, filter.clone(), &["id"]).await.is_empty()
        })
        .await;
    })
    .await;
    let facts = &outcome.result;

    // What the browser saw of IMAP's changes, and of new mail.
    assert_eq!(facts["sawImapFolder"], true, "{facts:#}");
    assert_eq!(facts["sawImapFlag"], true, "{facts:#}");
    assert_eq!(facts["inboxUnreadBefore"], 3, "{facts:#}");
    assert_eq!(facts["liveAppeared"], true, "{facts:#}");
    assert_eq!(facts["clickSurvivedPush"], true, "{facts:#}");
    assert!(facts["searchHits"].as_u64().is_some_and(|n| n >= 1), "{facts:#}");
    assert_eq!(facts["stayedAfterRefusedLogout"], true, "{facts:#}");
    assert_eq!(facts["sessionAfterLogout"], 401, "{facts:#}");
    let shots = facts["screenshots"].as_array().expect("screenshots");
    assert!(shots.len() >= 5, "{facts:#}");
    for shot in shots {
        let path = Path::new(shot.as_str().expect("a path"));
        assert!(path.starts_with(&screenshots) && std::fs::metadata(path).is_ok_and(|m| m.len() > 1000), "{path:?}");
    }

    // Logged out on the server: the cookie the browser had opens nothing any more.
    let session = facts["sessionCookie"].as_str().expect("the session cookie");
    let cookie = format!("Cookie: __Host-mailbus_session={session}");
    assert_eq!(curl(stack.http_addr(), "/webmail/session", &["-H", &cookie]).await.status, 401);

    // Bob got the reply and the forward, the forward with its attachment; alice's Sent holds both.
    wait_until(PATIENCE, "bob receives the reply and the forward", async || {
        emails(&stack, bob, json!({"subject": "Welcome"}), &["id"]).await.len() >= 2
    })
    .await;
    let received = emails(&stack, bob, json!({"subject": "Welcome"}), &["subject", "attachments", "from"]).await;
    let subjects: Vec<&str> = received.iter().filter_map(|e| e["subject"].as_str()).collect();
    assert!(subjects.iter().any(|s| s.starts_with("Re: Welcome")), "{subjects:?}");
    let forward = received
        .iter()
        .find(|e| e["subject"].as_str().is_some_and(|s| s.starts_with("Fwd: Welcome")))
        .unwrap_or_else(|| panic!("no forward among {subjects:?}"));
    assert!(forward["attachments"].to_string().contains("note.txt"), "{forward:#}");
    assert_eq!(forward["from"][0]["email"], ALICE.0, "{forward:#}");
    let sent = mailbox_id(&stack, alice, "Sent").await;
    let in_sent = emails(&stack, alice, json!({"inMailbox": sent}), &["subject"]).await;
    assert_eq!(in_sent.len(), 2, "the reply and the forward are in Sent: {in_sent:?}");

    // IMAP sees what the browser did: Welcome read, Second in Projects, Third in Trash.
    let steps = json!([
        ["login", ALICE.0, ALICE.1],
        ["select", "INBOX"],
        ["search", null, "SEEN", "SUBJECT", "\"Welcome\""],
        ["search", null, "SUBJECT", "\"Third\""],
        ["search", null, "SUBJECT", "\"Live\""],
        ["select", "Projects"],
        ["search", null, "SUBJECT", "\"Second\""],
        ["select", "Trash"],
        ["search", null, "SUBJECT", "\"Third\""],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert!(imap_found(&results[3]), "Welcome is \\Seen over IMAP: {results:?}");
    assert!(!imap_found(&results[4]), "Third left INBOX: {results:?}");
    assert!(imap_found(&results[5]), "Live is in INBOX: {results:?}");
    assert!(imap_found(&results[7]), "Second is in Projects: {results:?}");
    assert!(imap_found(&results[9]), "Third is in Trash: {results:?}");
    // And POP3, which sees INBOX only: Welcome and Live.
    let pop3 = pop3_session(stack.pop3_addr(), ALICE.0, ALICE.1, Pop3End::Quit).await;
    assert_eq!(pop3.stat.0, 2, "POP3 sees INBOX as the browser left it");
    stack.stop().await;
}

/// An HTML mail that tries everything: script, handlers, `javascript:` links, remote images, a form,
/// frames, a refresh, CSS that fetches; everything remote points at the trap. And one real inline image.
fn hostile_message(trap: &str) -> Vec<u8> {
    // A 1×1 PNG.
    const PIXEL: &str =
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let html = format!(
        "<html><head><meta http-equiv=\"refresh\" content=\"0;url={trap}/refresh\">\
         <link rel=\"stylesheet\" href=\"{trap}/link.css\"><style>@import url({trap}/import.css);\
         body {{ background: url({trap}/style-bg.png) }}</style>\
         <script>document.title = 'pwned'; alert(1); fetch('{trap}/fetch');</script><base href=\"{trap}/\"></head>\
         <body onload=\"alert(2)\" background=\"{trap}/body-bg.png\">\
         <p>Hello from the hostile mail</p>\
         <img src=\"{trap}/img.png\" alt=\"remote\"><img src=\"x\" onerror=\"alert(3); document.title = 'pwned'\">\
         <img src=\"cid:pixel@example.net\" alt=\"inline\" data-test=\"inline-pixel\">\
         <a href=\"javascript:alert(4)\">a script link</a> <a href=\"JaVaScRiPt:alert(5)\">another</a>\
         <a href=\"https://example.org/\">a fine link</a>\
         <form action=\"{trap}/form\" method=\"post\"><input name=\"password\" type=\"password\">\
         <button type=\"submit\" formaction=\"{trap}/button\">Sign in</button></form>\
         <div style=\"background-image: url('{trap}/div-bg.png'); color: red\">styled</div>\
         <iframe src=\"{trap}/iframe\"></iframe><object data=\"{trap}/object\"></object>\
         <embed src=\"{trap}/embed\"><video poster=\"{trap}/poster.png\" src=\"{trap}/video\"></video>\
         <svg><image href=\"{trap}/svg.png\"></image><script>alert(6)</script></svg>\
         <img srcset=\"{trap}/srcset.png 1x\"><table background=\"{trap}/table-bg.png\"><tr><td>cell</td></tr></table>\
         </body></html>"
    );
    format!(
        "From: Mallory <mallory@remote.test>\r\nTo: {alice}\r\nSubject: Hostile\r\nMessage-ID: <hostile@remote.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n\
         --b\r\nContent-Type: image/png\r\nContent-ID: <pixel@example.net>\r\nContent-Transfer-Encoding: base64\r\n\r\n{PIXEL}\r\n\
         --b--\r\n",
        alice = ALICE.0
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn webmail_shows_a_hostile_mail_without_running_or_fetching_anything() {
    let trap = Trap::start().await;
    let stack = TestStack::start().await;
    let alice = stack.add_account(ALICE.0, ALICE.1).await;
    stack.add_account(BOB.0, BOB.1).await;
    let outcome = smtp_send(stack.smtp_addr(), "mallory@remote.test", &[ALICE.0], &hostile_message(&trap.url())).await;
    assert!(matches!(outcome, mailbus_tests::clients::SmtpOutcome::Accepted { .. }), "{outcome:?}");
    stack.wait_for_inbox(alice, 1, PATIENCE).await;

    // What the server sends: sanitised, under a policy that lets it run and fetch nothing.
    let email = emails(&stack, alice, json!({"subject": "Hostile"}), &["id"]).await;
    let id = email[0]["id"].as_str().expect("the hostile mail's id").to_owned();
    let html =
        curl(stack.http_addr(), &format!("/webmail/html/{id}?images=0"), &["-H", &basic(ALICE.0, ALICE.1)]).await;
    assert_eq!(html.status, 200, "{}", html.body);
    assert!(!html.body.contains(&trap.addr.to_string()), "the trap's address survived: {}", html.body);
    assert!(html.body.contains("Hello from the hostile mail"), "{}", html.body);
    assert!(html.body.contains("src=\"data:image/png;base64,"), "the cid: image is inlined: {}", html.body);
    let lower = html.body.to_ascii_lowercase();
    for word in ["<script", "onerror", "onload", "javascript:", "<form", "<iframe", "<object", "<embed", "<meta http"] {
        assert!(!lower.contains(word), "{word} survived: {}", html.body);
    }
    let policy = html.header("content-security-policy").expect("a policy");
    assert!(policy.contains("default-src 'none'") && policy.contains("img-src data:;"), "{policy}");
    assert!(policy.contains("sandbox allow-popups allow-popups-to-escape-sandbox"), "{policy}");
    assert!(!policy.contains("allow-scripts") && !policy.contains("allow-same-origin"), "{policy}");
    assert_eq!(html.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(html.header("x-mailbus-blocked-images"), Some("1"), "one remote <img>");
    // Asked for, the remote image comes back (and the policy lets it load); nothing else does.
    let shown =
        curl(stack.http_addr(), &format!("/webmail/html/{id}?images=1"), &["-H", &basic(ALICE.0, ALICE.1)]).await;
    assert_eq!(shown.body.matches(&trap.addr.to_string()).count(), 1, "only the <img>: {}", shown.body);
    assert!(shown.header("content-security-policy").is_some_and(|p| p.contains("img-src data: https: http:")));

    // In the browser: nothing ran, nothing was fetched from the trap or anywhere else.
    let screenshots = output_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "webmail-hostile");
    let mut env = scenario_env(&stack, &screenshots);
    env.push(("MAILBUS_TRAP_URL", trap.url()));
    let outcome = run_scenario("hostile.mjs", &env, async |subject: String| {
        panic!("the hostile scenario asked for a delivery of {subject:?}")
    })
    .await;
    let facts = &outcome.result;
    assert!(facts["bodyText"].as_str().is_some_and(|t| t.contains("Hello from the hostile mail")), "{facts:#}");
    assert_eq!(facts["dialogs"], 0, "no alert() ran: {facts:#}");
    assert_ne!(facts["title"], "pwned", "{facts:#}");
    assert_eq!(facts["offOrigin"], json!([]), "the browser asked nothing of another origin: {facts:#}");
    let requests = facts["requests"].as_array().expect("the request log");
    assert!(requests.iter().all(|r| !r.as_str().unwrap_or("").contains(&trap.addr.to_string())), "{facts:#}");
    assert!(requests.iter().any(|r| r.as_str().is_some_and(|r| r.contains("/webmail/html/"))), "{facts:#}");
    let links = facts["links"].to_string().to_ascii_lowercase();
    assert!(!links.contains("javascript:"), "{facts:#}");
    assert_eq!(facts["frameSandbox"], "allow-popups allow-popups-to-escape-sandbox", "{facts:#}");
    assert_eq!(facts["popups"], json!([]), "{facts:#}");
    assert_eq!(trap.seen(), Vec::<String>::new(), "the trap saw requests");

    // The reader asks for the remote images: now the one remote <img>, and nothing else, is fetched.
    // This also proves that the request log and the trap would have caught a leak above.
    env.push(("MAILBUS_SHOW_IMAGES", "1".to_owned()));
    let outcome = run_scenario("hostile.mjs", &env, async |subject: String| {
        panic!("the hostile scenario asked for a delivery of {subject:?}")
    })
    .await;
    let facts = &outcome.result;
    assert_eq!(facts["afterShowImages"], json!([format!("{}/img.png", trap.url())]), "{facts:#}");
    assert_eq!(facts["dialogs"], 0, "{facts:#}");
    wait_until(PATIENCE, "the trap hears the image asked for", async || !trap.seen().is_empty()).await;
    // Everything the trap ever saw, the first run's late requests included (they would have come before
    // this one): only the image asked for.
    let seen = trap.seen();
    assert_eq!(seen.len(), 1, "only the image asked for: {seen:?}");
    assert!(seen[0].ends_with("GET /img.png HTTP/1.1"), "{seen:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webmail_sets_the_vacation_reply_through_vacation_response() {
    let stack = TestStack::start().await;
    let alice = stack.add_account(ALICE.0, ALICE.1).await;
    stack.add_account(BOB.0, BOB.1).await;
    let screenshots = output_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "webmail-vacation");
    let env = scenario_env(&stack, &screenshots);
    let outcome = run_scenario("vacation.mjs", &env, async |subject: String| {
        panic!("the vacation scenario asked for a delivery of {subject:?}")
    })
    .await;
    let facts = &outcome.result;
    assert_eq!(
        facts["before"],
        json!({"enabled": false, "from": "", "to": "", "subject": "", "body": ""}),
        "a new account's reply is off: {facts:#}"
    );
    assert_eq!(facts["dateError"], "The last day is before the first.", "{facts:#}");
    assert_eq!(facts["toast"], "Vacation reply is on", "{facts:#}");
    assert_eq!(
        facts["after"],
        json!({"enabled": true, "from": "2026-12-20", "to": "2027-01-05", "subject": "Away until January",
               "body": "I am away and will answer in January."}),
        "{facts:#}"
    );
    // What the page saved is the account's VacationResponse, which delivery reads.
    let got = stack
        .jmap_call(alice, "VacationResponse/get", json!({"accountId": format!("a{alice}"), "ids": ["singleton"]}))
        .await;
    assert_eq!(
        got[0].1["list"][0],
        json!({"id": "singleton", "isEnabled": true, "fromDate": "2026-12-20T00:00:00Z",
               "toDate": "2027-01-05T23:59:59Z", "subject": "Away until January",
               "textBody": "I am away and will answer in January.", "htmlBody": null}),
        "{got:?}"
    );
    stack.stop().await;
}
