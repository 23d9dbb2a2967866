//! Delivery status notifications (RFC 3464 multipart/report, RFC 3461 semantics): one message to the
//! envelope sender that lists what happened to each recipient it concerns, with the original message
//! (RET=FULL, our default, as Postfix's) or only its header (RET=HDRS).

use chrono::{DateTime, TimeZone, Utc};
use mailbus_proto::v1::{DsnRet, Envelope, EnvelopeRecipient};

/// RFC 3464 §2.3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnAction {
    Failed,
    Delayed,
    Delivered,
}

impl DsnAction {
    fn as_str(self) -> &'static str {
        match self {
            DsnAction::Failed => "failed",
            DsnAction::Delayed => "delayed",
            DsnAction::Delivered => "delivered",
        }
    }
}

pub struct Entry<'a> {
    pub recipient: &'a EnvelopeRecipient,
    pub action: DsnAction,
}

/// The RFC 3463 status at the start of a reason ("550 5.1.1 …" or "5.1.1 …"), or a generic one.
pub fn status_of(reason: &str, action: DsnAction) -> String {
    let found = reason.split_whitespace().take(2).find(|word| {
        let parts: Vec<&str> = word.split('.').collect();
        parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    match (found, action) {
        (Some(code), _) => code.to_owned(),
        (None, DsnAction::Failed) => "5.0.0".into(),
        (None, DsnAction::Delayed) => "4.0.0".into(),
        (None, DsnAction::Delivered) => "2.0.0".into(),
    }
}

/// The whole DSN message, ready to be queued with a null reverse-path.
pub fn build(
    envelope: &Envelope,
    entries: &[Entry<'_>],
    original: &[u8],
    hostname: &str,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let boundary = format!("{}/{}", envelope.queue_id, hostname);
    let worst = entries.iter().map(|e| e.action).find(|a| *a == DsnAction::Failed).unwrap_or(entries[0].action);
    let subject = match worst {
        DsnAction::Failed => "Undelivered Mail Returned to Sender",
        DsnAction::Delayed => "Delayed Mail (still being retried)",
        DsnAction::Delivered => "Successful Mail Delivery Report",
    };
    let mut out = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{id}.{action}@{hostname}>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\nThis is a MIME-encapsulated message.\r\n\r\n",
        to = envelope.mail_from,
        date = now.to_rfc2822(),
        id = envelope.queue_id,
        action = worst.as_str(),
    );
    out.push_str(&format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"));
    out.push_str(&human_text(entries, hostname, worst));
    out.push_str(&format!("\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"));
    out.push_str(&delivery_status(envelope, entries, hostname, now));
    let headers_only = envelope.dsn_ret() == DsnRet::Hdrs;
    let returned = if headers_only { header_of(original) } else { original };
    let kind = if headers_only { "text/rfc822-headers" } else { "message/rfc822" };
    out.push_str(&format!("\r\n--{boundary}\r\nContent-Type: {kind}\r\n\r\n"));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(returned);
    if !returned.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

fn human_text(entries: &[Entry<'_>], hostname: &str, worst: DsnAction) -> String {
    let intro = match worst {
        DsnAction::Failed => {
            "I'm sorry to have to inform you that your message could not be delivered to one or more recipients."
        }
        DsnAction::Delayed => {
            "Your message could not be delivered yet to one or more recipients. Delivery will be retried; you do not have to resend it."
        }
        DsnAction::Delivered => "Your message was delivered to the recipients below.",
    };
    let mut text = format!("This is the mail system at host {hostname}.\r\n\r\n{intro}\r\n\r\n");
    for entry in entries {
        let reason =
            if entry.recipient.last_error.is_empty() { "delivered" } else { entry.recipient.last_error.as_str() };
        text.push_str(&format!("<{}>: {}\r\n", entry.recipient.address, reason));
    }
    text
}

fn delivery_status(envelope: &Envelope, entries: &[Entry<'_>], hostname: &str, now: DateTime<Utc>) -> String {
    let mut status = format!("Reporting-MTA: dns; {hostname}\r\n");
    if !envelope.dsn_envid.is_empty() {
        status.push_str(&format!("Original-Envelope-Id: {}\r\n", printable(&envelope.dsn_envid)));
    }
    if let Some(arrival) = Utc.timestamp_millis_opt(envelope.arrival_unix_ms).single() {
        status.push_str(&format!("Arrival-Date: {}\r\n", arrival.to_rfc2822()));
    }
    for entry in entries {
        let recipient = entry.recipient;
        status.push_str(&format!("\r\nFinal-Recipient: rfc822; {}\r\n", recipient.address));
        // smtp-proto hands ORCPT over without its address type; RFC 3461 §4.2 types it rfc822 for SMTP.
        if !recipient.orcpt.is_empty() {
            let original = match recipient.orcpt.split_once(';') {
                Some((kind, addr)) => format!("{}; {}", printable(kind), printable(addr)),
                None => format!("rfc822; {}", printable(&recipient.orcpt)),
            };
            status.push_str(&format!("Original-Recipient: {original}\r\n"));
        }
        let action =
            if entry.action == DsnAction::Delivered && recipient.relayed { "relayed" } else { entry.action.as_str() };
        status.push_str(&format!("Action: {action}\r\n"));
        status.push_str(&format!("Status: {}\r\n", status_of(&recipient.last_error, entry.action)));
        if !recipient.last_error.is_empty() {
            status.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", recipient.last_error.replace(['\r', '\n'], " ")));
        }
        status.push_str(&format!("Last-Attempt-Date: {}\r\n", now.to_rfc2822()));
    }
    status
}

/// RFC 3461 §4: ENVID and ORCPT are printable US-ASCII. smtp-proto decodes xtext (`+0D+0A` becomes a real
/// CR LF), so anything else is replaced here: a client must not write fields into our reports.
fn printable(value: &str) -> String {
    value.chars().map(|c| if (' '..='~').contains(&c) { c } else { '?' }).collect()
}

fn header_of(message: &[u8]) -> &[u8] {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &message[..end + 2],
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(ret: DsnRet) -> Envelope {
        Envelope {
            queue_id: "0123456789abcdef0123456789abcdef".into(),
            mail_from: "alice@a.test".into(),
            dsn_envid: "env-1".into(),
            dsn_ret: ret.into(),
            arrival_unix_ms: 1_700_000_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn a_failure_report_has_the_three_parts_and_the_status_from_the_reply() {
        let failed = EnvelopeRecipient {
            address: "bob@b.test".into(),
            orcpt: "rfc822;Bob@B.test".into(),
            last_error: "550 5.1.1 <bob@b.test>: User unknown".into(),
            ..Default::default()
        };
        let original = b"Subject: hello\r\nFrom: alice@a.test\r\n\r\nbody text\r\n";
        let dsn = build(
            &envelope(DsnRet::Unspecified),
            &[Entry { recipient: &failed, action: DsnAction::Failed }],
            original,
            "mx.a.test",
            Utc::now(),
        );
        let text = String::from_utf8(dsn).unwrap();
        assert!(text.contains("Subject: Undelivered Mail Returned to Sender\r\n"));
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(text.contains("Original-Envelope-Id: env-1\r\n"));
        assert!(text.contains("Final-Recipient: rfc822; bob@b.test\r\nOriginal-Recipient: rfc822; Bob@B.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"));
        assert!(
            text.contains(
                "Content-Type: message/rfc822\r\n\r\nSubject: hello\r\nFrom: alice@a.test\r\n\r\nbody text\r\n"
            )
        );
        let headers = build(
            &envelope(DsnRet::Hdrs),
            &[Entry { recipient: &failed, action: DsnAction::Failed }],
            original,
            "mx.a.test",
            Utc::now(),
        );
        let headers = String::from_utf8(headers).unwrap();
        assert!(
            headers.contains("Content-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\nFrom: alice@a.test\r\n\r\n--")
        );
        assert!(!headers.contains("body text"));
    }

    #[test]
    fn envid_and_orcpt_cannot_inject_fields() {
        let mut bad = envelope(DsnRet::Hdrs);
        bad.dsn_envid = "x\r\nX-Injected: yes".into();
        let recipient = EnvelopeRecipient {
            address: "bob@b.test".into(),
            orcpt: "rfc822;bob@b.test\r\nSubject: pwned".into(),
            last_error: "550 5.1.1 no".into(),
            ..Default::default()
        };
        let dsn = build(
            &bad,
            &[Entry { recipient: &recipient, action: DsnAction::Failed }],
            b"S: x\r\n\r\n",
            "mx",
            Utc::now(),
        );
        let text = String::from_utf8(dsn).unwrap();
        assert!(!text.contains("\r\nX-Injected") && !text.contains("\r\nSubject: pwned"), "{text}");
    }

    #[test]
    fn statuses_come_from_reasons_or_defaults() {
        assert_eq!(status_of("451 4.7.1 greylisted", DsnAction::Delayed), "4.7.1");
        assert_eq!(status_of("5.6.7 no SMTPUTF8", DsnAction::Failed), "5.6.7");
        assert_eq!(status_of("connection refused", DsnAction::Failed), "5.0.0");
    }
}
