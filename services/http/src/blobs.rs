//! Binary data (RFC 8620 §6): uploads stream through to `Jmap.Upload` in 64 KiB chunks, downloads stream
//! back from `Jmap.Download`. Neither is ever held whole in this role. A download is served so that a
//! browser cannot be made to run it: `nosniff`, a sandboxing CSP, and `attachment` unless the type is
//! one a browser only displays.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use mailbus_proto::v1::{self as pb, blob_chunk, blob_upload};
use serde::Deserialize;
use serde_json::json;

use crate::App;
use crate::problem::Problem;

const CHUNK: usize = 64 * 1024;
/// Types a browser displays without running anything: these may be shown inline.
const INLINE_SAFE: [&str; 5] = ["image/png", "image/jpeg", "image/gif", "image/webp", "text/plain"];
/// Blob ids name immutable content.
const CACHE_CONTROL: &str = "private, immutable, max-age=2592000";

pub async fn upload(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let account = crate::webmail::guard::authenticate_change(&app, &headers, peer.ip()).await?;
    if account_id != account.jmap_id() {
        return Err(Problem::not_found("no such account"));
    }
    let limit = app.limits.max_size_upload;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|size| size > limit) {
        return Err(Problem::limit("maxSizeUpload", StatusCode::PAYLOAD_TOO_LARGE));
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(sanitise_type)
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let Some(_slot) = app.concurrency.enter(-account.id, crate::MAX_CONCURRENT_UPLOAD) else {
        return Err(Problem::limit("maxConcurrentUpload", StatusCode::BAD_REQUEST));
    };
    let stop = Arc::new(Stop::default());
    let header = pb::BlobUpload {
        part: Some(blob_upload::Part::Header(pb::UploadHeader {
            account_id: account.id,
            media_type: media_type.clone(),
        })),
    };
    let parts = futures::stream::once(async move { header }).chain(limited_chunks(body, limit, stop.clone()));
    // An upload cut short is abandoned, not completed: the call is dropped while its stream is still open,
    // so the mailbox role sees it cancelled and stores nothing.
    let mut jmap = app.jmap.clone();
    let uploaded = tokio::select! {
        uploaded = jmap.upload(parts) => uploaded,
        _ = stop.notify.notified() => {
            return Err(match stop.over.load(Ordering::Relaxed) {
                true => Problem::limit("maxSizeUpload", StatusCode::PAYLOAD_TOO_LARGE),
                false => Problem::bad_request("the upload broke off"),
            });
        }
    };
    let uploaded = match uploaded {
        Ok(uploaded) => uploaded.into_inner(),
        Err(status) => return Err(upload_problem(&status)),
    };
    let body = json!({
        "accountId": account.jmap_id(),
        "blobId": uploaded.blob_id,
        "type": if uploaded.media_type.is_empty() { media_type } else { uploaded.media_type },
        "size": uploaded.size,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn upload_problem(status: &tonic::Status) -> Problem {
    match status.code() {
        tonic::Code::OutOfRange => Problem::limit("maxSizeUpload", StatusCode::PAYLOAD_TOO_LARGE),
        tonic::Code::ResourceExhausted => Problem::over_quota(),
        tonic::Code::NotFound => Problem::not_found("no such account"),
        // The body broke off, or the role failed: the client may try again.
        _ => {
            tracing::warn!(%status, "upload failed");
            Problem::from_status(status)
        }
    }
}

/// Why an upload stopped early: over the limit, or the client's body broke off.
#[derive(Default)]
struct Stop {
    over: AtomicBool,
    broken: AtomicBool,
    notify: tokio::sync::Notify,
}

/// The request body as upload chunks of at most 64 KiB. Past `limit` octets, or when the body fails, it
/// signals `stop` and never ends, so that the upload is cancelled rather than completed short.
fn limited_chunks(body: Body, limit: u64, stop: Arc<Stop>) -> impl Stream<Item = pb::BlobUpload> + Send {
    let mut seen: u64 = 0;
    let tail = stop.clone();
    body.into_data_stream()
        .take_while(move |frame| {
            let keep = match frame {
                Ok(bytes) => {
                    seen += bytes.len() as u64;
                    if seen > limit {
                        stop.over.store(true, Ordering::Relaxed);
                    }
                    seen <= limit
                }
                Err(_) => {
                    stop.broken.store(true, Ordering::Relaxed);
                    false
                }
            };
            if !keep {
                stop.notify.notify_one();
            }
            std::future::ready(keep)
        })
        .filter_map(|frame| std::future::ready(frame.ok()))
        .flat_map(|bytes| {
            let pieces: Vec<Bytes> =
                (0..bytes.len()).step_by(CHUNK).map(|at| bytes.slice(at..(at + CHUNK).min(bytes.len()))).collect();
            futures::stream::iter(pieces)
        })
        .map(|piece| pb::BlobUpload { part: Some(blob_upload::Part::Chunk(piece.to_vec())) })
        .chain(
            futures::stream::once(async move {
                // Stopped early: hold the call open until the caller drops it.
                if tail.over.load(Ordering::Relaxed) || tail.broken.load(Ordering::Relaxed) {
                    std::future::pending::<()>().await;
                }
            })
            .filter_map(|()| std::future::ready(None)),
        )
}

#[derive(Deserialize)]
pub struct DownloadQuery {
    #[serde(rename = "type")]
    media_type: Option<String>,
}

pub async fn download(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((account_id, blob_id, name)): Path<(String, String, String)>,
    Query(query): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let account = app.auth.authenticate(&headers, peer.ip()).await?;
    if account_id != account.jmap_id() {
        return Err(Problem::not_found("no such blob"));
    }
    // Held until the body is sent or its reader goes away.
    let Some(slot) = app.downloads.enter(account.id, crate::MAX_CONCURRENT_DOWNLOADS) else {
        return Err(Problem::too_many_downloads());
    };
    let request = pb::BlobDownload { account_id: account.id, blob_id };
    let mut stream = match app.jmap.clone().download(request).await {
        Ok(stream) => stream.into_inner(),
        Err(status) if status.code() == tonic::Code::NotFound => return Err(Problem::not_found("no such blob")),
        Err(status) => return Err(Problem::from_status(&status)),
    };
    let info = match stream.message().await {
        Ok(Some(pb::BlobChunk { part: Some(blob_chunk::Part::Info(info)) })) => info,
        Err(status) if status.code() == tonic::Code::NotFound => return Err(Problem::not_found("no such blob")),
        Err(status) => return Err(Problem::from_status(&status)),
        Ok(_) => return Err(Problem::unavailable("the mail store sent no blob information")),
    };
    let media_type = query
        .media_type
        .as_deref()
        .and_then(sanitise_type)
        .or_else(|| sanitise_type(&info.media_type))
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let body = stream.filter_map(move |chunk| {
        let _sending = &slot;
        std::future::ready(match chunk {
            Ok(pb::BlobChunk { part: Some(blob_chunk::Part::Chunk(data)) }) => Some(Ok(Bytes::from(data))),
            Ok(_) => None,
            // A failure half way: the response breaks off, and the client sees a short body.
            Err(status) => Some(Err(std::io::Error::other(status.to_string()))),
        })
    });
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    let header_value =
        |s: &str| HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, header_value(&media_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
    headers.insert(header::CONTENT_DISPOSITION, content_disposition(&name, &media_type));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));
    Ok(response)
}

/// `type/subtype` of token characters, lowercased, keeping only a `charset` parameter; anything else
/// (a type that could smuggle header text, or none) is `None`.
pub fn sanitise_type(raw: &str) -> Option<String> {
    let mut parts = raw.split(';');
    let essence = parts.next()?.trim().to_ascii_lowercase();
    let (kind, subtype) = essence.split_once('/')?;
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b));
    if !token(kind) || !token(subtype) {
        return None;
    }
    let charset = parts.filter_map(|p| p.split_once('=')).find_map(|(name, value)| {
        let value = value.trim().trim_matches('"');
        (name.trim().eq_ignore_ascii_case("charset") && token(value)).then(|| value.to_ascii_lowercase())
    });
    Some(match charset {
        Some(charset) => format!("{essence}; charset={charset}"),
        None => essence,
    })
}

/// RFC 6266 with RFC 8187's `filename*`: `attachment` unless the type is safe to display.
fn content_disposition(name: &str, media_type: &str) -> HeaderValue {
    let essence = media_type.split(';').next().unwrap_or("");
    let disposition = if INLINE_SAFE.contains(&essence) { "inline" } else { "attachment" };
    // RFC 8187 §3.2.1 attr-char: ALPHA / DIGIT / "!#$&+-.^_`|~"; everything else percent-encoded.
    const ATTR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'!')
        .remove(b'#')
        .remove(b'$')
        .remove(b'&')
        .remove(b'+')
        .remove(b'-')
        .remove(b'.')
        .remove(b'^')
        .remove(b'_')
        .remove(b'`')
        .remove(b'|')
        .remove(b'~');
    let encoded = percent_encoding::utf8_percent_encode(name, ATTR);
    HeaderValue::from_str(&format!("{disposition}; filename*=UTF-8''{encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_sanitised() {
        assert_eq!(sanitise_type("Image/PNG").as_deref(), Some("image/png"));
        assert_eq!(sanitise_type("text/plain; charset=\"UTF-8\"; x=y").as_deref(), Some("text/plain; charset=utf-8"));
        assert_eq!(sanitise_type("text/html\r\nX-Evil: 1"), None);
        assert_eq!(sanitise_type("nonsense"), None);
        assert_eq!(sanitise_type(""), None);
    }

    #[test]
    fn only_safe_types_are_inline_and_names_are_encoded() {
        assert_eq!(content_disposition("a b.png", "image/png"), "inline; filename*=UTF-8''a%20b.png");
        assert_eq!(content_disposition("x.html", "text/html"), "attachment; filename*=UTF-8''x.html");
        assert_eq!(content_disposition("x.svg", "image/svg+xml"), "attachment; filename*=UTF-8''x.svg");
        assert_eq!(content_disposition("é\r\n", "text/plain"), "inline; filename*=UTF-8''%C3%A9%0D%0A");
    }
}
