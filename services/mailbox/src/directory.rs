//! Domains, accounts and credentials.

use mailbus_address::{Domain, EmailAddress};
use sqlx::PgPool;

use crate::error::MailboxError;
use crate::password::{Hasher, Password};

/// Where an address leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Local { account_id: i64, address: String },
    UnknownUser,
    NotLocal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRow {
    pub name: String,
    pub created_unix: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub id: i64,
    pub address: String,
    pub disabled: bool,
    pub created_unix: i64,
    pub message_count: i64,
    pub storage_bytes: i64,
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

pub async fn resolve(pool: &PgPool, address: &EmailAddress) -> Result<Resolution, MailboxError> {
    let row: Option<(i64, String, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT d.id, d.name, a.id, a.address
           FROM domains d LEFT JOIN accounts a ON a.domain_id = d.id AND a.address = $2 AND NOT a.disabled
          WHERE d.name = $1",
    )
    .bind(address.domain().as_str())
    .bind(address.lookup_key())
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        None => Resolution::NotLocal,
        Some((_, _, Some(account_id), Some(address))) => Resolution::Local { account_id, address },
        Some(_) => Resolution::UnknownUser,
    })
}

/// Checks credentials. `None` for an unknown user, a disabled account or a wrong password alike.
pub async fn authenticate(
    pool: &PgPool,
    hasher: &Hasher,
    username: &str,
    password: Password,
) -> Result<Option<(i64, String)>, MailboxError> {
    let account: Option<(i64, String, String)> = match username.parse::<EmailAddress>() {
        Ok(address) => {
            sqlx::query_as("SELECT id, address, password_hash FROM accounts WHERE address = $1 AND NOT disabled")
                .bind(address.lookup_key())
                .fetch_optional(pool)
                .await?
        }
        Err(_) => None,
    };
    let stored = account.as_ref().map(|(_, _, hash)| hash.clone());
    let ok = hasher.verify(password, stored).await?;
    Ok(account.filter(|_| ok).map(|(id, address, _)| (id, address)))
}

/// Whether `account_id` may send as `address`: its own address. (Aliases that lead to the account will
/// count too once they exist.)
pub async fn sender_allowed(pool: &PgPool, account_id: i64, address: &EmailAddress) -> Result<bool, MailboxError> {
    let allowed: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM accounts WHERE id = $1 AND address = $2 AND NOT disabled")
            .bind(account_id)
            .bind(address.lookup_key())
            .fetch_optional(pool)
            .await?;
    Ok(allowed.is_some())
}

pub async fn add_domain(pool: &PgPool, name: &str) -> Result<DomainRow, MailboxError> {
    let domain: Domain = name.parse().map_err(|e| MailboxError::InvalidArgument(format!("domain {name:?}: {e}")))?;
    let (name, created_unix): (String, i64) =
        sqlx::query_as("INSERT INTO domains (name) VALUES ($1) RETURNING name, extract(epoch FROM created_at)::bigint")
            .bind(domain.as_str())
            .fetch_one(pool)
            .await
            .map_err(|e| match MailboxError::from(e) {
                MailboxError::AlreadyExists(_) => MailboxError::AlreadyExists(format!("domain {domain}")),
                other => other,
            })?;
    Ok(DomainRow { name, created_unix })
}

pub async fn list_domains(pool: &PgPool) -> Result<Vec<DomainRow>, MailboxError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, extract(epoch FROM created_at)::bigint FROM domains ORDER BY name")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(name, created_unix)| DomainRow { name, created_unix }).collect())
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
    let (id, created_unix): (i64, i64) = sqlx::query_as(
        "INSERT INTO accounts (domain_id, address, password_hash) VALUES ($1, $2, $3)
         RETURNING id, extract(epoch FROM created_at)::bigint",
    )
    .bind(domain_id)
    .bind(address.lookup_key())
    .bind(hash)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match MailboxError::from(e) {
        MailboxError::AlreadyExists(_) => MailboxError::AlreadyExists(format!("account {address}")),
        other => other,
    })?;
    for (name, special_use) in INITIAL_MAILBOXES {
        crate::maildrop::create_mailbox(&mut tx, id, name, *special_use).await?;
    }
    tx.commit().await?;
    Ok(AccountRow {
        id,
        address: address.lookup_key(),
        disabled: false,
        created_unix,
        message_count: 0,
        storage_bytes: 0,
    })
}

pub async fn list_accounts(pool: &PgPool, domain: Option<&str>) -> Result<Vec<AccountRow>, MailboxError> {
    let rows: Vec<(i64, String, bool, i64, i64, i64)> = sqlx::query_as(
        "SELECT a.id, a.address, a.disabled, extract(epoch FROM a.created_at)::bigint,
                count(m.id), coalesce(sum(m.size), 0)::bigint
           FROM accounts a
           JOIN domains d ON d.id = a.domain_id
           LEFT JOIN messages m ON m.account_id = a.id
          WHERE $1::text IS NULL OR d.name = $1
          GROUP BY a.id
          ORDER BY a.address",
    )
    .bind(domain.map(str::to_lowercase))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, address, disabled, created_unix, message_count, storage_bytes)| AccountRow {
            id,
            address,
            disabled,
            created_unix,
            message_count,
            storage_bytes,
        })
        .collect())
}
