//! The `Received:` trace header (RFC 5321 §4.4).

use chrono::{DateTime, Utc};
use mailbus_address::QueueId;
use mailbus_smtp::session::Message;

use crate::ports::ClientInfo;

/// `Received: from <helo> ([ip]) by <host> (mailbus) with ESMTP id <queue id> for <rcpt>; <date>`,
/// folded as Postfix folds it. `for` is given only with a single recipient, so one copy does not reveal
/// the others (Bcc). The protocol name follows RFC 3848.
pub fn received_header(
    message: &Message,
    client: &ClientInfo,
    hostname: &str,
    id: &QueueId,
    now: DateTime<Utc>,
) -> String {
    let helo: String = message.helo.name.chars().filter(|c| !c.is_control()).collect();
    let ip = match client.peer.ip() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("IPv6:{ip}"),
    };
    let with = if message.helo.extended { "ESMTP" } else { "SMTP" };
    let for_clause = match message.recipients.as_slice() {
        [only] => format!("\r\n\tfor <{}>", only.address),
        _ => String::new(),
    };
    format!(
        "Received: from {helo} ([{ip}])\r\n\tby {hostname} (mailbus) with {with} id {id}{for_clause};\r\n\t{}\r\n",
        now.to_rfc2822()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailbus_smtp::session::{BodyType, Helo, MailFrom, Recipient, ReversePath};

    #[test]
    fn received_header_names_client_host_protocol_and_single_recipient() {
        let message = Message {
            helo: Helo { name: "client.example".into(), extended: true },
            from: MailFrom {
                path: ReversePath::Null,
                body_type: BodyType::SevenBit,
                smtputf8: false,
                env_id: None,
                ret: None,
            },
            recipients: vec![Recipient { address: "alice@example.org".parse().unwrap(), notify: 0, orcpt: None }],
            body: Vec::new(),
        };
        let client = ClientInfo { peer: "192.0.2.7:40000".parse().unwrap() };
        let id: QueueId = "0123456789abcdef0123456789abcdef".parse().unwrap();
        let now = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(
            received_header(&message, &client, "mx.example.org", &id, now),
            "Received: from client.example ([192.0.2.7])\r\n\tby mx.example.org (mailbus) with ESMTP id 0123456789abcdef0123456789abcdef\r\n\tfor <alice@example.org>;\r\n\tThu, 26 Nov 2026 10:00:00 +0000\r\n"
        );
    }
}
