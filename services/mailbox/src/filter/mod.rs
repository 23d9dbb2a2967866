//! Sieve at delivery: for one account, its active script and then its VacationResponse (as a generated
//! vacation-only script, `vacation`) are run on the message, and their outcome becomes a delivery
//! [`Plan`]: mailboxes with flags, follow-up messages for the relay to queue (redirects carrying our loop
//! marker, vacation replies), vacation's memory, a rejection. The plan is carried out by
//! `store::delivery` in one transaction.
//!
//! **A script never loses mail.** A stored script that no longer parses, a runtime error, a limit, a
//! `fileinto` into a mailbox that does not exist (without `:create`) or cannot be named, and a redirect
//! that would loop all end in a keep into INBOX, logged with the account and counted in
//! `mailbus_mailbox_sieve_errors_total` by kind.
//!
//! Parsed scripts are cached per account and `updated_at`, so a script is parsed once per change.

mod vacation;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use mailbus_address::{AccountId, MailboxName};
use mailbus_sieve::{Action, Envelope, Environment, Input, Limits, Outcome, ParseError, Script, VacationRecord};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sqlx::PgPool;

use crate::error::MailboxError;
use crate::flags;
use crate::store::delivery::{FollowUp, FollowUpKind, Plan, Target};
use crate::store::{mailboxes, sieve};

/// The header field a redirect adds, naming the account that redirected; an account never redirects a
/// message that already names it (RFC 5228 §4.2 asks implementations to prevent loops).
pub const LOOP_MARKER: &str = "X-Mailbus-Loop";

/// Parsed scripts kept at most; past it the cache starts over (a server with more active scripts than
/// this parses some of them again, nothing worse).
const CACHE_ENTRIES: usize = 10_000;

type Parsed = Arc<Result<Script, ParseError>>;

/// Each account's parsed active script, with the `updated_at` it was parsed at.
type Cache = Arc<Mutex<HashMap<AccountId, (DateTime<Utc>, Parsed)>>>;

/// The delivery's facts a script sees.
pub struct Delivery<'a> {
    pub queue_id: &'a str,
    /// RCPT TO as given, `+detail` included.
    pub recipient: &'a str,
    /// MAIL FROM; empty for the null reverse-path.
    pub mail_from: &'a str,
    pub content: &'a [u8],
}

#[derive(Clone)]
pub struct Filter {
    limits: Arc<Limits>,
    cache: Cache,
    errors: Family<Vec<(String, String)>, Counter>,
}

impl Filter {
    pub fn new(limits: Limits, errors: Family<Vec<(String, String)>, Counter>) -> Self {
        for kind in ErrorKind::ALL {
            drop(errors.get_or_create(&kind.labels()));
        }
        Filter { limits: Arc::new(limits), cache: Arc::default(), errors }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Where the message goes in `account` and what else is to be done. Without an active script or a
    /// vacation in effect this is INBOX, as before Sieve.
    pub async fn plan(&self, pool: &PgPool, account: AccountId, delivery: &Delivery<'_>) -> Result<Plan, MailboxError> {
        let now = Utc::now();
        let (script, vacation) = sieve::filters(pool, account).await?;
        let vacation = vacation.filter(|row| row.in_effect(now));
        if script.is_none() && vacation.is_none() {
            return Ok(Plan::inbox());
        }
        let Some(address) = sieve::account_address(pool, account).await? else {
            return Ok(Plan::inbox());
        };
        let known = Known {
            mailboxes: sieve::mailbox_names(pool, account).await?.into_iter().collect(),
            sender: delivery.mail_from.trim().to_ascii_lowercase(),
            replied: sieve::vacation_handles(pool, account, &delivery.mail_from.trim().to_ascii_lowercase())
                .await?
                .into_iter()
                .collect(),
        };
        let parsed = script.map(|script| self.parsed(account, script));
        let vacation_source = vacation.as_ref().map(vacation::script);
        let (limits, content) = (self.limits.clone(), delivery.content.to_vec());
        let (mail_from, recipient) = (delivery.mail_from.to_owned(), delivery.recipient.to_owned());
        let runs = tokio::task::spawn_blocking(move || {
            let envelope = Envelope {
                from: Some(mail_from.as_str()).filter(|f| !f.is_empty()),
                to: &recipient,
                account: &address,
            };
            let input = Input { message: &content, envelope, now: now.fixed_offset(), environment: &known };
            let own = parsed.map(|p| match p.as_ref() {
                Ok(script) => Ok(mailbus_sieve::execute(script, &input, &limits)),
                Err(error) => Err(error.clone()),
            });
            let own_vacation = |o: &Option<Result<Outcome, ParseError>>| {
                matches!(o, Some(Ok(o)) if o.actions.iter().any(|a| matches!(a, Action::Vacation(_))))
            };
            // The generated vacation answers only mail that is kept somewhere and not answered already.
            let answered = own_vacation(&own) || stored_nowhere(&own);
            let generated = vacation_source.filter(|_| !answered).map(|source| {
                mailbus_sieve::parse(&source, &limits).map(|script| mailbus_sieve::execute(&script, &input, &limits))
            });
            (own, generated, address)
        })
        .await
        .map_err(|e| MailboxError::FailedPrecondition(format!("running the Sieve script: {e}")))?;
        let (own, generated, address) = runs;
        let mut builder =
            PlanBuilder { filter: self, pool, account, address: &address, delivery, plan: Plan::default() };
        match own {
            None => builder.keep(Vec::new()),
            Some(Err(error)) => {
                self.count(ErrorKind::Parse);
                let account_id = account.get();
                tracing::error!(account_id, %error, "the active Sieve script does not parse; kept in INBOX");
                builder.keep(Vec::new());
            }
            Some(Ok(outcome)) => builder.outcome(outcome).await?,
        }
        if let Some(generated) = generated {
            builder.vacation_only(generated, now);
        }
        Ok(builder.finish())
    }

    /// The account's script parsed, from the cache when it has not changed since.
    fn parsed(&self, account: AccountId, script: sieve::ActiveScript) -> Parsed {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, parsed)) = cache.get(&account)
            && *at == script.updated_at
        {
            return parsed.clone();
        }
        // A stored script passed this parser when it was put; parsing again guards a change of limits
        // or of the parser. Unlimited size here: the quota was checked when it was stored.
        let limits = Limits { max_script_size: usize::MAX, ..(*self.limits).clone() };
        let parsed = Arc::new(mailbus_sieve::parse(&script.content, &limits));
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(account, (script.updated_at, parsed.clone()));
        parsed
    }

    fn count(&self, kind: ErrorKind) {
        self.errors.get_or_create(&kind.labels()).inc();
    }
}

/// Whether the script's outcome stores the message nowhere (discard, reject, redirect alone).
fn stored_nowhere(own: &Option<Result<Outcome, ParseError>>) -> bool {
    match own {
        Some(Ok(outcome)) => {
            !outcome.actions.iter().any(|a| matches!(a, Action::Keep { .. } | Action::FileInto { .. }))
        }
        _ => false,
    }
}

/// The kinds of `mailbus_mailbox_sieve_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    /// A stored script that does not parse.
    Parse,
    /// A limit or runtime error in the run.
    Runtime,
    /// A fileinto that could not be carried out.
    Fileinto,
    /// A redirect of a message that already passed through this account.
    Loop,
}

impl ErrorKind {
    const ALL: [ErrorKind; 4] = [ErrorKind::Parse, ErrorKind::Runtime, ErrorKind::Fileinto, ErrorKind::Loop];

    fn labels(self) -> Vec<(String, String)> {
        let kind = match self {
            ErrorKind::Parse => "parse",
            ErrorKind::Runtime => "runtime",
            ErrorKind::Fileinto => "fileinto",
            ErrorKind::Loop => "loop",
        };
        vec![("kind".to_owned(), kind.to_owned())]
    }
}

/// What only the store knows, asked before the run: the account's mailboxes and whom vacation answered.
struct Known {
    mailboxes: HashSet<String>,
    sender: String,
    replied: HashSet<String>,
}

impl Environment for Known {
    fn vacation_replied(&self, record: &VacationRecord) -> bool {
        record.sender == self.sender && self.replied.contains(&record.handle)
    }

    fn mailbox_exists(&self, name: &str) -> bool {
        name.parse::<MailboxName>().is_ok_and(|n| self.mailboxes.contains(n.as_str()))
    }
}

/// Turns outcomes into a plan, carrying out `:create` and checking each target on the way.
struct PlanBuilder<'a> {
    filter: &'a Filter,
    pool: &'a PgPool,
    account: AccountId,
    address: &'a str,
    delivery: &'a Delivery<'a>,
    plan: Plan,
}

impl PlanBuilder<'_> {
    async fn outcome(&mut self, outcome: Outcome) -> Result<(), MailboxError> {
        if let Some(error) = &outcome.error {
            self.filter.count(ErrorKind::Runtime);
            tracing::error!(account_id = self.account.get(), %error, "the Sieve script failed; kept in INBOX");
        }
        for action in outcome.actions {
            match action {
                Action::Keep { flags } => self.keep(flags),
                Action::FileInto { mailbox, flags, create } => self.file_into(&mailbox, flags, create).await?,
                Action::Redirect { address, .. } => self.redirect(address),
                Action::Reject { reason, .. } => self.reject(&reason),
                Action::Discard => {}
                Action::Vacation(reply) => self.vacation(reply, Utc::now()),
            }
        }
        Ok(())
    }

    /// Only the vacation replies of the generated VacationResponse script count.
    fn vacation_only(&mut self, outcome: Result<Outcome, ParseError>, now: DateTime<Utc>) {
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                self.filter.count(ErrorKind::Parse);
                tracing::error!(account_id = self.account.get(), %error, "the VacationResponse made no valid script");
                return;
            }
        };
        for action in outcome.actions {
            if let Action::Vacation(reply) = action {
                self.vacation(reply, now);
            }
        }
    }

    fn keep(&mut self, flags: Vec<String>) {
        self.target(MailboxName::inbox(), flags);
    }

    async fn file_into(&mut self, name: &str, flags: Vec<String>, create: bool) -> Result<(), MailboxError> {
        let Ok(mailbox) = name.parse::<MailboxName>() else {
            self.fileinto_failed(name, "not a valid mailbox name");
            self.keep(flags);
            return Ok(());
        };
        if create && !mailbox.is_inbox() {
            match mailboxes::create(self.pool, self.account, &mailbox, "").await {
                Ok(_) | Err(MailboxError::AlreadyExists(_)) => {}
                // A mailbox that cannot be made (a bad name, the account's last mailbox made already)
                // leaves the message in INBOX, as a missing one does.
                Err(
                    MailboxError::InvalidArgument(why)
                    | MailboxError::FailedPrecondition(why)
                    | MailboxError::OverQuota(why),
                ) => {
                    self.fileinto_failed(name, &why);
                    self.keep(flags);
                    return Ok(());
                }
                Err(other) => return Err(other),
            }
        } else if !mailbox.is_inbox() && !sieve::mailbox_exists(self.pool, self.account, &mailbox).await? {
            // RFC 5228 §4.1 leaves it to the implementation; Pigeonhole keeps the message in INBOX.
            self.fileinto_failed(name, "no such mailbox");
            self.keep(flags);
            return Ok(());
        }
        self.target(mailbox, flags);
        Ok(())
    }

    fn fileinto_failed(&self, name: &str, why: &str) {
        self.filter.count(ErrorKind::Fileinto);
        tracing::error!(account_id = self.account.get(), mailbox = %name, %why, "Sieve fileinto failed; kept in INBOX");
    }

    fn redirect(&mut self, to: String) {
        if carries_marker(self.delivery.content, self.address) {
            self.filter.count(ErrorKind::Loop);
            tracing::error!(account_id = self.account.get(), redirect = %to, "Sieve redirect loop; kept in INBOX");
            return self.keep(Vec::new());
        }
        // Postfix's forwarding keeps the envelope sender, so bounces go to whoever wrote the message.
        self.plan.follow_ups.push(FollowUp {
            kind: FollowUpKind::Redirect,
            mail_from: self.delivery.mail_from.to_owned(),
            rcpt_to: to,
            content: format!("{LOOP_MARKER}: {}\r\n", self.address).into_bytes(),
            record: None,
        });
    }

    fn reject(&mut self, reason: &str) {
        // RFC 5429 §2.1: a message from the null sender is not answered; it is discarded.
        if self.delivery.mail_from.is_empty() {
            tracing::info!(account_id = self.account.get(), "Sieve reject of a null-sender message: discarded");
            return;
        }
        let reason: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(400)
            .collect::<String>()
            .trim()
            .to_owned();
        self.plan.rejection = Some(format!("5.7.1 rejected by the recipient's Sieve filter: {reason}"));
    }

    fn vacation(&mut self, reply: mailbus_sieve::VacationReply, now: DateTime<Utc>) {
        let domain = self.address.rsplit_once('@').map_or("localhost", |(_, d)| d);
        let message_id = format!("<{}.{}.vacation@{domain}>", self.delivery.queue_id, self.account.get());
        let content = reply.to_message(&now.to_rfc2822(), &message_id).into_bytes();
        // RFC 5230 §5.1: the reply's envelope sender is the null path, so nothing answers it again.
        self.plan.follow_ups.push(FollowUp {
            kind: FollowUpKind::Vacation,
            mail_from: String::new(),
            rcpt_to: reply.to,
            content,
            record: Some(reply.record),
        });
    }

    /// Adds a mailbox, or the flags to one already planned (a message is stored once per mailbox).
    fn target(&mut self, mailbox: MailboxName, given: Vec<String>) {
        let flags = self.storable(given);
        match self.plan.targets.iter_mut().find(|t| t.mailbox == mailbox) {
            Some(target) => {
                let merged: Vec<String> = target.flags.iter().cloned().chain(flags).collect();
                target.flags = flags::canonical(&merged).unwrap_or_default();
            }
            None => self.plan.targets.push(Target { mailbox, flags }),
        }
    }

    /// The flags an entry can hold; any other (`\Recent`, a keyword with a space) is left out, logged.
    fn storable(&self, given: Vec<String>) -> Vec<String> {
        let kept: Vec<String> = given
            .into_iter()
            .filter(|flag| {
                let ok = flags::canonical(std::slice::from_ref(flag)).is_ok();
                if !ok {
                    tracing::warn!(account_id = self.account.get(), %flag, "Sieve flag cannot be stored; left out");
                }
                ok
            })
            .collect();
        flags::canonical(&kept).unwrap_or_default()
    }

    /// The plan; one that stores nowhere and rejects nothing is a discard.
    fn finish(self) -> Plan {
        self.plan
    }
}

/// Whether the message's header already names `address` in our loop marker.
fn carries_marker(content: &[u8], address: &str) -> bool {
    let header_end = content.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(content.len());
    let header = String::from_utf8_lossy(&content[..header_end]);
    header.split("\r\n").filter_map(|line| line.split_once(':')).any(|(name, value)| {
        name.trim().eq_ignore_ascii_case(LOOP_MARKER) && value.trim().eq_ignore_ascii_case(address)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_marker_is_found_only_in_the_header_and_only_for_its_address() {
        let message =
            b"From: a@x\r\nX-Mailbus-Loop: Alice@Example.org\r\nSubject: s\r\n\r\nX-Mailbus-Loop: bob@example.org\r\n";
        assert!(carries_marker(message, "alice@example.org"));
        assert!(!carries_marker(message, "bob@example.org"), "a body line is not a header field");
        assert!(!carries_marker(b"Subject: s\r\n\r\nbody", "alice@example.org"));
    }
}
