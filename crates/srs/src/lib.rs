//! The Sender Rewriting Scheme, as libsrs2 and postsrsd spell it: a forwarder sends a message on with an
//! envelope sender in its own domain, so that SPF at the next hop checks the forwarder, and a bounce to that
//! address comes back to the forwarder, which checks it and passes it to the original sender.
//!
//! - `SRS0=HHHH=TT=orig-domain=orig-local@forwarder`: HHHH is the first four base64 characters of an
//!   HMAC-SHA1 (keyed with the secret) of TT, the domain and the local part, lowercased; TT is the day
//!   (Unix days modulo 1024) in two base32 characters.
//! - `SRS1=HHHH=first-forwarder==HHHH=TT=orig-domain=orig-local@forwarder`: what a second forwarder makes
//!   of an SRS0 address, so that a bounce goes back through the first forwarder, which alone can check its
//!   SRS0 part. A third forwarder keeps the SRS1's inner part and signs it again.
//!
//! Pure: no clock, no I/O; the caller passes the time. It owns the address forms only, never a policy
//! about which mail is rewritten.

use base64::Engine;
use ring::hmac;

/// libsrs2's default: a bounce older than this many days is refused.
pub const DEFAULT_MAX_AGE_DAYS: u32 = 21;

/// RFC 4648 base32, libsrs2's alphabet for the timestamp.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Days are counted modulo this (two base32 characters).
const TIME_SLOTS: u64 = 1024;
const HASH_LENGTH: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrsError {
    #[error("malformed SRS address")]
    Malformed,
    #[error("SRS hash does not match")]
    BadHash,
    #[error("SRS address expired")]
    Expired,
}

/// The rewriting, keyed with a secret; a message rewritten with one secret is checked with the same.
#[derive(Clone)]
pub struct Srs {
    key: hmac::Key,
    max_age_days: u32,
}

impl std::fmt::Debug for Srs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Srs").field("key", &"<secret>").field("max_age_days", &self.max_age_days).finish()
    }
}

impl Srs {
    pub fn new(secret: &[u8], max_age_days: u32) -> Srs {
        Srs { key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret), max_age_days }
    }

    /// The envelope sender for `sender`'s message forwarded by `forwarder` (our domain) at `now_unix`: its
    /// SRS0 form, or SRS1 when it is someone's SRS address already. A sender of our own domain, or one
    /// without a domain, stays as it is (SPF already checks us for it).
    pub fn forward(&self, sender: &str, forwarder: &str, now_unix: u64) -> String {
        let Some((local, domain)) = sender.rsplit_once('@') else { return sender.to_owned() };
        if domain.eq_ignore_ascii_case(forwarder) {
            return sender.to_owned();
        }
        if let Some(rest) = strip_tag(local, "SRS1") {
            // SRS1=HHHH=first==inner: keep the first forwarder and its part, sign them again as ours.
            if let Some((_, after)) = rest.split_once('=')
                && let Some((first, inner)) = after.split_once('=')
            {
                let hash = self.hash(&[first, inner]);
                return format!("SRS1={hash}={first}={inner}@{forwarder}");
            }
        }
        if let Some(rest) = strip_tag(local, "SRS0") {
            // "=HHHH=TT=domain=local" as the SRS0 forwarder wrote it; the bounce goes back to it.
            let inner = format!("={rest}");
            let hash = self.hash(&[domain, &inner]);
            return format!("SRS1={hash}={domain}={inner}@{forwarder}");
        }
        let stamp = timestamp(now_unix);
        let hash = self.hash(&[&stamp, domain, local]);
        format!("SRS0={hash}={stamp}={domain}={local}@{forwarder}")
    }

    /// Where a bounce to `address` goes: `Ok(None)` when it is no SRS address, the original sender for
    /// SRS0, the first forwarder's SRS0 address for SRS1; an error when its hash does not match or its
    /// day is past the maximum age. The domain after `@` is not checked: the caller knows its own.
    pub fn reverse(&self, address: &str, now_unix: u64) -> Result<Option<String>, SrsError> {
        let Some((local, _)) = address.rsplit_once('@') else { return Ok(None) };
        if let Some(rest) = strip_tag(local, "SRS0") {
            let mut parts = rest.splitn(4, '=');
            let (Some(hash), Some(stamp), Some(domain), Some(original)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(SrsError::Malformed);
            };
            if domain.is_empty() || original.is_empty() {
                return Err(SrsError::Malformed);
            }
            self.check_hash(hash, &[stamp, domain, original])?;
            self.check_age(stamp, now_unix)?;
            return Ok(Some(format!("{original}@{domain}")));
        }
        if let Some(rest) = strip_tag(local, "SRS1") {
            let mut parts = rest.splitn(3, '=');
            let (Some(hash), Some(first), Some(inner)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(SrsError::Malformed);
            };
            if first.is_empty() || !inner.starts_with('=') {
                return Err(SrsError::Malformed);
            }
            self.check_hash(hash, &[first, inner])?;
            return Ok(Some(format!("SRS0{inner}@{first}")));
        }
        Ok(None)
    }

    /// The first four base64 characters of the HMAC of `parts`, lowercased (so that a hop that lowercases
    /// the local part does not break the hash of the data).
    fn hash(&self, parts: &[&str]) -> String {
        let mut context = hmac::Context::with_key(&self.key);
        for part in parts {
            context.update(part.to_lowercase().as_bytes());
        }
        let tag = context.sign();
        let encoded = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
        encoded[..HASH_LENGTH].to_owned()
    }

    /// libsrs2 compares the hash exactly and then, as a fallback, ignoring case: some hops lowercase the
    /// whole local part, base64 and all.
    fn check_hash(&self, given: &str, parts: &[&str]) -> Result<(), SrsError> {
        if given.len() != HASH_LENGTH {
            return Err(SrsError::BadHash);
        }
        let expected = self.hash(parts);
        if given == expected || given.eq_ignore_ascii_case(&expected) { Ok(()) } else { Err(SrsError::BadHash) }
    }

    fn check_age(&self, stamp: &str, now_unix: u64) -> Result<(), SrsError> {
        let then = decode_timestamp(stamp).ok_or(SrsError::Malformed)?;
        let today = now_unix / 86_400 % TIME_SLOTS;
        let age = (today + TIME_SLOTS - then) % TIME_SLOTS;
        if age > u64::from(self.max_age_days) { Err(SrsError::Expired) } else { Ok(()) }
    }
}

/// `local` without its `SRS0=`/`SRS1=` tag (the tag matched in any case). Compared as bytes: a local
/// part is UTF-8 under SMTPUTF8, and a character may straddle the tag's end (`SRSé=`), where slicing the
/// string would panic.
fn strip_tag<'a>(local: &'a str, tag: &str) -> Option<&'a str> {
    let head = local.as_bytes().get(..tag.len() + 1)?;
    let tagged = head[..tag.len()].eq_ignore_ascii_case(tag.as_bytes()) && head[tag.len()] == b'=';
    // The tag and '=' are ASCII, so the rest starts on a character boundary.
    tagged.then(|| &local[tag.len() + 1..])
}

/// Today (Unix days modulo 1024) in two base32 characters.
fn timestamp(now_unix: u64) -> String {
    let day = now_unix / 86_400 % TIME_SLOTS;
    [BASE32[(day >> 5) as usize & 31], BASE32[day as usize & 31]].iter().map(|&b| b as char).collect()
}

fn decode_timestamp(stamp: &str) -> Option<u64> {
    let bytes = stamp.as_bytes();
    if bytes.len() != 2 {
        return None;
    }
    let value = |b: u8| BASE32.iter().position(|&c| c == b.to_ascii_uppercase()).map(|p| p as u64);
    Some(value(bytes[0])? << 5 | value(bytes[1])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_000_000;
    const DAY: u64 = 86_400;

    fn srs() -> Srs {
        Srs::new(b"a secret", DEFAULT_MAX_AGE_DAYS)
    }

    #[test]
    fn srs0_round_trip() {
        let forwarded = srs().forward("Alice.Smith@Origin.example", "forwarder.example", NOW);
        let (local, domain) = forwarded.rsplit_once('@').unwrap();
        assert_eq!(domain, "forwarder.example");
        assert!(local.starts_with("SRS0="), "{forwarded}");
        assert!(local.ends_with(&format!("={}=Origin.example=Alice.Smith", timestamp(NOW))), "{forwarded}");
        assert_eq!(srs().reverse(&forwarded, NOW).unwrap().as_deref(), Some("Alice.Smith@Origin.example"));
        // A later day within the limit is still good; the same address from a clock that wrapped too.
        assert!(srs().reverse(&forwarded, NOW + 21 * DAY).unwrap().is_some());
        let wrapped = srs().forward("a@b.example", "f.example", 1023 * DAY);
        assert_eq!(srs().reverse(&wrapped, 1024 * DAY + 3 * DAY).unwrap().as_deref(), Some("a@b.example"));
    }

    #[test]
    fn a_tampered_address_or_another_secret_is_a_bad_hash() {
        let forwarded = srs().forward("alice@origin.example", "forwarder.example", NOW);
        let tampered = forwarded.replace("=alice@", "=mallory@");
        assert_eq!(srs().reverse(&tampered, NOW), Err(SrsError::BadHash));
        let redirected = forwarded.replace("=origin.example=", "=evil.example=");
        assert_eq!(srs().reverse(&redirected, NOW), Err(SrsError::BadHash));
        assert_eq!(Srs::new(b"another", 21).reverse(&forwarded, NOW), Err(SrsError::BadHash));
        // A timestamp changed to make an old address young again breaks the hash too.
        let stamp = timestamp(NOW);
        let restamped = forwarded.replace(&format!("={stamp}="), &format!("={}=", timestamp(NOW + DAY)));
        assert_eq!(srs().reverse(&restamped, NOW + DAY), Err(SrsError::BadHash));
    }

    #[test]
    fn an_old_address_is_expired() {
        let forwarded = srs().forward("alice@origin.example", "forwarder.example", NOW);
        assert_eq!(srs().reverse(&forwarded, NOW + 22 * DAY), Err(SrsError::Expired));
        assert!(Srs::new(b"a secret", 30).reverse(&forwarded, NOW + 22 * DAY).unwrap().is_some());
    }

    #[test]
    fn the_hash_and_the_whole_address_survive_a_hop_that_changes_case() {
        let forwarded = srs().forward("Alice@Origin.example", "forwarder.example", NOW);
        let lower = forwarded.to_lowercase();
        assert_eq!(srs().reverse(&lower, NOW).unwrap().as_deref(), Some("alice@origin.example"));
        let upper = forwarded.to_uppercase();
        assert_eq!(srs().reverse(&upper, NOW).unwrap().as_deref(), Some("ALICE@ORIGIN.EXAMPLE"));
    }

    #[test]
    fn a_second_forwarder_makes_srs1_which_leads_back_to_the_first() {
        let first = Srs::new(b"first's secret", 21);
        let second = Srs::new(b"second's secret", 21);
        let srs0 = first.forward("alice@origin.example", "first.example", NOW);
        let srs1 = second.forward(&srs0, "second.example", NOW);
        assert!(srs1.starts_with("SRS1=") && srs1.contains("=first.example==") && srs1.ends_with("@second.example"));
        let back = second.reverse(&srs1, NOW).unwrap().unwrap();
        assert_eq!(back, srs0, "the bounce goes to the first forwarder");
        assert_eq!(first.reverse(&back, NOW).unwrap().as_deref(), Some("alice@origin.example"));
        // A third forwarder keeps the first forwarder's part and signs it again.
        let third = Srs::new(b"third's secret", 21);
        let again = third.forward(&srs1, "third.example", NOW);
        assert_eq!(third.reverse(&again, NOW).unwrap().unwrap(), srs0);
        assert_eq!(first.reverse(&srs1.replace("first.example", "evil.example"), NOW).unwrap_err(), SrsError::BadHash);
        assert_eq!(second.reverse(&srs1.replace("first.example", "evil.example"), NOW), Err(SrsError::BadHash));
    }

    #[test]
    fn what_is_no_srs_address_passes_and_what_is_broken_is_malformed() {
        assert_eq!(srs().reverse("alice@forwarder.example", NOW), Ok(None));
        assert_eq!(srs().reverse("srs0", NOW), Ok(None));
        assert_eq!(srs().reverse("SRS0=abcd=AB@forwarder.example", NOW), Err(SrsError::Malformed));
        assert_eq!(srs().reverse("SRS1=abcd@forwarder.example", NOW), Err(SrsError::Malformed));
        let forwarded = srs().forward("alice@origin.example", "forwarder.example", NOW);
        let bad_stamp = forwarded.replacen(&format!("={}=", timestamp(NOW)), "=!!=", 1);
        assert!(srs().reverse(&bad_stamp, NOW).is_err());
        // Our own domain's senders are not rewritten; nor is anything without a domain.
        assert_eq!(srs().forward("bob@Forwarder.example", "forwarder.example", NOW), "bob@Forwarder.example");
        assert_eq!(srs().forward("postmaster", "forwarder.example", NOW), "postmaster");
    }

    /// SMTPUTF8 local parts: a character that straddles where the tag would end is no tag, and nothing
    /// panics (a sender `SRSé=x@…` reached here from port 25 and took the relay down).
    #[test]
    fn a_utf8_local_part_that_looks_like_a_tag_is_no_srs_address() {
        for local in ["SRSé=x", "SRS0é", "SRSé", "SRS\u{10348}=", "é", "SRS1é=x"] {
            let address = format!("{local}@origin.example");
            let forwarded = srs().forward(&address, "forwarder.example", NOW);
            assert!(forwarded.starts_with("SRS0="), "{forwarded}");
            assert!(forwarded.ends_with(&format!("={local}@forwarder.example")), "{forwarded}");
            assert_eq!(srs().reverse(&forwarded, NOW), Ok(Some(address)));
            assert_eq!(srs().reverse(&format!("{local}@forwarder.example"), NOW), Ok(None), "{local}");
        }
    }
}
