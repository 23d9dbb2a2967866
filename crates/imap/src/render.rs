//! Between the mailbox role's types and IMAP's: modified UTF-7 mailbox names (RFC 3501 §5.1.3), sequence
//! sets over a session's UID map, the stored ENVELOPE and BODYSTRUCTURE as imap-types values, and SEARCH
//! keys as the store's.

use std::num::NonZeroU32;

use chrono::{FixedOffset, TimeZone};
use imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData, SinglePartExtensionData,
    SpecificFields,
};
use imap_types::core::{IString, Literal, NString, Vec1};
use imap_types::datetime::DateTime;
use imap_types::envelope::{Address, Envelope};
use imap_types::search::SearchKey;
use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use mailbus_proto::v1::{self as pb, search_key::Key};

use super::context::{self, ReturnOptions};
use super::object_id::{self, ObjectIds};

// ---------------------------------------------------------------------------------------------------
// Modified UTF-7

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn flush_utf16(buf: &mut Vec<u16>, out: &mut String) {
    if buf.is_empty() {
        return;
    }
    let bytes: Vec<u8> = buf.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let b0 = u32::from(chunk[0]);
        let b1 = u32::from(chunk.get(1).copied().unwrap_or(0));
        let b2 = u32::from(chunk.get(2).copied().unwrap_or(0));
        let n = (b0 << 16) | (b1 << 8) | b2;
        for i in 0..=chunk.len() {
            out.push(B64[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
        }
    }
    out.push('-');
    buf.clear();
}

/// A UTF-8 mailbox name as IMAP4rev1 clients see it.
pub fn to_utf7(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut buf: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush_utf16(&mut buf, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            buf.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush_utf16(&mut buf, &mut out);
    out
}

/// A client's modified UTF-7 name in UTF-8; None when it is not valid modified UTF-7.
pub fn from_utf7(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        let end = rest.find('-')?;
        let encoded = &rest[..end];
        rest = &rest[end + 1..];
        if encoded.is_empty() {
            out.push('&');
            continue;
        }
        let (mut bits, mut nbits, mut bytes) = (0u32, 0u32, Vec::new());
        for b in encoded.bytes() {
            let v = B64.iter().position(|&x| x == b)? as u32;
            bits = (bits << 6) | v;
            nbits += 6;
            if nbits >= 8 {
                nbits -= 8;
                bytes.push((bits >> nbits) as u8);
                bits &= (1u32 << nbits) - 1;
            }
        }
        // Whole UTF-16 units, and no stray bits left over (RFC 3501 §5.1.3's base64 is unpadded but exact).
        if bytes.is_empty() || !bytes.len().is_multiple_of(2) || nbits >= 6 || bits != 0 {
            return None;
        }
        let units: Vec<u16> = bytes.chunks(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
        out.push_str(&String::from_utf16(&units).ok()?);
    }
    out.push_str(rest);
    Some(out)
}

// ---------------------------------------------------------------------------------------------------
// Sequence sets

/// The UIDs a set names. `uids` is the session's map (ascending; message n is `uids[n - 1]`); with
/// `by_uid` the set holds UIDs, else message numbers. `*` is the largest one there is (RFC 9051 §6.4.8: a
/// UID range is valid whatever its ends; UIDs that do not exist are left out). Never expands the set.
pub fn resolve(set: &SequenceSet, uids: &[u32], by_uid: bool) -> Vec<u32> {
    let largest = if by_uid { uids.last().copied().unwrap_or(0) } else { uids.len() as u32 };
    resolve_in(set, uids, by_uid, largest)
}

/// The UIDs of `uids` a UID set names, with `*` standing for `largest` (the mailbox's largest UID, when
/// `uids` is some other list, such as expunged UIDs).
pub fn resolve_with_largest(set: &SequenceSet, uids: &[u32], largest: u32) -> Vec<u32> {
    resolve_in(set, uids, true, largest)
}

/// A command with RFC 5182's `$` written out.
#[derive(Debug, PartialEq, Eq)]
pub enum Substituted {
    /// `$` is empty: the command acts on no message.
    Empty,
    Line(Vec<u8>),
    /// Written out, the command would pass [`MAX_SUBSTITUTED`].
    TooLong,
}

/// The most a command may hold once each `$` is written out: a fragmented saved result is tens of
/// kilobytes of text, and a command line may repeat `$` thousands of times.
pub const MAX_SUBSTITUTED: usize = 1 << 20;

/// RFC 5182: a command using `$` (the saved search result), with `$` written out as UIDs (after UID) or
/// message numbers; None when the command has no `$` token.
pub fn substitute_saved(line: &[u8], saved: &[u32], uids: &[u32]) -> Option<Substituted> {
    let text = std::str::from_utf8(line).ok()?;
    let words: Vec<&str> = text.split(' ').collect();
    if words.len() < 3 || !words[1..].iter().any(|w| w.trim_end_matches(['\r', '\n']) == "$") {
        return None;
    }
    let by_uid = words[1].eq_ignore_ascii_case("UID");
    let present: Vec<u32> = saved.iter().copied().filter(|u| uids.binary_search(u).is_ok()).collect();
    if present.is_empty() {
        return Some(Substituted::Empty);
    }
    let values: Vec<u32> = if by_uid {
        present
    } else {
        present.iter().filter_map(|u| uids.binary_search(u).ok()).map(|i| i as u32 + 1).collect()
    };
    let set = uid_set_text(&values);
    let dollars = words[1..].iter().filter(|w| w.trim_end_matches(['\r', '\n']) == "$").count();
    if dollars.saturating_mul(set.len()).saturating_add(text.len()) > MAX_SUBSTITUTED {
        return Some(Substituted::TooLong);
    }
    let rewritten: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let bare = w.trim_end_matches(['\r', '\n']);
            if i > 0 && bare == "$" { w.replacen('$', &set, 1) } else { (*w).to_owned() }
        })
        .collect();
    Some(Substituted::Line(rewritten.join(" ").into_bytes()))
}

/// The largest literal (`{n}`, `{n+}`) a command announces, 0 for none. The extended-syntax rewrite
/// takes search strings and names as literals (clients send non-ASCII text that way) but not more than
/// a search string needs: a non-synchronising literal over the framer's limit reaches it too.
pub fn largest_literal(line: &[u8]) -> u64 {
    line.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'{')
        .filter_map(|(at, _)| {
            let rest = &line[at + 1..];
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let number = std::str::from_utf8(&rest[..digits]).ok()?.parse::<u64>().ok();
            let rest = &rest[digits..];
            let rest = rest.strip_prefix(b"+").or_else(|| rest.strip_prefix(b"-")).unwrap_or(rest);
            (digits > 0 && rest.first() == Some(&b'}')).then_some(number.unwrap_or(u64::MAX))
        })
        .max()
        .unwrap_or(0)
}

fn resolve_in(set: &SequenceSet, uids: &[u32], by_uid: bool, largest: u32) -> Vec<u32> {
    let value = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest,
    };
    // Each range becomes a slice of the (ascending) map, by binary search for UIDs and by index for
    // numbers; overlapping slices are merged before anything is copied, so the cost is the ranges times
    // log n plus the answer, whatever the client sends (`1:*,1:*,…` sixteen thousand times included).
    let mut slices: Vec<(usize, usize)> = set
        .0
        .as_ref()
        .iter()
        .map(|sequence| {
            let (low, high) = match sequence {
                Sequence::Single(s) => (value(s), value(s)),
                Sequence::Range(a, b) => (value(a).min(value(b)), value(a).max(value(b))),
            };
            if by_uid {
                (uids.partition_point(|&u| u < low), uids.partition_point(|&u| u <= high))
            } else {
                ((low.max(1) as usize - 1).min(uids.len()), (high as usize).min(uids.len()))
            }
        })
        .filter(|(start, end)| start < end)
        .collect();
    slices.sort_unstable();
    let mut out = Vec::new();
    let mut copied = 0;
    for (start, end) in slices {
        let start = start.max(copied);
        if start < end {
            out.extend_from_slice(&uids[start..end]);
            copied = end;
        }
    }
    out
}

/// Whether a message-number set names a message that does not exist, `*` in an empty mailbox included
/// (RFC 9051 §9, seq-number: such a set is invalid, and the command gets BAD).
pub fn out_of_range(set: &SequenceSet, exists: usize) -> bool {
    let beyond = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get() as usize > exists,
        SeqOrUid::Asterisk => exists == 0,
    };
    set.0.as_ref().iter().any(|sequence| match sequence {
        Sequence::Single(s) => beyond(s),
        Sequence::Range(a, b) => beyond(a) || beyond(b),
    })
}

/// A set of UIDs in the compact form COPYUID and MODIFIED use: "1:3,7".
pub fn uid_set_text(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && end.checked_add(1) == Some(sorted[i + 1]) {
            i += 1;
            end = sorted[i];
        }
        out.push(if start == end { start.to_string() } else { format!("{start}:{end}") });
        i += 1;
    }
    out.join(",")
}

// ---------------------------------------------------------------------------------------------------
// Values

pub fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// An IMAP string: quoted when it can be, a literal otherwise (8-bit text, CR/LF, quotes).
pub fn istring(text: &str) -> IString<'static> {
    IString::try_from(text.to_owned())
        .or_else(|_| Literal::try_from(text.replace('\0', " ").into_bytes()).map(IString::from))
        .unwrap_or_else(|_| IString::try_from("").expect("the empty string is a valid quoted string"))
}

pub fn nstring(text: Option<&str>) -> NString<'static> {
    NString(text.map(istring))
}

/// Message octets as a literal. IMAP literals cannot carry NUL (RFC 9051 CHAR8); such octets go out as
/// spaces, as Dovecot does without BINARY.
pub fn literal(mut data: Vec<u8>) -> NString<'static> {
    for b in data.iter_mut().filter(|b| **b == 0) {
        *b = b' ';
    }
    NString(Literal::try_from(data).ok().map(IString::from))
}

pub fn date_time(unix: i64) -> DateTime {
    let utc = FixedOffset::east_opt(0).expect("UTC is a valid offset");
    let when = utc.timestamp_opt(unix, 0).single().unwrap_or_else(|| utc.timestamp_opt(0, 0).unwrap());
    DateTime::try_from(when).unwrap_or_else(|_| DateTime::unvalidated(utc.timestamp_opt(0, 0).unwrap()))
}

/// Display names may be UTF-8 in the store; an IMAP4rev1 ENVELOPE carries them as RFC 2047 words.
fn encoded_word(name: &str) -> String {
    if name.is_ascii() {
        return name.to_owned();
    }
    let mut out = String::from("=?utf-8?b?");
    out.push_str(&base64_encode(name.as_bytes()));
    out.push_str("?=");
    out
}

fn base64_encode(bytes: &[u8]) -> String {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(STD[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn address(a: &pb::EnvelopeAddress) -> Address<'static> {
    let text = |s: &str| if s.is_empty() { None } else { Some(s.to_owned()) };
    if a.group_start {
        return Address {
            name: NString(None),
            adl: NString(None),
            mailbox: nstring(Some(&a.mailbox)),
            host: NString(None),
        };
    }
    if a.group_end {
        return Address { name: NString(None), adl: NString(None), mailbox: NString(None), host: NString(None) };
    }
    Address {
        name: nstring(text(&a.name).map(|n| encoded_word(&n)).as_deref()),
        adl: NString(None),
        mailbox: nstring(text(&a.mailbox).as_deref()),
        host: nstring(Some(&a.host)),
    }
}

pub fn envelope(e: &pb::MessageEnvelope) -> Envelope<'static> {
    let list = |l: &[pb::EnvelopeAddress]| l.iter().map(address).collect::<Vec<_>>();
    Envelope {
        date: nstring(e.date.as_deref()),
        subject: nstring(e.subject.as_deref()),
        from: list(&e.from),
        sender: list(&e.sender),
        reply_to: list(&e.reply_to),
        to: list(&e.to),
        cc: list(&e.cc),
        bcc: list(&e.bcc),
        in_reply_to: nstring(e.in_reply_to.as_deref()),
        message_id: nstring(e.message_id.as_deref()),
    }
}

fn params(list: &[pb::Param]) -> Vec<(IString<'static>, IString<'static>)> {
    list.iter().map(|p| (istring(&p.name.to_ascii_uppercase()), istring(&p.value))).collect()
}

fn disposition(part: &pb::BodyPart) -> Option<Disposition<'static>> {
    Some(Disposition {
        disposition: part
            .disposition
            .as_deref()
            .map(|d| (istring(&d.to_ascii_uppercase()), params(&part.disposition_params))),
        tail: Some(Language {
            language: part.language.iter().map(|l| istring(l)).collect(),
            tail: Some(Location { location: nstring(part.location.as_deref()), extensions: Vec::new() }),
        }),
    })
}

/// BODYSTRUCTURE (with extension data) or BODY (without), RFC 9051 §7.5.2.
pub fn body_structure(part: &pb::BodyPart, extended: bool) -> BodyStructure<'static> {
    let clamp = |n: u64| n.min(u64::from(u32::MAX)) as u32;
    if part.r#type == "multipart" && !part.parts.is_empty() {
        let bodies: Vec<BodyStructure<'static>> = part.parts.iter().map(|p| body_structure(p, extended)).collect();
        return BodyStructure::Multi {
            bodies: Vec1::try_from(bodies).expect("a multipart has parts"),
            subtype: istring(&part.subtype.to_ascii_uppercase()),
            extension_data: extended
                .then(|| MultiPartExtensionData { parameter_list: params(&part.params), tail: disposition(part) }),
        };
    }
    let basic = BasicFields {
        parameter_list: params(&part.params),
        id: nstring(part.id.as_deref()),
        description: nstring(part.description.as_deref()),
        content_transfer_encoding: istring(&part.encoding),
        size: clamp(part.size),
    };
    let specific = match (part.r#type.as_str(), &part.message_envelope, &part.message_body) {
        ("text", _, _) => SpecificFields::Text {
            subtype: istring(&part.subtype.to_ascii_uppercase()),
            number_of_lines: clamp(part.lines),
        },
        ("message", Some(inner_envelope), Some(inner)) if part.subtype == "rfc822" => SpecificFields::Message {
            envelope: Box::new(envelope(inner_envelope)),
            body_structure: Box::new(body_structure(inner, extended)),
            number_of_lines: clamp(part.lines),
        },
        // A message/rfc822 part whose message could not be parsed has nothing to encapsulate; the grammar
        // has no message/rfc822 without an envelope, so it goes out as opaque octets.
        ("message", _, _) if part.subtype == "rfc822" => {
            SpecificFields::Basic { r#type: istring("APPLICATION"), subtype: istring("OCTET-STREAM") }
        }
        (kind, _, _) => SpecificFields::Basic {
            r#type: istring(&kind.to_ascii_uppercase()),
            subtype: istring(&part.subtype.to_ascii_uppercase()),
        },
    };
    BodyStructure::Single {
        body: Body { basic, specific },
        extension_data: extended.then(|| SinglePartExtensionData { md5: NString(None), tail: disposition(part) }),
    }
}

// ---------------------------------------------------------------------------------------------------
// SEARCH

fn text(a: &imap_types::core::AString<'_>) -> String {
    String::from_utf8_lossy(a.as_ref()).into_owned()
}

fn key(k: Key) -> pb::SearchKey {
    pb::SearchKey { key: Some(k) }
}

fn header(field: &str, value: String) -> Key {
    Key::Header(pb::HeaderMatch { field: field.into(), value })
}

fn day(date: &imap_types::datetime::NaiveDate, relation: pb::date_match::Relation) -> pb::DateMatch {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
    pb::DateMatch { relation: relation.into(), day: (*date.as_ref() - epoch).num_days() }
}

/// An IMAP search key as the store's. Message-number sets become UID lists through the session's map, and
/// RECENT, NEW and OLD the session's `\Recent` UIDs (`recent`, ascending; none under IMAP4rev2).
pub fn search_key(k: &SearchKey<'_>, uids: &[u32], recent: &[u32]) -> pb::SearchKey {
    use pb::date_match::Relation::{Before, On, Since};
    let flag = |f: &str| key(Key::Flag(f.into()));
    let not = |k: pb::SearchKey| key(Key::Not(Box::new(k)));
    let nothing = || not(key(Key::All(true)));
    // RFC 3501 §6.4.4: RECENT, NEW (recent and unseen) and OLD are the session's own `\Recent` UIDs.
    let recent_key = || key(Key::Uids(pb::UidList { uids: recent.to_vec() }));
    match k {
        SearchKey::All => key(Key::All(true)),
        SearchKey::Recent => recent_key(),
        SearchKey::New => key(Key::And(pb::SearchKeys { keys: vec![recent_key(), not(flag("\\Seen"))] })),
        SearchKey::Old => not(recent_key()),
        SearchKey::Answered => flag("\\Answered"),
        SearchKey::Deleted => flag("\\Deleted"),
        SearchKey::Draft => flag("\\Draft"),
        SearchKey::Flagged => flag("\\Flagged"),
        SearchKey::Seen => flag("\\Seen"),
        SearchKey::Unanswered => not(flag("\\Answered")),
        SearchKey::Undeleted => not(flag("\\Deleted")),
        SearchKey::Undraft => not(flag("\\Draft")),
        SearchKey::Unflagged => not(flag("\\Flagged")),
        SearchKey::Unseen => not(flag("\\Seen")),
        SearchKey::Keyword(atom) => flag(atom.inner()),
        SearchKey::Unkeyword(atom) => not(flag(atom.inner())),
        SearchKey::Bcc(v) => key(header("bcc", text(v))),
        SearchKey::Cc(v) => key(header("cc", text(v))),
        SearchKey::From(v) => key(header("from", text(v))),
        SearchKey::To(v) => key(header("to", text(v))),
        SearchKey::Subject(v) => key(header("subject", text(v))),
        SearchKey::Header(name, v) => match text(name).to_ascii_lowercase() {
            field if field == object_id::EMAIL_FIELD => key(Key::EmailId(object_id::decode('e', &text(v)))),
            field if field == object_id::THREAD_FIELD => key(Key::ThreadId(object_id::decode('t', &text(v)))),
            field => crate::savedate::search_key(&field, &text(v)).unwrap_or_else(|| key(header(&field, text(v)))),
        },
        SearchKey::Body(v) => key(Key::Body(text(v))),
        SearchKey::Text(v) => key(Key::Text(text(v))),
        SearchKey::Before(d) => key(Key::InternalDate(day(d, Before))),
        SearchKey::On(d) => key(Key::InternalDate(day(d, On))),
        SearchKey::Since(d) => key(Key::InternalDate(day(d, Since))),
        SearchKey::SentBefore(d) => key(Key::SentDate(day(d, Before))),
        SearchKey::SentOn(d) => key(Key::SentDate(day(d, On))),
        SearchKey::SentSince(d) => key(Key::SentDate(day(d, Since))),
        SearchKey::Larger(n) => key(Key::Larger(u64::from(*n))),
        SearchKey::Older(n) => key(Key::Older(u64::from(n.get()))),
        SearchKey::Younger(n) => key(Key::Younger(u64::from(n.get()))),
        SearchKey::Smaller(n) => key(Key::Smaller(u64::from(*n))),
        SearchKey::Not(inner) => not(search_key(inner, uids, recent)),
        SearchKey::Or(a, b) => key(Key::Or(Box::new(pb::SearchPair {
            a: Some(Box::new(search_key(a, uids, recent))),
            b: Some(Box::new(search_key(b, uids, recent))),
        }))),
        SearchKey::And(all) => {
            key(Key::And(pb::SearchKeys { keys: all.as_ref().iter().map(|k| search_key(k, uids, recent)).collect() }))
        }
        SearchKey::Uid(set) => key(Key::Uids(pb::UidList { uids: resolve(set, uids, true) })),
        SearchKey::SequenceSet(set) => key(Key::Uids(pb::UidList { uids: resolve(set, uids, false) })),
        SearchKey::ModSequence { modseq, .. } => key(Key::Modseq(*modseq)),
        #[allow(unreachable_patterns)]
        _ => nothing(),
    }
}

// ---------------------------------------------------------------------------------------------------
// Extended syntax imap-codec does not parse

/// RFC 4731 ESEARCH and RFC 5258/5819 LIST-EXTENDED/LIST-STATUS, which imap-codec 2.0 alpha cannot parse:
/// the options are cut out and the rest of the command is left for imap-codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extended {
    /// `SEARCH RETURN (MIN MAX COUNT ALL SAVE PARTIAL 1:10 UPDATE)`: the options (none means ALL).
    Search { options: ReturnOptions },
    /// RFC 6154 CREATE-SPECIAL-USE: the attributes of `CREATE name (USE (...))`, as written.
    Create { uses: Vec<String> },
    /// RFC 5267 ESORT, `SORT RETURN (...)`: the options, as SEARCH's (none means ALL).
    Sort { options: ReturnOptions },
    /// `LIST (selection) ref pattern RETURN (options STATUS (items))`, options upper case; `patterns` is
    /// the list of `LIST ref (pattern ...)`, unquoted (empty for a single pattern, which imap-codec parses).
    List { selection: Vec<String>, returns: Vec<String>, status: Vec<String>, patterns: Vec<String> },
    /// RFC 8474: FETCH's EMAILID and THREADID, STATUS's MAILBOXID (SEARCH's keys are spelt as HEADER keys).
    ObjectIds(ObjectIds),
}

/// The parenthesised list at the start of `text`: its inside and the text after it.
pub(super) fn parenthesised(text: &str) -> Option<(&str, &str)> {
    if !text.starts_with('(') {
        return None;
    }
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some((&text[1..i], &text[i + 1..]));
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits `line` (a whole command, CRLF optional) into what the extended syntax adds and a command
/// imap-codec can parse; None when it is not one of these.
pub fn rewrite_extended(line: &[u8]) -> Option<(Extended, Vec<u8>)> {
    let text = std::str::from_utf8(line).ok()?;
    let Some((ids, line)) = object_id::rewrite(text) else { return rewrite_options(line) };
    // SEARCH RETURN with an EMAILID key: both rewrites.
    Some(rewrite_options(line.as_bytes()).unwrap_or((Extended::ObjectIds(ids), line.into_bytes())))
}

/// The RETURN options SEARCH and SORT take, besides PARTIAL and its range (RFC 5267 §4.1's CONTEXT is a
/// hint, taken and ignored).
const RETURN_OPTIONS: &[&str] = &["MIN", "MAX", "COUNT", "ALL", "SAVE", "UPDATE", "CONTEXT"];

/// ESEARCH's RETURN options and LIST-EXTENDED's selection and return options cut out.
fn rewrite_options(line: &[u8]) -> Option<(Extended, Vec<u8>)> {
    let line = std::str::from_utf8(line).ok()?;
    let line = line.strip_suffix("\r\n").or_else(|| line.strip_suffix('\n')).unwrap_or(line);
    let (tag, rest) = line.split_once(' ')?;
    let upper = rest.to_ascii_uppercase();
    for verb in ["UID SEARCH RETURN ", "SEARCH RETURN "] {
        if upper.starts_with(verb) {
            let (inside, after) = parenthesised(&rest[verb.len()..])?;
            // RFC 4731's, RFC 5182's and RFC 5267's return options; anything else is a syntax error (BAD).
            let options = context::parse_return(inside, RETURN_OPTIONS)?;
            let criteria = after.trim();
            let criteria = if criteria.is_empty() { "ALL" } else { criteria };
            let command = format!("{tag} {}{criteria}\r\n", &rest[..verb.len() - "RETURN ".len()]);
            return Some((Extended::Search { options }, command.into_bytes()));
        }
    }
    if let Some((uses, line)) = super::create_special_use::rewrite(tag, rest) {
        return Some((Extended::Create { uses }, line));
    }
    for verb in ["UID SORT RETURN ", "SORT RETURN "] {
        if upper.starts_with(verb) {
            let (inside, after) = parenthesised(&rest[verb.len()..])?;
            // RFC 5267 §3.2's return options for SORT, with RFC 5182 §2.4's SAVE.
            let options = context::parse_return(inside, RETURN_OPTIONS)?;
            let command = format!("{tag} {}{}\r\n", &rest[..verb.len() - "RETURN ".len()], after.trim_start());
            return Some((Extended::Sort { options }, command.into_bytes()));
        }
    }
    if !upper.starts_with("LIST ") {
        return None;
    }
    super::list_extended::rewrite(tag, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modified_utf7_round_trips() {
        for (utf8, utf7) in [
            ("Entwürfe", "Entw&APw-rfe"),
            ("Входящие", "&BBIERQQ+BDQETwRJBDgENQ-"),
            ("A&B", "A&-B"),
            ("😀x", "&2D3eAA-x"),
            ("INBOX/Sent", "INBOX/Sent"),
        ] {
            assert_eq!(to_utf7(utf8), utf7);
            assert_eq!(from_utf7(utf7).as_deref(), Some(utf8));
        }
        assert_eq!(from_utf7("bad&AAA"), None, "unterminated");
        assert_eq!(from_utf7("&A-"), None, "odd number of octets");
    }

    #[test]
    fn dollar_is_written_out_once_per_token_within_a_bound() {
        let uids: Vec<u32> = (1..=20_000).collect();
        let saved: Vec<u32> = (1..=20_000).step_by(2).collect();
        assert_eq!(substitute_saved(b"a FETCH 1 FLAGS\r\n", &saved, &uids), None);
        assert_eq!(substitute_saved(b"a UID FETCH $ FLAGS\r\n", &[], &uids), Some(Substituted::Empty));
        let Some(Substituted::Line(line)) = substitute_saved(b"a UID FETCH $ FLAGS\r\n", &saved, &uids) else {
            panic!("one $ is written out")
        };
        assert!(line.starts_with(b"a UID FETCH 1,3,5,") && line.ends_with(b",19999 FLAGS\r\n"));
        // Ten thousand fragments are about 60 KB of text; twenty of them pass the bound.
        let many = format!("a UID SEARCH {}\r\n", vec!["$"; 20].join(" "));
        assert_eq!(substitute_saved(many.as_bytes(), &saved, &uids), Some(Substituted::TooLong));
    }

    #[test]
    fn sequence_sets_resolve_against_the_uid_map() {
        let uids = [3, 5, 9, 10];
        let set = |s: &str| SequenceSet::try_from(s).unwrap();
        assert_eq!(resolve(&set("1:2"), &uids, false), [3, 5]);
        assert_eq!(resolve(&set("*"), &uids, false), [10]);
        assert_eq!(resolve(&set("4:1"), &uids, false), [3, 5, 9, 10]);
        assert_eq!(resolve(&set("5:9"), &uids, true), [5, 9]);
        assert_eq!(resolve(&set("1:4294967295"), &uids, true), [3, 5, 9, 10], "never expanded");
        assert_eq!(resolve(&set("11:*"), &uids, true), [10], "RFC 9051: n:* includes the largest UID");
        assert!(resolve(&set("1:*"), &[], false).is_empty());
        assert!(out_of_range(&set("5"), 4) && out_of_range(&set("3:10"), 4) && !out_of_range(&set("4:*"), 4));
        assert!(out_of_range(&set("1:*"), 0), "* names nothing in an empty mailbox");
        assert_eq!(uid_set_text(&[7, 1, 2, 3, 9, 10]), "1:3,7,9:10");
        assert_eq!(resolve(&set("9,3:5,4,10,1:3"), &uids, true), [3, 5, 9, 10], "overlaps merged, in order");
        assert_eq!(resolve(&set("2:3,1,4,2"), &uids, false), [3, 5, 9, 10]);
        // Sixteen thousand copies of the whole mailbox are one copy, made once.
        let many = vec!["1:*"; 16_000].join(",");
        let large: Vec<u32> = (1..=10_000).collect();
        assert_eq!(resolve(&set(&many), &large, true), large);
        assert_eq!(resolve(&set(&many), &large, false), large);
        assert_eq!(uid_set_text(&[u32::MAX, 4294967294, u32::MAX]), "4294967294:4294967295,4294967295");
    }

    #[test]
    fn a_message_part_without_its_message_is_not_rendered_as_message_rfc822() {
        let part = pb::BodyPart {
            r#type: "message".into(),
            subtype: "rfc822".into(),
            encoding: "7BIT".into(),
            ..Default::default()
        };
        let BodyStructure::Single { body, .. } = body_structure(&part, true) else { panic!("a single part") };
        assert!(matches!(body.specific, SpecificFields::Basic { .. }));
    }

    #[test]
    fn extended_search_and_list_are_cut_down_to_what_imap_codec_parses() {
        let (ext, rest) = rewrite_extended(b"a1 UID SEARCH RETURN (MIN COUNT) UNSEEN SINCE 1-Jan-2026\r\n").unwrap();
        let words = |w: &[&str]| ReturnOptions { words: w.iter().map(|w| w.to_string()).collect(), partial: None };
        assert_eq!(ext, Extended::Search { options: words(&["MIN", "COUNT"]) });
        assert_eq!(rest, b"a1 UID SEARCH UNSEEN SINCE 1-Jan-2026\r\n");
        let (ext, rest) = rewrite_extended(b"a2 search return () FLAGGED").unwrap();
        assert_eq!(ext, Extended::Search { options: words(&[]) });
        let (ext, line) = rewrite_extended(b"s1 UID SORT RETURN (min COUNT) (DATE) UTF-8 ALL\r\n").unwrap();
        assert_eq!(ext, Extended::Sort { options: words(&["MIN", "COUNT"]) });
        assert_eq!(line, b"s1 UID SORT (DATE) UTF-8 ALL\r\n");
        // RFC 5182 §2.4: ESORT's SAVE saves the result for `$`.
        let (ext, _) = rewrite_extended(b"s2 SORT RETURN (SAVE) (DATE) UTF-8 ALL\r\n").unwrap();
        assert_eq!(ext, Extended::Sort { options: words(&["SAVE"]) });
        let (ext, _) = rewrite_extended(b"s3 SORT RETURN (PARTIAL -1:-2) (DATE) UTF-8 ALL\r\n").unwrap();
        let partial = context::Partial { first: 1, last: 2, from_end: true };
        assert_eq!(ext, Extended::Sort { options: ReturnOptions { words: vec![], partial: Some(partial) } });
        assert!(rewrite_extended(b"s4 SORT RETURN (PARTIAL 0:2) (DATE) UTF-8 ALL\r\n").is_none());
        assert_eq!(rest, b"a2 search FLAGGED\r\n");
        let (ext, rest) =
            rewrite_extended(b"a3 LIST (SUBSCRIBED) \"\" \"*\" RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n")
                .unwrap();
        assert_eq!(
            ext,
            Extended::List {
                selection: vec!["SUBSCRIBED".into()],
                returns: vec!["CHILDREN".into(), "STATUS".into()],
                status: vec!["MESSAGES".into(), "UNSEEN".into()],
                patterns: vec![],
            }
        );
        assert_eq!(rest, b"a3 LIST \"\" \"*\"\r\n");
        assert_eq!(rewrite_extended(b"a4 LIST \"\" *\r\n"), None, "plain LIST is imap-codec's");
        assert_eq!(rewrite_extended(b"a5 SEARCH RETURN (MIN"), None);
        assert_eq!(rewrite_extended(b"a6 FETCH 1 FLAGS"), None);
        assert_eq!(rewrite_extended("a7 SEARCH RETURN é(MIN)\r\n".as_bytes()), None, "no panic on a multibyte char");
        assert_eq!(rewrite_extended(b"a8 SEARCH RETURN (FOO) ALL"), None, "unknown return option");
        assert_eq!(rewrite_extended(b"a9 LIST (FOO) \"\" *"), None, "unknown selection option");
        assert_eq!(largest_literal(b"a SEARCH RETURN (COUNT) BODY {5+}\r\nhello TEXT {12}"), 12);
        assert_eq!(largest_literal(b"a SEARCH ALL"), 0);
        let (_, rest) = rewrite_extended(b"b1 SEARCH RETURN (COUNT) CHARSET UTF-8 BODY {5+}\r\nhello\r\n").unwrap();
        assert_eq!(rest, b"b1 SEARCH CHARSET UTF-8 BODY {5+}\r\nhello\r\n", "a literal passes through whole");
    }

    #[test]
    fn non_ascii_display_names_become_encoded_words() {
        assert_eq!(encoded_word("Jörg"), "=?utf-8?b?SsO2cmc=?=");
        assert_eq!(encoded_word("Plain"), "Plain");
    }
}
