//! The pages and files of the webmail, embedded in the binary from `services/http/webmail/` (by
//! `build.rs`): `GET /` is the login page without a session and the app with one, assets are served
//! with a version in the URL and cached for a year. Every answer carries the page policy: no inline
//! script or style, nothing from another origin, no framing.

use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::tokens::random_token;
use crate::webmail::sessions::{LOGIN_COOKIE, set_cookie};
use crate::{App, Secure};

mod files {
    include!(concat!(env!("OUT_DIR"), "/webmail_files.rs"));
}

/// The Content-Security-Policy of the webmail's own pages.
pub const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
/// How long the login form's CSRF cookie lives: a login page left open longer is reloaded.
const LOGIN_FORM_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3600);
/// An asset whose URL names the current version never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn file(name: &str) -> Option<&'static [u8]> {
    files::FILES.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}

/// One hash over every embedded file: the `{{version}}` in the pages' asset URLs.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for (name, bytes) in files::FILES {
        context.update(name.as_bytes());
        context.update(&(bytes.len() as u64).to_be_bytes());
        context.update(bytes);
    }
    context.finish().as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect()
});

/// A page from `webmail/` with its placeholders filled in (`{{version}}`, and `{{csrf}}` for the
/// login form). A page missing from the build is a plain message rather than a crash.
fn page(name: &str, csrf: Option<&str>) -> String {
    let text = file(name).map(String::from_utf8_lossy).unwrap_or_default();
    if text.is_empty() {
        return "<!doctype html><title>mailbus</title><p>The webmail is not part of this build.</p>".to_owned();
    }
    text.replace("{{version}}", &VERSION).replace("{{csrf}}", csrf.unwrap_or(""))
}

/// The headers every webmail page carries.
pub fn page_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn html(body: String) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    page_headers(response.headers_mut());
    response
}

/// `GET /`: the app for a browser with a session, the login form for any other.
pub async fn home(
    State(app): State<Arc<App>>,
    secure: Option<axum::Extension<Secure>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(elsewhere) = needs_https(&app, secure.is_some_and(|s| s.0.0), &headers, &uri) {
        return elsewhere;
    }
    if let Ok(Some(_)) = app.auth.session(&headers).await {
        return html(page("index.html", None));
    }
    login_page()
}

/// What answers a webmail page asked for over plain HTTP from anywhere but this machine: a browser keeps
/// no `Secure` cookie from a non-local `http:` origin, so no login could stick (and the password would
/// cross in the clear). A 308 to the public URL when that is https, else a page that says why. A browser
/// on the server itself (`localhost`, `127.0.0.1`, `[::1]`) treats `http:` as secure and is served.
pub fn needs_https(app: &App, secure: bool, headers: &HeaderMap, uri: &Uri) -> Option<Response> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if secure || is_loopback(host) {
        return None;
    }
    if let Some(public) = app.public_url.as_deref().filter(|url| url.starts_with("https://")) {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        if let Ok(location) = HeaderValue::from_str(&format!("{public}{path}")) {
            let mut response = StatusCode::PERMANENT_REDIRECT.into_response();
            response.headers_mut().insert(header::LOCATION, location);
            return Some(response);
        }
    }
    let text = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>mailbus</title>\
         <p>The webmail needs HTTPS. Open this address with <code>https://</code> instead.</p></html>";
    let mut response =
        (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], text).into_response();
    page_headers(response.headers_mut());
    Some(response)
}

/// Whether a `Host` header names this machine: `localhost` (or a name under it, RFC 6761 §6.3), or a
/// loopback address, with or without a port.
fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The login form, with a fresh double-submit token in its hidden field and in a cookie that only
/// `POST /webmail/login` receives.
pub fn login_page() -> Response {
    let Ok(token) = random_token() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no randomness").into_response();
    };
    let mut response = html(page("login.html", Some(&token)));
    let cookie = set_cookie(LOGIN_COOKIE, &token, "/webmail/login", LOGIN_FORM_LIFETIME);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
pub struct AssetQuery {
    v: Option<String>,
}

/// `GET /webmail/assets/{name}`: any embedded file but the pages.
pub async fn asset(Path(name): Path<String>, Query(query): Query<AssetQuery>) -> Response {
    let Some(bytes) = file(&name).filter(|_| !name.ends_with(".html")) else {
        return crate::problem::Problem::not_found("no such file").into_response();
    };
    let mut response = Body::from(bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&name)));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    let current = query.v.as_deref() == Some(VERSION.as_str());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(if current { IMMUTABLE } else { "no-cache" }));
    response
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json" | "webmanifest") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_embedded_and_filled_in() {
        let login = page("login.html", Some("TOKEN"));
        assert!(login.contains("value=\"TOKEN\""), "the login form carries the token");
        assert!(!login.contains("{{"), "no placeholder left");
        let index = page("index.html", None);
        assert!(index.contains(&format!("app.js?v={}", *VERSION)));
    }

    #[test]
    fn the_pages_keep_to_the_policy() {
        // script-src 'self' and style-src 'self': no inline script, style or handler would run.
        for (name, bytes) in files::FILES.iter().filter(|(n, _)| n.ends_with(".html")) {
            let text = String::from_utf8_lossy(bytes).to_ascii_lowercase();
            let inline_script = text.match_indices("<script").any(|(at, _)| {
                let tag = &text[at..text[at..].find('>').map_or(text.len(), |end| at + end)];
                !tag.contains(" src=")
            });
            assert!(!inline_script, "{name} has an inline script");
            assert!(!text.contains("<style"), "{name} has an inline style block");
            assert!(!text.contains(" style=\""), "{name} has a style attribute");
            assert!(!text.contains(" onclick=") && !text.contains(" onload="), "{name} has a handler");
        }
    }

    #[test]
    fn loopback_hosts_are_this_machine() {
        for host in
            ["localhost", "localhost:8080", "mail.localhost", "127.0.0.1:8080", "127.1.2.3", "[::1]:8080", "[::1]"]
        {
            assert!(is_loopback(host), "{host}");
        }
        for host in
            ["", "mail.example.org", "mail.example.org:8080", "10.0.0.1", "[2001:db8::1]:80", "localhost.evil.test"]
        {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn types_follow_extensions() {
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("icon.svg"), "image/svg+xml");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
