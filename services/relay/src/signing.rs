//! DKIM signing (RFC 6376; ed25519-sha256 of RFC 8463 and rsa-sha256) and ARC sealing (RFC 8617) of what
//! the relay sends to other domains. Pure: the keys come from the mailbox role through `keys`, and
//! `remote` calls [`DomainKeys::sign`] on the octets it is about to send, after any 7-bit downgrade, so
//! the signature covers exactly what the peer receives.

use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults, MessageAuthenticator};
use mailbus_proto::v1 as pb;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};

/// The fields signed, as OpenDKIM's and Stalwart's defaults: those a reader sees and those MIME needs.
/// Any of them absent is signed as absent (mail-auth lists it in `h=` anyway), so it cannot be added on
/// the way; From is listed twice so a second From cannot be added either (RFC 6376 §8.15).
pub const SIGNED_FIELDS: [&str; 13] = [
    "From",
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// The domains whose keys may sign a message leaving for another domain, in the order to try them
/// (the first with an active key signs):
/// - from an authenticated user (submission, JMAP): the envelope sender's domain, which the directory
///   let the account use (`CheckSender`); so nobody gets a signature for a domain they may not send as,
///   and the usual case, From and MAIL FROM in the same domain, is DMARC-aligned;
/// - written by us (a DSN: null sender, no client): the From field's domain, then its parents
///   (`MAILER-DAEMON@mx.example.org` is signed by example.org, aligned under relaxed DMARC);
/// - anything else (mail that came in on port 25): nothing: it is not ours to sign.
pub fn signing_domains(envelope: &pb::Envelope, message: &[u8]) -> Vec<String> {
    let authenticated = envelope.client.as_ref().is_some_and(|c| !c.authenticated_as.is_empty());
    if authenticated && !envelope.mail_from.is_empty() {
        return domain_of(&envelope.mail_from).into_iter().collect();
    }
    let ours = envelope.client.is_none() && envelope.mail_from.is_empty();
    if !(authenticated || ours) {
        return Vec::new();
    }
    let Some(from) = AuthenticatedMessage::parse(message).and_then(|m| m.from.into_iter().next()) else {
        return Vec::new();
    };
    let Some(mut domain) = domain_of(&from) else { return Vec::new() };
    let mut domains = Vec::new();
    while domain.contains('.') {
        let parent = domain.split_once('.').map(|(_, p)| p.to_owned()).unwrap_or_default();
        domains.push(domain);
        domain = parent;
    }
    domains
}

fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

/// One key, loaded twice (mail-auth's signer and sealer each own theirs), and the selector it is
/// published under.
pub struct Key {
    selector: String,
    algorithm: pb::DkimAlgorithm,
    signer: DkimSigner<DkimKey, Done>,
    sealer: ArcSealer<DkimKey, Done>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({}, {})", self.selector, self.algorithm.as_str_name())
    }
}

/// A key from the mailbox role's form: PKCS#8 DER for ed25519, PKCS#1 DER for RSA.
fn load(key: &pb::SigningKey) -> Result<DkimKey, String> {
    Ok(match key.algorithm() {
        pb::DkimAlgorithm::Ed25519 => {
            DkimKey::Ed25519(Ed25519Key::from_pkcs8_der(&key.private_key).map_err(|e| format!("ed25519 key: {e}"))?)
        }
        pb::DkimAlgorithm::Rsa => DkimKey::Rsa(
            RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(key.private_key.as_slice())))
                .map_err(|e| format!("rsa key: {e}"))?,
        ),
        pb::DkimAlgorithm::Unspecified => return Err("no algorithm".into()),
    })
}

impl Key {
    /// relaxed/relaxed canonicalisation (RFC 6376 §3.4), which survives the re-folding relays do.
    pub fn load(domain: &str, key: &pb::SigningKey) -> Result<Self, String> {
        let signer = DkimSigner::from_key(load(key)?)
            .domain(domain)
            .selector(&key.selector)
            .headers(SIGNED_FIELDS)
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        let sealer = ArcSealer::from_key(load(key)?)
            .domain(domain.to_owned())
            .selector(key.selector.clone())
            .headers(SIGNED_FIELDS.into_iter().chain(["DKIM-Signature"]))
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Ok(Key { selector: key.selector.clone(), algorithm: key.algorithm(), signer, sealer })
    }
}

/// The active keys of one signing domain (`d=`).
#[derive(Debug)]
pub struct DomainKeys {
    pub domain: String,
    pub keys: Vec<Key>,
}

impl DomainKeys {
    /// The keys the mailbox role sent; one that does not load is left out (and logged), so the others
    /// still sign.
    pub fn from_pb(domain: &str, reply: &pb::SigningKeysResponse) -> Self {
        let keys = reply
            .keys
            .iter()
            .filter_map(|key| {
                Key::load(domain, key)
                    .inspect_err(|error| tracing::warn!(%domain, selector = %key.selector, %error, "DKIM key unusable"))
                    .ok()
            })
            .collect();
        DomainKeys { domain: domain.to_owned(), keys }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// One `DKIM-Signature` field per key (ed25519 and RSA both when both are active, as Stalwart
    /// does, so receivers that know only RSA still find one they verify), to be prepended to `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut fields = Vec::new();
        for key in &self.keys {
            match key.signer.sign(message) {
                Ok(signature) => fields.extend(signature.to_header().into_bytes()),
                Err(error) => {
                    tracing::warn!(domain = %self.domain, selector = %key.selector, %error, "DKIM signing failed")
                }
            }
        }
        fields
    }

    /// An ARC set (RFC 8617 §4.1: ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results) to be
    /// prepended to a message we forward, or nothing when the message cannot be sealed (a chain whose
    /// last seal says cv=fail, RFC 8617 §5.1.2; a chain `chain` found broken is sealed with cv=fail) or
    /// has no fields to sign. `chain` is the ARC verification of the
    /// message as it arrived (empty: i=1, cv=none). The AAR repeats the `Authentication-Results` that
    /// port 25 added under our `authserv_id`, or says `arc=none` when there is none. One seal, with the
    /// RSA key when there is one: ed25519 ARC is not yet verified by the large receivers.
    pub fn seal(&self, message: &[u8], authserv_id: &str, chain: &ArcOutput<'_>) -> Option<Vec<u8>> {
        let key = self.keys.iter().find(|k| k.algorithm == pb::DkimAlgorithm::Rsa).or_else(|| self.keys.first())?;
        let parsed = AuthenticatedMessage::parse(message)?;
        let results_text = aar_value(message, authserv_id);
        let results = AuthenticationResults::new(&results_text);
        match key.sealer.seal(&parsed, &results, chain) {
            Ok(set) => Some(set.to_header().into_bytes()),
            Err(error) => {
                tracing::info!(domain = %self.domain, selector = %key.selector, %error, "message not ARC-sealed");
                None
            }
        }
    }
}

/// The most header-field lookups verifying an ARC chain may make (as smtp-ingress bounds DKIM and ARC).
const MAX_SIGNED_FIELD_LOOKUPS: usize = 20_000_000;

/// What ARC-seals the copies an alias forwards (RFC 8617 §5.1, as OpenARC after Postfix's virtual alias
/// expansion, or Stalwart's `arc.seal`): our authserv-id, whose `Authentication-Results` the AAR
/// repeats, and a verifier for a chain the message brought with it, whose result the new seal's `cv=`
/// carries.
pub struct Sealer {
    authserv_id: String,
    authenticator: Option<MessageAuthenticator>,
}

impl Sealer {
    pub fn new(authserv_id: String, dns: &mailbus_dns::DnsConfig) -> Self {
        let authenticator =
            dns.parts().ok().and_then(|(config, options)| MessageAuthenticator::new(config, options).ok()).or_else(
                || {
                    tracing::warn!("no resolver for ARC verification: messages with an ARC chain are not sealed");
                    None
                },
            );
        Sealer { authserv_id, authenticator }
    }

    /// The ARC set to prepend to `message` (the octets as they go out), sealed with `keys`; empty when
    /// it cannot be sealed (see [`DomainKeys::seal`]). A message without ARC fields starts a chain
    /// (i=1, cv=none); one with a chain has it verified first, so the seal says what we found.
    pub async fn seal(&self, keys: &DomainKeys, message: &[u8]) -> Vec<u8> {
        let Some(parsed) = AuthenticatedMessage::parse(message) else { return Vec::new() };
        // Verifying an ARC message signature scans the header section once per field it names: past
        // this many lookups (a crafted `h=` of a million names) the chain is not verified nor sealed.
        let lookups = parsed.ams_headers.iter().map(|s| s.header.h.len()).sum::<usize>();
        if lookups.saturating_mul(parsed.headers.len()) > MAX_SIGNED_FIELD_LOOKUPS {
            return Vec::new();
        }
        let chain = if parsed.as_headers.is_empty() && parsed.ams_headers.is_empty() {
            ArcOutput::default()
        } else {
            let Some(authenticator) = &self.authenticator else { return Vec::new() };
            authenticator.verify_arc(&parsed).await
        };
        keys.seal(message, &self.authserv_id, &chain).unwrap_or_default()
    }
}

/// What the ARC-Authentication-Results field carries after `i=N; `: the first `Authentication-Results`
/// field with our authserv-id (RFC 8601 §2.2: the one our own verification added), unfolded, its
/// whitespace runs made single spaces so the relaxed form the seal is computed over is the text itself,
/// or `<authserv-id>; arc=none` when there is none.
pub fn aar_value(message: &[u8], authserv_id: &str) -> String {
    let header_end = message.windows(4).position(|w| w == b"\r\n\r\n").map_or(message.len(), |p| p + 2);
    let header = String::from_utf8_lossy(&message[..header_end]);
    let mut fields: Vec<String> = Vec::new();
    for line in header.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push(' ');
                last.push_str(line);
            }
        } else if !line.is_empty() {
            fields.push(line.to_owned());
        }
    }
    let ours = fields.iter().find_map(|field| {
        let (name, value) = field.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("Authentication-Results") {
            return None;
        }
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        let id = value.split(';').next()?.split_whitespace().next()?;
        id.eq_ignore_ascii_case(authserv_id).then_some(value)
    });
    ours.unwrap_or_else(|| format!("{authserv_id}; arc=none"))
}

#[cfg(test)]
mod tests {
    use std::borrow::Borrow;
    use std::collections::HashMap;
    use std::hash::Hash;
    use std::sync::Mutex;

    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;
    use mail_auth::dkim::generate::DkimKeyPair;
    use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
    use mail_auth::{DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt};

    use super::*;

    /// A resolver cache seeded with the test's key records: the verifier finds every record here, and
    /// the resolver behind it has no name server at all, so no test can reach the real DNS.
    struct SeededDns(Mutex<HashMap<Box<str>, Txt>>);

    impl ResolverCache<Box<str>, Txt> for SeededDns {
        fn get<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().unwrap().get(name).cloned()
        }

        fn remove<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().unwrap().remove(name)
        }

        fn insert(&self, key: Box<str>, value: Txt, _: std::time::Instant) {
            self.0.lock().unwrap().insert(key, value);
        }
    }

    fn offline_authenticator() -> MessageAuthenticator {
        MessageAuthenticator::new(ResolverConfig::from_parts(None, vec![], vec![]), ResolverOpts::default()).unwrap()
    }

    struct Fixture {
        keys: DomainKeys,
        dns: SeededDns,
    }

    /// example.org with an ed25519 key under `ed1` and a 2048-bit RSA key under `rsa1`, both published.
    fn fixture() -> Fixture {
        let ed = DkimKeyPair::generate_ed25519().unwrap();
        let rsa = DkimKeyPair::generate_rsa(2048).unwrap();
        let dns = SeededDns(Mutex::new(HashMap::new()));
        for (selector, record) in [
            ("ed1", format!("v=DKIM1; k=ed25519; p={}", ed.encoded_public_key())),
            ("rsa1", format!("v=DKIM1; k=rsa; p={}", rsa.encoded_public_key())),
        ] {
            let key = DomainKey::parse(record.as_bytes()).unwrap();
            dns.0
                .lock()
                .unwrap()
                .insert(format!("{selector}._domainkey.example.org.").into(), Txt::DomainKey(key.into()));
        }
        let reply = pb::SigningKeysResponse {
            keys: vec![
                pb::SigningKey {
                    selector: "ed1".into(),
                    algorithm: pb::DkimAlgorithm::Ed25519.into(),
                    private_key: ed.private_key().to_vec(),
                },
                pb::SigningKey {
                    selector: "rsa1".into(),
                    algorithm: pb::DkimAlgorithm::Rsa.into(),
                    private_key: rsa.private_key().to_vec(),
                },
            ],
        };
        Fixture { keys: DomainKeys::from_pb("example.org", &reply), dns }
    }

    const MESSAGE: &[u8] = b"From: Alice <alice@example.org>\r\nTo: bob@remote.test\r\nSubject: hello\r\n\
        Date: Mon, 7 Dec 2026 06:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\nHello Bob,\r\n\r\nsee you.\r\n";

    async fn verify(dns: &SeededDns, message: &[u8]) -> Vec<(String, DkimResult)> {
        let parsed = AuthenticatedMessage::parse(message).unwrap();
        let results = offline_authenticator().verify_dkim(Parameters::new(&parsed).with_txt_cache(dns)).await;
        results.iter().map(|r| (r.signature().map(|s| s.s.clone()).unwrap_or_default(), r.result().clone())).collect()
    }

    #[tokio::test]
    async fn both_keys_sign_and_the_verifier_accepts_each_signature() {
        let f = fixture();
        let fields = f.keys.sign(MESSAGE);
        let signed = [fields.as_slice(), MESSAGE].concat();
        let results = verify(&f.dns, &signed).await;
        assert_eq!(results, vec![("ed1".into(), DkimResult::Pass), ("rsa1".into(), DkimResult::Pass)]);
        let text = String::from_utf8(fields).unwrap();
        assert!(text.contains("a=ed25519-sha256") && text.contains("a=rsa-sha256"), "{text}");
        assert!(text.contains("c=relaxed/relaxed"), "{text}");
        // From is oversigned, and an absent Cc is signed as absent.
        let unfolded = text.replace("\r\n\t", "").replace(' ', "");
        // (mail-auth lists the fields found bottom-up, then the absent ones.)
        assert!(unfolded.contains("h=Message-ID:Date:Subject:To:From:From:Cc:Reply-To:"), "{unfolded}");
    }

    #[tokio::test]
    async fn a_changed_body_or_an_added_from_fails() {
        let f = fixture();
        let signed = [f.keys.sign(MESSAGE).as_slice(), MESSAGE].concat();
        let tampered = String::from_utf8(signed.clone()).unwrap().replace("see you", "send money");
        for (_, result) in verify(&f.dns, tampered.as_bytes()).await {
            assert!(matches!(result, DkimResult::Fail(_) | DkimResult::Neutral(_)), "{result:?}");
        }
        let body_at = signed.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
        let second_from = [&signed[..body_at], b"From: mallory@evil.test\r\n", &signed[body_at..]].concat();
        for (_, result) in verify(&f.dns, &second_from).await {
            assert!(!matches!(result, DkimResult::Pass), "{result:?}");
        }
    }

    #[tokio::test]
    async fn a_domain_whose_keys_do_not_load_signs_nothing() {
        let reply = pb::SigningKeysResponse {
            keys: vec![pb::SigningKey {
                selector: "bad".into(),
                algorithm: pb::DkimAlgorithm::Ed25519.into(),
                private_key: vec![1, 2, 3],
            }],
        };
        let keys = DomainKeys::from_pb("example.org", &reply);
        assert!(keys.is_empty());
        assert!(keys.sign(MESSAGE).is_empty());
        assert!(Ed25519Key::from_pkcs8_der(&[1, 2, 3]).is_err());
    }

    /// What `Sealer` does with a message that brought a chain: the chain as verified goes into the next
    /// seal (i=2, cv=pass); a chain broken on the way gets a seal saying cv=fail, and one whose last seal
    /// says so gets none (RFC 8617 §5.1.2).
    #[tokio::test]
    async fn a_message_forwarded_twice_gets_the_next_instance_and_a_broken_chain_none() {
        let f = fixture();
        let first =
            [f.keys.seal(MESSAGE, "mx.example.org", &ArcOutput::default()).unwrap().as_slice(), MESSAGE].concat();
        let parsed = AuthenticatedMessage::parse(&first).unwrap();
        let chain = offline_authenticator().verify_arc(Parameters::new(&parsed).with_txt_cache(&f.dns)).await;
        let second = f.keys.seal(&first, "mx2.example.org", &chain).unwrap();
        let text = String::from_utf8(second.clone()).unwrap();
        assert!(text.contains("ARC-Seal: i=2;") && text.contains("cv=pass"), "{text}");
        let twice = [second.as_slice(), &first].concat();
        let parsed = AuthenticatedMessage::parse(&twice).unwrap();
        let arc = offline_authenticator().verify_arc(Parameters::new(&parsed).with_txt_cache(&f.dns)).await;
        assert_eq!((arc.result(), arc.sets().len()), (&DkimResult::Pass, 2));

        let broken = String::from_utf8(first).unwrap().replace("see you", "send money");
        let parsed = AuthenticatedMessage::parse(broken.as_bytes()).unwrap();
        let chain = offline_authenticator().verify_arc(Parameters::new(&parsed).with_txt_cache(&f.dns)).await;
        assert!(!matches!(chain.result(), DkimResult::Pass), "{:?}", chain.result());
        let marked = f.keys.seal(broken.as_bytes(), "mx2.example.org", &chain).unwrap();
        let text = String::from_utf8(marked.clone()).unwrap();
        assert!(text.contains("ARC-Seal: i=2;") && text.contains("cv=fail"), "{text}");
        // Once a seal says cv=fail, nobody seals after it.
        let failed = [marked.as_slice(), broken.as_bytes()].concat();
        let parsed = AuthenticatedMessage::parse(&failed).unwrap();
        let chain = offline_authenticator().verify_arc(Parameters::new(&parsed).with_txt_cache(&f.dns)).await;
        assert_eq!(f.keys.seal(&failed, "mx3.example.org", &chain), None);
    }

    #[tokio::test]
    async fn a_forwarded_message_is_sealed_and_the_arc_verifier_accepts_the_chain() {
        let f = fixture();
        let arrived = [
            &b"Authentication-Results: mx.example.org;\r\n\tspf=pass  smtp.mailfrom=carol@origin.test;\r\n\tdkim=none\r\n"[..],
            &b"Authentication-Results: forger.test; dkim=pass\r\n"[..],
            MESSAGE,
        ]
        .concat();
        let set = f.keys.seal(&arrived, "mx.example.org", &ArcOutput::default()).unwrap();
        let sealed = [set.as_slice(), &arrived].concat();
        let text = String::from_utf8(set).unwrap();
        assert!(text.contains("ARC-Seal: i=1; a=rsa-sha256") && text.contains("cv=none"), "{text}");
        assert!(
            text.contains(
                "ARC-Authentication-Results: i=1; mx.example.org; spf=pass smtp.mailfrom=carol@origin.test; dkim=none"
            ),
            "{text}"
        );
        let parsed = AuthenticatedMessage::parse(&sealed).unwrap();
        let arc = offline_authenticator().verify_arc(Parameters::new(&parsed).with_txt_cache(&f.dns)).await;
        assert_eq!(arc.result(), &DkimResult::Pass);
        assert_eq!(arc.sets().len(), 1);

        // A change after sealing breaks the chain.
        let tampered = String::from_utf8(sealed).unwrap().replace("see you", "send money");
        let parsed = AuthenticatedMessage::parse(tampered.as_bytes()).unwrap();
        let arc = offline_authenticator().verify_arc(Parameters::new(&parsed).with_txt_cache(&f.dns)).await;
        assert!(matches!(arc.result(), DkimResult::Fail(_) | DkimResult::Neutral(_)), "{:?}", arc.result());
    }

    #[test]
    fn only_our_users_mail_and_our_reports_are_signed_and_by_which_domain() {
        let client = |user: &str| Some(pb::ClientFacts { authenticated_as: user.into(), ..Default::default() });
        let envelope = |from: &str, client| pb::Envelope { mail_from: from.into(), client, ..Default::default() };
        let header_from = b"From: Boss <boss@Other.Example>\r\n\r\nx\r\n";
        // A user: the envelope sender's domain, whatever the From field says.
        assert_eq!(
            signing_domains(&envelope("alice@Example.org", client("alice@example.org")), header_from),
            ["example.org"]
        );
        // Port 25 mail is not ours to sign.
        assert!(signing_domains(&envelope("carol@remote.test", client("")), header_from).is_empty());
        assert!(signing_domains(&envelope("", client("")), header_from).is_empty());
        // Our DSN: the From field's domain, then its parents.
        let dsn = b"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n\r\nx\r\n";
        assert_eq!(signing_domains(&envelope("", None), dsn), ["mx.example.org", "example.org"]);
        assert!(signing_domains(&envelope("", None), b"Subject: no from\r\n\r\n").is_empty());
    }

    #[test]
    fn without_our_authentication_results_the_seal_says_arc_none() {
        let message = b"Authentication-Results: other.test; dkim=pass\r\nFrom: a@b.test\r\n\r\nx\r\n";
        assert_eq!(aar_value(message, "mx.example.org"), "mx.example.org; arc=none");
        // Only the header counts: a body line that looks like the field is text.
        let in_body = b"From: a@b.test\r\n\r\nAuthentication-Results: mx.example.org; dkim=pass\r\n";
        assert_eq!(aar_value(in_body, "mx.example.org"), "mx.example.org; arc=none");
        let folded = b"Authentication-Results:  MX.example.org ;\r\n  dmarc=pass\r\nFrom: a@b.test\r\n\r\n";
        assert_eq!(aar_value(folded, "mx.example.org"), "MX.example.org ; dmarc=pass");
    }
}
