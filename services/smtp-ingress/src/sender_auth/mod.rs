//! Sender authentication on port 25, with mail-auth: SPF (RFC 7208) for the HELO name and the MAIL FROM
//! domain, then, once the body is in, DKIM (RFC 6376), ARC (RFC 8617) and DMARC (RFC 7489), and the
//! `Authentication-Results` field (RFC 8601) that records them under our authserv-id. Every lookup goes
//! through one set of caches and the configured resolvers, and each stage has a deadline: a domain whose
//! servers never answer gets `temperror`, never a stalled session.
//!
//! What a result means to the client (tag or refuse) is the session's to say (`mailbus_smtp::session`);
//! this file finds the results and, for an enforced DMARC policy, the decision.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcOutput, DmarcResult, MX,
    MessageAuthenticator, Parameters, RecordSet, SpfOutput, SpfResult, Txt,
};
use mailbus_address::EmailAddress;
use mailbus_dns::DnsConfig;
use mailbus_smtp::session::{Enforcement, SpfVerdict};

use crate::dns_cache::{DnsCache, DnsCaches};

/// Entries per record type in the process's DNS cache.
const CACHE_CAPACITY: usize = 16_384;

/// What to verify and what to do about it.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// Names us in `Authentication-Results` (RFC 8601 §2.5); incoming fields that claim it are removed.
    pub authserv_id: String,
    pub spf: Enforcement,
    /// DKIM and ARC are only ever tagged: a failed signature alone is no reason to refuse (RFC 6376 §6.3).
    pub dkim: bool,
    pub arc: bool,
    pub dmarc: Enforcement,
    /// Messages larger than this are not checked for DKIM, ARC or DMARC: the checks need the whole
    /// message in memory.
    pub max_size: usize,
    /// How long SPF, and then the checks after the body, may take in all; past it, `temperror`.
    pub deadline: Duration,
}

impl AuthPolicy {
    /// Whether anything is verified after the body.
    pub fn checks_content(&self) -> bool {
        self.dkim || self.arc || self.dmarc.is_on()
    }
}

/// What SPF found at MAIL FROM, kept for DMARC and the header at the end of the transaction.
#[derive(Debug, Clone)]
pub struct SpfFindings {
    ip: IpAddr,
    helo: String,
    /// `None` when the HELO name is no domain (an address literal, a bare word).
    helo_result: Option<SpfOutput>,
    /// The sender and its result; `None` for the null sender.
    mail_from: Option<(String, SpfOutput)>,
}

impl SpfFindings {
    /// What the session decides on: a HELO identity that fails settles it (RFC 7208 §2.3), otherwise the
    /// MAIL FROM identity's result, or for the null sender the HELO identity's.
    pub fn verdict(&self) -> SpfVerdict {
        let helo = self.helo_result.as_ref().map(SpfOutput::result);
        let result = match (&self.mail_from, helo) {
            (_, Some(SpfResult::Fail)) => SpfResult::Fail,
            (Some((_, output)), _) => output.result(),
            (None, Some(result)) => result,
            (None, None) => SpfResult::None,
        };
        verdict(result)
    }

    /// The identity DMARC aligns (RFC 7489 §4.1): MAIL FROM's, or the HELO name's for the null sender.
    fn for_dmarc(&self) -> (String, SpfOutput) {
        match (&self.mail_from, &self.helo_result) {
            (Some((sender, output)), _) => (domain_of(sender).to_owned(), output.clone()),
            (None, Some(output)) => (self.helo.clone(), output.clone()),
            (None, None) => (self.helo.clone(), SpfOutput::default()),
        }
    }
}

fn verdict(result: SpfResult) -> SpfVerdict {
    match result {
        SpfResult::Pass => SpfVerdict::Pass,
        SpfResult::Fail => SpfVerdict::Fail,
        SpfResult::SoftFail => SpfVerdict::SoftFail,
        SpfResult::Neutral => SpfVerdict::Neutral,
        SpfResult::TempError => SpfVerdict::TempError,
        SpfResult::PermError => SpfVerdict::PermError,
        SpfResult::None => SpfVerdict::None,
    }
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(_, domain)| domain)
}

/// The most header-field lookups verification may make: mail-auth finds each field a signature's `h=`
/// names by scanning the header section, so its cost is the names times the fields. Real mail is a few
/// thousand (a dozen names, a hundred fields); one signature naming a million fields in a 10 MB header
/// section would be 10^11, hours of CPU on a thread the checks' timeout cannot interrupt.
const MAX_SIGNED_FIELD_LOOKUPS: usize = 20_000_000;

/// What verifying `message`'s DKIM signatures and ARC message signatures would cost, in lookups.
fn signed_field_lookups(message: &AuthenticatedMessage<'_>) -> usize {
    let names: usize = message.dkim_headers.iter().map(|s| s.header.h.len()).sum::<usize>()
        + message.ams_headers.iter().map(|s| s.header.h.len()).sum::<usize>();
    names.saturating_mul(message.headers.len())
}

/// Letters (any script), digits, `-` and `.`: a domain that can stand as an `Authentication-Results`
/// property value as it is.
fn is_plain_domain(domain: &str) -> bool {
    !domain.is_empty() && domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

/// What to do with a message after its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept,
    /// DMARC `p=reject` and the message failed, under an enforced policy.
    Reject {
        domain: String,
    },
    /// The enforced policy could not be decided for now (a lookup failed or timed out).
    Defer {
        domain: String,
    },
}

/// The outcome of the checks after the body.
#[derive(Debug, Clone)]
pub struct Findings {
    /// The `Authentication-Results` field, CRLF-terminated.
    pub header: String,
    pub decision: Decision,
    /// For the log and the metrics: `pass`, `fail`, … or `none`.
    pub dmarc: &'static str,
}

/// mail-auth's parameters of a check, `P`, with our caches.
type Cached<'a, P> = Parameters<
    'a,
    P,
    DnsCache<Box<str>, Txt>,
    DnsCache<Box<str>, RecordSet<MX>>,
    DnsCache<Box<str>, RecordSet<Ipv4Addr>>,
    DnsCache<Box<str>, RecordSet<Ipv6Addr>>,
    DnsCache<IpAddr, RecordSet<Box<str>>>,
>;

pub struct Verifier {
    authenticator: MessageAuthenticator,
    caches: DnsCaches,
    policy: AuthPolicy,
}

impl Verifier {
    pub fn new(dns: &DnsConfig, policy: AuthPolicy) -> Result<Self, mail_auth::hickory_resolver::net::NetError> {
        let (config, options) = dns.parts()?;
        Ok(Self::with_caches(MessageAuthenticator::new(config, options)?, DnsCaches::new(CACHE_CAPACITY), policy))
    }

    /// With `caches` filled in advance (the tests).
    pub fn with_caches(authenticator: MessageAuthenticator, caches: DnsCaches, policy: AuthPolicy) -> Self {
        Verifier { authenticator, caches, policy }
    }

    pub fn policy(&self) -> &AuthPolicy {
        &self.policy
    }

    fn parameters<P>(&self, params: P) -> Cached<'_, P> {
        Parameters::new(params)
            .with_txt_cache(&self.caches.txt)
            .with_mx_cache(&self.caches.mx)
            .with_ipv4_cache(&self.caches.ipv4)
            .with_ipv6_cache(&self.caches.ipv6)
            .with_ptr_cache(&self.caches.ptr)
    }

    /// SPF for the HELO name (when it is a domain) and for the sender, within the deadline.
    pub async fn spf(&self, ip: IpAddr, helo: &str, sender: Option<&EmailAddress>) -> SpfFindings {
        let ip = ip.to_canonical();
        let host = self.policy.authserv_id.as_str();
        let sender = sender.map(ToString::to_string);
        let helo_domain = helo_is_domain(helo).then_some(helo);
        let checks = async {
            let helo_result = match helo_domain {
                Some(name) => Some(
                    self.authenticator.check_host(self.parameters(SpfParameters::verify_ehlo(ip, name, host))).await,
                ),
                None => None,
            };
            let mail_from = match &sender {
                Some(sender) => {
                    let params = SpfParameters::verify_mail_from(ip, helo, host, sender);
                    Some((sender.clone(), self.authenticator.check_host(self.parameters(params)).await))
                }
                None => None,
            };
            (helo_result, mail_from)
        };
        let (helo_result, mail_from) = match tokio::time::timeout(self.policy.deadline, checks).await {
            Ok(found) => found,
            Err(_) => {
                tracing::info!(%ip, helo, "spf checks timed out");
                let timed_out = |domain: &str| SpfOutput::new(domain.to_owned()).with_result(SpfResult::TempError);
                (
                    helo_domain.map(timed_out),
                    sender.as_ref().map(|sender| (sender.clone(), timed_out(domain_of(sender)))),
                )
            }
        };
        SpfFindings { ip, helo: helo.to_owned(), helo_result, mail_from }
    }

    /// DKIM, ARC and DMARC for a whole message (`None`: too large to check), and the header recording
    /// them with `spf`'s results.
    pub async fn message(&self, ip: IpAddr, helo: &str, spf: Option<&SpfFindings>, raw: Option<&[u8]>) -> Findings {
        let ip = ip.to_canonical();
        let mut results = AuthenticationResults::new(&self.policy.authserv_id);
        if let Some(spf) = spf {
            if let Some(output) = &spf.helo_result {
                results = results.with_spf_ehlo_result(output, spf.ip, &spf.helo);
            }
            if let Some((sender, output)) = &spf.mail_from {
                results = results.with_spf_mailfrom_result(output, spf.ip, sender, &spf.helo);
            }
        }
        let message = match raw {
            None => return Findings::unchecked(results, "message too large to verify"),
            Some(raw) => match AuthenticatedMessage::parse(raw) {
                Some(message) => message,
                None => return Findings::unchecked(results, "message has no header section"),
            },
        };
        if signed_field_lookups(&message) > MAX_SIGNED_FIELD_LOOKUPS {
            return Findings::unchecked(results, "message signs too many header fields to verify");
        }
        let spf_for_dmarc = spf.map_or_else(|| (helo.to_owned(), SpfOutput::default()), SpfFindings::for_dmarc);
        let deadline = self.policy.deadline;
        let checks = self.content_checks(&message, &spf_for_dmarc);
        let Ok((dkim, arc, dmarc)) = tokio::time::timeout(deadline, checks).await else {
            tracing::info!(%ip, "dkim, arc and dmarc checks timed out");
            let domain = domain_of(message.from()).to_owned();
            let mut extra = String::from(";\r\n\tdkim=temperror (timed out)");
            if self.policy.dmarc.is_on() {
                extra.push_str(";\r\n\tdmarc=temperror (timed out)");
                // The From domain is the sender's text: written only when it is a plain domain, never
                // `x; dkim=pass header.d=bank.example` from inside a `<…>` (RFC 8601 §2.2's pvalue).
                if is_plain_domain(&domain) {
                    extra.push_str(&format!(" header.from={domain}"));
                }
            }
            let decision = match self.policy.dmarc {
                Enforcement::Enforce => Decision::Defer { domain },
                _ => Decision::Accept,
            };
            return Findings { header: extended(&results, &extra), decision, dmarc: "temperror" };
        };
        if self.policy.dkim {
            results = results.with_dkim_results(&dkim, message.from());
        }
        if let Some(arc) = &arc {
            results = results.with_arc_result(arc, ip);
        }
        let mut decision = Decision::Accept;
        let mut dmarc_label = "none";
        if let Some(dmarc) = &dmarc {
            results = results.with_dmarc_result(dmarc);
            dmarc_label = label(&dmarc.result());
            if self.policy.dmarc == Enforcement::Enforce {
                decision = enforce(dmarc, &dkim, &spf_for_dmarc.1);
            }
        }
        // RFC 8601 §2.7.1: say that nothing was signed, rather than say nothing.
        let header = if self.policy.dkim && dkim.is_empty() {
            extended(&results, ";\r\n\tdkim=none")
        } else {
            results.to_header()
        };
        Findings { header, decision, dmarc: dmarc_label }
    }

    async fn content_checks<'x>(
        &'x self,
        message: &'x AuthenticatedMessage<'x>,
        spf: &'x (String, SpfOutput),
    ) -> (Vec<DkimOutput<'x>>, Option<ArcOutput<'x>>, Option<DmarcOutput>) {
        let dkim = if self.policy.dkim || self.policy.dmarc.is_on() {
            self.authenticator.verify_dkim(self.parameters(message)).await
        } else {
            Vec::new()
        };
        let arc =
            if self.policy.arc { Some(self.authenticator.verify_arc(self.parameters(message)).await) } else { None };
        let dmarc = if self.policy.dmarc.is_on() {
            let params = DmarcParameters::new(message, &dkim, &spf.0, &spf.1);
            Some(self.authenticator.verify_dmarc(self.parameters(params)).await)
        } else {
            None
        };
        (dkim, arc, dmarc)
    }
}

impl Findings {
    /// The SPF results only, with a comment saying why nothing else was checked.
    fn unchecked(results: AuthenticationResults<'_>, why: &str) -> Findings {
        Findings { header: extended(&results, &format!(" ({why})")), decision: Decision::Accept, dmarc: "none" }
    }
}

/// The field with `extra` after the results: `; none` (what mail-auth writes when there are none) gives
/// way to results, and stays before a comment.
fn extended(results: &AuthenticationResults<'_>, extra: &str) -> String {
    let mut header = results.to_header();
    header.truncate(header.trim_end_matches("\r\n").len());
    if extra.starts_with(';') && header.ends_with("; none") {
        header.truncate(header.len() - "; none".len());
    }
    header.push_str(extra);
    header.push_str("\r\n");
    header
}

/// RFC 7489 §6.6.3 under an enforced policy: refuse a failure of a domain that asks for `p=reject`
/// (`p=quarantine` is only tagged: the mailbox role has no per-delivery folder choice), but defer when a
/// lookup that could have made it pass failed for now.
fn enforce(dmarc: &DmarcOutput, dkim: &[DkimOutput], spf: &SpfOutput) -> Decision {
    let domain = dmarc.domain().to_owned();
    match dmarc.result() {
        DmarcResult::TempError(_) => Decision::Defer { domain },
        DmarcResult::Fail(_) if dmarc.policy() == Policy::Reject => {
            let transient = dkim.iter().any(|d| matches!(d.result(), DkimResult::TempError(_)))
                || spf.result() == SpfResult::TempError;
            if transient { Decision::Defer { domain } } else { Decision::Reject { domain } }
        }
        _ => Decision::Accept,
    }
}

fn label(result: &DmarcResult) -> &'static str {
    match result {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

/// RFC 7208 §2.3: the HELO identity is checked only when it is a fully qualified domain name.
fn helo_is_domain(helo: &str) -> bool {
    helo.contains('.') && !helo.starts_with('[') && helo.parse::<IpAddr>().is_err()
}

/// Finds the `Authentication-Results` fields in `message`'s header section whose authserv-id is
/// `authserv_id` (RFC 8601 §5: a border MTA removes them, as they claim results we did not produce), as
/// byte ranges (each a whole field with its folded lines). `header` is the start of the message: it may end
/// before the header section does, and a field cut off at its end is left alone.
pub fn forged_results(header: &[u8], authserv_id: &str) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < header.len() {
        if header[start..].starts_with(b"\r\n") {
            break;
        }
        // The field runs until a CRLF that is not followed by a space or tab.
        let mut end = start;
        let complete = loop {
            match header[end..].windows(2).position(|w| w == b"\r\n") {
                None => break false,
                Some(at) => {
                    end += at + 2;
                    if !matches!(header.get(end), Some(b' ' | b'\t')) {
                        break header.get(end).is_some();
                    }
                }
            }
        };
        if !complete {
            break;
        }
        if claims(&header[start..end], authserv_id) {
            ranges.push(start..end);
        }
        start = end;
    }
    ranges
}

/// Whether a field is an `Authentication-Results` field whose authserv-id is `authserv_id`.
fn claims(field: &[u8], authserv_id: &str) -> bool {
    const NAME: &[u8] = b"authentication-results";
    let Some(colon) = field.iter().position(|&b| b == b':') else { return false };
    if !field[..colon].trim_ascii().eq_ignore_ascii_case(NAME) {
        return false;
    }
    let value = String::from_utf8_lossy(&field[colon + 1..]);
    let value = skip_comments(value.trim_start());
    let id: String = value.chars().take_while(|c| !c.is_whitespace() && *c != ';' && *c != '(').collect();
    id.eq_ignore_ascii_case(authserv_id)
}

/// Drops leading CFWS comments, `(like this)`, as RFC 5322 §3.2.2 allows before the authserv-id.
fn skip_comments(mut text: &str) -> &str {
    while let Some(rest) = text.strip_prefix('(') {
        let mut depth = 1;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        text = rest[end.min(rest.len())..].trim_start();
    }
    text
}

#[cfg(test)]
mod tests;
