//! The `Received:` trace header (RFC 5321 §4.4).

use chrono::{DateTime, Utc};
use mailbus_address::QueueId;
use mailbus_smtp::session::Message;
use mailbus_smtp::trace::Received;

use crate::ports::ClientInfo;

/// `Received: from <helo> ([ip]) (using <TLS> with cipher <c>) (Authenticated sender: <a>) by <host>
/// (mailbus) with <protocol> id <queue id> for <rcpt>; <date>`, folded as Postfix folds it. `for` is given
/// only with a single recipient, so one copy does not reveal the others (Bcc).
pub fn received_header(
    message: &Message,
    client: &ClientInfo,
    hostname: &str,
    id: &QueueId,
    now: DateTime<Utc>,
) -> String {
    let recipients: Vec<String> = message.recipients.iter().map(|r| r.address.to_string()).collect();
    let recipients: Vec<&str> = recipients.iter().map(String::as_str).collect();
    Received {
        helo: &message.helo.name,
        client: client.peer.ip(),
        tls: message.tls.as_ref().map(|tls| (tls.version.as_str(), tls.cipher.as_str())),
        authenticated: message.authenticated.as_ref().map(|user| user.address.as_str()),
        by: hostname,
        with: &protocol(message),
        id: &id.to_string(),
        recipients: &recipients,
        date: &now.to_rfc2822(),
    }
    .header()
}

/// The `with` protocol name: RFC 3848 (ESMTPS, ESMTPA, ESMTPSA) and RFC 6531 §3.7.3 (UTF8SMTP…).
fn protocol(message: &Message) -> String {
    let base = match (message.helo.extended, message.from.smtputf8) {
        (_, true) => "UTF8SMTP",
        (true, false) => "ESMTP",
        (false, false) => return "SMTP".to_owned(),
    };
    let tls = if message.tls.is_some() { "S" } else { "" };
    let auth = if message.authenticated.is_some() { "A" } else { "" };
    format!("{base}{tls}{auth}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailbus_smtp::session::{AuthenticatedUser, BodyType, Helo, MailFrom, Recipient, ReversePath, TlsInfo};

    fn message() -> Message {
        Message {
            helo: Helo { name: "client.example".into(), extended: true },
            from: MailFrom {
                path: ReversePath::Null,
                body_type: BodyType::SevenBit,
                smtputf8: false,
                env_id: None,
                ret: None,
            },
            recipients: vec![recipient("alice@example.org")],
            tls: None,
            authenticated: None,
        }
    }

    fn recipient(address: &str) -> Recipient {
        Recipient { address: address.parse().unwrap(), notify: 0, orcpt: None, local: true }
    }

    fn queue_id() -> QueueId {
        "0123456789abcdef0123456789abcdef".parse().unwrap()
    }

    #[test]
    fn received_header_names_client_host_protocol_and_single_recipient() {
        let client = ClientInfo { peer: "192.0.2.7:40000".parse().unwrap() };
        let now = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(
            received_header(&message(), &client, "mx.example.org", &queue_id(), now),
            "Received: from client.example ([192.0.2.7])\r\n\tby mx.example.org (mailbus) with ESMTP id 0123456789abcdef0123456789abcdef\r\n\tfor <alice@example.org>;\r\n\tThu, 26 Nov 2026 10:00:00 +0000\r\n"
        );
    }

    #[test]
    fn tls_and_authentication_show_in_the_header_and_the_protocol_name() {
        let mut message = message();
        message.tls = Some(TlsInfo { version: "TLSv1.3".into(), cipher: "TLS13_AES_256_GCM_SHA384".into() });
        message.authenticated = Some(AuthenticatedUser { account_id: 1, address: "bob@example.org".into() });
        message.recipients.push(recipient("carol@example.net"));
        let client = ClientInfo { peer: "[2001:db8::1]:40000".parse().unwrap() };
        let header = received_header(&message, &client, "mx.example.org", &queue_id(), Utc::now());
        assert!(
            header.starts_with(
                "Received: from client.example ([IPv6:2001:db8::1])\r\n\t(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)\r\n\t(Authenticated sender: bob@example.org)\r\n\tby mx.example.org (mailbus) with ESMTPSA id "
            ),
            "{header}"
        );
        assert!(!header.contains("for <"), "two recipients: no for clause");
        message.from.smtputf8 = true;
        message.authenticated = None;
        assert_eq!(protocol(&message), "UTF8SMTPS");
        message.helo.extended = false;
        message.from.smtputf8 = false;
        assert_eq!(protocol(&message), "SMTP");
    }
}
