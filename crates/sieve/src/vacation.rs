//! RFC 5230 vacation: whether to answer at all (§4.5 and §5: never to a null, daemon or list sender,
//! never to automatic or bulk mail, only when the message was addressed to us, once per sender and
//! handle per period) and the reply itself.

use crate::message::{self, Message};
use crate::script::VacationCommand;
use crate::{Input, Limits, VacationRecord, VacationReply};

pub(crate) fn reply(
    command: &VacationCommand,
    message: &Message<'_>,
    input: &Input<'_>,
    limits: &Limits,
) -> Option<VacationReply> {
    let sender = input.envelope.from.map(str::trim).filter(|s| !s.is_empty())?;
    if is_automatic_sender(sender) || is_automatic_message(message) {
        return None;
    }
    // RFC 5230 §4.5: "ours" is the account's address and the script's `:addresses`, compared whole, as
    // Pigeonhole does: mail that reached us through an alias or a `+detail` names neither, and gets a
    // reply only if the script lists that address.
    let ours: Vec<String> = std::iter::once(input.envelope.account)
        .chain(command.addresses.iter().map(String::as_str))
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    let addressed = ["to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"].iter().any(|field| {
        message.raw_values(field).flat_map(message::addresses).any(|a| ours.contains(&a.to_ascii_lowercase()))
    });
    // Nor to ourselves.
    if !addressed || ours.contains(&sender.to_ascii_lowercase()) {
        return None;
    }
    let days =
        command.days.unwrap_or(limits.vacation_default_days).clamp(limits.vacation_min_days, limits.vacation_max_days);
    let handle = command.handle.clone().unwrap_or_else(|| default_handle(command));
    let record = VacationRecord { sender: sender.to_ascii_lowercase(), handle, days };
    if input.environment.vacation_replied(&record) {
        return None;
    }
    let subject = command.subject.clone().unwrap_or_else(|| default_subject(message));
    let message_id = message.message_id();
    let references = match (message.raw_values("references").next(), &message_id) {
        (Some(refs), Some(id)) => Some(format!("{refs} {id}")),
        (None, Some(id)) => Some(id.clone()),
        (refs, None) => refs.map(str::to_owned),
    };
    Some(VacationReply {
        to: sender.to_owned(),
        from: command.from.clone().unwrap_or_else(|| input.envelope.account.to_owned()),
        subject,
        body: command.reason.clone(),
        mime: command.mime,
        in_reply_to: message_id,
        references,
        record,
    })
}

/// RFC 5230 §4.5 and RFC 3834 §2: daemons and list robots do not get replies.
fn is_automatic_sender(sender: &str) -> bool {
    let local = sender.rsplit_once('@').map_or(sender, |(l, _)| l).to_ascii_lowercase();
    local == "mailer-daemon"
        || local == "listserv"
        || local == "majordomo"
        || local.starts_with("owner-")
        || local.ends_with("-request")
        || local.ends_with("-owner")
}

/// RFC 3834 §2 and RFC 5230 §5: automatic, bulk and list mail gets no reply.
fn is_automatic_message(message: &Message<'_>) -> bool {
    let auto_submitted = message.values("auto-submitted").iter().any(|v| {
        let keyword = v.split([';', '(', ' ']).next().unwrap_or("").trim();
        !keyword.eq_ignore_ascii_case("no")
    });
    let bulk = message
        .values("precedence")
        .iter()
        .any(|v| ["bulk", "list", "junk"].iter().any(|p| v.trim().eq_ignore_ascii_case(p)));
    let list =
        ["list-id", "list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner", "list-archive"]
            .iter()
            .any(|name| message.has(name));
    auto_submitted || bulk || list
}

/// RFC 5230 §5.3: "Auto: " and the original subject, or a fixed subject when there is none.
fn default_subject(message: &Message<'_>) -> String {
    match message.values("subject").into_iter().next() {
        Some(subject) => format!("Auto: {subject}"),
        None => "Automated reply".to_owned(),
    }
}

/// RFC 5230 §4.2: without `:handle`, replies that differ in their text count as different; the caller
/// passes the command as written, before variable expansion.
pub(crate) fn default_handle(command: &VacationCommand) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let parts =
        [command.reason.as_str(), command.subject.as_deref().unwrap_or(""), command.from.as_deref().unwrap_or("")];
    for byte in parts.join("\u{0}").bytes().chain([u8::from(command.mime)]) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// RFC 2047 Q-encoding for a subject that is not plain ASCII, in words short enough for one line.
pub(crate) fn encode_subject(subject: &str) -> String {
    // Control characters (CR and LF above all, which an encoded word may decode to) become spaces.
    let subject: String = subject.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if subject.is_ascii() && !subject.contains("=?") {
        return subject;
    }
    let mut words = Vec::new();
    let mut word = String::new();
    for c in subject.chars() {
        let mut encoded = String::new();
        let mut buf = [0u8; 4];
        for byte in c.encode_utf8(&mut buf).bytes() {
            match byte {
                b' ' => encoded.push('_'),
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => {
                    encoded.push(char::from(byte))
                }
                _ => encoded.push_str(&format!("={byte:02X}")),
            }
        }
        if word.len() + encoded.len() > 60 {
            words.push(std::mem::take(&mut word));
        }
        word.push_str(&encoded);
    }
    words.push(word);
    words.iter().map(|w| format!("=?utf-8?q?{w}?=")).collect::<Vec<_>>().join("\r\n ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_encoded_only_when_needed() {
        assert_eq!(encode_subject("Re: hello"), "Re: hello");
        assert_eq!(encode_subject("Re: café"), "=?utf-8?q?Re=3A_caf=C3=A9?=");
        assert_eq!(message::decode_words(&encode_subject(&"é".repeat(40)).replace("\r\n", "")), "é".repeat(40));
    }

    #[test]
    fn list_robots_are_automatic() {
        for sender in ["MAILER-DAEMON@example.com", "owner-list@example.com", "list-request@example.com"] {
            assert!(is_automatic_sender(sender), "{sender}");
        }
        assert!(!is_automatic_sender("requester@example.com"));
    }
}
