//! Backup and restore of mailbus's JetStream state: every stream of the prefix (the queue with its
//! relay consumer's state, the dead letters, the body store, the key-value buckets), through the
//! server's own snapshot and restore API (`$JS.API.STREAM.SNAPSHOT` and `.RESTORE`, what `nats stream
//! backup` uses), so a snapshot is consistent per stream and keeps sequences and consumer positions.
//! Each stream becomes two files in the backup directory: `<stream>.json` (its configuration and state,
//! which a restore needs) and `<stream>.snapshot` (the server's snapshot octets, as sent).

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::names::Names;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error("stream {stream}: the server answered {message}")]
    Api { stream: String, message: String },
    #[error("{path}: {source}")]
    File { path: String, source: std::io::Error },
    #[error("stream {0}: the snapshot stopped arriving")]
    Stalled(String),
}

/// Octets per snapshot and restore chunk.
const CHUNK: usize = 128 * 1024;
/// How long a snapshot may go without a chunk before it counts as stalled.
const CHUNK_WAIT: Duration = Duration::from_secs(60);

fn nats(error: impl std::fmt::Display) -> BackupError {
    BackupError::Nats(error.to_string())
}

fn file(path: &Path, source: std::io::Error) -> BackupError {
    BackupError::File { path: path.display().to_string(), source }
}

/// The prefix's streams: its own (`<prefix>_…`), its object stores (`OBJ_<prefix>_…`) and key-value
/// buckets (`KV_<prefix>_…`).
pub async fn streams(client: &async_nats::Client, names: &Names) -> Result<Vec<String>, BackupError> {
    let jetstream = async_nats::jetstream::new(client.clone());
    let own = format!("{}_", names.prefix());
    let mut found: Vec<String> = jetstream
        .stream_names()
        .filter_map(|name| async move { name.ok() })
        .filter(|name| {
            let name = name.strip_prefix("OBJ_").or_else(|| name.strip_prefix("KV_")).unwrap_or(name);
            std::future::ready(name.starts_with(&own))
        })
        .collect()
        .await;
    found.sort();
    Ok(found)
}

/// A JetStream API answer, or its `error` as a [`BackupError::Api`].
fn answer(stream: &str, payload: &[u8]) -> Result<serde_json::Value, BackupError> {
    let value: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| BackupError::Api { stream: stream.to_owned(), message: e.to_string() })?;
    if let Some(error) = value.get("error") {
        return Err(BackupError::Api { stream: stream.to_owned(), message: error.to_string() });
    }
    Ok(value)
}

/// Snapshots every stream of the prefix into `dir` (created); returns the streams and their octets.
pub async fn backup(client: &async_nats::Client, names: &Names, dir: &Path) -> Result<Vec<(String, u64)>, BackupError> {
    std::fs::create_dir_all(dir).map_err(|e| file(dir, e))?;
    let mut done = Vec::new();
    for stream in streams(client, names).await? {
        let size = snapshot(client, &stream, dir).await?;
        done.push((stream, size));
    }
    Ok(done)
}

async fn snapshot(client: &async_nats::Client, stream: &str, dir: &Path) -> Result<u64, BackupError> {
    let inbox = client.new_inbox();
    let mut chunks = client.subscribe(inbox.clone()).await.map_err(nats)?;
    let request = serde_json::json!({ "deliver_subject": inbox, "chunk_size": CHUNK, "no_consumers": false });
    let reply = client
        .request(format!("$JS.API.STREAM.SNAPSHOT.{stream}"), Bytes::from(request.to_string()))
        .await
        .map_err(nats)?;
    let meta = answer(stream, &reply.payload)?;
    let meta_path = dir.join(format!("{stream}.json"));
    let meta = serde_json::json!({ "config": meta["config"], "state": meta["state"] });
    std::fs::write(&meta_path, meta.to_string()).map_err(|e| file(&meta_path, e))?;
    let data_path = dir.join(format!("{stream}.snapshot"));
    let mut data = Vec::new();
    loop {
        let chunk = tokio::time::timeout(CHUNK_WAIT, chunks.next())
            .await
            .map_err(|_| BackupError::Stalled(stream.to_owned()))?
            .ok_or_else(|| BackupError::Stalled(stream.to_owned()))?;
        if let Some(status) = chunk.status
            && status.as_u16() >= 400
        {
            let message = format!("{status} {}", chunk.description.unwrap_or_default());
            return Err(BackupError::Api { stream: stream.to_owned(), message });
        }
        // The end: an empty message (with status 204 from newer servers).
        if chunk.payload.is_empty() {
            break;
        }
        data.extend_from_slice(&chunk.payload);
        // Each chunk is acknowledged, which is the server's flow control.
        if let Some(ack) = chunk.reply {
            client.publish(ack, Bytes::new()).await.map_err(nats)?;
        }
    }
    std::fs::write(&data_path, &data).map_err(|e| file(&data_path, e))?;
    Ok(data.len() as u64)
}

/// Restores every stream found in `dir`. A stream that already exists is refused by the server: restore
/// into a NATS where mailbus has not run with this prefix yet (before starting the roles).
pub async fn restore(client: &async_nats::Client, dir: &Path) -> Result<Vec<String>, BackupError> {
    let mut restored = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| file(dir, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_owned))
        .collect();
    entries.sort();
    for stream in entries {
        let meta_path = dir.join(format!("{stream}.json"));
        let meta = std::fs::read(&meta_path).map_err(|e| file(&meta_path, e))?;
        let data_path = dir.join(format!("{stream}.snapshot"));
        let data = std::fs::read(&data_path).map_err(|e| file(&data_path, e))?;
        let reply =
            client.request(format!("$JS.API.STREAM.RESTORE.{stream}"), Bytes::from(meta)).await.map_err(nats)?;
        let deliver = answer(&stream, &reply.payload)?["deliver_subject"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| BackupError::Api { stream: stream.clone(), message: "no deliver_subject".into() })?;
        for chunk in data.chunks(CHUNK) {
            client.request(deliver.clone(), Bytes::copy_from_slice(chunk)).await.map_err(nats)?;
        }
        let done = client.request(deliver, Bytes::new()).await.map_err(nats)?;
        answer(&stream, &done.payload)?;
        restored.push(stream);
    }
    Ok(restored)
}
