//! Forwarding through an alias to addresses in other domains, as Postfix's `virtual_alias_maps` do: the
//! relay queues one copy of the message for the alias's remote targets, with `Delivered-To:` naming the
//! alias before it, and finds loops by that field (and by the hop count) before it forwards again. Pure:
//! the worker's delivery queues what [`copy`] makes.

use chrono::{DateTime, Utc};
use mailbus_address::QueueId;
use mailbus_proto::v1::{Envelope, EnvelopeRecipient};

/// More `Received:` fields than this and the message is looping somewhere (Postfix's `hopcount_limit`,
/// RFC 5321 §6.3 "a hop count ... of at least 100" for relays; Postfix's 50 is what operators know).
pub const MAX_HOPS: usize = 50;

/// Why a message must not be forwarded for `alias` again, as a reason with its RFC 3463 code: it carries
/// `Delivered-To: <alias>` already (it went round and came back), or it has passed too many hops.
pub fn loop_reason(message: &[u8], alias: &str) -> Option<String> {
    let mut hops = 0;
    for (name, value) in header_fields(message) {
        if name.eq_ignore_ascii_case("Delivered-To") && value.trim().eq_ignore_ascii_case(alias) {
            return Some(format!("5.4.6 mail forwarding loop for {alias}"));
        }
        if name.eq_ignore_ascii_case("Received") {
            hops += 1;
        }
    }
    (hops > MAX_HOPS).then(|| format!("5.4.6 too many hops ({hops}): mail forwarding loop for {alias}"))
}

/// The fields of the header section, names and unfolded values; ends at the empty line (or at what is
/// not a field: a body without a header section).
fn header_fields(message: &[u8]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some((_, value)) = fields.last_mut() {
                value.push_str(&text);
            }
            continue;
        }
        match text.split_once(':') {
            Some((name, value)) => fields.push((name.trim().to_owned(), value.to_owned())),
            None => break,
        }
    }
    fields
}

/// The copy forwarded for `alias` to `forwards`: a new envelope from `sender` (the SRS form of the original
/// sender, or null for a null sender) with its own queue id, and its body, the original with
/// `Delivered-To:` before it.
pub fn copy(
    original: &Envelope,
    alias: &str,
    forwards: &[String],
    sender: String,
    message: &[u8],
    now: DateTime<Utc>,
) -> (Envelope, Vec<u8>) {
    let body = [format!("Delivered-To: {alias}\r\n").as_bytes(), message].concat();
    let envelope = Envelope {
        queue_id: copy_queue_id(original, alias).to_string(),
        mail_from: sender,
        recipients: forwards
            .iter()
            .map(|address| EnvelopeRecipient { address: address.clone(), ..Default::default() })
            .collect(),
        size: body.len() as u64,
        arrival_unix_ms: now.timestamp_millis(),
        client: original.client.clone(),
        body_type: original.body_type,
        smtputf8: original.smtputf8,
        forwarded_for: alias.to_owned(),
        ..Default::default()
    };
    (envelope, body)
}

/// The same message forwarded for the same alias gets the same id, so a repeated attempt (after a lost
/// ack) queues it once: the queue deduplicates on it, as it does DSNs.
pub fn copy_queue_id(original: &Envelope, alias: &str) -> QueueId {
    let name = format!("{}.forward.{}", original.queue_id, alias.to_lowercase());
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes());
    id.simple().to_string().parse().expect("a UUID in simple form is a valid queue id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivered_to_naming_the_alias_is_a_loop_whatever_its_case_and_folding() {
        let message = b"Received: from a\r\nDelivered-To:\r\n Team@Example.org\r\nSubject: x\r\n\r\nDelivered-To: team@example.org\r\n";
        assert_eq!(
            loop_reason(message, "team@example.org").unwrap(),
            "5.4.6 mail forwarding loop for team@example.org"
        );
        // Another alias's mark is no loop; the body is not the header section.
        assert_eq!(loop_reason(message, "sales@example.org"), None);
        assert_eq!(loop_reason(b"Subject: x\r\n\r\nDelivered-To: sales@example.org\r\n", "sales@example.org"), None);
    }

    #[test]
    fn too_many_hops_is_a_loop() {
        let under = "Received: from x\r\n".repeat(MAX_HOPS) + "\r\nbody";
        assert_eq!(loop_reason(under.as_bytes(), "a@example.org"), None);
        let over = "Received: from x\r\n".repeat(MAX_HOPS + 1) + "\r\nbody";
        assert!(loop_reason(over.as_bytes(), "a@example.org").unwrap().starts_with("5.4.6 too many hops (51)"));
    }

    #[test]
    fn the_copy_names_the_alias_and_has_an_id_of_its_own_that_repeats() {
        let original = Envelope {
            queue_id: "0123456789abcdef0123456789abcdef".into(),
            mail_from: "sender@elsewhere.test".into(),
            smtputf8: true,
            ..Default::default()
        };
        let forwards = ["dave@remote.test".to_owned(), "Erin@other.test".to_owned()];
        let now = Utc::now();
        let (envelope, body) =
            copy(&original, "team@example.org", &forwards, "srs@example.org".into(), b"Subject: x\r\n\r\nhi\r\n", now);
        assert_eq!(body, b"Delivered-To: team@example.org\r\nSubject: x\r\n\r\nhi\r\n");
        assert_eq!(envelope.size, body.len() as u64);
        assert_eq!(envelope.mail_from, "srs@example.org");
        assert_eq!(envelope.forwarded_for, "team@example.org");
        assert!(envelope.smtputf8);
        let addresses: Vec<&str> = envelope.recipients.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(addresses, ["dave@remote.test", "Erin@other.test"]);
        assert_ne!(envelope.queue_id, original.queue_id);
        assert_eq!(envelope.queue_id, copy_queue_id(&original, "Team@example.org").to_string());
        assert_ne!(envelope.queue_id, copy_queue_id(&original, "sales@example.org").to_string());
    }
}
