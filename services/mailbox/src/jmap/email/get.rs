//! Email/get (RFC 8621 §4.2): the asked properties of the account's emails. Metadata (mailboxes, keywords,
//! size, dates, thread) comes from the rows; everything else is parsed from the stored octets, which are
//! read only when a property needs them.

use std::collections::HashMap;

use mail_parser::{Message, MessageParser};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::body::{self, Part};
use super::headers::{self, Form, HeaderProperty};
use super::keywords;
use crate::jmap::get::unique_ids;
use crate::jmap::{Ctx, MAX_OBJECTS_IN_GET, MethodError, Responses, ids, one, state};
use crate::store::emails::{self, EmailEntry, EmailRow};

/// Properties when the client names none (RFC 8621 §4.2).
pub const DEFAULT_PROPERTIES: &[&str] = &[
    "id",
    "blobId",
    "threadId",
    "mailboxIds",
    "keywords",
    "size",
    "receivedAt",
    "messageId",
    "inReplyTo",
    "references",
    "sender",
    "from",
    "to",
    "cc",
    "bcc",
    "replyTo",
    "subject",
    "sentAt",
    "hasAttachment",
    "preview",
    "bodyValues",
    "textBody",
    "htmlBody",
    "attachments",
];

/// Properties served from the rows alone.
const METADATA: &[&str] =
    &["id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "hasAttachment"];

/// The convenience properties and the header form each is (RFC 8621 §4.1.3).
const CONVENIENCE: &[(&str, &str, Form)] = &[
    ("messageId", "Message-ID", Form::MessageIds),
    ("inReplyTo", "In-Reply-To", Form::MessageIds),
    ("references", "References", Form::MessageIds),
    ("sender", "Sender", Form::Addresses),
    ("from", "From", Form::Addresses),
    ("to", "To", Form::Addresses),
    ("cc", "Cc", Form::Addresses),
    ("bcc", "Bcc", Form::Addresses),
    ("replyTo", "Reply-To", Form::Addresses),
    ("subject", "Subject", Form::Text),
    ("sentAt", "Date", Form::Date),
];

const OTHERS: &[&str] = &["headers", "bodyStructure", "textBody", "htmlBody", "attachments", "bodyValues", "preview"];

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct GetArgs {
    pub ids: Option<Vec<String>>,
    pub properties: Option<Vec<String>>,
    pub body_properties: Option<Vec<String>>,
    pub fetch_text_body_values: bool,
    #[serde(rename = "fetchHTMLBodyValues")]
    pub fetch_html_body_values: bool,
    pub fetch_all_body_values: bool,
    pub max_body_value_bytes: u64,
}

/// What to render of each email, checked once.
pub struct Render {
    pub properties: Vec<String>,
    pub body_properties: Vec<String>,
    pub fetch_text: bool,
    pub fetch_html: bool,
    pub fetch_all: bool,
    pub max_bytes: usize,
}

/// The most distinct `properties` or `bodyProperties` one call may name: each is work on every email,
/// and the RFC's properties with a few header forms are far fewer.
pub const MAX_PROPERTIES: usize = 100;

/// A property list without repeats, in the order first given; more than `MAX_PROPERTIES` is refused.
fn property_list(given: Option<&Vec<String>>, default: &[&str], argument: &str) -> Result<Vec<String>, MethodError> {
    let Some(given) = given else { return Ok(default.iter().map(|p| (*p).to_owned()).collect()) };
    let list = unique_ids(given.clone());
    if list.len() > MAX_PROPERTIES {
        return Err(MethodError::InvalidArguments(format!("{argument} names more than {MAX_PROPERTIES} properties")));
    }
    Ok(list)
}

impl Render {
    pub fn new(args: &GetArgs) -> Result<Render, MethodError> {
        let mut properties = property_list(args.properties.as_ref(), DEFAULT_PROPERTIES, "properties")?;
        for property in &properties {
            let known = METADATA.contains(&property.as_str())
                || OTHERS.contains(&property.as_str())
                || CONVENIENCE.iter().any(|(p, _, _)| p == property)
                || HeaderProperty::parse(property).is_some();
            if !known {
                return Err(MethodError::InvalidArguments(format!("unknown property {property:?}")));
            }
        }
        // RFC 8620 §5.1: the id is always returned.
        if !properties.iter().any(|p| p == "id") {
            properties.insert(0, "id".into());
        }
        let body_properties = property_list(args.body_properties.as_ref(), body::DEFAULT_PROPERTIES, "bodyProperties")?;
        const BODY: &[&str] = &[
            "partId",
            "blobId",
            "size",
            "headers",
            "name",
            "type",
            "charset",
            "disposition",
            "cid",
            "language",
            "location",
            "subParts",
        ];
        if let Some(bad) =
            body_properties.iter().find(|p| !BODY.contains(&p.as_str()) && HeaderProperty::parse(p).is_none())
        {
            return Err(MethodError::InvalidArguments(format!("unknown body property {bad:?}")));
        }
        Ok(Render {
            properties,
            body_properties,
            fetch_text: args.fetch_text_body_values,
            fetch_html: args.fetch_html_body_values,
            fetch_all: args.fetch_all_body_values,
            max_bytes: usize::try_from(args.max_body_value_bytes).unwrap_or(usize::MAX),
        })
    }

    fn needs_content(&self) -> bool {
        self.properties.iter().any(|p| !METADATA.contains(&p.as_str()))
    }

    /// Whether the header is all a property needs: the convenience and `header:` properties, and
    /// `headers` (and `preview`, when the rows hold it). A message list asks for only these, and a header
    /// is a small part of most messages.
    fn header_is_enough(&self, previews_stored: bool) -> bool {
        self.properties.iter().all(|p| {
            METADATA.contains(&p.as_str())
                || (p == "preview" && previews_stored)
                || p == "headers"
                || CONVENIENCE.iter().any(|(name, _, _)| name == p)
                || HeaderProperty::parse(p).is_some()
        })
    }
}

pub async fn get(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: GetArgs = super::super::arguments(arguments)?;
    let render = Render::new(&args)?;
    let state = state(ctx.pool, ctx.account).await?;
    let asked: Vec<String> = match &args.ids {
        Some(list) => {
            if list.len() > MAX_OBJECTS_IN_GET {
                return Err(MethodError::RequestTooLarge);
            }
            let resolved = list.iter().map(|id| ctx.resolve(id).map(str::to_owned)).collect::<Result<_, _>>()?;
            unique_ids(resolved)
        }
        // RFC 8620 §5.1: null means every object; more than the limit is too large.
        None => {
            let all = crate::store::email_query::run(
                ctx.pool,
                ctx.account,
                None,
                &[],
                Some((0, MAX_OBJECTS_IN_GET as i64 + 1)),
            )
            .await?;
            if all.len() > MAX_OBJECTS_IN_GET {
                return Err(MethodError::RequestTooLarge);
            }
            all.iter().map(|f| ids::encode(ids::EMAIL, f.id)).collect()
        }
    };
    let (list, not_found) = render_ids(ctx, &render, &asked).await?;
    one("Email/get", json!({"accountId": ctx.account_id(), "state": state, "list": list, "notFound": not_found}))
}

/// The emails of `asked` as objects, in the order asked, and the ids that are not the account's emails.
/// The octets are read only when a property needs them, a batch at a time (`emails::content_batches`), so
/// that no more than a batch's messages are held at once.
pub async fn render_ids(
    ctx: &Ctx<'_>,
    render: &Render,
    asked: &[String],
) -> Result<(Vec<Value>, Vec<String>), MethodError> {
    let wanted: Vec<i64> = asked.iter().filter_map(|id| ids::decode(ids::EMAIL, id)).collect();
    let rows = emails::rows(ctx.pool, ctx.account, &wanted).await?;
    let entries = emails::entries(ctx.pool, ctx.account, &wanted).await?;
    let rows: HashMap<i64, EmailRow> = rows.into_iter().map(|r| (r.id, r)).collect();
    let found: Vec<&EmailRow> = wanted.iter().filter_map(|id| rows.get(id)).collect();
    let batches = match render.needs_content() {
        true => emails::content_batches(found.iter().map(|r| (r.id, r.size))),
        false => vec![found.iter().map(|r| r.id).collect()],
    };
    let mut objects: HashMap<i64, Value> = HashMap::new();
    for batch in batches {
        let previews_stored = batch.iter().all(|id| rows.get(id).is_some_and(|r| r.preview.is_some()));
        let mut contents = match (render.needs_content(), render.header_is_enough(previews_stored)) {
            (false, _) => HashMap::new(),
            (true, true) => emails::headers(ctx.pool, ctx.account, &batch).await?,
            (true, false) => emails::contents(ctx.pool, ctx.account, &batch).await?,
        };
        for id in batch {
            let Some(row) = rows.get(&id).filter(|_| !objects.contains_key(&id)) else { continue };
            let entries = entries.get(&id).map(Vec::as_slice).unwrap_or_default();
            objects.insert(id, email_object(row, contents.remove(&id).as_deref(), entries, render));
        }
    }
    let (mut list, mut not_found) = (Vec::new(), Vec::new());
    for id in asked {
        match ids::decode(ids::EMAIL, id).and_then(|n| objects.remove(&n)) {
            Some(object) => list.push(object),
            None => not_found.push(id.clone()),
        }
    }
    Ok((list, not_found))
}

/// One Email object; `content` is the message's octets when a property needs them.
pub fn email_object(row: &EmailRow, content: Option<&[u8]>, entries: &[EmailEntry], render: &Render) -> Value {
    let parsed = content.map(|c| MessageParser::default().parse(c));
    let message = parsed.as_ref().and_then(|p| p.as_ref());
    let structure = message.map(body::structure);
    let bodies = structure.as_ref().map(body::bodies);
    let mut out = Map::new();
    for property in &render.properties {
        let value = match property.as_str() {
            "id" => json!(ids::encode(ids::EMAIL, row.id)),
            "blobId" => json!(ids::email_blob(row.id)),
            "threadId" => json!(ids::encode(ids::THREAD, row.thread_id.unwrap_or(row.id))),
            "mailboxIds" => Value::Object(
                entries.iter().map(|e| (ids::encode(ids::MAILBOX, e.mailbox_id.get()), json!(true))).collect(),
            ),
            "keywords" => Value::Object(keywords::object(entries.iter().flat_map(|e| e.flags.iter()))),
            "size" => json!(row.size),
            "receivedAt" => json!(utc(&row.internal_date)),
            "hasAttachment" => json!(row.has_attachment.unwrap_or(false)),
            "preview" if row.preview.is_some() => json!(row.preview),
            other => match (message, &structure, &bodies) {
                (Some(message), Some(structure), Some(bodies)) => {
                    parsed_property(other, message, structure, bodies, row.id, render)
                }
                _ => Value::Null,
            },
        };
        out.insert(property.clone(), value);
    }
    Value::Object(out)
}

/// RFC 3339 in UTC with `Z` (RFC 8620 §1.4 UTCDate).
pub fn utc(time: &chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn parsed_property(
    property: &str,
    message: &Message<'_>,
    structure: &Part,
    bodies: &body::Bodies<'_>,
    email: i64,
    render: &Render,
) -> Value {
    let top = message.parts.first().map(|p| p.headers.as_slice()).unwrap_or_default();
    let raw = body::raw(message);
    if let Some((_, name, form)) = CONVENIENCE.iter().find(|(p, _, _)| *p == property) {
        let value = HeaderProperty { name: (*name).to_owned(), form: *form, all: false }.value(top, raw);
        // A convenience address property of a field that is present but holds no address is an empty list.
        return value;
    }
    let parts = |list: &[&Part]| {
        Value::Array(list.iter().map(|p| body::to_json(p, &render.body_properties, message, email)).collect())
    };
    match property {
        "headers" => headers::all_raw(top, raw),
        "bodyStructure" => body::to_json(structure, &render.body_properties, message, email),
        "textBody" => parts(&bodies.text),
        "htmlBody" => parts(&bodies.html),
        "attachments" => parts(&bodies.attachments),
        "preview" => json!(body::preview(message, bodies)),
        "bodyValues" => {
            let mut chosen: Vec<&Part> = Vec::new();
            if render.fetch_all {
                chosen = structure.leaves().into_iter().filter(|p| p.media_type.starts_with("text/")).collect();
            } else {
                if render.fetch_text {
                    chosen.extend(bodies.text.iter().copied());
                }
                if render.fetch_html {
                    chosen.extend(bodies.html.iter().copied());
                }
            }
            let mut values = Map::new();
            for part in chosen {
                let Some(id) = &part.part_id else { continue };
                if values.contains_key(id) {
                    continue;
                }
                if let Some(value) = body::body_value(message, part, render.max_bytes) {
                    values.insert(id.clone(), value);
                }
            }
            Value::Object(values)
        }
        other => match HeaderProperty::parse(other) {
            Some(header) => header.value(top, raw),
            None => Value::Null,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(arguments: Value) -> Result<Render, MethodError> {
        Render::new(&serde_json::from_value(arguments).unwrap())
    }

    #[test]
    fn properties_are_taken_once_and_not_without_bound() {
        let once = render(json!({"properties": ["subject", "id", "subject", "size"],
                                 "bodyProperties": ["partId", "type", "partId"]}))
        .unwrap();
        assert_eq!(once.properties, ["subject", "id", "size"]);
        assert_eq!(once.body_properties, ["partId", "type"]);
        let many: Vec<String> = (0..=MAX_PROPERTIES).map(|i| format!("header:X-{i}")).collect();
        assert!(matches!(render(json!({"properties": many})), Err(MethodError::InvalidArguments(_))));
        assert!(matches!(render(json!({"bodyProperties": many})), Err(MethodError::InvalidArguments(_))));
        let repeated: Vec<&str> = std::iter::repeat_n("size", 1000).collect();
        assert_eq!(render(json!({"properties": repeated})).unwrap().properties, ["id", "size"]);
    }

    #[test]
    fn metadata_alone_reads_no_octets() {
        assert!(!render(json!({"properties": ["mailboxIds", "keywords", "size"]})).unwrap().needs_content());
        assert!(render(json!({"properties": ["size", "subject"]})).unwrap().needs_content());
    }

    #[test]
    fn a_message_list_reads_headers_only() {
        let list = json!({"properties": ["subject", "from", "to", "sentAt", "messageId", "header:X-Spam:asText"]});
        assert!(render(list).unwrap().header_is_enough(false));
        assert!(!render(json!({"properties": ["subject", "preview"]})).unwrap().header_is_enough(false));
        assert!(render(json!({"properties": ["subject", "preview"]})).unwrap().header_is_enough(true));
        assert!(!render(json!({"properties": ["textBody"]})).unwrap().header_is_enough(true));
    }

    #[test]
    fn header_properties_read_from_the_header_alone_equal_those_of_the_whole_message() {
        let message = b"From: Ann <ann@example.org>\r\nTo: bob@example.org\r\nSubject: =?UTF-8?Q?Caf=C3=A9?=\r\n\
Date: Mon, 07 Dec 2026 10:00:00 +0100\r\nMessage-ID: <x@y>\r\n\r\nBody text.\r\n";
        let header_end = message.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let row = EmailRow {
            id: 1,
            thread_id: Some(1),
            size: message.len() as i64,
            internal_date: chrono::Utc::now(),
            has_attachment: Some(false),
            preview: None,
        };
        let list = render(json!({"properties": ["subject", "from", "to", "sentAt", "messageId"]})).unwrap();
        let whole = email_object(&row, Some(message), &[], &list);
        let header = email_object(&row, Some(&message[..header_end]), &[], &list);
        assert_eq!(whole, header);
        assert_eq!(header["subject"], "Café");
        assert_eq!(header["from"][0]["email"], "ann@example.org");
    }
}
