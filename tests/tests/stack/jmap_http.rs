//! The http role over real HTTP (curl): the session resource, authentication and tokens, the API
//! envelope's request- and method-level errors, result references, limits, CORS, blobs and push.

use std::time::{Duration, Instant};

use mailbus_tests::http::{Reply, api, basic, curl};
use mailbus_tests::{TestStack, wait_until};
use serde_json::{Value, json};

const CORE: &str = "urn:ietf:params:jmap:core";
const MAIL: &str = "urn:ietf:params:jmap:mail";

fn problem_type(reply: &Reply) -> String {
    assert_eq!(reply.header("content-type"), Some("application/problem+json"), "{}", reply.body);
    reply.json()["type"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_http_session_basic_and_bearer_auth() {
    let stack = TestStack::start().await;
    let id = stack.add_account("alice@example.org", "secret").await;
    let addr = stack.http_addr();
    let alice = basic("alice@example.org", "secret");

    let redirect = curl(addr, "/.well-known/jmap", &[]).await;
    assert!(matches!(redirect.status, 301 | 307 | 308), "{}", redirect.status);
    assert_eq!(redirect.header("location"), Some("/jmap/session"));

    let session = curl(addr, "/jmap/session", &["-H", &alice]).await;
    assert_eq!(session.status, 200, "{}", session.body);
    let session = session.json();
    let account = format!("a{id}");
    assert_eq!(session["username"], "alice@example.org");
    assert_eq!(session["primaryAccounts"][MAIL], account);
    assert_eq!(session["accounts"][&account]["name"], "alice@example.org");
    assert_eq!(session["capabilities"][CORE]["maxCallsInRequest"], 16);
    assert_eq!(session["capabilities"][CORE]["maxObjectsInGet"], 500);
    assert_eq!(session["apiUrl"], format!("http://{addr}/jmap/api"));
    assert!(session["downloadUrl"].as_str().unwrap().contains("{accountId}/{blobId}/{name}?type={type}"));
    assert!(session["state"].as_str().is_some_and(|s| !s.is_empty()));

    let anonymous = curl(addr, "/jmap/session", &[]).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.header("www-authenticate"), Some("Basic realm=\"mailbus\""));
    let wrong = curl(addr, "/jmap/session", &["-H", &basic("alice@example.org", "guess")]).await;
    assert_eq!(wrong.status, 401);

    let issued = curl(addr, "/jmap/token", &["-X", "POST", "-H", &alice]).await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    let token = issued.json()["access_token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 43, "256 bits of token: {token}");
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(curl(addr, "/jmap/session", &["-H", &bearer]).await.status, 200);
    let form = curl(addr, "/jmap/token", &["--data", "username=alice%40example.org&password=secret"]).await;
    assert_eq!(form.status, 201, "{}", form.body);
    let refused = curl(addr, "/jmap/token", &["-X", "POST", "-H", &basic("alice@example.org", "guess")]).await;
    assert_eq!(refused.status, 401);

    assert_eq!(curl(addr, "/jmap/token", &["-X", "DELETE", "-H", &bearer]).await.status, 204);
    assert_eq!(curl(addr, "/jmap/session", &["-H", &bearer]).await.status, 401, "a revoked token is refused");
    assert_eq!(curl(addr, "/jmap/session", &["-H", "Authorization: Bearer nonsense"]).await.status, 401);
    assert_eq!(curl(addr, "/", &[]).await.status, 200);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_http_request_errors_references_limits_and_cors() {
    let stack = TestStack::builder()
        .set("MAILBUS_JMAP_MAX_REQUEST_SIZE", "4096")
        .set("MAILBUS_HTTP_CORS_ORIGINS", "https://webmail.example.org")
        .start()
        .await;
    let id = stack.add_account("bob@example.org", "secret").await;
    let addr = stack.http_addr();
    let bob = basic("bob@example.org", "secret");
    let account = format!("a{id}");

    // Request-level errors (RFC 8620 §3.6.1).
    let post = |body: &'static str, content_type: &'static str| {
        let bob = bob.clone();
        async move { curl(addr, "/jmap/api", &["-H", &bob, "-H", content_type, "--data-binary", body]).await }
    };
    let not_json = post("{nope", "Content-Type: application/json").await;
    assert_eq!((not_json.status, problem_type(&not_json).as_str()), (400, "urn:ietf:params:jmap:error:notJSON"));
    let wrong_type = post("{}", "Content-Type: text/html").await;
    assert_eq!(problem_type(&wrong_type), "urn:ietf:params:jmap:error:notJSON");
    // RFC 8620 §3.6.1: a request without a type is not `application/json` either (curl sends none when
    // told `Content-Type:`).
    let untyped = post(r#"{"using": [], "methodCalls": []}"#, "Content-Type:").await;
    assert_eq!((untyped.status, problem_type(&untyped).as_str()), (400, "urn:ietf:params:jmap:error:notJSON"));

    // CSRF through credentials the browser sends by itself: a foreign page's `no-cors` POST carries the
    // Basic credentials its user once typed, and is refused before any method runs; so is one that claims
    // a JSON type. A page of a configured CORS origin still may.
    let echo = r#"{"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {}, "c"]]}"#;
    let from_page = |origin: &'static str, site: &'static str, content_type: &'static str| {
        let bob = bob.clone();
        async move {
            let (origin, site) = (format!("Origin: {origin}"), format!("Sec-Fetch-Site: {site}"));
            curl(
                addr,
                "/jmap/api",
                &["-H", &bob, "-H", &origin, "-H", &site, "-H", content_type, "--data-binary", echo],
            )
            .await
        }
    };
    let no_cors = from_page("https://evil.example", "cross-site", "Content-Type: text/plain").await;
    assert_eq!(no_cors.status, 403, "{}", no_cors.body);
    let evil_json = from_page("https://evil.example", "cross-site", "Content-Type: application/json").await;
    assert_eq!(evil_json.status, 403, "{}", evil_json.body);
    let sibling = from_page("https://other.example.org", "same-site", "Content-Type: application/json").await;
    assert_eq!(sibling.status, 403, "{}", sibling.body);
    let client = from_page("https://webmail.example.org", "cross-site", "Content-Type: application/json").await;
    assert_eq!(client.status, 200, "{}", client.body);
    let token_from_page =
        curl(addr, "/jmap/token", &["-X", "POST", "-H", &bob, "-H", "Origin: https://evil.example"]).await;
    assert_eq!(token_from_page.status, 403, "{}", token_from_page.body);
    let not_request = post(r#"{"using": [], "methodCalls": {}}"#, "Content-Type: application/json").await;
    assert_eq!(
        (not_request.status, problem_type(&not_request).as_str()),
        (400, "urn:ietf:params:jmap:error:notRequest")
    );
    let unknown = api(addr, &bob, &json!({"using": ["urn:example:nothing"], "methodCalls": []})).await;
    assert_eq!(problem_type(&unknown), "urn:ietf:params:jmap:error:unknownCapability");
    let calls: Vec<Value> = (0..17).map(|i| json!(["Core/echo", {}, format!("c{i}")])).collect();
    let too_many = api(addr, &bob, &json!({"using": [CORE], "methodCalls": calls})).await;
    assert_eq!(problem_type(&too_many), "urn:ietf:params:jmap:error:limit");
    assert_eq!(too_many.json()["limit"], "maxCallsInRequest");
    let big = json!({"using": [CORE], "methodCalls": [["Core/echo", {"pad": "x".repeat(5000)}, "c1"]]});
    let too_big = api(addr, &bob, &big).await;
    assert_eq!(too_big.status, 413);
    assert_eq!(problem_type(&too_big), "urn:ietf:params:jmap:error:limit");
    assert_eq!(too_big.json()["limit"], "maxSizeRequest");

    // Method-level errors and result references (RFC 8620 §3.6.2, §3.7).
    let responses = |reply: Reply| reply.json()["methodResponses"].as_array().unwrap().clone();
    let small = json!({
        "using": [CORE, MAIL],
        "methodCalls": [
            ["Core/echo", {"list": [{"id": "x1", "n": [1, 2]}, {"id": "x2", "n": [3]}]}, "e1"],
            ["Core/echo", {"#ids": {"resultOf": "e1", "name": "Core/echo", "path": "/list/*/id"},
                           "#ns": {"resultOf": "e1", "name": "Core/echo", "path": "/list/*/n"}}, "e2"],
            ["Core/echo", {"#ids": {"resultOf": "e1", "name": "Mailbox/get", "path": "/list"}}, "e3"],
            ["Core/echo", {"#ids": {"resultOf": "zz", "name": "Core/echo", "path": "/list"}}, "e4"],
            ["Mailbox/get", {"accountId": "a999999"}, "g1"],
            ["Calendar/get", {"accountId": account}, "g2"],
        ],
        "createdIds": {"k": "x"},
    });
    let reply = api(addr, &bob, &small).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["createdIds"], json!({"k": "x"}), "createdIds come back (RFC 8620 §3.4)");
    assert!(body["sessionState"].is_string());
    let r = responses(reply);
    assert_eq!(r[1], json!(["Core/echo", {"ids": ["x1", "x2"], "ns": [1, 2, 3]}, "e2"]));
    assert_eq!(r[2][0], "error");
    assert_eq!(r[2][1]["type"], "invalidResultReference");
    assert_eq!(r[3][1]["type"], "invalidResultReference");
    assert_eq!(r[4], json!(["error", {"type": "accountNotFound"}, "g1"]));
    assert_eq!(r[5], json!(["error", {"type": "unknownMethod"}, "g2"]));
    let without_mail = json!({"using": [CORE], "methodCalls": [["Mailbox/get", {"accountId": account}, "m"]]});
    assert_eq!(responses(api(addr, &bob, &without_mail).await)[0][1]["type"], "unknownMethod");

    // CORS (preflight without credentials).
    let preflight = |origin: &'static str| async move {
        curl(
            addr,
            "/jmap/api",
            &[
                "-X",
                "OPTIONS",
                "-H",
                &format!("Origin: {origin}"),
                "-H",
                "Access-Control-Request-Method: POST",
                "-H",
                "Access-Control-Request-Headers: authorization, content-type",
            ],
        )
        .await
    };
    let allowed = preflight("https://webmail.example.org").await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("access-control-allow-origin"), Some("https://webmail.example.org"));
    assert!(allowed.header("access-control-allow-headers").is_some_and(|h| h.contains("authorization")));
    let refused = preflight("https://evil.example.net").await;
    assert_eq!(refused.header("access-control-allow-origin"), None);
    stack.stop().await;

    // maxObjectsInGet / maxObjectsInSet need a request larger than the small limit above.
    let stack = TestStack::start().await;
    let id = stack.add_account("carol@example.org", "secret").await;
    let carol = basic("carol@example.org", "secret");
    let account = format!("a{id}");
    let large = json!({
        "using": [CORE, MAIL],
        "methodCalls": [
            ["Email/get", {"accountId": account, "ids": (0..501).map(|i| format!("e{i}")).collect::<Vec<_>>()}, "g3"],
            ["Mailbox/set", {"accountId": account, "destroy": (0..501).map(|i| format!("m{i}")).collect::<Vec<_>>()}, "g4"],
        ],
    });
    let r = responses(api(stack.http_addr(), &carol, &large).await);
    assert_eq!(r[0][1]["type"], "requestTooLarge");
    assert_eq!(r[1][1]["type"], "requestTooLarge");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_http_blob_doors_are_per_account_and_limited() {
    let stack = TestStack::builder().set("MAILBUS_JMAP_MAX_UPLOAD_SIZE", "2048").start().await;
    let id = stack.add_account("dave@example.org", "secret").await;
    let other = stack.add_account("erin@example.org", "secret").await;
    let addr = stack.http_addr();
    let dave = basic("dave@example.org", "secret");
    let upload = |account: i64, size: usize| {
        let dave = dave.clone();
        async move {
            let body = "x".repeat(size);
            let path = format!("/jmap/upload/a{account}/");
            curl(addr, &path, &["-H", &dave, "-H", "Content-Type: text/plain", "--data-binary", &body]).await
        }
    };
    assert_eq!(upload(other, 10).await.status, 404, "another account's upload URL");
    let over = upload(id, 4096).await;
    assert_eq!(over.status, 413);
    assert_eq!(over.json()["limit"], "maxSizeUpload");
    let download = curl(addr, &format!("/jmap/download/a{other}/b1/x.txt"), &["-H", &dave]).await;
    assert_eq!(download.status, 404, "another account's blob");
    stack.stop().await;
}

/// Needs the mailbox role's Upload and Download RPCs.
#[tokio::test(flavor = "multi_thread")]
async fn jmap_http_upload_then_download() {
    let stack = TestStack::start().await;
    let id = stack.add_account("fay@example.org", "secret").await;
    let other = stack.add_account("gus@example.org", "secret").await;
    let addr = stack.http_addr();
    let fay = basic("fay@example.org", "secret");
    let uploaded = curl(
        addr,
        &format!("/jmap/upload/a{id}/"),
        &["-H", &fay, "-H", "Content-Type: text/html", "--data-binary", "<script>alert(1)</script>"],
    )
    .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.body);
    let uploaded = uploaded.json();
    assert_eq!(uploaded["accountId"], format!("a{id}"));
    assert_eq!(uploaded["size"], 25);
    let blob = uploaded["blobId"].as_str().unwrap().to_owned();
    let download = curl(addr, &format!("/jmap/download/a{id}/{blob}/page.html?type=text/html"), &["-H", &fay]).await;
    assert_eq!(download.status, 200);
    assert_eq!(download.body, "<script>alert(1)</script>");
    assert_eq!(download.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(download.header("content-security-policy"), Some("default-src 'none'; sandbox"));
    assert_eq!(download.header("content-disposition"), Some("attachment; filename*=UTF-8''page.html"));
    let gus = basic("gus@example.org", "secret");
    let stolen = curl(addr, &format!("/jmap/download/a{other}/{blob}/page.html"), &["-H", &gus]).await;
    assert_eq!(stolen.status, 404, "another account's blob id is not found");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_http_eventsource_hears_a_delivery() {
    let stack = TestStack::start().await;
    let id = stack.add_account("hal@example.org", "secret").await;
    let addr = stack.http_addr();
    let hal = basic("hal@example.org", "secret");
    let url = format!("http://{addr}/jmap/eventsource?types=*&closeafter=state&ping=0");
    let listener = tokio::process::Command::new("curl")
        .args(["-s", "-N", "--max-time", "20", "-H", &hal, &url])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting curl");
    let metrics = stack.http_metrics.unwrap();
    wait_until(crate::PATIENCE, "the EventSource never opened", async || {
        let (_, body) = crate::ops::http_get(metrics, "/metrics").await;
        body.contains("mailbus_http_eventsource_open 1")
    })
    .await;
    let sent = Instant::now();
    stack.deliver("q-push-1", "hal@example.org", &crate::message("hal@example.org", "push")).await.unwrap();
    let output = listener.wait_with_output().await.unwrap();
    let heard = sent.elapsed();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("event: state"), "{text}");
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).expect("a data line");
    let change: Value = serde_json::from_str(data).unwrap();
    assert_eq!(change["@type"], "StateChange");
    let changed = &change["changed"][format!("a{id}")];
    assert!(changed["Email"].is_string() && changed["EmailDelivery"].is_string(), "{change}");
    assert!(heard < Duration::from_secs(5), "closeafter=state ends the stream after the event ({heard:?})");
    stack.stop().await;
}

/// RFC 8621 §8 over curl: the capability in the session, the singleton's get and update, its state moving,
/// create and destroy refused, bad values refused, and the row delivery reads holding what was set.
#[tokio::test(flavor = "multi_thread")]
async fn jmap_http_vacation_response_get_and_set() {
    const VACATION: &str = "urn:ietf:params:jmap:vacationresponse";
    let stack = TestStack::start().await;
    let id = stack.add_account("vera@example.org", "secret").await;
    let addr = stack.http_addr();
    let vera = basic("vera@example.org", "secret");
    let account = format!("a{id}");

    let session = curl(addr, "/jmap/session", &["-H", &vera]).await.json();
    assert_eq!(session["capabilities"][VACATION], json!({}), "{session}");
    assert_eq!(session["primaryAccounts"][VACATION], account, "{session}");

    let call = |calls: Value| json!({"using": [CORE, VACATION], "methodCalls": calls});
    let first = api(addr, &vera, &call(json!([["VacationResponse/get", {"accountId": account, "ids": null}, "0"]])))
        .await
        .json();
    let got = &first["methodResponses"][0][1];
    assert_eq!(
        got["list"],
        json!([{"id": "singleton", "isEnabled": false, "fromDate": null, "toDate": null, "subject": null,
                "textBody": null, "htmlBody": null}]),
        "{first}"
    );
    let old_state = got["state"].as_str().unwrap().to_owned();

    let update = json!({"isEnabled": true, "fromDate": "2026-12-20T00:00:00Z", "toDate": "2027-01-05T00:00:00Z",
                        "subject": "Away", "textBody": "Back in January."});
    let set = api(
        addr,
        &vera,
        &call(json!([
            ["VacationResponse/set", {"accountId": account, "ifInState": old_state, "update": {"singleton": update},
              "create": {"k": {}}, "destroy": ["singleton"]}, "0"],
            ["VacationResponse/set", {"accountId": account, "update": {"singleton": {"fromDate": "tomorrow"}}}, "1"],
            ["VacationResponse/get", {"accountId": account, "ids": ["singleton", "other"],
              "properties": ["isEnabled", "subject", "fromDate"]}, "2"],
        ])),
    )
    .await
    .json();
    let applied = &set["methodResponses"][0][1];
    assert_eq!(applied["updated"], json!({"singleton": null}), "{set}");
    assert_eq!(applied["notCreated"]["k"]["type"], "singleton", "{set}");
    assert_eq!(applied["notDestroyed"]["singleton"]["type"], "singleton", "{set}");
    assert_ne!(applied["newState"], applied["oldState"], "a change moves the state: {set}");
    assert_eq!(set["methodResponses"][1][1]["notUpdated"]["singleton"]["type"], "invalidProperties", "{set}");
    let after = &set["methodResponses"][2][1];
    assert_eq!(
        after["list"],
        json!([{"id": "singleton", "isEnabled": true, "subject": "Away", "fromDate": "2026-12-20T00:00:00Z"}]),
        "{set}"
    );
    assert_eq!(after["notFound"], json!(["other"]), "{set}");
    assert_eq!(after["state"], applied["newState"], "{set}");

    // The state the update was made against is now stale.
    let stale = api(
        addr,
        &vera,
        &call(json!([["VacationResponse/set", {"accountId": account, "ifInState": old_state,
                       "update": {"singleton": {"isEnabled": false}}}, "0"]])),
    )
    .await
    .json();
    assert_eq!(stale["methodResponses"][0][1]["type"], "stateMismatch", "{stale}");

    // What delivery reads is what JMAP wrote.
    let pool = sqlx::PgPool::connect(&stack.database_url).await.unwrap();
    let (enabled, subject, body): (bool, Option<String>, Option<String>) =
        sqlx::query_as("SELECT is_enabled, subject, text_body FROM vacation_responses WHERE account_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((enabled, subject.as_deref(), body.as_deref()), (true, Some("Away"), Some("Back in January.")));

    // Without the capability in `using`, the methods are refused.
    let without = api(
        addr,
        &vera,
        &json!({"using": [CORE], "methodCalls": [["VacationResponse/get", {"accountId": account}, "0"]]}),
    )
    .await
    .json();
    assert_eq!(without["methodResponses"][0][1]["type"], "unknownMethod", "{without}");
    stack.stop().await;
}

/// What an API request's body costs the server is bounded before the caller is known: a request that
/// announces ten megabytes and sends none of them is answered 401 at once, not held while it trickles.
/// Downloads that nobody reads hold their account's download slots (32), not the server: the 33rd
/// waits for one with 429, and a slot is free again once its reader goes away. EventSource connections
/// are capped the same way (64).
#[tokio::test(flavor = "multi_thread")]
async fn jmap_http_bodies_wait_for_login_and_downloads_and_eventsources_are_capped_per_account() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = TestStack::start().await;
    let id = stack.add_account("ivy@example.org", "secret").await;
    let addr = stack.http_addr();
    let ivy = basic("ivy@example.org", "secret");

    let mut stranger = tokio::net::TcpStream::connect(addr).await.unwrap();
    stranger
        .write_all(b"POST /jmap/api HTTP/1.1\r\nHost: mail\r\nContent-Type: application/json\r\nContent-Length: 9999999\r\n\r\n{")
        .await
        .unwrap();
    let mut answer = vec![0; 64];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stranger.read(&mut answer))
        .await
        .expect("answered before the body arrives")
        .unwrap();
    assert!(answer[..read].starts_with(b"HTTP/1.1 401"), "{:?}", String::from_utf8_lossy(&answer[..read]));

    let file = mailbus_tests::infra::scratch_dir().join(format!("big-blob-{id}"));
    std::fs::write(&file, vec![b'x'; 24 * 1024 * 1024]).unwrap();
    let data = format!("@{}", file.display());
    let path = format!("/jmap/upload/a{id}/");
    let uploaded =
        curl(addr, &path, &["-H", &ivy, "-H", "Content-Type: application/octet-stream", "--data-binary", &data]).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.body);
    let blob = uploaded.json()["blobId"].as_str().unwrap().to_owned();
    let download = format!("/jmap/download/a{id}/{blob}/big.bin");
    let mut readers = Vec::new();
    for _ in 0..32 {
        let mut reader = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {download} HTTP/1.1\r\nHost: mail\r\n{ivy}\r\n\r\n");
        reader.write_all(request.as_bytes()).await.unwrap();
        // The status line comes once the download holds its slot; the 24 MiB after it stay unread.
        let mut status = vec![0; 12];
        tokio::time::timeout(std::time::Duration::from_secs(10), reader.read_exact(&mut status))
            .await
            .expect("the download starts")
            .unwrap();
        assert_eq!(status, b"HTTP/1.1 200");
        readers.push(reader);
    }
    assert_eq!(curl(addr, &download, &["-H", &ivy]).await.status, 429, "the 33rd download at once");
    drop(readers);
    mailbus_tests::wait_until(std::time::Duration::from_secs(20), "the slots are free again", async || {
        curl(addr, &download, &["-H", &ivy]).await.status == 200
    })
    .await;
    std::fs::remove_file(&file).unwrap();

    // EventSource connections likewise: 64 per account, the 65th answered 429, a slot free again once
    // a connection goes away.
    let open_eventsource = async || {
        let mut connection = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET /jmap/eventsource?types=*&ping=0 HTTP/1.1\r\nHost: mail\r\n{ivy}\r\n\r\n");
        connection.write_all(request.as_bytes()).await.unwrap();
        let mut head = vec![0; 12];
        tokio::time::timeout(std::time::Duration::from_secs(10), connection.read_exact(&mut head))
            .await
            .expect("the status line in time")
            .unwrap();
        (String::from_utf8_lossy(&head).into_owned(), connection)
    };
    let mut listeners = Vec::new();
    for _ in 0..64 {
        let (status, connection) = open_eventsource().await;
        assert_eq!(status, "HTTP/1.1 200");
        listeners.push(connection);
    }
    assert_eq!(open_eventsource().await.0, "HTTP/1.1 429", "the 65th EventSource at once");
    drop(listeners.pop());
    mailbus_tests::wait_until(std::time::Duration::from_secs(20), "an EventSource slot is free again", async || {
        open_eventsource().await.0 == "HTTP/1.1 200"
    })
    .await;
    stack.stop().await;
}
