//! RFC 8620 §6 blobs: uploads (kept in `blobs` for a day, counted against the account's quota while they
//! wait), and what a blob id names for download: an email's octets, one of its parts decoded from its
//! Content-Transfer-Encoding, or an upload. Every read names the account, so another account's blob is not
//! found.

use mailbus_address::AccountId;
use mailbus_proto::v1::{self as pb, SectionText};
use prost::Message as _;
use sqlx::PgPool;

use super::MethodError;
use super::ids::{self, Blob};
use crate::sections;

/// How long an upload waits to be used (RFC 8620 §6.1: at least an hour).
const UPLOAD_LIFETIME: &str = "24 hours";

/// A blob's octets with the type and file name a download announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedPart {
    /// Lower case, without parameters: `text/plain`.
    pub media_type: String,
    pub name: Option<String>,
    pub octets: Vec<u8>,
}

/// The part of a message at an IMAP section number (`1`, `2`, `1.2`; a single-part message's body is
/// `1`), decoded from its Content-Transfer-Encoding (base64, quoted-printable); a part in an encoding we
/// cannot undo comes as it is stored. This numbering is JMAP's partId too (the Email methods use it), so a
/// part's blob id is `ids::part_blob(email, part_id)`.
pub fn part(content: &[u8], structure: &pb::MessageStructure, section: &str) -> Option<DecodedPart> {
    let path = section.split('.').map(|n| n.parse::<u32>().ok().filter(|&n| n > 0)).collect::<Option<Vec<u32>>>()?;
    let found = sections::find(structure.body.as_ref()?, &path)?;
    let wanted = pb::Section { part: path, text: SectionText::Full.into(), decode: true, ..Default::default() };
    let octets = match sections::extract_section(content, structure, &wanted) {
        Ok(octets) => octets?,
        Err(sections::UnknownCte) => sections::extract(content, structure, &pb::Section { decode: false, ..wanted })?,
    };
    let param = |params: &[pb::Param], name: &str| {
        params.iter().find(|p| p.name.eq_ignore_ascii_case(name)).map(|p| p.value.clone())
    };
    let name = param(&found.disposition_params, "filename").or_else(|| param(&found.params, "name"));
    Some(DecodedPart { media_type: format!("{}/{}", found.r#type, found.subtype).to_ascii_lowercase(), name, octets })
}

#[derive(sqlx::FromRow)]
struct Stored {
    content: Vec<u8>,
    structure: Option<Vec<u8>>,
}

#[derive(sqlx::FromRow)]
struct Upload {
    media_type: String,
    content: Vec<u8>,
}

/// What `blob_id` names among the account's blobs, if anything.
pub async fn read(pool: &PgPool, account: AccountId, blob_id: &str) -> Result<Option<DecodedPart>, MethodError> {
    let Some(blob) = ids::blob(blob_id) else { return Ok(None) };
    let email = match &blob {
        Blob::Email(email) | Blob::Part(email, _) => *email,
        Blob::Upload(upload) => {
            let found: Option<Upload> =
                sqlx::query_as("SELECT media_type, content FROM blobs WHERE account_id = $1 AND id = $2")
                    .bind(account.get())
                    .bind(upload)
                    .fetch_optional(pool)
                    .await?;
            return Ok(found.map(|u| DecodedPart { media_type: u.media_type, name: None, octets: u.content }));
        }
    };
    let stored: Option<Stored> =
        sqlx::query_as("SELECT content, structure FROM messages WHERE account_id = $1 AND id = $2")
            .bind(account.get())
            .bind(email)
            .fetch_optional(pool)
            .await?;
    let Some(stored) = stored else { return Ok(None) };
    match blob {
        Blob::Part(_, section) => {
            let structure = match &stored.structure {
                Some(encoded) => pb::MessageStructure::decode(encoded.as_slice())
                    .map_err(|e| MethodError::ServerFail(format!("stored structure: {e}")))?,
                // A message the start-up backfill has not reached yet.
                None => crate::mime::parse(&stored.content).structure,
            };
            Ok(part(&stored.content, &structure, &section))
        }
        _ => Ok(Some(DecodedPart { media_type: "message/rfc822".into(), name: None, octets: stored.content })),
    }
}

/// Why an upload was refused.
#[derive(Debug)]
pub enum UploadRefused {
    /// The account's quota has no room for it (with the uploads still waiting).
    OverQuota,
    Store(MethodError),
}

impl From<sqlx::Error> for UploadRefused {
    fn from(error: sqlx::Error) -> Self {
        UploadRefused::Store(error.into())
    }
}

/// Stores an upload, after dropping the account's expired ones; returns its blob id.
pub async fn upload(
    pool: &PgPool,
    account: AccountId,
    media_type: &str,
    content: &[u8],
) -> Result<String, UploadRefused> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM blobs WHERE account_id = $1 AND created_at < now() - $2::interval")
        .bind(account.get())
        .bind(UPLOAD_LIFETIME)
        .execute(&mut *tx)
        .await?;
    // The accounts row is locked so two uploads cannot both pass on the same usage.
    let over: Option<bool> = sqlx::query_scalar(
        "SELECT a.quota_bytes IS NOT NULL
                AND a.used_bytes + $2 + coalesce((SELECT sum(b.size) FROM blobs b WHERE b.account_id = a.id), 0)
                    > a.quota_bytes
           FROM accounts a WHERE a.id = $1 FOR NO KEY UPDATE",
    )
    .bind(account.get())
    .bind(content.len() as i64)
    .fetch_optional(&mut *tx)
    .await?;
    if over != Some(false) {
        return Err(UploadRefused::OverQuota);
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO blobs (account_id, media_type, content, size) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(account.get())
    .bind(media_type)
    .bind(content)
    .bind(content.len() as i64)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ids::encode(ids::UPLOAD, id))
}

/// The media type an upload is stored with: the request's Content-Type without parameters, lower case;
/// `application/octet-stream` when it gave none that looks like one.
pub fn media_type(given: &str) -> String {
    let bare = given.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let valid = bare.len() <= 255
        && bare.split_once('/').is_some_and(|(t, s)| {
            let token = |x: &str| {
                !x.is_empty() && x.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
            };
            token(t) && token(s)
        });
    if valid { bare } else { "application/octet-stream".into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::parse;

    const MESSAGE: &[u8] = b"From: a@example.org\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
caf=C3=A9\r\n\
--b\r\n\
Content-Type: multipart/alternative; boundary=c\r\n\
\r\n\
--c\r\n\
Content-Type: text/plain\r\n\
\r\n\
inner\r\n\
--c\r\n\
Content-Type: application/pdf; name=\"r.pdf\"\r\n\
Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0=\r\n\
--c--\r\n\
--b--\r\n";

    #[test]
    fn parts_are_found_by_section_number_and_decoded() {
        let structure = parse(MESSAGE).structure;
        let first = part(MESSAGE, &structure, "1").unwrap();
        assert_eq!((first.media_type.as_str(), first.octets.as_slice()), ("text/plain", "café".as_bytes()));
        let pdf = part(MESSAGE, &structure, "2.2").unwrap();
        assert_eq!(pdf.media_type, "application/pdf");
        assert_eq!(pdf.name.as_deref(), Some("report.pdf"));
        assert_eq!(pdf.octets, b"%PDF-");
        assert_eq!(part(MESSAGE, &structure, "2.1").unwrap().octets, b"inner");
        assert_eq!(part(MESSAGE, &structure, "3"), None);
        assert_eq!(part(MESSAGE, &structure, "0"), None);
        assert_eq!(part(MESSAGE, &structure, "1.x"), None);
    }

    #[test]
    fn a_single_part_message_has_part_one() {
        let message = b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n";
        let structure = parse(message).structure;
        assert_eq!(part(message, &structure, "1").unwrap().octets, b"hi");
        assert_eq!(part(message, &structure, "2"), None);
    }

    #[test]
    fn media_types_are_bare_and_checked() {
        assert_eq!(media_type("Text/Plain; charset=utf-8"), "text/plain");
        assert_eq!(media_type(""), "application/octet-stream");
        assert_eq!(media_type("nonsense"), "application/octet-stream");
    }
}
