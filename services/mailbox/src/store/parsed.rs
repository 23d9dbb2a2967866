//! What the store keeps of a parsed message beside its octets (structure, Date, header fields, text for
//! search), bound in one place for both writers: delivery and append, and the start-up backfill that
//! parses messages stored before parsing existed.

use prost::Message as _;
use sqlx::PgPool;
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;

use crate::mime::{self, Parsed};

/// Messages the backfill parses per query.
const BACKFILL_BATCH: i64 = 50;

/// Binds what is stored of a parsed message, in the order both writers list the columns: structure,
/// sent_at, header_names, header_values, body_text, header_size, sent_date.
pub(crate) fn bind<'q>(
    query: Query<'q, Postgres, PgArguments>,
    parsed: &'q Parsed,
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(parsed.structure.encode_to_vec())
        .bind(parsed.sent_unix.map(|t| t as f64))
        .bind(&parsed.header_names)
        .bind(&parsed.header_values)
        .bind(&parsed.text)
        .bind(parsed.header_size() as i32)
        .bind(parsed.sent_day.as_deref())
}

/// A message stored before parsing existed.
#[derive(sqlx::FromRow)]
struct Unparsed {
    id: i64,
    content: Vec<u8>,
}

/// Parses every message stored before parsing existed and fills its columns; returns how many. Several
/// replicas may run this at once harmlessly: each writes what the other would.
pub async fn backfill(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut done = 0;
    loop {
        let batch: Vec<Unparsed> =
            sqlx::query_as("SELECT id, content FROM messages WHERE structure IS NULL ORDER BY id LIMIT $1")
                .bind(BACKFILL_BATCH)
                .fetch_all(pool)
                .await?;
        if batch.is_empty() {
            return Ok(done);
        }
        for Unparsed { id, content } in batch {
            // Parsing is CPU work: off the async threads.
            let parsed = tokio::task::spawn_blocking(move || mime::parse(&content))
                .await
                .map_err(|e| sqlx::Error::Protocol(format!("parsing message {id}: {e}")))?;
            let update = sqlx::query(
                "UPDATE messages SET structure = $2, sent_at = to_timestamp($3), header_names = $4,
                        header_values = $5, body_text = to_tsvector('simple', $6), header_size = $7,
                        sent_date = $8::date
                  WHERE id = $1",
            )
            .bind(id);
            bind(update, &parsed).execute(pool).await?;
            done += 1;
        }
    }
}
