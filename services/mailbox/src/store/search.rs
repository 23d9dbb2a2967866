//! RFC 9051 §6.4.4 SEARCH keys as one SQL query over a mailbox's live entries: flags and sizes from the
//! rows, header fields from the arrays stored at delivery, BODY and TEXT as substrings of the searchable
//! text stored at delivery (`crate::search_text`), found through its trigram indexes.

use mailbus_address::{AccountId, MailboxName, Uid};
use mailbus_proto::v1::{self as pb, date_match::Relation, search_key::Key};
use prost::Message as _;
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::error::MailboxError;
use crate::flags;
use crate::search_text;
use crate::store::mailboxes;

/// Deeper key trees are refused: they come only from hostile clients and would exhaust the stack.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub uids: Vec<Uid>,
    /// Each match's MODSEQ, in the order of `uids`.
    pub modseqs: Vec<u64>,
    pub highest_modseq: u64,
    /// With `threading`: each match's threading facts, in the order of `uids`.
    pub threading: Vec<pb::Threading>,
    /// The mailbox's HIGHESTMODSEQ, read after the matches: a change the matches reflect is within it.
    pub mailbox_modseq: u64,
    /// With `sorting`: each match's sort keys, in the order of `uids`.
    pub sorting: Vec<pb::Sorting>,
}

/// What a search returns besides UIDs and MODSEQs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// IMAP THREAD's ids, base subject and date.
    pub threading: bool,
    /// IMAP SORT's keys.
    pub sorting: bool,
}

#[derive(sqlx::FromRow)]
struct Match {
    #[sqlx(try_from = "i64")]
    uid: Uid,
    modseq: i64,
    #[sqlx(default)]
    thread_id: i64,
    #[sqlx(default)]
    own: String,
    #[sqlx(default)]
    refs: Vec<String>,
    #[sqlx(default)]
    base_subject: String,
    #[sqlx(default)]
    internal_date_unix: i64,
    #[sqlx(default)]
    structure: Option<Vec<u8>>,
    #[sqlx(default)]
    size: i64,
    #[sqlx(default)]
    sent_unix: i64,
}

/// What THREAD reads of a match: JMAP's thread (coalesced as Email/get does), the Message-ID, the ids it
/// names besides its own, its base subject and date.
const THREADING_COLUMNS: &str = ", coalesce(m.thread_id, m.id) AS thread_id,
       coalesce((mailbus_msg_ids(m.header_values[array_position(m.header_names, 'message-id')]))[1], '') AS own,
       coalesce(m.thread_refs, '{}') AS refs";

/// What both THREAD and SORT read.
const DATE_SUBJECT_COLUMNS: &str = ", coalesce(m.base_subject, '') AS base_subject,
       extract(epoch FROM m.internal_date)::bigint AS internal_date_unix";

/// What SORT reads besides: the stored structure (for the envelope's addresses) and size.
const SORTING_COLUMNS: &str = ", m.structure, m.size";

/// What both THREAD and SORT order by: the sent date (RFC 5256 §2.2), the internal date when the Date
/// field is missing or unreadable.
const SENT_COLUMN: &str = ", extract(epoch FROM coalesce(m.sent_at, m.internal_date))::bigint AS sent_unix";

/// How long one search may run: the callers' deadline (beyond it nobody waits for the answer).
const SEARCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A transaction whose statements may each run `SEARCH_TIMEOUT`. A search is bounded in time: thousands
/// of `NOT BODY zq` over large messages (or as many `body` conditions in an Email/query) would otherwise
/// hold a pool connection, and a CPU of the database, long after the caller stopped waiting. A statement
/// cut off fails with `FailedPrecondition`.
pub(crate) async fn bounded(pool: &PgPool) -> Result<sqlx::Transaction<'static, Postgres>, MailboxError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('statement_timeout', $1, true)")
        .bind(format!("{}s", SEARCH_TIMEOUT.as_secs()))
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The live entries of a mailbox that match `key`, in UID order, and the highest MODSEQ among them
/// (RFC 7162 §3.1.5); 0 when none match.
pub async fn search(
    pool: &PgPool,
    account: AccountId,
    mailbox: &MailboxName,
    key: &pb::SearchKey,
    facts: Facts,
) -> Result<Found, MailboxError> {
    let id = mailboxes::find(pool, account, mailbox).await?.id;
    let mut query = QueryBuilder::<Postgres>::new("SELECT e.uid, e.modseq");
    if facts.threading {
        query.push(THREADING_COLUMNS);
    }
    if facts.threading || facts.sorting {
        query.push(DATE_SUBJECT_COLUMNS);
        query.push(SENT_COLUMN);
    }
    if facts.sorting {
        query.push(SORTING_COLUMNS);
    }
    query.push(
        " FROM mailbox_entries e JOIN messages m ON m.id = e.message_id
          WHERE e.expunged_modseq IS NULL AND e.mailbox_id = ",
    );
    query.push_bind(id.get()).push(" AND ");
    condition(&mut query, key, 0)?;
    query.push(" ORDER BY e.uid");
    let mut tx = bounded(pool).await?;
    let matches: Vec<Match> = query.build_query_as().fetch_all(&mut *tx).await?;
    let mailbox_modseq: i64 = sqlx::query_scalar("SELECT highestmodseq FROM mailboxes WHERE id = $1")
        .bind(id.get())
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or(0);
    tx.commit().await?;
    Ok(Found {
        highest_modseq: matches.iter().map(|m| m.modseq as u64).max().unwrap_or(0),
        modseqs: matches.iter().map(|m| m.modseq as u64).collect(),
        threading: if facts.threading { matches.iter().map(threading_of).collect() } else { Vec::new() },
        sorting: if facts.sorting { matches.iter().map(sorting_of).collect() } else { Vec::new() },
        uids: matches.into_iter().map(|m| m.uid).collect(),
        mailbox_modseq: mailbox_modseq.max(0) as u64,
    })
}

fn threading_of(m: &Match) -> pb::Threading {
    // thread_refs is the message's own id, if it has one, then the ids it names.
    let skip = usize::from(!m.own.is_empty() && m.refs.first() == Some(&m.own));
    pb::Threading {
        thread_id: m.thread_id,
        message_id: m.own.clone(),
        parents: m.refs[skip..].to_vec(),
        base_subject: m.base_subject.clone(),
        internal_date_unix: m.internal_date_unix,
        sent_unix: m.sent_unix,
    }
}

fn sorting_of(m: &Match) -> pb::Sorting {
    let envelope = m.structure.as_deref().and_then(|s| pb::MessageStructure::decode(s).ok()).and_then(|s| s.envelope);
    let envelope = envelope.unwrap_or_default();
    // The first real address: group markers are not addresses.
    let first = |list: &[pb::EnvelopeAddress]| list.iter().find(|a| !a.group_start && !a.group_end).cloned();
    let mailbox = |list: &[pb::EnvelopeAddress]| first(list).map(|a| a.mailbox).unwrap_or_default();
    let display = |list: &[pb::EnvelopeAddress]| match first(list) {
        Some(a) if !a.name.trim().is_empty() => a.name,
        Some(a) if a.host.is_empty() => a.mailbox,
        Some(a) => format!("{}@{}", a.mailbox, a.host),
        None => String::new(),
    };
    pb::Sorting {
        internal_date_unix: m.internal_date_unix,
        sent_unix: m.sent_unix,
        size: m.size.max(0) as u64,
        base_subject: m.base_subject.clone(),
        from_mailbox: mailbox(&envelope.from),
        to_mailbox: mailbox(&envelope.to),
        cc_mailbox: mailbox(&envelope.cc),
        display_from: display(&envelope.from),
        display_to: display(&envelope.to),
    }
}

/// Appends the SQL condition for `key`, with its values as bound parameters.
fn condition(q: &mut QueryBuilder<Postgres>, key: &pb::SearchKey, depth: usize) -> Result<(), MailboxError> {
    if depth > MAX_DEPTH {
        return Err(MailboxError::InvalidArgument("search keys nested too deeply".into()));
    }
    let Some(key) = &key.key else {
        return Err(MailboxError::InvalidArgument("empty search key".into()));
    };
    match key {
        Key::All(_) => {
            q.push("TRUE");
        }
        Key::And(all) => {
            q.push("(TRUE");
            for key in &all.keys {
                q.push(" AND ");
                condition(q, key, depth + 1)?;
            }
            q.push(")");
        }
        Key::Or(pair) => {
            let missing = || MailboxError::InvalidArgument("OR needs two keys".into());
            q.push("(");
            condition(q, pair.a.as_ref().ok_or_else(missing)?, depth + 1)?;
            q.push(" OR ");
            condition(q, pair.b.as_ref().ok_or_else(missing)?, depth + 1)?;
            q.push(")");
        }
        Key::Not(inner) => {
            // Every leaf is TRUE or FALSE, never NULL (see `coalesce` below), so NOT is the complement.
            q.push("NOT ");
            condition(q, inner, depth + 1)?;
        }
        Key::Uids(list) => {
            let uids: Vec<i64> = list.uids.iter().map(|&u| i64::from(u)).collect();
            q.push("e.uid = ANY(").push_bind(uids).push(")");
        }
        Key::Flag(flag) => {
            let flag = flags::canonical(std::slice::from_ref(flag))?.remove(0);
            if flag.starts_with('\\') {
                q.push("e.flags @> ARRAY[").push_bind(flag).push("]::text[]");
            } else {
                q.push("EXISTS (SELECT 1 FROM unnest(e.flags) f WHERE lower(f) = lower(").push_bind(flag).push("))");
            }
        }
        Key::Header(header) => header_match(q, &header.field, &header.value),
        Key::Body(text) => {
            contains(q, "m.search_body", &search_text::fold(text));
        }
        // The header's values or the body; not `header_match` with any field, which no index serves.
        Key::Text(text) => {
            let needle = search_text::fold(text);
            q.push("(");
            contains(q, "m.search_header", &needle);
            q.push(" OR ");
            contains(q, "m.search_body", &needle);
            q.push(")");
        }
        // The internal date's zone is not kept: its day is counted in UTC.
        Key::InternalDate(date) => date_match(q, "(m.internal_date AT TIME ZONE 'UTC')::date", date)?,
        // The Date field's day as written (RFC 9051 §6.4.4), kept at delivery.
        Key::SentDate(date) => date_match(q, "m.sent_date", date)?,
        // RFC 8514: the day the entry was saved, counted in UTC as the internal date's.
        Key::SavedDate(date) => {
            date_match(q, "(coalesce(e.saved_at, m.internal_date) AT TIME ZONE 'UTC')::date", date)?
        }
        Key::Larger(size) => {
            q.push("m.size > ").push_bind(clamp(*size));
        }
        Key::Smaller(size) => {
            q.push("m.size < ").push_bind(clamp(*size));
        }
        // RFC 5032: intervals counted back from the database's clock, the one that set the internal dates.
        Key::Older(seconds) => {
            q.push("m.internal_date <= now() - make_interval(secs => ").push_bind(interval(*seconds)).push(")");
        }
        Key::Younger(seconds) => {
            q.push("m.internal_date >= now() - make_interval(secs => ").push_bind(interval(*seconds)).push(")");
        }
        Key::Modseq(modseq) => {
            q.push("e.modseq >= ").push_bind(clamp(*modseq));
        }
        // RFC 8474 §5: EMAILID and THREADID, the ids JMAP names the same objects by.
        Key::EmailId(id) => {
            q.push("m.id = ").push_bind(*id);
        }
        Key::ThreadId(id) => {
            q.push("coalesce(m.thread_id, m.id) = ").push_bind(*id);
        }
    }
    Ok(())
}

/// Seconds for `make_interval`, capped at some 35,000 years (past PostgreSQL's timestamps, within its
/// intervals).
fn interval(seconds: u64) -> f64 {
    seconds.min(1 << 40) as f64
}

fn clamp(value: u64) -> i64 {
    value.min(i64::MAX as u64) as i64
}

/// A case-insensitive substring of the field's decoded value; `field` empty means any field.
fn header_match(q: &mut QueryBuilder<Postgres>, field: &str, value: &str) {
    q.push("EXISTS (SELECT 1 FROM unnest(m.header_names, m.header_values) h (name, value) WHERE ");
    if !field.is_empty() {
        q.push("h.name = ").push_bind(field.to_ascii_lowercase()).push(" AND ");
    }
    q.push("h.value ILIKE ").push_bind(format!("%{}%", escape_like(value))).push(")");
}

/// Whether searchable text `column` (`m.search_header` or `m.search_body`) contains `needle`, folded by
/// `search_text::fold`: `LIKE`, which the column's trigram index answers for a needle of three characters or
/// more (a shorter one reads every row, and is as correct). The text is NULL until a message stored before
/// it existed is backfilled: such a row matches nothing, and the condition is never NULL, so NOT is its
/// complement. An empty needle is in every text.
pub(super) fn contains(q: &mut QueryBuilder<Postgres>, column: &str, needle: &str) {
    q.push("(").push(column).push(" IS NOT NULL AND ").push(column).push(" LIKE ");
    q.push_bind(format!("%{}%", escape_like(needle))).push(")");
}

/// RFC 9051 dates disregard time and zone: `day` is an SQL expression of type date.
fn date_match(q: &mut QueryBuilder<Postgres>, day: &str, date: &pb::DateMatch) -> Result<(), MailboxError> {
    let operator = match date.relation() {
        Relation::Before => "<",
        Relation::On => "=",
        Relation::Since => ">=",
        Relation::Unspecified => return Err(MailboxError::InvalidArgument("date relation missing".into())),
    };
    // A message without a Date field has no sent date: it matches no date key, and NOT of one.
    q.push("coalesce(").push(day).push(" ").push(operator);
    q.push(" (date '1970-01-01' + ").push_bind(date.day.clamp(-1_000_000, 1_000_000) as i32).push("), false)");
    Ok(())
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(key: Key) -> String {
        let mut q = QueryBuilder::<Postgres>::new("");
        condition(&mut q, &pb::SearchKey { key: Some(key) }, 0).unwrap();
        q.sql().as_str().to_owned()
    }

    #[test]
    fn keys_become_conditions_with_bound_values() {
        assert_eq!(sql(Key::All(true)), "TRUE");
        assert_eq!(sql(Key::Flag("\\seen".into())), "e.flags @> ARRAY[$1]::text[]");
        assert_eq!(sql(Key::Larger(10)), "m.size > $1");
        assert_eq!(sql(Key::Older(60)), "m.internal_date <= now() - make_interval(secs => $1)");
        assert_eq!(interval(u64::MAX), (1u64 << 40) as f64);
        let header = sql(Key::Header(pb::HeaderMatch { field: "Subject".into(), value: "x".into() }));
        assert!(header.contains("h.name = $1 AND h.value ILIKE $2"), "{header}");
        let not_or = Key::Not(Box::new(pb::SearchKey {
            key: Some(Key::Or(Box::new(pb::SearchPair {
                a: Some(Box::new(pb::SearchKey { key: Some(Key::Larger(1)) })),
                b: Some(Box::new(pb::SearchKey { key: Some(Key::Smaller(5)) })),
            }))),
        }));
        assert_eq!(sql(not_or), "NOT (m.size > $1 OR m.size < $2)");
        assert_eq!(sql(Key::Body("Ndeliv".into())), "(m.search_body IS NOT NULL AND m.search_body LIKE $1)");
        let text = sql(Key::Text("x".into()));
        assert!(
            text.starts_with("((m.search_header IS NOT NULL AND m.search_header LIKE $1) OR (m.search_body"),
            "{text}"
        );
        assert_eq!(escape_like("50%_a\\b"), "50\\%\\_a\\\\b");
    }

    #[test]
    fn hostile_keys_are_refused_not_crashed_on() {
        let mut key = pb::SearchKey { key: Some(Key::All(true)) };
        for _ in 0..100 {
            key = pb::SearchKey { key: Some(Key::Not(Box::new(key))) };
        }
        let mut q = QueryBuilder::<Postgres>::new("");
        assert!(condition(&mut q, &key, 0).is_err());
        assert!(condition(&mut q, &pb::SearchKey { key: None }, 0).is_err());
        let bad_flag = pb::SearchKey { key: Some(Key::Flag("\\Bogus".into())) };
        assert!(condition(&mut QueryBuilder::new(""), &bad_flag, 0).is_err());
    }
}
