//! SPF, DKIM, ARC and DMARC against a DNS cache filled by each test. The resolver behind it is a UDP
//! socket on loopback that never answers, so a name a test did not put in the cache times out (as a
//! slow domain would) and nothing ever reaches the real DNS. Keys are generated in the test and messages
//! signed with mail-auth's signer.

use std::net::{IpAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dkim::DkimSigner;
use mail_auth::dmarc::Dmarc;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::spf::Spf;
use mail_auth::{DnsError, Error, ResolverCache, Txt};
use mailbus_dns::{DnsConfig, DnsServers};

use super::*;

const CLIENT: &str = "192.0.2.10";

/// A resolver that never answers, and the cache the test fills.
struct Dns {
    caches: DnsCaches,
    /// Keeps the silent server's port taken.
    _silent: UdpSocket,
    server: std::net::SocketAddr,
}

impl Dns {
    fn new() -> Self {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = silent.local_addr().unwrap();
        Dns { caches: DnsCaches::new(1024), _silent: silent, server }
    }

    fn until() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    fn spf(self, name: &str, record: &str) -> Self {
        let spf = Spf::parse(record.as_bytes()).unwrap();
        self.caches.txt.insert(fqdn(name), Txt::Spf(Arc::new(spf)), Self::until());
        self
    }

    fn dmarc(self, domain: &str, record: &str) -> Self {
        let dmarc = Dmarc::parse(record.as_bytes()).unwrap();
        self.caches.txt.insert(fqdn(&format!("_dmarc.{domain}")), Txt::Dmarc(Arc::new(dmarc)), Self::until());
        self
    }

    fn dkim_key(self, selector: &str, domain: &str, record: &str) -> Self {
        let key = DomainKey::parse(record.as_bytes()).unwrap();
        let name = fqdn(&format!("{selector}._domainkey.{domain}"));
        self.caches.txt.insert(name, Txt::DomainKey(Arc::new(key)), Self::until());
        self
    }

    /// No such name (NXDOMAIN), for every TXT name given.
    fn nxdomain(self, names: &[&str]) -> Self {
        for name in names {
            let error = Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain));
            self.caches.txt.insert(fqdn(name), Txt::Error(error), Self::until());
        }
        self
    }

    fn verifier(self, policy: AuthPolicy) -> Verifier {
        let dns = DnsConfig { servers: DnsServers::Servers(vec![self.server]), timeout: Duration::from_millis(100) };
        let (config, options) = dns.parts().unwrap();
        Verifier::with_caches(MessageAuthenticator::new(config, options).unwrap(), self.caches, policy)
    }
}

fn fqdn(name: &str) -> Box<str> {
    format!("{}.", name.to_ascii_lowercase()).into()
}

fn policy() -> AuthPolicy {
    AuthPolicy {
        authserv_id: "mx.test".into(),
        spf: Enforcement::Tag,
        dkim: true,
        arc: true,
        dmarc: Enforcement::Tag,
        max_size: 1 << 20,
        deadline: Duration::from_secs(2),
    }
}

fn ip() -> IpAddr {
    CLIENT.parse().unwrap()
}

fn sender(address: &str) -> EmailAddress {
    address.parse().unwrap()
}

/// The names a lookup walks past that no test cares about.
const QUIET: &[&str] = &["_dmarc.com", "_dmarc.org", "_dmarc.net", "_dmarc.example", "example", "com", "org"];

// ---- SPF (RFC 7208 §2.6): the seven results ----

async fn spf_of(record: Option<&str>) -> SpfVerdict {
    let dns = Dns::new().nxdomain(&["mail.sender.example"]);
    let dns = match record {
        Some(record) => dns.spf("sender.example", record),
        None => dns.nxdomain(&["sender.example"]),
    };
    let verifier = dns.verifier(policy());
    verifier.spf(ip(), "mail.sender.example", Some(&sender("a@sender.example"))).await.verdict()
}

#[tokio::test]
async fn spf_pass_fail_softfail_neutral_none() {
    assert_eq!(spf_of(Some(&format!("v=spf1 ip4:{CLIENT} -all"))).await, SpfVerdict::Pass);
    assert_eq!(spf_of(Some("v=spf1 ip4:198.51.100.0/24 -all")).await, SpfVerdict::Fail);
    assert_eq!(spf_of(Some("v=spf1 ip4:198.51.100.0/24 ~all")).await, SpfVerdict::SoftFail);
    assert_eq!(spf_of(Some("v=spf1 ?all")).await, SpfVerdict::Neutral);
    assert_eq!(spf_of(None).await, SpfVerdict::None);
}

#[tokio::test]
async fn spf_permerror_for_a_broken_record() {
    // RFC 7208 §4.6.4: an include of a domain with no SPF record is a permerror.
    let verifier = Dns::new()
        .nxdomain(&["mail.sender.example", "nothing.example"])
        .spf("sender.example", "v=spf1 include:nothing.example -all")
        .verifier(policy());
    let found = verifier.spf(ip(), "mail.sender.example", Some(&sender("a@sender.example"))).await;
    assert_eq!(found.verdict(), SpfVerdict::PermError);
}

#[tokio::test]
async fn spf_temperror_when_the_dns_does_not_answer_in_time() {
    // sender.example is not in the cache: the lookup goes to the silent server and times out.
    let verifier = Dns::new().nxdomain(&["mail.sender.example"]).verifier(policy());
    let found = verifier.spf(ip(), "mail.sender.example", Some(&sender("a@sender.example"))).await;
    assert_eq!(found.verdict(), SpfVerdict::TempError);
}

#[tokio::test]
async fn a_stalled_lookup_is_cut_off_at_the_deadline() {
    let mut slow = policy();
    slow.deadline = Duration::from_millis(50);
    let dns = Dns::new().nxdomain(&["mail.sender.example"]);
    // A resolver timeout far beyond the deadline: only the deadline can end the check.
    let config = DnsConfig { servers: DnsServers::Servers(vec![dns.server]), timeout: Duration::from_secs(30) };
    let (config, options) = config.parts().unwrap();
    let verifier = Verifier::with_caches(MessageAuthenticator::new(config, options).unwrap(), dns.caches, slow);
    let started = Instant::now();
    let found = verifier.spf(ip(), "mail.sender.example", Some(&sender("a@sender.example"))).await;
    assert_eq!(found.verdict(), SpfVerdict::TempError);
    assert!(started.elapsed() < Duration::from_secs(30), "the deadline, not the resolver, ended it");
}

#[tokio::test]
async fn a_failing_helo_identity_settles_it_and_the_null_sender_is_checked_by_helo() {
    let verifier = Dns::new()
        .spf("mail.sender.example", "v=spf1 -all")
        .spf("sender.example", &format!("v=spf1 ip4:{CLIENT} -all"))
        .verifier(policy());
    let found = verifier.spf(ip(), "mail.sender.example", Some(&sender("a@sender.example"))).await;
    assert_eq!(found.verdict(), SpfVerdict::Fail);
    let bounce = verifier.spf(ip(), "mail.sender.example", None).await;
    assert_eq!(bounce.verdict(), SpfVerdict::Fail);

    // An address literal is no HELO identity: only MAIL FROM counts.
    let found = verifier.spf(ip(), "[192.0.2.10]", Some(&sender("a@sender.example"))).await;
    assert_eq!(found.verdict(), SpfVerdict::Pass);
}

// ---- DKIM (RFC 6376) ----

/// An ed25519 key generated for the test, and the TXT record that publishes it.
struct Signer {
    pkcs8: Vec<u8>,
}

impl Signer {
    fn new() -> Self {
        Signer { pkcs8: Ed25519Key::generate_pkcs8().unwrap() }
    }

    fn key(&self) -> Ed25519Key {
        Ed25519Key::from_pkcs8_der(&self.pkcs8).unwrap()
    }

    fn record(&self) -> String {
        let public = base64::engine::general_purpose::STANDARD.encode(self.key().public_key());
        format!("v=DKIM1; k=ed25519; p={public}")
    }

    /// `message` with a DKIM-Signature of `domain`, selector `s1`, prepended.
    fn sign(&self, domain: &str, message: &str) -> String {
        self.sign_with(domain, message, None)
    }

    fn sign_with(&self, domain: &str, message: &str, expiration: Option<u64>) -> String {
        let mut signer =
            DkimSigner::from_key(self.key()).domain(domain).selector("s1").headers(["From", "To", "Subject"]);
        if let Some(seconds) = expiration {
            signer = signer.expiration(seconds);
        }
        let signature = signer.sign(message.as_bytes()).unwrap();
        format!("{}{message}", signature.to_header())
    }
}

fn message_from(from: &str) -> String {
    format!("From: <{from}>\r\nTo: <alice@mx.test>\r\nSubject: hello\r\n\r\nThe body.\r\n")
}

/// The DKIM and DMARC results only, for a message from `from` sent with MAIL FROM `mail_from`.
async fn verify(verifier: &Verifier, mail_from: &str, message: &str) -> Findings {
    let spf = verifier.spf(ip(), "[192.0.2.10]", Some(&sender(mail_from))).await;
    verifier.message(ip(), "[192.0.2.10]", Some(&spf), Some(message.as_bytes())).await
}

fn result_of<'a>(header: &'a str, method: &str) -> &'a str {
    let start = header.find(&format!("{method}=")).unwrap_or_else(|| panic!("no {method}= in {header}"));
    let rest = &header[start + method.len() + 1..];
    &rest[..rest.find([' ', ';', '\r']).unwrap_or(rest.len())]
}

fn dkim_dns(signer: &Signer) -> Dns {
    Dns::new().nxdomain(QUIET).nxdomain(&["signer.example", "_dmarc.signer.example"]).dkim_key(
        "s1",
        "signer.example",
        &signer.record(),
    )
}

#[tokio::test]
async fn dkim_good_signature_passes() {
    let signer = Signer::new();
    let verifier = dkim_dns(&signer).verifier(policy());
    let message = signer.sign("signer.example", &message_from("a@signer.example"));
    let findings = verify(&verifier, "a@signer.example", &message).await;
    assert_eq!(result_of(&findings.header, "dkim"), "pass", "{}", findings.header);
    assert!(findings.header.contains("header.d=signer.example"), "{}", findings.header);
}

#[tokio::test]
async fn dkim_bad_body_hash_fails() {
    let signer = Signer::new();
    let verifier = dkim_dns(&signer).verifier(policy());
    let message = signer.sign("signer.example", &message_from("a@signer.example")).replace("The body.", "The forgery.");
    let findings = verify(&verifier, "a@signer.example", &message).await;
    // As OpenDKIM words it: the signature is not valid, and so no signature passes for DMARC.
    assert_eq!(result_of(&findings.header, "dkim"), "neutral", "{}", findings.header);
    assert!(findings.header.contains("(body hash did not verify)"), "{}", findings.header);
}

#[tokio::test]
async fn dkim_bad_signature_fails() {
    let signer = Signer::new();
    let verifier = dkim_dns(&signer).verifier(policy());
    // A signed header changed after signing: the body hash still matches, the signature does not.
    let message =
        signer.sign("signer.example", &message_from("a@signer.example")).replace("Subject: hello", "Subject: HELLO");
    let findings = verify(&verifier, "a@signer.example", &message).await;
    assert_eq!(result_of(&findings.header, "dkim"), "fail", "{}", findings.header);
    assert!(!findings.header.to_lowercase().contains("body hash"), "{}", findings.header);

    // Signed with another key than the one published.
    let impostor = Signer::new();
    let message = impostor.sign("signer.example", &message_from("a@signer.example"));
    let findings = verify(&verifier, "a@signer.example", &message).await;
    assert_eq!(result_of(&findings.header, "dkim"), "fail", "{}", findings.header);
}

#[tokio::test]
async fn dkim_expired_signature_is_neutral() {
    let signer = Signer::new();
    let verifier = dkim_dns(&signer).verifier(policy());
    let lasting = signer.sign_with("signer.example", &message_from("a@signer.example"), Some(3600));
    let findings = verify(&verifier, "a@signer.example", &lasting).await;
    assert_eq!(result_of(&findings.header, "dkim"), "pass", "{}", findings.header);
    // RFC 6376 §3.5 x=: this one expires one second after it was made.
    let message = signer.sign_with("signer.example", &message_from("a@signer.example"), Some(1));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let findings = verify(&verifier, "a@signer.example", &message).await;
    assert_eq!(result_of(&findings.header, "dkim"), "neutral", "{}", findings.header);
    assert!(findings.header.contains("(signature error)"), "{}", findings.header);
}

#[tokio::test]
async fn dkim_missing_key_is_a_permerror() {
    let signer = Signer::new();
    let verifier = Dns::new()
        .nxdomain(QUIET)
        .nxdomain(&["signer.example", "_dmarc.signer.example", "s1._domainkey.signer.example"])
        .verifier(policy());
    let message = signer.sign("signer.example", &message_from("a@signer.example"));
    let findings = verify(&verifier, "a@signer.example", &message).await;
    assert_eq!(result_of(&findings.header, "dkim"), "permerror", "{}", findings.header);
}

#[tokio::test]
async fn an_unsigned_message_has_dkim_none() {
    let verifier = Dns::new().nxdomain(QUIET).nxdomain(&["signer.example", "_dmarc.signer.example"]).verifier(policy());
    let findings = verify(&verifier, "a@signer.example", &message_from("a@signer.example")).await;
    assert_eq!(result_of(&findings.header, "dkim"), "none", "{}", findings.header);
    assert_eq!(result_of(&findings.header, "dmarc"), "none", "{}", findings.header);
}

// ---- DMARC (RFC 7489): alignment and policy ----

fn dmarc_dns(signer: &Signer, record: &str) -> Dns {
    Dns::new()
        .nxdomain(QUIET)
        .nxdomain(&["_dmarc.mail.example.com", "_dmarc.news.example.com", "mail.example.com", "bounce.example.net"])
        .nxdomain(&["_dmarc.com"])
        .spf("example.com", &format!("v=spf1 ip4:{CLIENT} -all"))
        .dkim_key("s1", "example.com", &signer.record())
        .dkim_key("s1", "mail.example.com", &signer.record())
        .dmarc("example.com", record)
}

#[tokio::test]
async fn dmarc_relaxed_alignment_passes_a_subdomain_signature() {
    let signer = Signer::new();
    let verifier = dmarc_dns(&signer, "v=DMARC1; p=reject").verifier(policy());
    // d=mail.example.com signs for From: example.com; the envelope is another domain's, so only DKIM aligns.
    let message = signer.sign("mail.example.com", &message_from("a@example.com"));
    let findings = verify(&verifier, "x@bounce.example.net", &message).await;
    assert_eq!(result_of(&findings.header, "dmarc"), "pass", "{}", findings.header);
}

#[tokio::test]
async fn dmarc_strict_alignment_fails_a_subdomain_signature() {
    let signer = Signer::new();
    let enforce = AuthPolicy { dmarc: Enforcement::Enforce, ..policy() };
    let verifier = dmarc_dns(&signer, "v=DMARC1; p=reject; adkim=s; aspf=s").verifier(enforce);
    let message = signer.sign("mail.example.com", &message_from("a@example.com"));
    let findings = verify(&verifier, "x@bounce.example.net", &message).await;
    assert_eq!(result_of(&findings.header, "dkim"), "pass", "{}", findings.header);
    assert_eq!(result_of(&findings.header, "dmarc"), "fail", "{}", findings.header);
    assert_eq!(findings.decision, Decision::Reject { domain: "example.com".into() });

    // The same domain exactly is aligned under strict rules too.
    let message = signer.sign("example.com", &message_from("a@example.com"));
    let findings = verify(&verifier, "x@bounce.example.net", &message).await;
    assert_eq!(result_of(&findings.header, "dmarc"), "pass", "{}", findings.header);
    assert_eq!(findings.decision, Decision::Accept);
}

#[tokio::test]
async fn dmarc_spf_alignment_alone_passes() {
    let signer = Signer::new();
    let verifier = dmarc_dns(&signer, "v=DMARC1; p=reject").verifier(policy());
    let findings = verify(&verifier, "x@example.com", &message_from("a@example.com")).await;
    assert_eq!(result_of(&findings.header, "spf"), "pass", "{}", findings.header);
    assert_eq!(result_of(&findings.header, "dmarc"), "pass", "{}", findings.header);
}

#[tokio::test]
async fn dmarc_subdomain_policy_applies_to_a_subdomain_author() {
    let signer = Signer::new();
    let enforce = AuthPolicy { dmarc: Enforcement::Enforce, ..policy() };
    // The organisation rejects, but asks only to quarantine its subdomains' failures: tagged, not refused.
    let verifier = dmarc_dns(&signer, "v=DMARC1; p=reject; sp=quarantine").verifier(enforce.clone());
    let findings = verify(&verifier, "x@bounce.example.net", &message_from("a@news.example.com")).await;
    assert_eq!(result_of(&findings.header, "dmarc"), "fail", "{}", findings.header);
    assert!(findings.header.contains("policy.dmarc=quarantine"), "{}", findings.header);
    assert_eq!(findings.decision, Decision::Accept);

    // sp=reject: the subdomain's failure is refused.
    let verifier = dmarc_dns(&signer, "v=DMARC1; p=none; sp=reject").verifier(enforce.clone());
    let findings = verify(&verifier, "x@bounce.example.net", &message_from("a@news.example.com")).await;
    assert_eq!(findings.decision, Decision::Reject { domain: "news.example.com".into() });
    // … while the organisational domain itself has p=none.
    let findings = verify(&verifier, "x@bounce.example.net", &message_from("a@example.com")).await;
    assert_eq!(result_of(&findings.header, "dmarc"), "fail", "{}", findings.header);
    assert_eq!(findings.decision, Decision::Accept);
}

#[tokio::test]
async fn dmarc_tag_mode_never_refuses() {
    let signer = Signer::new();
    let verifier = dmarc_dns(&signer, "v=DMARC1; p=reject").verifier(policy());
    let findings = verify(&verifier, "x@bounce.example.net", &message_from("a@example.com")).await;
    assert_eq!(result_of(&findings.header, "dmarc"), "fail", "{}", findings.header);
    assert_eq!(findings.decision, Decision::Accept);
}

#[tokio::test]
async fn dmarc_enforced_defers_when_its_record_cannot_be_looked_up() {
    let enforce = AuthPolicy { dmarc: Enforcement::Enforce, ..policy() };
    // _dmarc.slow.example is not in the cache: the silent server times out.
    let verifier = Dns::new().nxdomain(QUIET).nxdomain(&["bounce.example.net"]).verifier(enforce);
    let findings = verify(&verifier, "x@bounce.example.net", &message_from("a@slow.example")).await;
    assert_eq!(findings.decision, Decision::Defer { domain: "slow.example".into() }, "{}", findings.header);
}

// ---- the header ----

#[tokio::test]
async fn the_header_names_us_and_records_every_check() {
    let signer = Signer::new();
    let verifier = dmarc_dns(&signer, "v=DMARC1; p=reject").verifier(policy());
    let message = signer.sign("example.com", &message_from("a@example.com"));
    let findings = verify(&verifier, "x@example.com", &message).await;
    let header = &findings.header;
    assert!(header.starts_with("Authentication-Results: mx.test;\r\n\t"), "{header}");
    assert!(header.ends_with("\r\n") && !header.ends_with("\r\n\r\n"), "{header}");
    for (method, result) in [("spf", "pass"), ("dkim", "pass"), ("arc", "none"), ("dmarc", "pass")] {
        assert_eq!(result_of(header, method), result, "{header}");
    }
    assert!(header.contains("smtp.mailfrom=x@example.com"), "{header}");
    assert_eq!(findings.dmarc, "pass");
}

#[tokio::test]
async fn a_message_too_large_to_check_gets_spf_and_a_comment() {
    let verifier = Dns::new().spf("example.com", &format!("v=spf1 ip4:{CLIENT} -all")).verifier(policy());
    let spf = verifier.spf(ip(), "[192.0.2.10]", Some(&sender("x@example.com"))).await;
    let findings = verifier.message(ip(), "[192.0.2.10]", Some(&spf), None).await;
    assert_eq!(result_of(&findings.header, "spf"), "pass", "{}", findings.header);
    assert!(!findings.header.contains("dkim="), "{}", findings.header);
    assert!(findings.header.contains("(message too large to verify)"), "{}", findings.header);
    assert_eq!(findings.decision, Decision::Accept);
}

#[test]
fn forged_results_claiming_our_id_are_found_and_others_kept() {
    let message = "Received: from x\r\nAuthentication-Results: mx.test; dkim=pass\r\n\theader.d=bank.example\r\n\
        authentication-results:   (comment) MX.TEST ; spf=pass\r\n\
        Authentication-Results: other.example; spf=fail\r\n\
        Authentication-Results: mx.test.evil; spf=pass\r\n\
        Subject: hi\r\n\r\nAuthentication-Results: mx.test; in the body\r\n";
    let ranges = forged_results(message.as_bytes(), "mx.test");
    let found: Vec<&str> = ranges.iter().map(|r| &message[r.clone()]).collect();
    assert_eq!(
        found,
        [
            "Authentication-Results: mx.test; dkim=pass\r\n\theader.d=bank.example\r\n",
            "authentication-results:   (comment) MX.TEST ; spf=pass\r\n"
        ]
    );
    // A header section cut off mid-field: the incomplete field is left alone.
    let cut = "Authentication-Results: mx.test; spf=pass\r\n\tsmtp.mailfrom=x";
    assert!(forged_results(cut.as_bytes(), "mx.test").is_empty());
}

// ---- ARC (RFC 8617): forwarded mail ----

#[tokio::test]
async fn arc_keeps_the_original_results_of_a_forwarded_message_that_broke_its_dkim() {
    use mail_auth::arc::ArcSealer;

    let (author, forwarder) = (Signer::new(), Signer::new());
    let dns = || {
        Dns::new()
            .nxdomain(QUIET)
            .nxdomain(&["_dmarc.sender.example", "lists.example"])
            .spf("sender.example", "v=spf1 ip4:198.51.100.1 -all")
            .dkim_key("s1", "sender.example", &author.record())
            .dkim_key("arc", "forwarder.example", &forwarder.record())
    };
    // The forwarder receives the original, signed by its author, and verifies it.
    let original = author.sign("sender.example", &message_from("a@sender.example"));
    let at_forwarder = dns().verifier(policy());
    let parsed = AuthenticatedMessage::parse(original.as_bytes()).unwrap();
    let dkim = at_forwarder.authenticator.verify_dkim(at_forwarder.parameters(&parsed)).await;
    let arc = at_forwarder.authenticator.verify_arc(at_forwarder.parameters(&parsed)).await;
    assert_eq!(dkim[0].result(), &DkimResult::Pass);
    let results = AuthenticationResults::new("forwarder.example").with_dkim_results(&dkim, "a@sender.example");
    // It adds a footer, as a mailing list does, which breaks the author's signature, and seals the result.
    let forwarded = original.replace("The body.\r\n", "The body.\r\n-- \r\nlists.example\r\n");
    let parsed = AuthenticatedMessage::parse(forwarded.as_bytes()).unwrap();
    let seal = ArcSealer::from_key(forwarder.key())
        .domain("forwarder.example")
        .selector("arc")
        .headers(["From", "To", "Subject", "DKIM-Signature"])
        .seal(&parsed, &results, &arc)
        .unwrap();
    let sealed = format!("{}{forwarded}", seal.to_header());

    let verifier = dns().verifier(policy());
    let findings = verify(&verifier, "bounce@lists.example", &sealed).await;
    assert_eq!(result_of(&findings.header, "arc"), "pass", "{}", findings.header);
    assert_ne!(result_of(&findings.header, "dkim"), "pass", "{}", findings.header);

    // A seal whose signed fields were changed after sealing does not pass.
    let tampered = sealed.replace("Subject: hello", "Subject: tampered");
    let findings = verify(&verifier, "bounce@lists.example", &tampered).await;
    assert_eq!(result_of(&findings.header, "arc"), "fail", "{}", findings.header);
}

#[test]
fn only_a_plain_from_domain_is_written_into_authentication_results() {
    assert!(super::is_plain_domain("bank.example") && super::is_plain_domain("bücher.example"));
    for forged in ["x; dkim=pass header.d=bank.example", "a b", "x\r\nX-Evil: 1", "", "x(comment)"] {
        assert!(!super::is_plain_domain(forged), "{forged:?}");
    }
}

/// A DKIM-Signature naming a hundred thousand fields over a few hundred header fields is past what
/// verification may cost, and the message is accepted unchecked (saying so); real mail is far below.
#[test]
fn a_signature_naming_too_many_fields_is_not_verified() {
    let mut raw = format!(
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=x.example; s=s; t=1; h={}from; bh=AAAA; b=AAAA\r\n",
        "x-a:".repeat(100_000)
    );
    raw.push_str(&"X-A: 1\r\n".repeat(300));
    raw.push_str("From: a@x.example\r\nSubject: s\r\n\r\nbody\r\n");
    let crafted = AuthenticatedMessage::parse(raw.as_bytes()).unwrap();
    assert!(super::signed_field_lookups(&crafted) > super::MAX_SIGNED_FIELD_LOOKUPS);
    let plain = "DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; h=from:to:subject:date; bh=AAAA; b=AAAA\r\n\
                 From: a@x.example\r\nTo: b@y.example\r\nSubject: s\r\n\r\nbody\r\n";
    let plain = AuthenticatedMessage::parse(plain.as_bytes()).unwrap();
    assert!(super::signed_field_lookups(&plain) > 0 && super::signed_field_lookups(&plain) < 100);
}
