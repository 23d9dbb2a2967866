//! Email/query's filter and sort (RFC 8621 §4.4) as one SQL query over the account's messages: flags of
//! the live entries for keywords, header arrays for addresses and subject, the searchable text (as SEARCH
//! BODY reads it) for text and body, `thread_id` for the thread keyword conditions. Only ids leave PostgreSQL, never octets; the
//! common case (no anchor, no collapse, a page from the start) is cut to its page in SQL.

use mailbus_address::AccountId;
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::error::MailboxError;
use crate::search_text;
use crate::store::search;

/// Deeper filter trees are refused: they come only from hostile clients.
pub const MAX_DEPTH: usize = 32;
/// Operators and conditions in one filter: a person's search has a handful, a webmail's saved search a
/// few dozen; thousands of `body` conditions would each scan every message's text.
pub const MAX_FILTER_NODES: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    /// None of the conditions (RFC 8620 §5.5 NOT).
    Not(Vec<Filter>),
    Condition(Condition),
}

/// A FilterCondition's one test; a condition object with several properties is their AND.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    InMailbox(i64),
    InMailboxOtherThan(Vec<i64>),
    /// receivedAt strictly before, as a Unix time.
    Before(i64),
    /// receivedAt at or after.
    After(i64),
    MinSize(i64),
    MaxSize(i64),
    AllInThreadHaveKeyword(String),
    SomeInThreadHaveKeyword(String),
    NoneInThreadHaveKeyword(String),
    /// The IMAP flag the keyword is stored as.
    HasKeyword(String),
    NotKeyword(String),
    HasAttachment(bool),
    Text(String),
    /// A header field (lower case) whose decoded value holds the text.
    HeaderContains(String, String),
    /// A header field (lower case) that is present.
    HeaderExists(String),
    Body(String),
    /// No email matches (an unknown mailbox id).
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    ReceivedAt,
    Size,
    From,
    To,
    Subject,
    SentAt,
    /// The IMAP flag of the keyword.
    HasKeyword(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparator {
    pub key: SortKey,
    pub ascending: bool,
}

/// A found email with its thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Found {
    pub id: i64,
    pub thread_id: i64,
}

/// The account's emails that match, in sort order; with `page`, only `(offset, limit)` of them.
pub async fn run(
    pool: &PgPool,
    account: AccountId,
    filter: Option<&Filter>,
    sort: &[Comparator],
    page: Option<(i64, i64)>,
) -> Result<Vec<Found>, MailboxError> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT m.id, coalesce(m.thread_id, m.id) AS thread_id ");
    from_where(&mut q, account, filter)?;
    q.push(" ORDER BY ");
    order_by(&mut q, sort);
    if let Some((offset, limit)) = page {
        q.push(" LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
    }
    let mut tx = search::bounded(pool).await?;
    let found = q.build_query_as().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(found)
}

/// How many of the account's emails match.
pub async fn count(pool: &PgPool, account: AccountId, filter: Option<&Filter>) -> Result<i64, MailboxError> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT count(*) ");
    from_where(&mut q, account, filter)?;
    let mut tx = search::bounded(pool).await?;
    let count = q.build_query_scalar().fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(count)
}

/// How many threads the matching emails are in (Email/query's total with collapseThreads).
pub async fn count_threads(pool: &PgPool, account: AccountId, filter: Option<&Filter>) -> Result<i64, MailboxError> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT count(DISTINCT coalesce(m.thread_id, m.id)) ");
    from_where(&mut q, account, filter)?;
    let mut tx = search::bounded(pool).await?;
    let count = q.build_query_scalar().fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(count)
}

fn from_where(q: &mut QueryBuilder<Postgres>, account: AccountId, filter: Option<&Filter>) -> Result<(), MailboxError> {
    q.push("FROM messages m WHERE m.account_id = ").push_bind(account.get());
    q.push(" AND EXISTS (SELECT 1 FROM mailbox_entries e WHERE e.message_id = m.id)");
    if let Some(filter) = filter {
        q.push(" AND ");
        condition(q, filter, 0)?;
    }
    Ok(())
}

fn order_by(q: &mut QueryBuilder<Postgres>, sort: &[Comparator]) {
    let mut last_ascending = false;
    for comparator in sort {
        match &comparator.key {
            SortKey::ReceivedAt => {
                q.push("m.internal_date");
            }
            SortKey::Size => {
                q.push("m.size");
            }
            SortKey::From => {
                q.push("lower(coalesce(m.header_values[array_position(m.header_names, 'from')], ''))");
            }
            SortKey::To => {
                q.push("lower(coalesce(m.header_values[array_position(m.header_names, 'to')], ''))");
            }
            SortKey::Subject => {
                q.push("coalesce(m.base_subject, '')");
            }
            SortKey::SentAt => {
                q.push("m.sent_at");
            }
            SortKey::HasKeyword(flag) => {
                has_flag(q, "m.id", flag);
            }
        }
        // receivedAt and size are never NULL: their plain order is the one `messages_received` is in.
        let never_null = matches!(comparator.key, SortKey::ReceivedAt | SortKey::Size);
        q.push(match (comparator.ascending, never_null) {
            (true, true) => " ASC, ",
            (false, true) => " DESC, ",
            (true, false) => " ASC NULLS FIRST, ",
            (false, false) => " DESC NULLS LAST, ",
        });
        last_ascending = comparator.ascending;
    }
    // Equal keys keep one order from query to query: the id breaks ties, in the last key's direction.
    q.push(if last_ascending { "m.id ASC" } else { "m.id DESC" });
}

/// Whether some live entry of the message `message` (an SQL expression) has `flag`: system flags exactly,
/// keywords case-insensitively (RFC 9051 §2.3.2).
fn has_flag(q: &mut QueryBuilder<Postgres>, message: &str, flag: &str) {
    q.push("EXISTS (SELECT 1 FROM mailbox_entries e WHERE e.message_id = ").push(message).push(" AND ");
    entry_has_flag(q, "e", flag);
    q.push(")");
}

fn entry_has_flag(q: &mut QueryBuilder<Postgres>, entry: &str, flag: &str) {
    if flag.starts_with('\\') {
        q.push(entry).push(".flags @> ARRAY[").push_bind(flag.to_owned()).push("]::text[]");
    } else {
        q.push("EXISTS (SELECT 1 FROM unnest(").push(entry).push(".flags) f WHERE lower(f) = ");
        q.push_bind(flag.to_ascii_lowercase()).push(")");
    }
}

/// The thread-wide keyword tests: whether some email of `m`'s thread has (`with`) or lacks the flag.
fn thread_some(q: &mut QueryBuilder<Postgres>, flag: &str, with: bool) {
    q.push(
        "EXISTS (SELECT 1 FROM messages t JOIN mailbox_entries te ON te.message_id = t.id
          WHERE t.account_id = m.account_id AND t.thread_id = m.thread_id AND ",
    );
    if !with {
        q.push("NOT ");
    }
    entry_has_flag(q, "te", flag);
    q.push(")");
}

fn condition(q: &mut QueryBuilder<Postgres>, filter: &Filter, depth: usize) -> Result<(), MailboxError> {
    if depth > MAX_DEPTH {
        return Err(MailboxError::InvalidArgument("filter nested too deeply".into()));
    }
    let (joiner, empty, list, negate) = match filter {
        Filter::And(list) => (" AND ", "TRUE", list, false),
        Filter::Or(list) => (" OR ", "FALSE", list, false),
        Filter::Not(list) => (" OR ", "FALSE", list, true),
        Filter::Condition(c) => {
            leaf(q, c);
            return Ok(());
        }
    };
    q.push(if negate { "NOT (" } else { "(" });
    if list.is_empty() {
        q.push(empty);
    }
    for (i, inner) in list.iter().enumerate() {
        if i > 0 {
            q.push(joiner);
        }
        condition(q, inner, depth + 1)?;
    }
    q.push(")");
    Ok(())
}

/// One condition; every leaf is TRUE or FALSE, never NULL, so NOT is the complement.
fn leaf(q: &mut QueryBuilder<Postgres>, c: &Condition) {
    match c {
        Condition::InMailbox(mailbox) => {
            q.push("EXISTS (SELECT 1 FROM mailbox_entries e WHERE e.message_id = m.id AND e.mailbox_id = ");
            q.push_bind(*mailbox).push(")");
        }
        Condition::InMailboxOtherThan(mailboxes) => {
            q.push("EXISTS (SELECT 1 FROM mailbox_entries e WHERE e.message_id = m.id AND e.mailbox_id <> ALL(");
            q.push_bind(mailboxes.clone()).push("))");
        }
        Condition::Before(t) => {
            q.push("m.internal_date < to_timestamp(").push_bind(*t as f64).push(")");
        }
        Condition::After(t) => {
            q.push("m.internal_date >= to_timestamp(").push_bind(*t as f64).push(")");
        }
        Condition::MinSize(n) => {
            q.push("m.size >= ").push_bind(*n);
        }
        Condition::MaxSize(n) => {
            q.push("m.size < ").push_bind(*n);
        }
        Condition::AllInThreadHaveKeyword(flag) => {
            q.push("NOT ");
            thread_some(q, flag, false);
        }
        Condition::SomeInThreadHaveKeyword(flag) => thread_some(q, flag, true),
        Condition::NoneInThreadHaveKeyword(flag) => {
            q.push("NOT ");
            thread_some(q, flag, true);
        }
        Condition::HasKeyword(flag) => has_flag(q, "m.id", flag),
        Condition::NotKeyword(flag) => {
            q.push("NOT ");
            has_flag(q, "m.id", flag);
        }
        Condition::HasAttachment(yes) => {
            q.push("coalesce(m.has_attachment, false) = ").push_bind(*yes);
        }
        Condition::Text(text) => {
            q.push("(");
            body_match(q, text);
            for field in ["from", "to", "cc", "bcc", "subject"] {
                q.push(" OR ");
                header_contains(q, field, text);
            }
            q.push(")");
        }
        Condition::HeaderContains(field, text) => header_contains(q, field, text),
        Condition::HeaderExists(field) => {
            q.push("coalesce(").push_bind(field.clone()).push(" = ANY(m.header_names), false)");
        }
        Condition::Body(text) => body_match(q, text),
        Condition::Nothing => {
            q.push("FALSE");
        }
    }
}

/// A case-insensitive substring of the field's decoded value.
fn header_contains(q: &mut QueryBuilder<Postgres>, field: &str, text: &str) {
    q.push("EXISTS (SELECT 1 FROM unnest(m.header_names, m.header_values) h (name, value) WHERE h.name = ");
    q.push_bind(field.to_owned()).push(" AND h.value ILIKE ").push_bind(format!("%{}%", escape_like(text))).push(")");
}

/// Every word of `text` in the decoded body, anywhere (as Stalwart: words, not a phrase), each as a
/// case-insensitive substring (as IMAP's BODY: "ndeliv" finds "undeliverable"); a text without words
/// matches every message.
fn body_match(q: &mut QueryBuilder<Postgres>, text: &str) {
    let folded = search_text::fold(text);
    q.push("(TRUE");
    for word in folded.split_whitespace() {
        q.push(" AND ");
        search::contains(q, "m.search_body", word);
    }
    q.push(")");
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(filter: Filter) -> String {
        let mut q = QueryBuilder::<Postgres>::new("");
        condition(&mut q, &filter, 0).unwrap();
        q.sql().as_str().to_owned()
    }

    #[test]
    fn operators_nest_and_not_is_none_of() {
        let not = Filter::Not(vec![
            Filter::Condition(Condition::MinSize(1)),
            Filter::Condition(Condition::HasAttachment(true)),
        ]);
        assert_eq!(sql(not), "NOT (m.size >= $1 OR coalesce(m.has_attachment, false) = $2)");
        assert_eq!(sql(Filter::And(vec![])), "(TRUE)");
        assert_eq!(sql(Filter::Or(vec![])), "(FALSE)");
        let body = sql(Filter::Condition(Condition::Body(" Two  words ".into())));
        assert_eq!(
            body,
            "(TRUE AND (m.search_body IS NOT NULL AND m.search_body LIKE $1) AND (m.search_body IS NOT NULL AND \
             m.search_body LIKE $2))"
        );
        assert_eq!(sql(Filter::Condition(Condition::Body(" ".into()))), "(TRUE)");
        let keyword = sql(Filter::Condition(Condition::HasKeyword("\\Seen".into())));
        assert!(keyword.contains("e.flags @> ARRAY[$1]"), "{keyword}");
        let mut deep = Filter::Condition(Condition::Nothing);
        for _ in 0..100 {
            deep = Filter::Not(vec![deep]);
        }
        assert!(condition(&mut QueryBuilder::new(""), &deep, 0).is_err());
    }

    #[test]
    fn sort_ends_with_the_id_in_the_last_direction() {
        let mut q = QueryBuilder::<Postgres>::new("");
        order_by(&mut q, &[Comparator { key: SortKey::Size, ascending: true }]);
        assert_eq!(q.sql().as_str(), "m.size ASC, m.id ASC");
    }
}
