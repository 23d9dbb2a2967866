//! The webmail: pages at `/` for a browser, the same origin as the JMAP API they speak. This module is
//! the server side only: the embedded pages and files (`pages`), logging in and out with a session in
//! NATS behind an HttpOnly cookie (`login`, `sessions`), the CSRF checks every change passes (`guard`,
//! used by the JMAP endpoints too), and mail's HTML made safe on the server
//! (`html`, `sanitise`), each document made once for its HEAD and its GET (`rendered`). The page
//! itself is plain HTML, CSS and JavaScript in `services/http/webmail/`, with no build step.
//!
//! **Invariant:** nothing the browser is sent was written by a mail's sender except through `sanitise`,
//! and the page's own documents allow no inline script or style (`pages::PAGE_POLICY`).

pub mod guard;
pub mod html;
pub mod login;
pub mod pages;
pub mod rendered;
pub mod sanitise;
pub mod sessions;

/// The largest login or logout form.
pub const FORM_LIMIT: usize = 16 * 1024;
