//! RFC 8514 SAVEDATE, which imap-codec 2.0 alpha cannot parse. FETCH's `SAVEDATE` item is taken out of
//! the command with RFC 8474's items (`object_id::rewrite` notes it) and its answer spliced into the line
//! imap-codec writes; SEARCH's `SAVEDBEFORE`, `SAVEDON`, `SAVEDSINCE` and `SAVEDATESUPPORTED` are spelt
//! as HEADER keys whose field has a colon, as OBJECTID's are, and `render::search_key` turns them into
//! the store's `saved_date` key. Every mailbox keeps save dates (migration 0016 gave older entries their
//! internal date), so SAVEDATE is never NIL and SAVEDATESUPPORTED matches every message.

use chrono::{NaiveDate, TimeZone, Utc};
use mailbus_proto::v1::{self as pb, date_match::Relation, search_key::Key};

/// The HEADER fields the SEARCH keys are spelt as; no real field name has a colon (RFC 5322 §2.2).
pub const BEFORE_FIELD: &str = "savedbefore:";
pub const ON_FIELD: &str = "savedon:";
pub const SINCE_FIELD: &str = "savedsince:";
pub const SUPPORTED_FIELD: &str = "savedatesupported:";

/// The HEADER field for a SEARCH key word (`SAVEDON`), and whether it takes a date.
pub fn search_field(word: &str) -> Option<(&'static str, bool)> {
    Some(match word.to_ascii_uppercase().as_str() {
        "SAVEDBEFORE" => (BEFORE_FIELD, true),
        "SAVEDON" => (ON_FIELD, true),
        "SAVEDSINCE" => (SINCE_FIELD, true),
        "SAVEDATESUPPORTED" => (SUPPORTED_FIELD, false),
        _ => return None,
    })
}

/// RFC 3501 `date`: `1-Feb-2026`, quoted or not; None for anything else.
pub fn parse_date(word: &str) -> Option<NaiveDate> {
    let text = word.strip_prefix('"').and_then(|w| w.strip_suffix('"')).unwrap_or(word);
    let (day, rest) = text.split_once('-')?;
    if !(1..=2).contains(&day.len()) || !day.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (month, year) = rest.split_once('-')?;
    if month.len() != 3 || year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(&format!("{day}-{}-{year}", month.to_ascii_lowercase()), "%d-%b-%Y").ok()
}

/// The store's key for one of the HEADER spellings above; None when `field` is not one.
pub fn search_key(field: &str, value: &str) -> Option<pb::SearchKey> {
    let relation = match field {
        BEFORE_FIELD => Relation::Before,
        ON_FIELD => Relation::On,
        SINCE_FIELD => Relation::Since,
        // Every entry has a save date.
        SUPPORTED_FIELD => return Some(pb::SearchKey { key: Some(Key::All(true)) }),
        _ => return None,
    };
    // The rewrite let only valid dates through; anything else matches nothing.
    let Some(date) = parse_date(value) else {
        let all = pb::SearchKey { key: Some(Key::All(true)) };
        return Some(pb::SearchKey { key: Some(Key::Not(Box::new(all))) });
    };
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
    let day = pb::DateMatch { relation: relation.into(), day: (date - epoch).num_days() };
    Some(pb::SearchKey { key: Some(Key::SavedDate(day)) })
}

/// RFC 8514 §4's FETCH item: `SAVEDATE "01-Jan-2026 00:00:00 +0000"` (date-time, in UTC as the store
/// keeps it).
pub fn fetch_item(saved_unix: i64) -> String {
    let when = Utc.timestamp_opt(saved_unix, 0).single().unwrap_or_default();
    format!("SAVEDATE \"{}\"", when.format("%d-%b-%Y %H:%M:%S +0000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc_3501_dates_only() {
        assert_eq!(parse_date("1-Feb-2026"), NaiveDate::from_ymd_opt(2026, 2, 1));
        assert_eq!(parse_date("\"01-FEB-2026\""), NaiveDate::from_ymd_opt(2026, 2, 1));
        for bad in ["", "2026-02-01", "1-Febr-2026", "32-Feb-2026", "1-Feb-26", "x-Feb-2026", "\"1-Feb-2026", "1-Feb"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_become_saved_date_matches() {
        let key = search_key(ON_FIELD, "2-Jan-1970").unwrap();
        assert_eq!(key.key, Some(Key::SavedDate(pb::DateMatch { relation: Relation::On.into(), day: 1 })));
        assert_eq!(search_key(SUPPORTED_FIELD, "").unwrap().key, Some(Key::All(true)));
        assert_eq!(search_key("subject", "x"), None);
    }

    #[test]
    fn fetch_item_is_a_quoted_date_time() {
        assert_eq!(fetch_item(1_767_225_600), "SAVEDATE \"01-Jan-2026 00:00:00 +0000\"");
    }
}
