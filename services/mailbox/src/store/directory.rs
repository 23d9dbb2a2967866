//! The directory's tables: hosted domains, accounts with their argon2id credentials and quotas, aliases
//! (several targets; `@domain` catch-alls), and where an address leads.

use std::sync::LazyLock;

use mailbus_address::{AccountId, Domain, EmailAddress, MailboxName, RecipientDelimiter};
use sqlx::{AssertSqlSafe, PgPool};

use crate::error::MailboxError;
use crate::password::{Hasher, Password};
use crate::store::mailboxes;

/// Where an address leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The enabled accounts it leads to, in id order, and the addresses in other domains an alias
    /// forwards it to, sorted; never both empty.
    Local {
        accounts: Vec<AccountId>,
        forwards: Vec<String>,
    },
    UnknownUser,
    NotLocal,
}

/// An account whose credentials were accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub id: AccountId,
    /// The lookup form of its address.
    pub address: String,
    /// Moves with every new password or address (`credential_epoch`): what was issued for an older one
    /// proves nothing any more.
    pub credential_epoch: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DomainRow {
    pub name: String,
    pub created_unix: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountRow {
    #[sqlx(try_from = "i64")]
    pub id: AccountId,
    pub address: String,
    pub disabled: bool,
    pub created_unix: i64,
    pub message_count: i64,
    pub storage_bytes: i64,
    pub quota_bytes: Option<i64>,
    pub quota_messages: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AliasRow {
    pub address: String,
    pub targets: Vec<String>,
}

/// What an operator may change about an account; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct AccountChange {
    pub password: Option<Password>,
    pub disabled: Option<bool>,
    /// `Some(None)` removes the limit.
    pub quota_bytes: Option<Option<i64>>,
    pub quota_messages: Option<Option<i64>>,
}

/// The mailboxes every account starts with: INBOX and the RFC 6154 SPECIAL-USE set.
const INITIAL_MAILBOXES: &[(&str, Option<&str>)] = &[
    ("INBOX", None),
    ("Drafts", Some("\\Drafts")),
    ("Sent", Some("\\Sent")),
    ("Trash", Some("\\Trash")),
    ("Junk", Some("\\Junk")),
    ("Archive", Some("\\Archive")),
];

/// The accounts an address leads to, in the order Postfix's virtual maps would try them: the account with
/// that address, else the alias with that address; with plus-addressing, then the account and the alias
/// of its base ($3, `alice@` for `alice+lists@`; $2 again when it has none); else the domain's catch-all
/// alias. A disabled account stops the search (its address does not fall through to the catch-all) but
/// receives nothing. An alias's targets in other domains come back as `forwards`.
const RESOLVE: &str = "
    SELECT array_remove(array_agg(target ORDER BY target), NULL) AS accounts,
           array_remove(array_agg(forward ORDER BY forward), NULL) AS forwards
      FROM (SELECT CASE WHEN address = $2 THEN 1 ELSE 3 END AS rank, CASE WHEN NOT disabled THEN id END AS target,
                   NULL::text AS forward
              FROM accounts WHERE address IN ($2, $3)
            UNION ALL
            SELECT CASE WHEN al.address = $2 THEN 2 WHEN al.address = $3 THEN 4 ELSE 5 END,
                   CASE WHEN NOT a.disabled THEN a.id END, t.address
              FROM aliases al
              JOIN alias_targets t ON t.alias_id = al.id
              LEFT JOIN accounts a ON a.id = t.account_id
             WHERE al.address IN ($2, $3, '@' || $1)) candidates
     GROUP BY rank
     ORDER BY rank
     LIMIT 1";

/// Where `address` leads. With plus-addressing on, an address that is no account or alias itself is
/// looked up by its base (`alice+lists@` as `alice@`), so the detail never makes an address space of its
/// own: the base's aliases and quota apply, and the caller keeps the address as given for the detail.
pub async fn resolve(
    pool: &PgPool,
    address: &EmailAddress,
    delimiter: &RecipientDelimiter,
) -> Result<Resolution, MailboxError> {
    static HOSTED_AND_RESOLVED: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT d.hosted, r.accounts, r.forwards
               FROM (SELECT EXISTS (SELECT FROM domains WHERE name = $1) AS hosted) d
               LEFT JOIN ({RESOLVE}) r ON d.hosted"
        )
    });
    let domain = address.domain().as_str();
    let key = address.lookup_key();
    let base = delimiter.base(address).map_or_else(|| key.clone(), |base| base.lookup_key());
    let found: Targets =
        sqlx::query_as(HOSTED_AND_RESOLVED.as_str()).bind(domain).bind(&key).bind(&base).fetch_one(pool).await?;
    Ok(match found {
        Targets { hosted: false, .. } => Resolution::NotLocal,
        Targets { accounts: Some(accounts), forwards: Some(forwards), .. }
            if !accounts.is_empty() || !forwards.is_empty() =>
        {
            Resolution::Local { accounts: accounts.into_iter().map(AccountId::from).collect(), forwards }
        }
        _ => Resolution::UnknownUser,
    })
}

/// Whether the domain is hosted, and what `RESOLVE` found at the first rank that has anything (absent:
/// nothing at any rank, or a domain not hosted).
#[derive(sqlx::FromRow)]
struct Targets {
    hosted: bool,
    accounts: Option<Vec<i64>>,
    forwards: Option<Vec<String>>,
}

#[derive(sqlx::FromRow)]
struct Credentials {
    #[sqlx(try_from = "i64")]
    id: AccountId,
    address: String,
    password_hash: String,
    credential_epoch: i64,
}

/// Checks credentials. `None` for an unknown user, a disabled account or a wrong password alike.
pub async fn authenticate(
    pool: &PgPool,
    hasher: &Hasher,
    username: &str,
    password: Password,
) -> Result<Option<Authenticated>, MailboxError> {
    let account: Option<Credentials> =
        match username.parse::<EmailAddress>() {
            Ok(address) => sqlx::query_as(
                "SELECT id, address, password_hash, credential_epoch FROM accounts WHERE address = $1 AND NOT disabled",
            )
            .bind(address.lookup_key())
            .fetch_optional(pool)
            .await?,
            Err(_) => None,
        };
    let stored = account.as_ref().map(|a| a.password_hash.clone());
    let ok = hasher.verify(password, stored).await?;
    Ok(account.filter(|_| ok).map(|a| Authenticated {
        id: a.id,
        address: a.address,
        credential_epoch: a.credential_epoch,
    }))
}

/// An account's credential epoch; `None` for an account that is gone.
pub async fn credential_epoch(pool: &PgPool, account: AccountId) -> Result<Option<i64>, MailboxError> {
    let row = sqlx::query_scalar("SELECT credential_epoch FROM accounts WHERE id = $1")
        .bind(account.get())
        .fetch_optional(pool)
        .await?;
    Ok(row)
}

/// Whether `account` may send as `address`: its own address, or an alias that leads to it. A catch-all
/// does not count: it would let one account speak for the whole domain.
///
/// With plus-addressing on, an address with a detail is the account's when its base is (`alice+shop@`
/// is alice's if `alice@` is), as Postfix's sender login maps are looked up without the extension; the
/// address itself is tried first, so an account or alias that exists whole keeps its own owner.
pub async fn sender_allowed(
    pool: &PgPool,
    account: AccountId,
    address: &EmailAddress,
    delimiter: &RecipientDelimiter,
) -> Result<bool, MailboxError> {
    let key = address.lookup_key();
    let exists_whole: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM accounts WHERE address = $1 UNION ALL SELECT 1 FROM aliases WHERE address = $1 LIMIT 1",
    )
    .bind(&key)
    .fetch_optional(pool)
    .await?;
    let key = match delimiter.base(address) {
        Some(base) if exists_whole.is_none() => base.lookup_key(),
        _ => key,
    };
    let allowed: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM accounts WHERE id = $1 AND address = $2 AND NOT disabled
         UNION ALL
         SELECT 1 FROM aliases al JOIN alias_targets t ON t.alias_id = al.id
          WHERE t.account_id = $1 AND al.address = $2
         LIMIT 1",
    )
    .bind(account.get())
    .bind(key)
    .fetch_optional(pool)
    .await?;
    Ok(allowed.is_some())
}

pub async fn add_domain(pool: &PgPool, name: &str) -> Result<DomainRow, MailboxError> {
    let domain: Domain = name.parse().map_err(|e| MailboxError::InvalidArgument(format!("domain {name:?}: {e}")))?;
    sqlx::query_as(
        "INSERT INTO domains (name) VALUES ($1) RETURNING name, extract(epoch FROM created_at)::bigint AS created_unix",
    )
    .bind(domain.as_str())
    .fetch_one(pool)
    .await
    .map_err(|e| match MailboxError::from(e) {
        MailboxError::AlreadyExists(_) => MailboxError::AlreadyExists(format!("domain {domain}")),
        other => other,
    })
}

pub async fn list_domains(pool: &PgPool) -> Result<Vec<DomainRow>, MailboxError> {
    let rows = sqlx::query_as(
        "SELECT name, extract(epoch FROM created_at)::bigint AS created_unix FROM domains ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Creates an account and its initial mailboxes in one transaction.
pub async fn add_account(
    pool: &PgPool,
    hasher: &Hasher,
    address: &str,
    password: Password,
) -> Result<AccountRow, MailboxError> {
    let address: EmailAddress =
        address.parse().map_err(|e| MailboxError::InvalidArgument(format!("address {address:?}: {e}")))?;
    let hash = hasher.hash(password).await?;
    let mut tx = pool.begin().await?;
    let domain_id: Option<i64> = sqlx::query_scalar("SELECT id FROM domains WHERE name = $1")
        .bind(address.domain().as_str())
        .fetch_optional(&mut *tx)
        .await?;
    let domain_id = domain_id
        .ok_or_else(|| MailboxError::FailedPrecondition(format!("domain {} is not hosted here", address.domain())))?;
    // An address is an account's or an alias's, never both (see `add_alias`).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(address.lookup_key()).execute(&mut *tx).await?;
    let alias: Option<i64> = sqlx::query_scalar("SELECT id FROM aliases WHERE address = $1")
        .bind(address.lookup_key())
        .fetch_optional(&mut *tx)
        .await?;
    if alias.is_some() {
        return Err(MailboxError::AlreadyExists(format!("alias {address}")));
    }
    let account: AccountRow = sqlx::query_as(AssertSqlSafe(format!(
        "INSERT INTO accounts AS a (domain_id, address, password_hash) VALUES ($1, $2, $3)
         RETURNING {ACCOUNT_COLUMNS}"
    )))
    .bind(domain_id)
    .bind(address.lookup_key())
    .bind(hash)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match MailboxError::from(e) {
        MailboxError::AlreadyExists(_) => MailboxError::AlreadyExists(format!("account {address}")),
        other => other,
    })?;
    create_initial_mailboxes(&mut tx, account.id).await?;
    tx.commit().await?;
    Ok(account)
}

/// INBOX and the SPECIAL-USE set, each subscribed.
async fn create_initial_mailboxes(conn: &mut sqlx::PgConnection, account: AccountId) -> Result<(), MailboxError> {
    for (name, special_use) in INITIAL_MAILBOXES {
        let name: MailboxName = name.parse().map_err(|e| MailboxError::bad_mailbox_name(name, e))?;
        mailboxes::insert(conn, account, &name, *special_use).await?;
        sqlx::query("INSERT INTO subscriptions (account_id, name) VALUES ($1, $2)")
            .bind(account.get())
            .bind(name.as_str())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The columns of an [`AccountRow`], from `accounts a`.
const ACCOUNT_COLUMNS: &str = "a.id, a.address, a.disabled, extract(epoch FROM a.created_at)::bigint AS created_unix,
    a.used_messages AS message_count, a.used_bytes AS storage_bytes, a.quota_bytes, a.quota_messages";

pub async fn list_accounts(pool: &PgPool, domain: Option<&str>) -> Result<Vec<AccountRow>, MailboxError> {
    let rows: Vec<AccountRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts a JOIN domains d ON d.id = a.domain_id
          WHERE $1::text IS NULL OR d.name = $1
          ORDER BY a.address"
    )))
    .bind(domain.map(str::to_lowercase))
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

fn parse_address(address: &str) -> Result<EmailAddress, MailboxError> {
    address.parse().map_err(|e| MailboxError::InvalidArgument(format!("address {address:?}: {e}")))
}

fn no_account(address: &EmailAddress) -> MailboxError {
    MailboxError::NotFound(format!("no account {address}"))
}

pub async fn update_account(
    pool: &PgPool,
    hasher: &Hasher,
    address: &str,
    change: AccountChange,
) -> Result<AccountRow, MailboxError> {
    let address = parse_address(address)?;
    let hash = match change.password {
        Some(password) => Some(hasher.hash(password).await?),
        None => None,
    };
    // For a quota, the first parameter says whether to change it and the second is the new value.
    let row: Option<AccountRow> = sqlx::query_as(AssertSqlSafe(format!(
        "UPDATE accounts a
            SET password_hash = coalesce($2, password_hash),
                credential_epoch = credential_epoch + CASE WHEN $2 IS NULL THEN 0 ELSE 1 END,
                disabled = coalesce($3, disabled),
                quota_bytes = CASE WHEN $4 THEN $5 ELSE quota_bytes END,
                quota_messages = CASE WHEN $6 THEN $7 ELSE quota_messages END
          WHERE address = $1
      RETURNING {ACCOUNT_COLUMNS}"
    )))
    .bind(address.lookup_key())
    .bind(hash)
    .bind(change.disabled)
    .bind(change.quota_bytes.is_some())
    .bind(change.quota_bytes.flatten())
    .bind(change.quota_messages.is_some())
    .bind(change.quota_messages.flatten())
    .fetch_optional(pool)
    .await?;
    row.ok_or_else(|| no_account(&address))
}

/// Deletes an account, its mailboxes and messages, and its place in aliases; an alias left with no target
/// goes too.
pub async fn remove_account(pool: &PgPool, address: &str) -> Result<(), MailboxError> {
    let address = parse_address(address)?;
    let mut tx = pool.begin().await?;
    // Mailbox rows first, in name order, as every message change locks them before the accounts row.
    sqlx::query(
        "SELECT b.id FROM mailboxes b JOIN accounts a ON a.id = b.account_id
          WHERE a.address = $1 ORDER BY b.name FOR UPDATE OF b",
    )
    .bind(address.lookup_key())
    .execute(&mut *tx)
    .await?;
    let removed = sqlx::query("DELETE FROM accounts WHERE address = $1")
        .bind(address.lookup_key())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(no_account(&address));
    }
    delete_empty_aliases(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Gives an account a new address, keeping its id and so everything keyed by it: mailboxes, messages,
/// flags, UIDs, UIDVALIDITY, quota, Sieve scripts, and its place in aliases. Its JMAP identity for the
/// old address follows it.
pub async fn rename_account(pool: &PgPool, from: &str, to: &str) -> Result<AccountRow, MailboxError> {
    let from = parse_address(from)?;
    let to = parse_address(to)?;
    let mut tx = pool.begin().await?;
    let domain_id: Option<i64> = sqlx::query_scalar("SELECT id FROM domains WHERE name = $1")
        .bind(to.domain().as_str())
        .fetch_optional(&mut *tx)
        .await?;
    let domain_id = domain_id
        .ok_or_else(|| MailboxError::FailedPrecondition(format!("domain {} is not hosted here", to.domain())))?;
    // An address is an account's or an alias's, never both: the same lock as `add_account` and `add_alias`.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(to.lookup_key()).execute(&mut *tx).await?;
    let alias: Option<i64> = sqlx::query_scalar("SELECT id FROM aliases WHERE address = $1")
        .bind(to.lookup_key())
        .fetch_optional(&mut *tx)
        .await?;
    if alias.is_some() {
        return Err(MailboxError::AlreadyExists(format!("alias {to}")));
    }
    let row: Option<AccountRow> = sqlx::query_as(AssertSqlSafe(format!(
        "UPDATE accounts a SET address = $2, domain_id = $3, credential_epoch = credential_epoch + 1
          WHERE address = $1 RETURNING {ACCOUNT_COLUMNS}"
    )))
    .bind(from.lookup_key())
    .bind(to.lookup_key())
    .bind(domain_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| match MailboxError::from(e) {
        MailboxError::AlreadyExists(_) => MailboxError::AlreadyExists(format!("account {to}")),
        other => other,
    })?;
    let row = row.ok_or_else(|| no_account(&from))?;
    sqlx::query("UPDATE identities SET email = $3 WHERE account_id = $1 AND lower(email) = $2")
        .bind(row.id.get())
        .bind(from.lookup_key())
        .bind(to.lookup_key())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// What removing a domain took with it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DomainRemoval {
    pub accounts: u64,
    pub aliases: u64,
}

/// Stops hosting a domain, with its DKIM keys. While it holds accounts or aliases that is refused, unless
/// `force`: then its accounts go with all their mail (and out of other domains' aliases), and its aliases.
pub async fn remove_domain(pool: &PgPool, name: &str, force: bool) -> Result<DomainRemoval, MailboxError> {
    let domain: Domain = name.parse().map_err(|e| MailboxError::InvalidArgument(format!("domain {name:?}: {e}")))?;
    let mut tx = pool.begin().await?;
    let id: Option<i64> = sqlx::query_scalar("SELECT id FROM domains WHERE name = $1 FOR UPDATE")
        .bind(domain.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    let id = id.ok_or_else(|| MailboxError::NotFound(format!("no domain {domain}")))?;
    let accounts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM accounts WHERE domain_id = $1").bind(id).fetch_one(&mut *tx).await?;
    let aliases: i64 =
        sqlx::query_scalar("SELECT count(*) FROM aliases WHERE domain_id = $1").bind(id).fetch_one(&mut *tx).await?;
    if (accounts > 0 || aliases > 0) && !force {
        return Err(MailboxError::FailedPrecondition(format!(
            "domain {domain} holds {accounts} account(s) and {aliases} alias(es); remove them first, or force"
        )));
    }
    // Mailbox rows first, in name order, as every message change locks them before the accounts row.
    sqlx::query(
        "SELECT b.id FROM mailboxes b JOIN accounts a ON a.id = b.account_id
          WHERE a.domain_id = $1 ORDER BY a.id, b.name FOR UPDATE OF b",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM accounts WHERE domain_id = $1").bind(id).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM domains WHERE id = $1").bind(id).execute(&mut *tx).await?;
    delete_empty_aliases(&mut tx).await?;
    tx.commit().await?;
    Ok(DomainRemoval { accounts: accounts as u64, aliases: aliases as u64 })
}

async fn delete_empty_aliases(conn: &mut sqlx::PgConnection) -> Result<(), MailboxError> {
    sqlx::query("DELETE FROM aliases al WHERE NOT EXISTS (SELECT 1 FROM alias_targets t WHERE t.alias_id = al.id)")
        .execute(conn)
        .await?;
    Ok(())
}

/// An alias's lookup form: an address, or "@domain" for a catch-all; and its domain.
fn alias_key(address: &str) -> Result<(String, String), MailboxError> {
    match address.strip_prefix('@') {
        Some(domain) => {
            let domain: Domain =
                domain.parse().map_err(|e| MailboxError::InvalidArgument(format!("domain {domain:?}: {e}")))?;
            Ok((format!("@{domain}"), domain.to_string()))
        }
        None => {
            let address = parse_address(address)?;
            Ok((address.lookup_key(), address.domain().to_string()))
        }
    }
}

/// An account named as an alias's target.
#[derive(sqlx::FromRow)]
struct AccountRef {
    id: i64,
    address: String,
}

/// Creates an alias or adds targets to it. Its domain must be hosted here, its address must not be an
/// account's, and every target must be an account here or an address in a domain not hosted here (to
/// which the relay forwards).
pub async fn add_alias(pool: &PgPool, address: &str, targets: &[String]) -> Result<AliasRow, MailboxError> {
    if targets.is_empty() {
        return Err(MailboxError::InvalidArgument("an alias needs at least one target".into()));
    }
    let (key, domain) = alias_key(address)?;
    let targets: Vec<EmailAddress> = targets.iter().map(|t| parse_address(t)).collect::<Result<_, _>>()?;
    let mut tx = pool.begin().await?;
    let target_domains: Vec<String> = targets.iter().map(|t| t.domain().to_string()).collect();
    let hosted: Vec<String> = sqlx::query_scalar("SELECT name FROM domains WHERE name = ANY($1)")
        .bind(&target_domains)
        .fetch_all(&mut *tx)
        .await?;
    let (local, remote): (Vec<_>, Vec<_>) = targets.iter().partition(|t| hosted.contains(&t.domain().to_string()));
    let targets: Vec<String> = local.iter().map(|t| t.lookup_key()).collect();
    let forwards: Vec<String> = remote.iter().map(|t| t.to_string()).collect();
    let domain_id: i64 = sqlx::query_scalar("SELECT id FROM domains WHERE name = $1")
        .bind(&domain)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| MailboxError::FailedPrecondition(format!("domain {domain} is not hosted here")))?;
    // Serialises alias creation with account creation for this address, so the two cannot cross.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(&key).execute(&mut *tx).await?;
    let taken: Option<i64> =
        sqlx::query_scalar("SELECT id FROM accounts WHERE address = $1").bind(&key).fetch_optional(&mut *tx).await?;
    if taken.is_some() {
        return Err(MailboxError::AlreadyExists(format!("account {key}")));
    }
    let found: Vec<AccountRef> = sqlx::query_as("SELECT id, address FROM accounts WHERE address = ANY($1)")
        .bind(&targets)
        .fetch_all(&mut *tx)
        .await?;
    if let Some(missing) = targets.iter().find(|t| !found.iter().any(|a| a.address == **t)) {
        return Err(MailboxError::NotFound(format!("no account {missing}")));
    }
    sqlx::query("INSERT INTO aliases (domain_id, address) VALUES ($1, $2) ON CONFLICT (address) DO NOTHING")
        .bind(domain_id)
        .bind(&key)
        .execute(&mut *tx)
        .await?;
    let ids: Vec<i64> = found.iter().map(|a| a.id).collect();
    sqlx::query(
        "INSERT INTO alias_targets (alias_id, account_id, address)
         SELECT al.id, t, NULL FROM aliases al, unnest($2::bigint[]) t WHERE al.address = $1
         UNION ALL
         SELECT al.id, NULL, f FROM aliases al, unnest($3::text[]) f WHERE al.address = $1
         ON CONFLICT DO NOTHING",
    )
    .bind(&key)
    .bind(&ids)
    .bind(&forwards)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut aliases = list_aliases_where(pool, "al.address = $1", &key).await?;
    aliases.pop().ok_or_else(|| MailboxError::NotFound(format!("alias {key}")))
}

/// Removes some targets of an alias, or (with none named) the whole alias. An alias left with no target
/// is removed.
pub async fn remove_alias(pool: &PgPool, address: &str, targets: &[String]) -> Result<(), MailboxError> {
    let (key, _) = alias_key(address)?;
    let targets: Vec<String> =
        targets.iter().map(|t| parse_address(t).map(|a| a.lookup_key())).collect::<Result<_, _>>()?;
    let mut tx = pool.begin().await?;
    let alias_id: i64 = sqlx::query_scalar("SELECT id FROM aliases WHERE address = $1 FOR UPDATE")
        .bind(&key)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| MailboxError::NotFound(format!("no alias {key}")))?;
    if targets.is_empty() {
        sqlx::query("DELETE FROM aliases WHERE id = $1").bind(alias_id).execute(&mut *tx).await?;
    } else {
        let removed = sqlx::query(
            "DELETE FROM alias_targets t
              WHERE t.alias_id = $1
                AND (lower(t.address) = ANY($2)
                     OR t.account_id IN (SELECT id FROM accounts WHERE address = ANY($2)))",
        )
        .bind(alias_id)
        .bind(&targets)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if removed != targets.len() as u64 {
            return Err(MailboxError::NotFound(format!("alias {key} does not lead to all of {}", targets.join(", "))));
        }
        delete_empty_aliases(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn list_aliases(pool: &PgPool, domain: Option<&str>) -> Result<Vec<AliasRow>, MailboxError> {
    match domain {
        Some(domain) => list_aliases_where(pool, "d.name = $1", &domain.to_lowercase()).await,
        None => list_aliases_where(pool, "$1 = ''", "").await,
    }
}

async fn list_aliases_where(pool: &PgPool, condition: &str, value: &str) -> Result<Vec<AliasRow>, MailboxError> {
    let rows: Vec<AliasRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT al.address, array_agg(coalesce(a.address, t.address) ORDER BY coalesce(a.address, t.address)) AS targets
           FROM aliases al
           JOIN domains d ON d.id = al.domain_id
           JOIN alias_targets t ON t.alias_id = al.id
           LEFT JOIN accounts a ON a.id = t.account_id
          WHERE {condition}
          GROUP BY al.address
          ORDER BY al.address"
    )))
    .bind(value)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}
