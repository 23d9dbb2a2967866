//! What the store keeps of a parsed message beside its octets (structure, Date, header fields, text for
//! search), bound in one place for both writers: delivery and append, and the start-up backfills that
//! parse messages stored before parsing existed, or before their searchable text did.

use prost::Message as _;
use sqlx::PgPool;
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;

use crate::mime::{self, Parsed};

/// Messages the backfill parses per query.
const BACKFILL_BATCH: i64 = 50;

/// Binds what is stored of a parsed message, in the order both writers list the columns: structure,
/// sent_at, header_names, header_values, search_header, search_body, header_size, sent_date,
/// has_attachment, preview.
pub(crate) fn bind<'q>(
    query: Query<'q, Postgres, PgArguments>,
    parsed: &'q Parsed,
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(parsed.structure.encode_to_vec())
        .bind(parsed.sent_unix.map(|t| t as f64))
        .bind(&parsed.header_names)
        .bind(&parsed.header_values)
        .bind(&parsed.search.header)
        .bind(&parsed.search.body)
        .bind(parsed.header_size() as i32)
        .bind(parsed.sent_day.as_deref())
        .bind(parsed.has_attachment)
        .bind(&parsed.preview)
}

/// A message stored before parsing existed.
#[derive(sqlx::FromRow)]
struct Unparsed {
    id: i64,
    content: Vec<u8>,
}

/// The next [`BACKFILL_BATCH`] messages `select` names (by id and content, its one parameter the limit),
/// each parsed off the async threads (parsing is CPU work).
async fn parsed_batch(pool: &PgPool, select: &'static str) -> Result<Vec<(i64, Parsed)>, sqlx::Error> {
    let batch: Vec<Unparsed> = sqlx::query_as(select).bind(BACKFILL_BATCH).fetch_all(pool).await?;
    let mut parsed = Vec::with_capacity(batch.len());
    for Unparsed { id, content } in batch {
        let message = tokio::task::spawn_blocking(move || mime::parse(&content))
            .await
            .map_err(|e| sqlx::Error::Protocol(format!("parsing message {id}: {e}")))?;
        parsed.push((id, message));
    }
    Ok(parsed)
}

/// Parses every message stored before parsing existed and fills its columns; returns how many. Several
/// replicas may run this at once harmlessly: each writes what the other would.
pub async fn backfill(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut done = 0;
    loop {
        let batch =
            parsed_batch(pool, "SELECT id, content FROM messages WHERE structure IS NULL ORDER BY id LIMIT $1").await?;
        if batch.is_empty() {
            return Ok(done);
        }
        for (id, parsed) in batch {
            let update = sqlx::query(
                "UPDATE messages SET structure = $2, sent_at = to_timestamp($3), header_names = $4,
                        header_values = $5, search_header = $6, search_body = $7, header_size = $8,
                        sent_date = $9::date, has_attachment = $10, preview = $11
                  WHERE id = $1",
            )
            .bind(id);
            bind(update, &parsed).execute(pool).await?;
            done += 1;
        }
    }
}

/// Fills the searchable text (migration 0015) of messages parsed before it existed, parsing their octets
/// again; returns how many. Runs after [`backfill`], which fills it for the messages it parses. Until a
/// message is reached, BODY and TEXT do not find it.
pub async fn backfill_search_text(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut done = 0;
    loop {
        let batch = parsed_batch(
            pool,
            "SELECT id, content FROM messages WHERE search_body IS NULL AND structure IS NOT NULL ORDER BY id LIMIT $1",
        )
        .await?;
        if batch.is_empty() {
            return Ok(done);
        }
        for (id, Parsed { search, .. }) in batch {
            sqlx::query("UPDATE messages SET search_header = $2, search_body = $3 WHERE id = $1")
                .bind(id)
                .bind(&search.header)
                .bind(&search.body)
                .execute(pool)
                .await?;
            done += 1;
        }
    }
}

/// A parsed message whose hasAttachment is not known yet.
#[derive(sqlx::FromRow)]
struct Structured {
    id: i64,
    structure: Vec<u8>,
}

/// Fills `has_attachment` of messages parsed before it existed, from their stored structure (no octets are
/// read); returns how many. Runs after [`backfill`], which fills it for the messages it parses.
pub async fn backfill_has_attachment(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut done = 0;
    loop {
        let batch: Vec<Structured> = sqlx::query_as(
            "SELECT id, structure FROM messages
              WHERE has_attachment IS NULL AND structure IS NOT NULL ORDER BY id LIMIT $1",
        )
        .bind(BACKFILL_BATCH * 10)
        .fetch_all(pool)
        .await?;
        if batch.is_empty() {
            return Ok(done);
        }
        let (ids, flags): (Vec<i64>, Vec<bool>) = batch
            .into_iter()
            .map(|Structured { id, structure }| {
                let body = mailbus_proto::v1::MessageStructure::decode(structure.as_slice()).ok().and_then(|s| s.body);
                (id, body.as_ref().is_some_and(mime::has_attachment))
            })
            .unzip();
        sqlx::query(
            "UPDATE messages m SET has_attachment = x.flag FROM unnest($1::bigint[], $2::bool[]) AS x (id, flag)
              WHERE m.id = x.id",
        )
        .bind(&ids)
        .bind(&flags)
        .execute(pool)
        .await?;
        done += ids.len() as u64;
    }
}
