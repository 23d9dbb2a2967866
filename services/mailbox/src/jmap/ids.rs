//! JMAP ids (RFC 8620 §1.2: 1 to 255 characters of `A-Za-z0-9-_`): a letter for the kind of object and
//! the row id in decimal. An id is no secret; every read checks that the row is the caller's account's.

use mailbus_address::AccountId;

pub const ACCOUNT: char = 'a';
pub const MAILBOX: char = 'm';
pub const EMAIL: char = 'e';
pub const THREAD: char = 't';
pub const IDENTITY: char = 'i';
pub const SUBMISSION: char = 's';
pub const UPLOAD: char = 'u';
pub const BLOB: char = 'b';

pub fn encode(kind: char, id: i64) -> String {
    format!("{kind}{id}")
}

/// The row id of an id of `kind`; `None` for anything else, which the caller treats as not found.
pub fn decode(kind: char, id: &str) -> Option<i64> {
    let digits = id.strip_prefix(kind)?;
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0')
    {
        return None;
    }
    digits.parse().ok()
}

pub fn account(account: AccountId) -> String {
    encode(ACCOUNT, account.get())
}

/// The blob of a whole email (its RFC 5322 octets).
pub fn email_blob(email: i64) -> String {
    encode(BLOB, email)
}

/// The blob of one part of an email, `part` being its IMAP section number (`1.2`): `b<email>p1x2`.
pub fn part_blob(email: i64, part: &str) -> String {
    format!("{BLOB}{email}p{}", part.replace('.', "x"))
}

/// What a blob id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blob {
    Email(i64),
    /// An email's part, by its IMAP section number.
    Part(i64, String),
    Upload(i64),
}

pub fn blob(id: &str) -> Option<Blob> {
    if let Some(upload) = decode(UPLOAD, id) {
        return Some(Blob::Upload(upload));
    }
    let rest = id.strip_prefix(BLOB)?;
    match rest.split_once('p') {
        None => decode(BLOB, id).map(Blob::Email),
        Some((email, part)) => {
            let email = decode(BLOB, &format!("{BLOB}{email}"))?;
            let valid = !part.is_empty()
                && part.split('x').all(|n| {
                    !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0')
                });
            valid.then(|| Blob::Part(email, part.replace('x', ".")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_other_kinds() {
        assert_eq!(decode(EMAIL, &encode(EMAIL, 42)), Some(42));
        assert_eq!(decode(MAILBOX, "e42"), None);
        assert_eq!(decode(EMAIL, "e"), None);
        assert_eq!(decode(EMAIL, "e042"), None);
        assert_eq!(decode(EMAIL, "e4x"), None);
        assert_eq!(decode(EMAIL, "e99999999999999999999"), None);
    }

    #[test]
    fn blob_ids_name_emails_parts_and_uploads() {
        assert_eq!(blob(&email_blob(7)), Some(Blob::Email(7)));
        assert_eq!(blob(&part_blob(7, "1.2")), Some(Blob::Part(7, "1.2".into())));
        assert_eq!(blob("u3"), Some(Blob::Upload(3)));
        assert_eq!(blob("b7p"), None);
        assert_eq!(blob("b7p1xx2"), None);
        assert_eq!(blob("x7"), None);
    }
}
