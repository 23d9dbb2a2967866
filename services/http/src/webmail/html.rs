//! `GET /webmail/html/{emailId}?images=0|1`: one email's body as a document the page can frame: its
//! `htmlBody` (text parts turned into HTML), sanitised here (`sanitise`), its `cid:` images inlined, under
//! a policy that lets the document run nothing and load nothing but those images (and remote ones when
//! the reader asked), in a sandbox without scripts or an origin.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures::StreamExt;
use mailbus_proto::v1::{self as pb, blob_chunk};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::call_mailbox;
use crate::auth::Account;
use crate::problem::Problem;
use crate::webmail::rendered::Rendered;
use crate::webmail::sanitise::{Options, sanitise, text_to_html};
use crate::{App, MAX_CONCURRENT_REQUESTS};

/// The most body text one document shows, from all its parts together (the mailbox role applies it to
/// each part; a mail of a thousand parts must not make it a thousand times as much).
const MAX_BODY: u64 = 4 << 20;
/// The most octets of `cid:` images one document inlines; past it the rest are left out.
const MAX_INLINE_IMAGES: usize = 8 << 20;
/// The most `cid:` images one document inlines, each a download from the mailbox role.
const MAX_INLINE_IMAGE_COUNT: usize = 100;
/// The most octets of stored message the images of one document may have read: each image's download
/// reads the whole message in the mailbox role, so a 50 MB mail naming a hundred tiny images would read
/// 5 GB for one view.
const MAX_INLINE_IMAGE_READS: u64 = 256 << 20;

/// How many `cid:` images a message of `size` octets may have inlined: [`MAX_INLINE_IMAGE_COUNT`], fewer
/// for a large message (a 5 MB newsletter still gets 51, a 50 MB message 5), at least one.
fn inline_image_reads(size: u64) -> usize {
    let reads = MAX_INLINE_IMAGE_READS / size.max(1);
    usize::try_from(reads).unwrap_or(usize::MAX).clamp(1, MAX_INLINE_IMAGE_COUNT)
}
/// How the framed document looks before the mail's own styles: mail is written for white paper.
const FRAME_HEAD: &str = "<!doctype html><html><head><meta charset=\"utf-8\">\
     <meta name=\"color-scheme\" content=\"light\"><meta name=\"referrer\" content=\"no-referrer\">\
     <style>body{margin:0;padding:12px;font-family:system-ui,sans-serif;font-size:15px;line-height:1.45;\
     color:#1f2328;background:#fff;overflow-wrap:anywhere}img{max-width:100%;height:auto}\
     table{max-width:100%}blockquote{margin:0 0 0 .8em;padding-left:.8em;border-left:3px solid #ccd}\
     </style></head><body>";

#[derive(Deserialize)]
pub struct HtmlQuery {
    images: Option<String>,
}

pub async fn html(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(email_id): Path<String>,
    Query(query): Query<HtmlQuery>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let account = app.auth.authenticate(&headers, peer.ip()).await?;
    // Hostile mail can make this the costliest request there is: it counts as one of the account's.
    let Some(_slot) = app.concurrency.enter(account.id, MAX_CONCURRENT_REQUESTS) else {
        return Err(Problem::limit("maxConcurrentRequests", StatusCode::TOO_MANY_REQUESTS));
    };
    let remote_images = query.images.as_deref() == Some("1");
    let key = (account.id, email_id.clone(), remote_images);
    let rendered =
        app.rendered.get_or_render(key, async || render(&app, &account, &email_id, remote_images).await).await?;
    let mut response =
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], rendered.document.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy(remote_images));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    headers.insert("x-mailbus-blocked-images", HeaderValue::from(rendered.blocked_images));
    Ok(response)
}

/// One email's framed document: fetched, its images inlined, sanitised off the async threads (ammonia
/// on megabytes of hostile HTML is CPU work).
async fn render(app: &App, account: &Account, email_id: &str, remote_images: bool) -> Result<Rendered, Problem> {
    let email = fetch(app, account, email_id).await?;
    let (body, images) = body_of(&email);
    let size = email.get("size").and_then(Value::as_u64).unwrap_or(0);
    let cids = inline_images(app, account, &images, &body, size).await;
    let sanitised = tokio::task::spawn_blocking(move || sanitise(&body, &Options { remote_images, cids: &cids }))
        .await
        .map_err(|_| Problem::unavailable("the message could not be prepared"))?;
    let document = format!("{FRAME_HEAD}{}</body></html>", sanitised.html);
    Ok(Rendered { document, blocked_images: sanitised.blocked_images })
}

/// The framed document's policy: no script (sandbox without `allow-scripts`, and no `script-src`), no
/// origin (no `allow-same-origin`), links may open a new window, and images come only inline, or from
/// anywhere on the web when the reader asked.
fn policy(remote_images: bool) -> HeaderValue {
    let images = if remote_images { "data: https: http:" } else { "data:" };
    let policy = format!(
        "default-src 'none'; img-src {images}; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; sandbox"))
}

async fn fetch(app: &App, account: &Account, email_id: &str) -> Result<Value, Problem> {
    let arguments = json!({
        "accountId": account.jmap_id(),
        "ids": [email_id],
        "properties": ["htmlBody", "textBody", "attachments", "bodyValues", "size"],
        "bodyProperties": ["partId", "blobId", "type", "cid", "name", "size"],
        "fetchHTMLBodyValues": true,
        "maxBodyValueBytes": MAX_BODY,
    });
    let arguments = arguments.as_object().cloned().unwrap_or_default();
    let responses = call_mailbox(app, account, "Email/get", arguments, "0", &mut HashMap::new()).await?;
    let Some((name, mut result, _)) = responses.into_iter().next() else {
        return Err(Problem::unavailable("the mail store gave no answer"));
    };
    if name != "Email/get" {
        return Err(Problem::not_found("no such email"));
    }
    match result["list"].get_mut(0).map(Value::take) {
        Some(email) => Ok(email),
        None => Err(Problem::not_found("no such email")),
    }
}

/// An image part the body may show: its blob, type, and the key `cid:` names it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineImage {
    pub cid: String,
    pub blob_id: String,
    pub media_type: String,
    pub size: u64,
}

/// The HTML to sanitise, and the image parts it may show. An image in `htmlBody` (one shown in line
/// with the text, RFC 8621 §4.1.4) without a Content-ID gets one made up, and an `<img>` naming it.
pub fn body_of(email: &Value) -> (String, Vec<InlineImage>) {
    let empty = Vec::new();
    let parts = |key: &str| email[key].as_array().unwrap_or(&empty).clone();
    let mut html_parts = parts("htmlBody");
    if html_parts.is_empty() {
        html_parts = parts("textBody");
    }
    let mut images: Vec<InlineImage> = Vec::new();
    let mut body = String::new();
    for (n, part) in html_parts.iter().enumerate() {
        let media_type = part["type"].as_str().unwrap_or("").to_ascii_lowercase();
        let value = || part["partId"].as_str().and_then(|id| email["bodyValues"][id]["value"].as_str());
        if media_type == "text/html" {
            push_within(&mut body, value().unwrap_or(""));
        } else if media_type.starts_with("text/") {
            push_within(&mut body, &text_to_html(value().unwrap_or("")));
        } else if let Some(mut image) = image(part) {
            if image.cid.is_empty() {
                image.cid = format!("mailbus-inline-{n}");
            }
            body.push_str(&format!("<p><img src=\"cid:{}\" alt=\"\"></p>", image.cid));
            images.push(image);
        }
    }
    images.extend(parts("attachments").iter().filter_map(image).filter(|i| !i.cid.is_empty()));
    (body, images)
}

/// Appends `text` to `body` as far as `MAX_BODY` allows in all (cut at a character boundary; the
/// sanitiser closes whatever a cut leaves open).
fn push_within(body: &mut String, text: &str) {
    let room = (MAX_BODY as usize).saturating_sub(body.len());
    let mut end = room.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    body.push_str(&text[..end]);
}

fn image(part: &Value) -> Option<InlineImage> {
    let media_type = part["type"].as_str()?.to_ascii_lowercase();
    if !["image/png", "image/jpeg", "image/gif", "image/webp"].contains(&media_type.as_str()) {
        return None;
    }
    let cid = part["cid"].as_str().unwrap_or("").trim().trim_start_matches('<').trim_end_matches('>');
    Some(InlineImage {
        cid: cid.to_owned(),
        blob_id: part["blobId"].as_str()?.to_owned(),
        media_type,
        size: part["size"].as_u64().unwrap_or(0),
    })
}

/// `cid` → a `data:` URL, for each image the body names, at most `MAX_INLINE_IMAGE_COUNT` of them and
/// `MAX_INLINE_IMAGES` octets in all, and no more of them than [`inline_image_reads`] allows a message
/// of `message_size` octets.
async fn inline_images(
    app: &App,
    account: &Account,
    images: &[InlineImage],
    body: &str,
    message_size: u64,
) -> HashMap<String, String> {
    let named = cid_references(body);
    let mut cids = HashMap::new();
    let mut budget = MAX_INLINE_IMAGES;
    let most = inline_image_reads(message_size);
    for image in images {
        let key = image.cid.to_ascii_lowercase();
        if cids.len() >= most {
            break;
        }
        if !named.contains(&key) || cids.contains_key(&key) || image.size as usize > budget {
            continue;
        }
        let Some(bytes) = download(app, account, &image.blob_id, budget).await else { continue };
        budget -= bytes.len();
        let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
        cids.insert(key, format!("data:{};base64,{data}", image.media_type));
    }
    cids
}

/// Every Content-ID the body names with `cid:` (lowercased, percent-decoded, without angle brackets),
/// found in one pass over the body, whatever the number of images.
pub fn cid_references(body: &str) -> HashSet<String> {
    let lower = body.to_ascii_lowercase();
    let mut found = HashSet::new();
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("cid:") {
        rest = &rest[at + 4..];
        let end = rest.find(|c: char| c.is_whitespace() || "\"'>)".contains(c)).unwrap_or(rest.len());
        let reference = percent_encoding::percent_decode_str(&rest[..end]).decode_utf8_lossy().to_ascii_lowercase();
        found.insert(reference.trim_start_matches('<').trim_end_matches('>').to_owned());
        rest = &rest[end..];
    }
    found
}

/// A blob's octets, or `None` if it cannot be had or is over `limit`.
async fn download(app: &App, account: &Account, blob_id: &str, limit: usize) -> Option<Vec<u8>> {
    let request = pb::BlobDownload { account_id: account.id, blob_id: blob_id.to_owned() };
    let mut stream = app.jmap.clone().download(request).await.ok()?.into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        if let pb::BlobChunk { part: Some(blob_chunk::Part::Chunk(data)) } = chunk.ok()? {
            bytes.extend_from_slice(&data);
            if bytes.len() > limit {
                return None;
            }
        }
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_message_inlines_fewer_images_and_never_none() {
        assert_eq!(inline_image_reads(20_000), MAX_INLINE_IMAGE_COUNT);
        assert_eq!(inline_image_reads(5 << 20), 51);
        assert_eq!(inline_image_reads(50 << 20), 5);
        assert_eq!(inline_image_reads(1 << 40), 1);
        assert_eq!(inline_image_reads(0), MAX_INLINE_IMAGE_COUNT);
    }

    #[test]
    fn cid_references_are_found_in_one_pass() {
        let body = "<img src=\"cid:Image001.PNG@01DA2B3C\"><img src='CID:%3Clogo@x%3E'> <img src=cid:bare>\
                    <p>cid: is only text</p>";
        let found = cid_references(body);
        for cid in ["image001.png@01da2b3c", "logo@x", "bare"] {
            assert!(found.contains(cid), "{cid} in {found:?}");
        }
    }

    #[test]
    fn the_body_is_capped_across_all_its_parts() {
        // Each part is under the mailbox role's per-part cap; together they are not.
        let chunk = "é".repeat(1 << 20);
        let parts: Vec<Value> = (0..8).map(|n| json!({"partId": n.to_string(), "type": "text/html"})).collect();
        let values: serde_json::Map<String, Value> = (0..8).map(|n| (n.to_string(), json!({"value": chunk}))).collect();
        let email = json!({"htmlBody": parts, "bodyValues": values});
        let (body, _) = body_of(&email);
        assert!(body.len() <= MAX_BODY as usize, "{}", body.len());
        assert!(body.len() > MAX_BODY as usize - 4, "filled up to the cap");
    }
}
