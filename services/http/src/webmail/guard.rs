//! CSRF protection for what a browser sends with its cookie. A request that changes something and was
//! authenticated by the session cookie must come from our own pages: `Sec-Fetch-Site`, when the browser
//! sends it, must be `same-origin`; `Origin`, when present, must be ours; and `X-CSRF-Token` must carry
//! the session's token, which only our pages can read (from `/webmail/session`). SameSite=Strict on the
//! cookie already keeps it off cross-site requests; these checks hold even where it does not (an old
//! browser, a sibling subdomain, which is same-site but not same-origin).
//!
//! A browser also sends credentials it was not given by our pages: `Authorization: Basic` once its user
//! answered the password prompt, with any request to us, a foreign page's `no-cors` POST included. So
//! every change, whatever proves it, first passes [`not_cross_site`].

use std::net::IpAddr;

use axum::http::{HeaderMap, header};

use crate::App;
use crate::auth::Account;
use crate::problem::Problem;
use crate::webmail::sessions::{Session, same_secret};

/// The header that carries the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The account of a request that changes something (`POST /jmap/api`, an upload): by `Authorization`
/// as before, or by the cookie under the CSRF checks; from no other origin's page either way.
pub async fn authenticate_change(app: &App, headers: &HeaderMap, client: IpAddr) -> Result<Account, Problem> {
    not_cross_site(headers, app.public_url.as_deref(), &app.cors_origins)?;
    let (account, session) = app.auth.caller(headers, client).await?;
    if let Some(session) = session {
        check(app, headers, &session, header_token(headers))?;
    }
    Ok(account)
}

/// The CSRF checks of one cookie-authenticated request that changes something, `token` being what the
/// request sent (the header, or a form field).
pub fn check(app: &App, headers: &HeaderMap, session: &Session, token: Option<&str>) -> Result<(), Problem> {
    same_origin(headers, app.public_url.as_deref())?;
    match token {
        Some(token) if same_secret(token, &session.csrf) => Ok(()),
        _ => Err(Problem::forbidden("missing or wrong CSRF token")),
    }
}

pub fn header_token(headers: &HeaderMap) -> Option<&str> {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Refuses a change a browser sent for a page of another origin, whatever credentials it carries: an
/// `Origin` (RFC 6454 §7) that is neither ours nor one of the CORS origins, or else a `Sec-Fetch-Site`
/// other than `same-origin` or `none` (the user's own navigation). API clients (curl, jmapc) send
/// neither header and pass; a page of a CORS origin is cross-site by nature and passes by its `Origin`.
pub fn not_cross_site(headers: &HeaderMap, public_url: Option<&str>, cors_origins: &[String]) -> Result<(), Problem> {
    let refuse = || Err(Problem::forbidden("cross-origin request refused"));
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else {
            return refuse();
        };
        if cors_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)) {
            return Ok(());
        }
        if !ours(headers, origin, public_url) {
            return refuse();
        }
    }
    match headers.get("sec-fetch-site").map(|site| site.as_bytes()) {
        None | Some(b"same-origin" | b"none") => Ok(()),
        Some(_) => refuse(),
    }
}

/// Refuses a request a browser says came from another origin (Fetch Metadata, and RFC 6454 §7's
/// `Origin`). Our origin is the configured public URL's, or else the request's own `Host` (a browser
/// sends the Host it connected to, and a page of another origin cannot change it).
pub fn same_origin(headers: &HeaderMap, public_url: Option<&str>) -> Result<(), Problem> {
    let refuse = || Err(Problem::forbidden("cross-origin request refused"));
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return refuse();
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let Ok(origin) = origin.to_str() else {
        return refuse();
    };
    if ours(headers, origin, public_url) { Ok(()) } else { refuse() }
}

/// Whether `origin` is this server's own.
fn ours(headers: &HeaderMap, origin: &str, public_url: Option<&str>) -> bool {
    match public_url {
        Some(url) => origin_of(url).is_some_and(|o| o.eq_ignore_ascii_case(origin)),
        None => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            let authority = origin.split_once("://").map(|(_, rest)| rest);
            matches!((host, authority), (Some(host), Some(authority)) if host.eq_ignore_ascii_case(authority))
        }
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    Some(&url[..scheme.len() + 3 + end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn same_origin_requests_pass() {
        let ok = |pairs: &[(&'static str, &str)], public: Option<&str>| same_origin(&headers(pairs), public).is_ok();
        // curl and other non-browsers send neither header; the CSRF token still stands in their way.
        assert!(ok(&[("host", "mail.test")], None));
        assert!(ok(&[("host", "mail.test:8443"), ("origin", "https://mail.test:8443")], None));
        assert!(ok(&[("sec-fetch-site", "same-origin"), ("origin", "https://Mail.Test"), ("host", "mail.test")], None));
        assert!(ok(&[("origin", "https://mail.test"), ("host", "other")], Some("https://mail.test/")));
    }

    #[test]
    fn other_origins_are_refused() {
        let refused =
            |pairs: &[(&'static str, &str)], public: Option<&str>| same_origin(&headers(pairs), public).is_err();
        assert!(refused(&[("sec-fetch-site", "cross-site"), ("host", "mail.test")], None));
        assert!(refused(&[("sec-fetch-site", "same-site"), ("host", "mail.test")], None));
        assert!(refused(&[("sec-fetch-site", "none"), ("host", "mail.test")], None));
        assert!(refused(&[("origin", "https://evil.test"), ("host", "mail.test")], None));
        assert!(refused(&[("origin", "null"), ("host", "mail.test")], None));
        assert!(refused(&[("origin", "https://mail.test:8443"), ("host", "mail.test")], None));
        assert!(refused(&[("origin", "https://mail.test")], None));
        assert!(refused(&[("origin", "https://mail.test.evil.test"), ("host", "x")], Some("https://mail.test")));
    }

    #[test]
    fn changes_from_other_pages_are_refused_whatever_the_credentials() {
        let cors = ["https://client.test".to_owned()];
        let passes = |pairs: &[(&'static str, &str)], public: Option<&str>| {
            not_cross_site(&headers(pairs), public, &cors).is_ok()
        };
        // curl, jmapc: neither header.
        assert!(passes(&[("host", "mail.test"), ("authorization", "Basic eDp5")], None));
        assert!(passes(
            &[("sec-fetch-site", "same-origin"), ("origin", "https://mail.test"), ("host", "mail.test")],
            None
        ));
        assert!(passes(&[("sec-fetch-site", "none"), ("host", "mail.test")], None));
        assert!(passes(&[("origin", "https://mail.test"), ("host", "x")], Some("https://mail.test")));
        // A page of a configured CORS origin is cross-site, and allowed.
        assert!(passes(
            &[("sec-fetch-site", "cross-site"), ("origin", "https://client.test"), ("host", "mail.test")],
            None
        ));
        // A foreign page's no-cors POST, which carries cached Basic credentials by itself.
        let evil = [("sec-fetch-site", "cross-site"), ("origin", "https://evil.test"), ("host", "mail.test")];
        assert!(!passes(&evil, None));
        assert!(!passes(&[("origin", "https://evil.test"), ("host", "mail.test")], None));
        assert!(!passes(&[("origin", "null"), ("host", "mail.test")], None));
        assert!(!passes(&[("sec-fetch-site", "cross-site"), ("host", "mail.test")], None));
        assert!(!passes(&[("sec-fetch-site", "same-site"), ("host", "mail.test")], None));
        assert!(!passes(&[("origin", "https://mail.test.evil.test"), ("host", "x")], Some("https://mail.test")));
    }

    #[test]
    fn origins_of_urls() {
        assert_eq!(origin_of("https://mail.test/base/"), Some("https://mail.test"));
        assert_eq!(origin_of("http://mail.test:8080"), Some("http://mail.test:8080"));
        assert_eq!(origin_of("mail.test"), None);
    }
}
