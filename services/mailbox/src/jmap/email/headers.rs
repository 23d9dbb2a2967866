//! Header field values in the forms of RFC 8621 §4.1.2 (Raw, Text, Addresses, GroupedAddresses,
//! MessageIds, Date, URLs), and the `header:Name:asForm:all` property names that ask for them. Every form
//! is parsed again from the field's raw octets, so a field mail-parser does not know gets any form.

use mail_parser::parsers::MessageStream;
use mail_parser::{Address, Header, HeaderValue};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Raw,
    Text,
    Addresses,
    GroupedAddresses,
    MessageIds,
    Date,
    Urls,
}

/// A parsed `header:Name[:asForm][:all]` property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderProperty {
    /// The field name as the client wrote it (lookups ignore case).
    pub name: String,
    pub form: Form,
    pub all: bool,
}

impl HeaderProperty {
    /// `None` for a property that is not a well-formed header property.
    pub fn parse(property: &str) -> Option<HeaderProperty> {
        let rest = property.strip_prefix("header:")?;
        let mut pieces = rest.split(':');
        let name = pieces.next().filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b)))?;
        let mut form = Form::Raw;
        let mut all = false;
        let mut seen_form = false;
        for piece in pieces {
            if piece == "all" && !all {
                all = true;
                continue;
            }
            if seen_form || all {
                return None;
            }
            seen_form = true;
            form = match piece {
                "asRaw" => Form::Raw,
                "asText" => Form::Text,
                "asAddresses" => Form::Addresses,
                "asGroupedAddresses" => Form::GroupedAddresses,
                "asMessageIds" => Form::MessageIds,
                "asDate" => Form::Date,
                "asURLs" => Form::Urls,
                _ => return None,
            };
        }
        Some(HeaderProperty { name: name.to_owned(), form, all })
    }

    /// The property's value over a part's header fields: the last instance, or all of them in order.
    pub fn value(&self, headers: &[Header<'_>], raw: &[u8]) -> Value {
        let mut found = headers.iter().filter(|h| h.name.as_str().eq_ignore_ascii_case(&self.name));
        if self.all {
            Value::Array(found.map(|h| form_value(self.form, raw_octets(h, raw))).collect())
        } else {
            found.next_back().map_or(Value::Null, |h| form_value(self.form, raw_octets(h, raw)))
        }
    }
}

/// The octets of a field's value after the colon, without the terminating CRLF (RFC 8621 §4.1.2.1).
pub fn raw_octets<'a>(header: &Header<'_>, raw: &'a [u8]) -> &'a [u8] {
    let bytes = raw.get(header.offset_start as usize..header.offset_end as usize).unwrap_or_default();
    bytes.strip_suffix(b"\r\n").or_else(|| bytes.strip_suffix(b"\n")).unwrap_or(bytes)
}

/// The `headers` property: every field in order, raw.
pub fn all_raw(headers: &[Header<'_>], raw: &[u8]) -> Value {
    Value::Array(
        headers
            .iter()
            .map(|h| json!({"name": h.name.as_str(), "value": String::from_utf8_lossy(raw_octets(h, raw))}))
            .collect(),
    )
}

/// One value in a form; `null` where the value cannot be read in it.
pub fn form_value(form: Form, octets: &[u8]) -> Value {
    // mail-parser's field parsers read up to the line's end.
    let mut line = octets.to_vec();
    line.extend_from_slice(b"\r\n");
    let mut stream = MessageStream::new(&line);
    match form {
        Form::Raw => Value::String(String::from_utf8_lossy(octets).into_owned()),
        Form::Text => match stream.parse_unstructured() {
            HeaderValue::Text(text) => Value::String(text.trim().to_owned()),
            HeaderValue::TextList(list) => Value::String(list.join(" ")),
            _ => Value::String(String::new()),
        },
        Form::Addresses => match stream.parse_address() {
            HeaderValue::Address(address) => addresses(&address),
            _ => Value::Array(Vec::new()),
        },
        Form::GroupedAddresses => match stream.parse_address() {
            HeaderValue::Address(address) => grouped(&address),
            _ => Value::Array(Vec::new()),
        },
        Form::MessageIds => match stream.parse_id() {
            HeaderValue::Text(id) => json!([id]),
            HeaderValue::TextList(ids) => json!(ids),
            _ => Value::Null,
        },
        Form::Date => match stream.parse_date() {
            HeaderValue::DateTime(date) if date.is_valid() => Value::String(date.to_rfc3339()),
            _ => Value::Null,
        },
        Form::Urls => urls(octets),
    }
}

fn email_address(addr: &mail_parser::Addr<'_>) -> Value {
    json!({
        "name": addr.name.as_deref().filter(|n| !n.is_empty()),
        "email": addr.address.as_deref().unwrap_or_default(),
    })
}

/// EmailAddress[] (RFC 8621 §4.1.2.3): groups flattened to their members.
pub fn addresses(address: &Address<'_>) -> Value {
    match address {
        Address::List(list) => Value::Array(list.iter().map(email_address).collect()),
        Address::Group(groups) => {
            Value::Array(groups.iter().flat_map(|g| g.addresses.iter().map(email_address)).collect())
        }
    }
}

/// EmailAddressGroup[] (RFC 8621 §4.1.2.4): addresses outside a group form groups with a null name.
fn grouped(address: &Address<'_>) -> Value {
    match address {
        Address::List(list) => json!([{"name": null, "addresses": list.iter().map(email_address).collect::<Vec<_>>()}]),
        Address::Group(groups) => Value::Array(
            groups
                .iter()
                .map(|g| json!({"name": g.name.as_deref(), "addresses": g.addresses.iter().map(email_address).collect::<Vec<_>>()}))
                .collect(),
        ),
    }
}

/// URLs (RFC 8621 §4.1.2.7, the List-* fields of RFC 2369): each `<...>`, in order; null when there is none.
fn urls(octets: &[u8]) -> Value {
    let text = String::from_utf8_lossy(octets);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find('<') {
        let Some(end) = rest[start..].find('>') else { break };
        let url: String = rest[start + 1..start + end].chars().filter(|c| !c.is_whitespace()).collect();
        out.push(Value::String(url));
        rest = &rest[start + end + 1..];
    }
    if out.is_empty() { Value::Null } else { Value::Array(out) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\r\n\
To: Team: ann@example.org, Bob <bob@example.org>;, carl@example.org\r\n\
Subject:  =?utf-8?q?Gr=C3=BC=C3=9Fe?= and\r\n folded\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0100\r\n\
References: <a@x> <b@y>\r\n\
List-Unsubscribe: <mailto:u@example.org>, <https://example.org/u>\r\n\
X-Extra: one\r\n\
X-Extra: two\r\n\
\r\n\
body\r\n";

    fn value(property: &str) -> Value {
        let message = mail_parser::MessageParser::default().parse(MESSAGE).unwrap();
        HeaderProperty::parse(property).unwrap().value(message.parts[0].headers.as_slice(), MESSAGE)
    }

    #[test]
    fn property_names_parse_forms_and_all() {
        let p = HeaderProperty::parse("header:X-Foo:asText:all").unwrap();
        assert_eq!((p.name.as_str(), p.form, p.all), ("X-Foo", Form::Text, true));
        assert_eq!(HeaderProperty::parse("header:X-Foo").unwrap().form, Form::Raw);
        for bad in ["header:", "header:X:asBogus", "header:X:all:asText", "header:X:asText:asRaw", "subject"] {
            assert_eq!(HeaderProperty::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn each_form_reads_the_raw_value() {
        assert_eq!(value("header:Subject"), json!("  =?utf-8?q?Gr=C3=BC=C3=9Fe?= and\r\n folded"));
        assert_eq!(value("header:subject:asText"), json!("Grüße and folded"));
        assert_eq!(value("header:From:asAddresses"), json!([{"name": "Jörg", "email": "jorg@example.org"}]));
        let to = value("header:To:asAddresses");
        assert_eq!(to.as_array().unwrap().len(), 3, "{to}");
        let grouped = value("header:To:asGroupedAddresses");
        assert_eq!(grouped[0]["name"], json!("Team"), "{grouped}");
        assert_eq!(grouped[0]["addresses"].as_array().unwrap().len(), 2, "{grouped}");
        assert_eq!(grouped[1]["name"], Value::Null, "{grouped}");
        assert_eq!(value("header:References:asMessageIds"), json!(["a@x", "b@y"]));
        assert_eq!(value("header:Date:asDate"), json!("2026-11-24T10:00:00+01:00"));
        assert_eq!(value("header:List-Unsubscribe:asURLs"), json!(["mailto:u@example.org", "https://example.org/u"]));
        assert_eq!(value("header:X-Extra:asText"), json!("two"), "the last instance");
        assert_eq!(value("header:X-Extra:asText:all"), json!(["one", "two"]));
        assert_eq!(value("header:X-Missing"), Value::Null);
        assert_eq!(value("header:X-Missing:all"), json!([]));
    }
}
