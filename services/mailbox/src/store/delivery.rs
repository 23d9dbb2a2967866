//! One delivery into one account, as its Sieve script planned it: the message in each planned mailbox
//! (octets stored once, entries sharing them), the follow-up messages for the relay to queue, vacation's
//! memory and a rejection, all in one transaction, which may hold a batch of deliveries into the same
//! account (`crate::group_commit` gathers them): one commit for many. Its idempotency key is the account's
//! `delivery_runs` row, inserted before anything else of the delivery: a repeated delivery (a relay that
//! died before its ack) conflicts on it, waits for the first to commit or roll back, and then answers
//! with what the first one did. Every path takes its locks in one order: the mailbox rows (in name
//! order), then the account's row, then the `delivery_runs` key.

use std::sync::{Arc, LazyLock};

use mailbus_address::{AccountId, MailboxName};
use mailbus_sieve::VacationRecord;
use sqlx::{PgConnection, PgPool, Row as _};

use crate::error::MailboxError;
use crate::mime::Parsed;
use crate::store::messages::{self, Locked, MESSAGE_COLUMNS, MESSAGE_VALUES, Placed};
use crate::store::{mailboxes, quota, sieve, uid_from_column};

/// Where a message goes and what else is to be done, decided before the transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Each mailbox once, with the flags the entry gets. Empty for discard and reject.
    pub targets: Vec<Target>,
    pub follow_ups: Vec<FollowUp>,
    /// The text a reject (RFC 5429) gives the sender's DSN.
    pub rejection: Option<String>,
}

impl Plan {
    /// Today's delivery without a script: INBOX, no flags.
    pub fn inbox() -> Self {
        Plan { targets: vec![Target { mailbox: MailboxName::inbox(), flags: Vec::new() }], ..Plan::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub mailbox: MailboxName,
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUpKind {
    /// The original message to another address, `content` (the loop marker) put before it.
    Redirect,
    /// An auto-reply, `content` whole.
    Vacation,
}

impl FollowUpKind {
    fn column(self) -> &'static str {
        match self {
            FollowUpKind::Redirect => "redirect",
            FollowUpKind::Vacation => "vacation",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    pub kind: FollowUpKind,
    /// Empty for the null reverse-path.
    pub mail_from: String,
    pub rcpt_to: String,
    pub content: Vec<u8>,
    /// A vacation reply's memory (RFC 5230 §4.2), written with the delivery; `None` for a redirect, and
    /// for a follow-up read back from the table.
    pub record: Option<VacationRecord>,
}

/// A follow-up as stored: `seq` is its place in the account's plan, stable across repeated calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFollowUp {
    pub account: AccountId,
    pub seq: i32,
    pub follow_up: FollowUp,
}

/// What a delivery did in one account, now or (`duplicate`) in an earlier call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub placed: Vec<Placed>,
    pub follow_ups: Vec<StoredFollowUp>,
    pub rejection: Option<String>,
    pub duplicate: bool,
}

/// One delivery into one account: the (queue id, recipient) key it is done once under, the message, and
/// where its Sieve script says it goes.
#[derive(Debug, Clone)]
pub struct Job {
    pub queue_id: String,
    pub recipient: String,
    pub message: Arc<Incoming>,
    pub plan: Plan,
}

/// A message as delivery stores it: its octets and what was parsed from them, shared by the accounts an
/// alias leads to.
#[derive(Debug)]
pub struct Incoming {
    pub content: Vec<u8>,
    pub parsed: Parsed,
}

/// How long a delivery's records (`delivery_runs`, `deliveries`, `delivery_follow_ups`) are kept: far
/// beyond the queue lifetime a relay may send the same message again within (5 days by default).
pub const RECORDS_KEPT: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// Drops delivery records older than [`RECORDS_KEPT`], a batch at a time; returns how many. Run hourly.
pub async fn prune_records(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut pruned = 0;
    for table in ["delivery_runs", "deliveries"] {
        loop {
            let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE ctid IN (
                     SELECT ctid FROM {table} WHERE delivered_at < now() - make_interval(secs => $1) LIMIT 10000)"
            )))
            .bind(RECORDS_KEPT.as_secs_f64())
            .execute(pool)
            .await?;
            pruned += done.rows_affected();
            if done.rows_affected() == 0 {
                break;
            }
        }
    }
    Ok(pruned)
}

/// Several deliveries into `account` in one transaction, in their order: one commit for all, each
/// delivery once (a repeated key, even within the batch, answers with what the first did). The batch is
/// first tried whole, without savepoints ([`at_once`]); if that cannot be done, each delivery is tried to
/// a savepoint of its own, so that one that fails (a full mailbox) is undone alone and the others go on
/// ([`one_by_one`]). Every mailbox any of them may touch is locked first, in name order (as a move locks
/// its two), so that a batch cannot deadlock with another transaction; UIDs are then given in the batch's
/// order.
pub async fn deliver_batch(pool: &PgPool, account: AccountId, jobs: &[Job]) -> Vec<Result<Delivered, MailboxError>> {
    match deliver_all(pool, account, jobs).await {
        Ok(results) => results,
        Err(error) => {
            // Nothing was committed: every delivery failed, and the relay tries each again.
            let text = error.to_string();
            let mut first = Some(error);
            jobs.iter()
                .map(|_| {
                    Err(first.take().unwrap_or_else(|| MailboxError::Database(sqlx::Error::Protocol(text.clone()))))
                })
                .collect()
        }
    }
}

async fn deliver_all(
    pool: &PgPool,
    account: AccountId,
    jobs: &[Job],
) -> Result<Vec<Result<Delivered, MailboxError>>, MailboxError> {
    let quick = match jobs {
        // A delivery alone (the usual case when mail is spread over many accounts): one statement, which
        // is its own transaction.
        [job] => match simple_target(job) {
            Some(target) => {
                deliver_into(&mut *pool.acquire().await?, account, target, job).await.map(|d| d.map(|d| vec![d]))
            }
            None => Ok(None),
        },
        _ => at_once(pool, account, jobs).await,
    };
    match quick {
        Ok(Some(delivered)) => return Ok(delivered.into_iter().map(Ok).collect()),
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(account_id = account.get(), %error, "deliveries failed together; each is tried alone")
        }
    }
    one_by_one(pool, account, jobs).await
}

/// The one mailbox a plan files into, when it has no follow-ups: what [`deliver_into`] can do alone.
fn simple_target(job: &Job) -> Option<&Target> {
    match (job.plan.targets.as_slice(), job.plan.follow_ups.is_empty()) {
        ([target], true) => Some(target),
        _ => None,
    }
}

/// Every mailbox any of `jobs` may touch, locked in name order, INBOX among them (a vanished Sieve target
/// falls back to it: it is locked with the others, not after them). A mailbox that does not exist is left
/// out. Locked once for the whole batch: each entry takes its UID and MODSEQ from the row as it is added,
/// so the deliveries need not read the rows again.
async fn lock_targets(conn: &mut PgConnection, account: AccountId, jobs: &[Job]) -> Result<Vec<Locked>, MailboxError> {
    let mut names: Vec<&MailboxName> = jobs.iter().flat_map(|j| j.plan.targets.iter().map(|t| &t.mailbox)).collect();
    let inbox = MailboxName::inbox();
    names.push(&inbox);
    names.sort();
    names.dedup();
    let mut locked = Vec::with_capacity(names.len());
    for name in names {
        match messages::lock(conn, account, name).await {
            Ok(mailbox) => locked.push(mailbox),
            Err(MailboxError::NotFound(_)) => {}
            Err(other) => return Err(other),
        }
    }
    Ok(locked)
}

/// A batch in one transaction with no savepoint, each delivery into one mailbox without follow-ups
/// (almost every one) in one statement. `None` when a delivery cannot be done (its quota, its UIDs).
/// That, or any failure, undoes the whole batch, and [`one_by_one`] then tries each delivery alone, so that one
/// that cannot be done costs only its own.
async fn at_once(pool: &PgPool, account: AccountId, jobs: &[Job]) -> Result<Option<Vec<Delivered>>, MailboxError> {
    let mut tx = pool.begin().await?;
    match at_once_in(&mut tx, account, jobs).await {
        Ok(Some(delivered)) => {
            tx.commit().await?;
            Ok(Some(delivered))
        }
        other => {
            // Undone now, not when the pool gets the connection back: the savepoint path that follows
            // waits for the same locks.
            tx.rollback().await?;
            other
        }
    }
}

async fn at_once_in(
    tx: &mut PgConnection,
    account: AccountId,
    jobs: &[Job],
) -> Result<Option<Vec<Delivered>>, MailboxError> {
    let locked = lock_targets(tx, account, jobs).await?;
    let mut delivered = Vec::with_capacity(jobs.len());
    for job in jobs {
        // Only into a mailbox locked above: one created since would be locked after the account's row.
        let done = match simple_target(job).filter(|target| locked.iter().any(|m| m.name == target.mailbox)) {
            Some(target) => deliver_into(tx, account, target, job).await?,
            None => Some(deliver_in(tx, account, &locked, job).await?),
        };
        let Some(done) = done else { return Ok(None) };
        delivered.push(done);
    }
    Ok(Some(delivered))
}

/// The batch one delivery at a time, each to a savepoint: one that fails (a full mailbox) is undone alone
/// and the others go on. UIDs are given in the batch's order.
async fn one_by_one(
    pool: &PgPool,
    account: AccountId,
    jobs: &[Job],
) -> Result<Vec<Result<Delivered, MailboxError>>, MailboxError> {
    let mut tx = pool.begin().await?;
    let locked = lock_targets(&mut tx, account, jobs).await?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        if jobs.len() == 1 {
            results.push(deliver_in(&mut tx, account, &locked, job).await);
            break;
        }
        sqlx::query("SAVEPOINT delivery").execute(&mut *tx).await?;
        let result = deliver_in(&mut tx, account, &locked, job).await;
        let end = if result.is_ok() { "RELEASE SAVEPOINT delivery" } else { "ROLLBACK TO SAVEPOINT delivery" };
        sqlx::query(end).execute(&mut *tx).await?;
        results.push(result);
    }
    if results.iter().all(Result::is_err) {
        return Ok(results);
    }
    tx.commit().await?;
    Ok(results)
}

/// [`deliver_in`] for a plan of one mailbox and no follow-ups, in one statement: the mailbox row locked
/// (a batch holds the lock already), then the account's row with the quota checked for one more entry
/// (in that order, as every other change takes them), then the `delivery_runs` row, the message, its
/// entry with the UID and MODSEQ taken from the row as it is added, and its `deliveries` row, each only
/// if the one before it was written. The triggers run as for separate statements: the message's
/// threading before its row, the entry's usage and change log after the statement. A `delivery_runs` row
/// without its entry cannot be written: `deliveries` then gets NULLs, refused, and the statement fails
/// whole. `None`, with nothing written, when it could not be done (the mailbox is gone, the quota or the
/// UIDs would be passed): [`deliver_in`] then does it, or says why not.
async fn deliver_into(
    conn: &mut PgConnection,
    account: AccountId,
    target: &Target,
    job: &Job,
) -> Result<Option<Delivered>, MailboxError> {
    static DELIVER: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH target AS (SELECT id, uidvalidity, uidnext FROM mailboxes WHERE account_id = $1 AND name = $18
                              FOR UPDATE),
                  room AS (SELECT a.id FROM accounts a, target
                            WHERE a.id = $1 AND target.uidnext <= $20
                              AND (a.quota_bytes IS NULL OR a.used_bytes + $3 <= a.quota_bytes)
                              AND (a.quota_messages IS NULL OR a.used_messages + 1 <= a.quota_messages)
                              FOR NO KEY UPDATE OF a),
                  run AS (INSERT INTO delivery_runs (queue_id, recipient, account_id, rejection)
                          SELECT $15, $16, $1, $17 FROM room ON CONFLICT DO NOTHING RETURNING 1),
                  message AS (INSERT INTO messages ({MESSAGE_COLUMNS}) SELECT {MESSAGE_VALUES} FROM run RETURNING id),
                  m AS (UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
                         WHERE id = (SELECT id FROM target) AND EXISTS (SELECT FROM message)
                         RETURNING id, uidnext - 1 AS uid, highestmodseq AS modseq),
                  entry AS (INSERT INTO mailbox_entries (mailbox_id, uid, message_id, flags, modseq)
                            SELECT m.id, m.uid, message.id, $19, m.modseq FROM m, message
                            RETURNING mailbox_id, uid, modseq),
                  placed AS (INSERT INTO deliveries (queue_id, recipient, mailbox_id, uid)
                             SELECT $15, $16, (SELECT mailbox_id FROM entry), (SELECT uid FROM entry) FROM run)
             SELECT EXISTS (SELECT FROM room) AS room, EXISTS (SELECT FROM run) AS first,
                    (SELECT uidvalidity FROM target) AS uidvalidity, entry.uid, entry.modseq
               FROM (SELECT) one LEFT JOIN entry ON true"
        )
    });
    let key = (job.queue_id.as_str(), job.recipient.as_str());
    let Incoming { content, parsed } = job.message.as_ref();
    let row = messages::bind_message(sqlx::query(DELIVER.as_str()), account, content, parsed, None)
        .bind(key.0)
        .bind(key.1)
        .bind(job.plan.rejection.as_deref())
        .bind(target.mailbox.as_str())
        .bind(&target.flags)
        .bind(i64::from(u32::MAX))
        .fetch_one(&mut *conn)
        .await?;
    // No room: the mailbox is gone (no row to lock), its UIDs are used up, or the quota would be passed.
    // Nothing was written: every row depends on `room`, so a statement that is its own transaction never
    // leaves a `delivery_runs` row without its delivery.
    if !row.try_get::<bool, _>("room")? {
        return Ok(None);
    }
    if !row.try_get::<bool, _>("first")? {
        return earlier(conn, account, key).await.map(Some);
    }
    let (uidvalidity, uid, modseq): (Option<i64>, Option<i64>, Option<i64>) =
        (row.try_get("uidvalidity")?, row.try_get("uid")?, row.try_get("modseq")?);
    let (Some(uidvalidity), Some(uid), Some(modseq)) = (uidvalidity, uid, modseq) else {
        // Not reached: with room for a UID every row is written, and a run without its entry would have
        // failed the whole statement (`placed` would insert NULLs into NOT NULL columns).
        return Err(MailboxError::FailedPrecondition(format!(
            "delivery into {:?} wrote no entry",
            target.mailbox.as_str()
        )));
    };
    let placed = Placed {
        mailbox: target.mailbox.clone(),
        uidvalidity: uidvalidity as u32,
        uid: uid_from_column(uid)?,
        modseq,
        duplicate: false,
    };
    Ok(Some(Delivered {
        placed: vec![placed],
        follow_ups: Vec::new(),
        rejection: job.plan.rejection.clone(),
        duplicate: false,
    }))
}

/// The delivery of (queue id, recipient) into `account` by `plan`, once, inside the batch's transaction.
async fn deliver_in(
    conn: &mut PgConnection,
    account: AccountId,
    locked: &[Locked],
    job: &Job,
) -> Result<Delivered, MailboxError> {
    let key = (job.queue_id.as_str(), job.recipient.as_str());
    let plan = &job.plan;
    // The account's row before the `delivery_runs` key, in the order `deliver_into` takes them, so that
    // two attempts at one delivery by the two paths cannot wait for each other.
    sqlx::query("SELECT FROM accounts WHERE id = $1 FOR NO KEY UPDATE").bind(account.get()).execute(&mut *conn).await?;
    let first: Option<i32> = sqlx::query_scalar(
        "INSERT INTO delivery_runs (queue_id, recipient, account_id, rejection) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING RETURNING 1",
    )
    .bind(key.0)
    .bind(key.1)
    .bind(account.get())
    .bind(plan.rejection.as_deref())
    .fetch_optional(&mut *conn)
    .await?;
    if first.is_none() {
        return earlier(conn, account, key).await;
    }
    let Incoming { content, parsed } = job.message.as_ref();
    let placed = place(conn, account, locked, key, content, parsed, &plan.targets).await?;
    let mut follow_ups = Vec::with_capacity(plan.follow_ups.len());
    for follow_up in &plan.follow_ups {
        // Vacation's memory is written here, under its row's lock: of two deliveries from one sender at
        // once, which both found no memory when they planned, only the first answers.
        if let Some(record) = &follow_up.record
            && !sieve::remember_vacation(conn, account, record).await?
        {
            tracing::info!(account_id = account.get(), "vacation answered this sender meanwhile; no second reply");
            continue;
        }
        let seq = follow_ups.len() as i32;
        sqlx::query(
            "INSERT INTO delivery_follow_ups (queue_id, recipient, account_id, seq, kind, mail_from, rcpt_to, content)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(key.0)
        .bind(key.1)
        .bind(account.get())
        .bind(seq)
        .bind(follow_up.kind.column())
        .bind(&follow_up.mail_from)
        .bind(&follow_up.rcpt_to)
        .bind(&follow_up.content)
        .execute(&mut *conn)
        .await?;
        follow_ups.push(StoredFollowUp { account, seq, follow_up: FollowUp { record: None, ..follow_up.clone() } });
    }
    Ok(Delivered { placed, follow_ups, rejection: plan.rejection.clone(), duplicate: false })
}

/// Stores the message once and gives it an entry in each target (the batch locked them all, in name
/// order, as a move locks its two), the quota checked once for the octets and every entry. A target that
/// is gone by now (deleted since the plan was made) is replaced by INBOX.
async fn place(
    conn: &mut PgConnection,
    account: AccountId,
    batch: &[Locked],
    (queue_id, recipient): (&str, &str),
    content: &[u8],
    parsed: &Parsed,
    targets: &[Target],
) -> Result<Vec<Placed>, MailboxError> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let mut sorted: Vec<&Target> = targets.iter().collect();
    sorted.sort_by(|a, b| a.mailbox.cmp(&b.mailbox));
    let find = |name: &MailboxName| batch.iter().find(|m| &m.name == name);
    let mut locked: Vec<(&Locked, &[String])> = Vec::new();
    let mut lost = Vec::new();
    for target in sorted {
        match find(&target.mailbox) {
            Some(mailbox) => locked.push((mailbox, &target.flags)),
            None if !target.mailbox.is_inbox() => lost.push(&target.flags),
            None => return Err(mailboxes::not_found(&target.mailbox)),
        }
    }
    if !lost.is_empty() && !locked.iter().any(|(m, _)| m.name.is_inbox()) {
        tracing::warn!(account_id = account.get(), "a Sieve target mailbox vanished; the message goes to INBOX");
        let inbox = MailboxName::inbox();
        let mailbox = find(&inbox).ok_or_else(|| mailboxes::not_found(&inbox))?;
        locked.push((mailbox, lost[0]));
    }
    let entries = locked.len() as i64;
    quota::check(conn, account, entries, entries * content.len() as i64).await?;
    let message_id = messages::insert_message(conn, account, content, parsed, None).await?;
    let mut placed = Vec::with_capacity(locked.len());
    for (mailbox, flags) in &locked {
        let here = messages::add_entry(conn, mailbox, message_id, flags).await?;
        sqlx::query("INSERT INTO deliveries (queue_id, recipient, mailbox_id, uid) VALUES ($1, $2, $3, $4)")
            .bind(queue_id)
            .bind(recipient)
            .bind(mailbox.id.get())
            .bind(i64::from(here.uid))
            .execute(&mut *conn)
            .await?;
        placed.push(here);
    }
    Ok(placed)
}

#[derive(sqlx::FromRow)]
struct EarlierPlacement {
    name: String,
    uidvalidity: i64,
    uid: i64,
    highestmodseq: i64,
}

#[derive(sqlx::FromRow)]
struct FollowUpRow {
    seq: i32,
    kind: String,
    mail_from: String,
    rcpt_to: String,
    content: Vec<u8>,
}

/// What an earlier call did: its placements, its follow-ups not yet queued, its rejection.
async fn earlier(
    conn: &mut PgConnection,
    account: AccountId,
    (queue_id, recipient): (&str, &str),
) -> Result<Delivered, MailboxError> {
    let rows: Vec<EarlierPlacement> = sqlx::query_as(
        "SELECT m.name, m.uidvalidity, d.uid, m.highestmodseq FROM deliveries d JOIN mailboxes m ON m.id = d.mailbox_id
          WHERE d.queue_id = $1 AND d.recipient = $2 AND m.account_id = $3 ORDER BY m.name",
    )
    .bind(queue_id)
    .bind(recipient)
    .bind(account.get())
    .fetch_all(&mut *conn)
    .await?;
    let mut placed = Vec::with_capacity(rows.len());
    for row in rows {
        let mailbox = row.name.parse().map_err(|e| MailboxError::bad_mailbox_name(&row.name, e))?;
        placed.push(Placed {
            mailbox,
            uidvalidity: row.uidvalidity as u32,
            uid: uid_from_column(row.uid)?,
            modseq: row.highestmodseq,
            duplicate: true,
        });
    }
    let rejection: Option<String> = sqlx::query_scalar(
        "SELECT rejection FROM delivery_runs WHERE queue_id = $1 AND recipient = $2 AND account_id = $3",
    )
    .bind(queue_id)
    .bind(recipient)
    .bind(account.get())
    .fetch_optional(&mut *conn)
    .await?
    .flatten();
    let rows: Vec<FollowUpRow> = sqlx::query_as(
        "SELECT seq, kind, mail_from, rcpt_to, content FROM delivery_follow_ups
          WHERE queue_id = $1 AND recipient = $2 AND account_id = $3 ORDER BY seq",
    )
    .bind(queue_id)
    .bind(recipient)
    .bind(account.get())
    .fetch_all(&mut *conn)
    .await?;
    let follow_ups = rows
        .into_iter()
        .map(|row| StoredFollowUp {
            account,
            seq: row.seq,
            follow_up: FollowUp {
                kind: if row.kind == "vacation" { FollowUpKind::Vacation } else { FollowUpKind::Redirect },
                mail_from: row.mail_from,
                rcpt_to: row.rcpt_to,
                content: row.content,
                record: None,
            },
        })
        .collect();
    Ok(Delivered { placed, follow_ups, rejection, duplicate: true })
}

/// The relay queued every follow-up of (queue id, recipient): they are done.
pub async fn follow_ups_queued(pool: &PgPool, queue_id: &str, recipient: &str) -> Result<u64, MailboxError> {
    let done = sqlx::query("DELETE FROM delivery_follow_ups WHERE queue_id = $1 AND recipient = $2")
        .bind(queue_id)
        .bind(recipient)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
