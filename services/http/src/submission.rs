//! `EmailSubmission/set` (RFC 8621 §7.5). Creating a submission sends mail, and only the roles at the
//! doors (smtp-ingress, and this one) put mail on the queue, so creation happens here: the mailbox role
//! checks the identity, the email and the envelope (`PrepareSubmission`), the email's octets stream from
//! `Download` into the queue behind a `Received:` line, exactly as an authenticated SMTP submission is
//! enqueued, and the mailbox role records the submission (`RecordSubmission`). Updates and destroys are
//! the mailbox role's own (`Jmap.Call`). Then `onSuccessUpdateEmail` / `onSuccessDestroyEmail` become an
//! implicit `Email/set` whose response follows this one.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::Utc;
use futures::StreamExt;
use mailbus_address::QueueId;
use mailbus_jetstream::{Envelope, Limit};
use mailbus_proto::v1::{
    self as pb, BodyType, ClientFacts, EnvelopeRecipient, blob_chunk, prepare_submission_response,
};
use mailbus_smtp::trace::Received;
use serde_json::{Map, Value, json};

use crate::App;
use crate::api::{Responses, call_mailbox, error};
use crate::auth::Account;
use crate::problem::Problem;

const METHOD: &str = "EmailSubmission/set";

/// A submission created in this call: its id and the email it sent.
struct Sent {
    id: String,
    email_id: String,
}

pub async fn set(
    app: &App,
    account: &Account,
    client: IpAddr,
    mut arguments: Map<String, Value>,
    call_id: &str,
    created_ids: &mut HashMap<String, String>,
) -> Result<Responses, Problem> {
    let old_state = state(app, account).await?;
    if let Some(expected) = arguments.get("ifInState").and_then(Value::as_str)
        && expected != old_state
    {
        return Ok(vec![error("stateMismatch", None, call_id)]);
    }
    let mut created = Map::new();
    let mut not_created = Map::new();
    let mut sent: HashMap<String, Sent> = HashMap::new();
    if let Some(creates) = arguments.remove("create") {
        let Value::Object(creates) = creates else {
            return Ok(vec![error("invalidArguments", Some("create must be an object"), call_id)]);
        };
        for (creation_id, object) in creates {
            match create(app, account, client, &object, created_ids).await? {
                Ok((object, submission)) => {
                    created_ids.insert(creation_id.clone(), submission.id.clone());
                    created.insert(creation_id.clone(), object);
                    sent.insert(creation_id, submission);
                }
                Err(set_error) => {
                    not_created.insert(creation_id, set_error);
                }
            }
        }
    }
    let mut response = json!({
        "accountId": account.jmap_id(),
        "oldState": old_state,
        "created": if created.is_empty() { Value::Null } else { Value::Object(created) },
        "notCreated": if not_created.is_empty() { Value::Null } else { Value::Object(not_created) },
        // RFC 8620 §5.3: each of these is present, null when empty; the store's answer replaces them below.
        "updated": null,
        "notUpdated": null,
        "destroyed": null,
        "notDestroyed": null,
    });
    // Updates and destroys are the store's; their results join ours.
    let passed = ["update", "destroy"].map(|key| arguments.get(key).filter(|v| !v.is_null()).cloned());
    if passed.iter().any(Option::is_some) {
        let mut through = Map::new();
        through.insert("accountId".into(), json!(account.jmap_id()));
        for (key, value) in ["update", "destroy"].into_iter().zip(passed) {
            if let Some(value) = value {
                through.insert(key.into(), value);
            }
        }
        let answered = call_mailbox(app, account, METHOD, through, call_id, created_ids).await?;
        match answered.into_iter().next() {
            Some((name, _, _)) if name == "error" && !sent.is_empty() => {}
            Some((name, arguments, id)) if name == "error" => return Ok(vec![(name, arguments, id)]),
            Some((_, arguments, _)) => {
                for key in ["updated", "notUpdated", "destroyed", "notDestroyed"] {
                    if let Some(value) = arguments.get(key) {
                        response[key] = value.clone();
                    }
                }
            }
            None => {}
        }
    }
    response["newState"] = json!(state(app, account).await?);
    let mut responses = vec![(METHOD.to_owned(), response, call_id.to_owned())];
    if let Some(email_set) = on_success(account, &arguments, &sent) {
        responses.extend(call_mailbox(app, account, "Email/set", email_set, call_id, created_ids).await?);
    }
    Ok(responses)
}

async fn state(app: &App, account: &Account) -> Result<String, Problem> {
    match app.jmap.clone().state(pb::StateRequest { account_id: account.id }).await {
        Ok(reply) => Ok(reply.into_inner().state),
        Err(status) => Err(Problem::from_status(&status)),
    }
}

/// `#creationId` (RFC 8620 §5.3) to the id created under it.
fn resolve(id: &str, created_ids: &HashMap<String, String>) -> Option<String> {
    match id.strip_prefix('#') {
        Some(creation) => created_ids.get(creation).cloned(),
        None => Some(id.to_owned()),
    }
}

fn set_error(kind: &str, description: &str) -> Value {
    json!({"type": kind, "description": description})
}

/// One creation: the created object, or the SetError of `notCreated`.
async fn create(
    app: &App,
    account: &Account,
    client: IpAddr,
    object: &Value,
    created_ids: &HashMap<String, String>,
) -> Result<Result<(Value, Sent), Value>, Problem> {
    let field = |name: &str| object.get(name).and_then(Value::as_str).and_then(|id| resolve(id, created_ids));
    let (Some(identity_id), Some(email_id)) = (field("identityId"), field("emailId")) else {
        let mut e = set_error("invalidProperties", "identityId and emailId are required");
        e["properties"] = json!(["identityId", "emailId"]);
        return Ok(Err(e));
    };
    let envelope = object.get("envelope").filter(|v| !v.is_null()).map(Value::to_string).unwrap_or_default();
    let request = pb::PrepareSubmissionRequest {
        account_id: account.id,
        identity_id: identity_id.clone(),
        email_id: email_id.clone(),
        envelope,
    };
    let prepared = match app.jmap.clone().prepare_submission(request).await {
        Ok(reply) => match reply.into_inner().outcome {
            Some(prepare_submission_response::Outcome::Prepared(prepared)) => prepared,
            Some(prepare_submission_response::Outcome::SetError(text)) => {
                return Ok(Err(serde_json::from_str(&text).unwrap_or_else(|_| set_error("serverFail", &text))));
            }
            None => return Ok(Err(set_error("serverFail", "the mail store prepared nothing"))),
        },
        Err(status) if status.code() == tonic::Code::PermissionDenied => return Err(Problem::from_status(&status)),
        Err(status) => {
            tracing::warn!(%status, "PrepareSubmission failed");
            return Ok(Err(set_error("serverFail", "the mail store failed")));
        }
    };
    // RFC 8621 §7.5, and the same limit as SMTP submission.
    if prepared.rcpt_to.len() > app.limits.max_recipients {
        let mut error = set_error("tooManyRecipients", "more recipients than one submission may have");
        error["maxRecipients"] = json!(app.limits.max_recipients);
        return Ok(Err(error));
    }
    // The limits SMTP submission counts in, so that moving between the two gains nothing. RFC 8621
    // §7.5: forbiddenToSend is "not permitted to send at all right now".
    if let Err(limit) = rate_limits(app, account, client, prepared.rcpt_to.len()).await {
        tracing::info!(account = account.id, %client, limit = limit.label(), "submission rate limit reached");
        app.metrics.rate_limited(limit);
        return Ok(Err(set_error("forbiddenToSend", limit.explanation())));
    }
    let queue_id = match enqueue(app, account, client, &prepared).await {
        Ok(queue_id) => queue_id,
        Err(message) => {
            tracing::warn!(%message, "submission not queued");
            return Ok(Err(set_error("serverFail", "the queue is unavailable")));
        }
    };
    tracing::info!(%queue_id, account = account.id, recipients = prepared.rcpt_to.len(), "submission queued");
    let record = pb::RecordSubmissionRequest {
        account_id: account.id,
        identity_id,
        email_id: email_id.clone(),
        queue_id: queue_id.clone(),
        mail_from: prepared.mail_from.clone(),
        rcpt_to: prepared.rcpt_to.clone(),
    };
    let id = match app.jmap.clone().record_submission(record).await {
        Ok(reply) => reply.into_inner().id,
        Err(status) => {
            // The mail is on its way; only the record of it is missing.
            tracing::error!(%status, %queue_id, "submission queued but not recorded");
            return Ok(Err(set_error("serverFail", "the message was sent but its submission was not recorded")));
        }
    };
    // RFC 8620 §5.3: the server-set properties of the created object.
    let mut created = json!({
        "id": id,
        "undoStatus": "final",
        "sendAt": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "envelope": {
            "mailFrom": {"email": prepared.mail_from, "parameters": null},
            "rcptTo": prepared.rcpt_to.iter().map(|r| json!({"email": r, "parameters": null})).collect::<Vec<_>>(),
        },
        "deliveryStatus": null,
        "dsnBlobIds": [],
        "mdnBlobIds": [],
    });
    if !prepared.thread_id.is_empty() {
        created["threadId"] = json!(prepared.thread_id);
    }
    Ok(Ok((created, Sent { id, email_id })))
}

/// One message and its recipients against the account's and the address's limits.
async fn rate_limits(app: &App, account: &Account, client: IpAddr, recipients: usize) -> Result<(), Limit> {
    app.submission_limits.message(account.id, client).await?;
    app.submission_limits.recipients(account.id, u32::try_from(recipients).unwrap_or(u32::MAX)).await
}

/// Streams the email's octets from the store onto the queue behind our `Received:` line, which names
/// `client` (the address the HTTP request came from) as SMTP submission names its client; returns the
/// queue id.
async fn enqueue(
    app: &App,
    account: &Account,
    client: IpAddr,
    prepared: &pb::PreparedSubmission,
) -> Result<String, String> {
    let request = pb::BlobDownload { account_id: account.id, blob_id: prepared.blob_id.clone() };
    let mut stream = app.jmap.clone().download(request).await.map_err(|s| s.to_string())?.into_inner();
    match stream.message().await.map_err(|s| s.to_string())? {
        Some(pb::BlobChunk { part: Some(blob_chunk::Part::Info(_)) }) => {}
        _ => return Err("the email's octets did not start with their description".into()),
    }
    let queue_id = QueueId::generate();
    let now = Utc::now();
    let recipients: Vec<&str> = prepared.rcpt_to.iter().map(String::as_str).collect();
    let received = Received {
        helo: "jmap",
        client,
        tls: None,
        authenticated: Some(&account.address),
        by: &app.hostname,
        with: "HTTP",
        id: &queue_id.to_string(),
        recipients: &recipients,
        date: &now.to_rfc2822(),
    }
    .header()
    .into_bytes();
    let mut chunks = stream.filter_map(|chunk| {
        std::future::ready(match chunk {
            Ok(pb::BlobChunk { part: Some(blob_chunk::Part::Chunk(data)) }) => Some(Ok(bytes::Bytes::from(data))),
            Ok(_) => None,
            Err(status) => Some(Err(std::io::Error::other(status.to_string()))),
        })
    });
    // RFC 8621 §7.5: Bcc is removed on the way out. The header is read whole first (it is bounded), its
    // Bcc fields dropped, and the body follows as it streams.
    let mut head = Vec::new();
    let header_end = loop {
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if head.len() > MAX_HEADER {
            return Err(format!("the email's header is longer than {MAX_HEADER} octets"));
        }
        match chunks.next().await {
            Some(Ok(data)) => head.extend_from_slice(&data),
            Some(Err(e)) => return Err(e.to_string()),
            None => break head.len(),
        }
    };
    let rest = head.split_off(header_end);
    let header = without_bcc(&head);
    let original = u64::try_from(header_end).map_err(|e| e.to_string())?;
    let size = received.len()
        + header.len()
        + usize::try_from(prepared.size.saturating_sub(original)).map_err(|e| e.to_string())?;
    let first = std::iter::once(Ok(bytes::Bytes::from([received, header, rest].concat())));
    let body = tokio_util::io::StreamReader::new(futures::stream::iter(first).chain(chunks));
    let mut content = body;
    let smtputf8 = !prepared.mail_from.is_ascii() || prepared.rcpt_to.iter().any(|r| !r.is_ascii());
    let envelope = Envelope {
        queue_id: queue_id.to_string(),
        mail_from: prepared.mail_from.clone(),
        recipients: prepared
            .rcpt_to
            .iter()
            .map(|address| EnvelopeRecipient { address: address.clone(), ..Default::default() })
            .collect(),
        size: size as u64,
        body_key: String::new(),
        arrival_unix_ms: now.timestamp_millis(),
        client: Some(ClientFacts {
            remote_ip: client.to_string(),
            helo: "jmap".into(),
            authenticated_as: account.address.clone(),
            ..Default::default()
        }),
        // The store keeps what it was given; 8BITMIME lets the relay say so to a peer that offers it.
        body_type: BodyType::EightBitMime.into(),
        smtputf8,
        ..Default::default()
    };
    let dedup_id = queue_id.to_string();
    app.queue.enqueue_from(&envelope, size, &mut content, &dedup_id).await.map_err(|e| e.to_string())?;
    Ok(queue_id.to_string())
}

/// RFC 8621 §7.5: the implicit `Email/set` for the emails of the submissions that succeeded. Keys are
/// `#creationId`s (or the ids they created) of this call's submissions.
fn on_success(
    account: &Account,
    arguments: &Map<String, Value>,
    sent: &HashMap<String, Sent>,
) -> Option<Map<String, Value>> {
    let email_of = |key: &str| -> Option<String> {
        match key.strip_prefix('#') {
            Some(creation) => sent.get(creation).map(|s| s.email_id.clone()),
            None => sent.values().find(|s| s.id == key).map(|s| s.email_id.clone()),
        }
    };
    let mut update = Map::new();
    if let Some(Value::Object(patches)) = arguments.get("onSuccessUpdateEmail") {
        for (key, patch) in patches {
            if let Some(email) = email_of(key) {
                update.insert(email, patch.clone());
            }
        }
    }
    let mut destroy = Vec::new();
    if let Some(Value::Array(keys)) = arguments.get("onSuccessDestroyEmail") {
        destroy.extend(keys.iter().filter_map(Value::as_str).filter_map(email_of).map(Value::String));
    }
    if update.is_empty() && destroy.is_empty() {
        return None;
    }
    let mut set = Map::new();
    set.insert("accountId".into(), json!(account.jmap_id()));
    if !update.is_empty() {
        set.insert("update".into(), Value::Object(update));
    }
    if !destroy.is_empty() {
        set.insert("destroy".into(), Value::Array(destroy));
    }
    Some(set)
}

/// The longest header a submitted email may have: its Bcc fields are taken out before it is queued.
const MAX_HEADER: usize = 1024 * 1024;

/// A message header without its Bcc fields (RFC 8621 §7.5, RFC 5322 §3.6.3), continuation lines included.
fn without_bcc(header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len());
    let mut dropping = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            dropping = line.contains(&b':') && name.trim_ascii().eq_ignore_ascii_case(b"bcc");
        }
        if !dropping {
            out.extend_from_slice(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn bcc_fields_are_taken_out_with_their_continuations() {
        let header = b"From: a@example.org\r\nBcc: hidden@example.org,\r\n  other@example.org\r\nTo: b@example.org\r\nbcc:x@y\r\nSubject: Bcc: is not a field here\r\n\r\n";
        let out = String::from_utf8(without_bcc(header)).unwrap();
        assert_eq!(out, "From: a@example.org\r\nTo: b@example.org\r\nSubject: Bcc: is not a field here\r\n\r\n");
    }
    use super::*;

    #[test]
    fn on_success_names_the_emails_of_successful_submissions() {
        let account = Account { id: 3, address: "a@b.test".into(), credential_epoch: 0 };
        let sent = HashMap::from([("k1".to_owned(), Sent { id: "s9".into(), email_id: "e5".into() })]);
        let arguments = json!({
            "onSuccessUpdateEmail": {"#k1": {"keywords/$draft": null}, "#k2": {"keywords/$seen": true}},
            "onSuccessDestroyEmail": ["s9", "#k2"],
        });
        let set = on_success(&account, arguments.as_object().unwrap(), &sent).unwrap();
        assert_eq!(
            Value::Object(set),
            json!({"accountId": "a3", "update": {"e5": {"keywords/$draft": null}}, "destroy": ["e5"]})
        );
        assert!(on_success(&account, &Map::new(), &sent).is_none());
    }
}
