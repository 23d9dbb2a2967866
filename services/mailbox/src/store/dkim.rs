//! The `dkim_keys` table: each hosted domain's DKIM keys with their selector and state.

use sqlx::PgPool;

use crate::dkim::{Algorithm, KeyPair, PrivateKey};
use crate::error::MailboxError;

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Signs outgoing mail.
    Active,
    /// In DNS, not signing: the next key, or the previous one while its mail is in flight.
    Published,
    /// Out of use.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Published => "published",
            KeyState::Retired => "retired",
        }
    }

    fn from_column(name: &str) -> Self {
        match name {
            "active" => KeyState::Active,
            "published" => KeyState::Published,
            _ => KeyState::Retired,
        }
    }
}

/// A key without its private half: what the operator sees.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyRow {
    pub domain: String,
    pub selector: String,
    pub algorithm: String,
    pub state: String,
    pub public_key: Vec<u8>,
    pub created_unix: i64,
}

impl KeyRow {
    pub fn algorithm(&self) -> Algorithm {
        Algorithm::from_column(&self.algorithm).unwrap_or(Algorithm::Rsa)
    }

    pub fn state(&self) -> KeyState {
        KeyState::from_column(&self.state)
    }
}

/// An active key with its private half, for the relay.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningRow {
    pub selector: String,
    pub algorithm: String,
    #[sqlx(try_from = "Vec<u8>")]
    pub private_key: PrivateKey,
}

impl From<Vec<u8>> for PrivateKey {
    fn from(der: Vec<u8>) -> Self {
        PrivateKey::new(der)
    }
}

const COLUMNS: &str = "d.name AS domain, k.selector, k.algorithm, k.state, k.public_key, \
                       extract(epoch FROM k.created_at)::bigint AS created_unix";

async fn domain_id(pool: &PgPool, domain: &str) -> Result<i64, MailboxError> {
    sqlx::query_scalar("SELECT id FROM domains WHERE name = $1")
        .bind(domain)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| MailboxError::NotFound(format!("domain {domain} is not hosted here")))
}

/// Stores a new key: active when the domain has no active key of its algorithm yet, else published
/// (waiting for `set_state` to activate it).
pub async fn insert(
    pool: &PgPool,
    domain: &str,
    selector: &str,
    algorithm: Algorithm,
    pair: &KeyPair,
) -> Result<KeyRow, MailboxError> {
    let domain_id = domain_id(pool, domain).await?;
    let sql = format!(
        "WITH k AS (
             INSERT INTO dkim_keys (domain_id, selector, algorithm, state, private_key, public_key)
             SELECT $1, $2, $3,
                    CASE WHEN EXISTS (SELECT 1 FROM dkim_keys WHERE domain_id = $1 AND algorithm = $3
                                                              AND state = 'active')
                         THEN 'published' ELSE 'active' END,
                    $4, $5
             RETURNING *)
         SELECT {COLUMNS} FROM k JOIN domains d ON d.id = k.domain_id"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(domain_id)
        .bind(selector)
        .bind(algorithm.as_str())
        .bind(pair.private.expose())
        .bind(&pair.public)
        .fetch_one(pool)
        .await
        .map_err(|e| match MailboxError::from(e) {
            MailboxError::AlreadyExists(_) => MailboxError::AlreadyExists(format!("selector {selector} of {domain}")),
            other => other,
        })
}

/// Every key of a domain, or of every domain when `domain` is empty.
pub async fn list(pool: &PgPool, domain: &str) -> Result<Vec<KeyRow>, MailboxError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM dkim_keys k JOIN domains d ON d.id = k.domain_id
          WHERE $1 = '' OR d.name = $1 ORDER BY d.name, k.created_at, k.selector"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(domain).fetch_all(pool).await?)
}

/// Moves a key to `state`; activating it first moves the domain's active key of the same algorithm back
/// to published, in the same transaction, so a domain never has two.
pub async fn set_state(pool: &PgPool, domain: &str, selector: &str, state: KeyState) -> Result<KeyRow, MailboxError> {
    let domain_id = domain_id(pool, domain).await?;
    let mut tx = pool.begin().await?;
    if state == KeyState::Active {
        sqlx::query(
            "UPDATE dkim_keys SET state = 'published'
              WHERE domain_id = $1 AND state = 'active' AND selector <> $2
                AND algorithm = (SELECT algorithm FROM dkim_keys WHERE domain_id = $1 AND selector = $2)",
        )
        .bind(domain_id)
        .bind(selector)
        .execute(&mut *tx)
        .await?;
    }
    let sql = format!(
        "WITH k AS (UPDATE dkim_keys SET state = $3 WHERE domain_id = $1 AND selector = $2 RETURNING *)
         SELECT {COLUMNS} FROM k JOIN domains d ON d.id = k.domain_id"
    );
    let row: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(domain_id)
        .bind(selector)
        .bind(state.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    let row = row.ok_or_else(|| MailboxError::NotFound(format!("no DKIM key {selector} for {domain}")))?;
    tx.commit().await?;
    Ok(row)
}

pub async fn remove(pool: &PgPool, domain: &str, selector: &str) -> Result<(), MailboxError> {
    let domain_id = domain_id(pool, domain).await?;
    let removed = sqlx::query("DELETE FROM dkim_keys WHERE domain_id = $1 AND selector = $2")
        .bind(domain_id)
        .bind(selector)
        .execute(pool)
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(MailboxError::NotFound(format!("no DKIM key {selector} for {domain}")));
    }
    Ok(())
}

/// The active keys of a domain (none for a domain not hosted here), ed25519 first.
pub async fn signing_keys(pool: &PgPool, domain: &str) -> Result<Vec<SigningRow>, MailboxError> {
    Ok(sqlx::query_as(
        "SELECT k.selector, k.algorithm, k.private_key FROM dkim_keys k JOIN domains d ON d.id = k.domain_id
          WHERE d.name = $1 AND k.state = 'active' ORDER BY k.algorithm, k.selector",
    )
    .bind(domain)
    .fetch_all(pool)
    .await?)
}
