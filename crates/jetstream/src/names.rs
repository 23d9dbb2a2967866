//! Names of every NATS object mailbus uses, and the shape they are made in: how many partitions the
//! queue has and how many replicas every stream and bucket keeps.

/// The prefix becomes part of stream names (no `.`, `*`, `>` or spaces) and a subject token.
const MAX_PREFIX: usize = 32;

/// More queue partitions than this buy nothing on any server we know of (8 streams already saturate one
/// node's disk in `BENCHMARKS.md`), and each costs a consumer per relay.
pub const MAX_PARTITIONS: u32 = 64;

/// JetStream's own limit on a stream's replicas.
pub const MAX_REPLICAS: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("NATS prefix {0:?} must be 1 to 32 characters of A-Z, a-z, 0-9, '_' or '-'")]
pub struct NameError(pub String);

/// The names under one prefix, with the queue's partition count and the replica count of every stream
/// and bucket made under them (both 1 unless [`Names::with_partitions`] and [`Names::with_replicas`]
/// say otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
    partitions: u32,
    replicas: usize,
}

impl Names {
    pub fn new(prefix: &str) -> Result<Self, NameError> {
        let valid = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX
            && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Names { prefix: prefix.to_owned(), partitions: 1, replicas: 1 })
        } else {
            Err(NameError(prefix.to_owned()))
        }
    }

    /// The queue in `partitions` streams (clamped to 1..=[`MAX_PARTITIONS`]): new messages go to
    /// [`partition_for`] their `Nats-Msg-Id`.
    pub fn with_partitions(self, partitions: u32) -> Self {
        Names { partitions: partitions.clamp(1, MAX_PARTITIONS), ..self }
    }

    /// Every stream and bucket made, or found at start-up, with `replicas` copies (clamped to
    /// 1..=[`MAX_REPLICAS`]).
    pub fn with_replicas(self, replicas: usize) -> Self {
        Names { replicas: replicas.clamp(1, MAX_REPLICAS), ..self }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many partition streams new messages are spread over.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// How many copies each stream and bucket keeps.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// The first partition of the queue: the work-queue stream of envelopes. It keeps the name the single
    /// queue stream had before the queue was partitioned, so an upgraded system drains it as partition 0.
    pub fn queue_stream(&self) -> String {
        self.queue_partition_stream(0)
    }

    /// The subject of partition 0 (the single queue's subject before partitions).
    pub fn queue_subject(&self) -> String {
        self.queue_partition_subject(0)
    }

    /// The stream of queue partition `partition`: `<prefix>_queue`, then `<prefix>_queue_1`, ….
    pub fn queue_partition_stream(&self, partition: u32) -> String {
        match partition {
            0 => format!("{}_queue", self.prefix),
            n => format!("{}_queue_{n}", self.prefix),
        }
    }

    /// The subject envelopes of partition `partition` are published on: `<prefix>.queue.envelopes`,
    /// then `<prefix>.queue.envelopes.1`, ….
    pub fn queue_partition_subject(&self, partition: u32) -> String {
        match partition {
            0 => format!("{}.queue.envelopes", self.prefix),
            n => format!("{}.queue.envelopes.{n}", self.prefix),
        }
    }

    /// Which queue partition the stream `stream` is, if it is one of this prefix's: what a relay looks
    /// for, so that it drains every partition that exists, also those beyond today's count.
    pub fn queue_partition_of(&self, stream: &str) -> Option<u32> {
        let rest = stream.strip_prefix(&self.prefix)?.strip_prefix("_queue")?;
        if rest.is_empty() {
            return Some(0);
        }
        let digits = rest.strip_prefix('_')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
            return None;
        }
        digits.parse().ok()
    }

    /// Where envelopes that cannot be processed at all are kept for an operator to look at.
    pub fn dead_letter_stream(&self) -> String {
        format!("{}_dead", self.prefix)
    }

    pub fn dead_letter_subject(&self) -> String {
        format!("{}.queue.dead", self.prefix)
    }

    /// The object store bucket of message bodies.
    pub fn bodies_bucket(&self) -> String {
        format!("{}_bodies", self.prefix)
    }

    /// The key-value bucket of claims on partition `partition`'s messages, by queue id and sequence
    /// ([`crate::Claims`]): `<prefix>_queue_claims` (the name the only bucket had before each partition
    /// had its own), then `<prefix>_queue_claims_1`, ….
    pub fn queue_partition_claims_bucket(&self, partition: u32) -> String {
        match partition {
            0 => format!("{}_queue_claims", self.prefix),
            n => format!("{}_queue_claims_{n}", self.prefix),
        }
    }

    /// The stream under the body bucket (the object store's convention, `OBJ_<bucket>`), which bodies
    /// are read from with direct gets.
    pub fn bodies_stream(&self) -> String {
        format!("OBJ_{}", self.bodies_bucket())
    }

    /// The key-value bucket of POP3 maildrop locks (one key per account).
    pub fn pop3_locks_bucket(&self) -> String {
        format!("{}_pop3_locks", self.prefix)
    }

    /// The key-value bucket of failed-login counts (per client address and per account).
    pub fn auth_failures_bucket(&self) -> String {
        format!("{}_auth_failures", self.prefix)
    }

    /// The key-value bucket of submission rate counts (per account and client address, per window).
    pub fn submission_rates_bucket(&self) -> String {
        format!("{}_submission_rates", self.prefix)
    }

    /// The key-value bucket of the http role's bearer tokens (one key per token digest, expiring by itself).
    pub fn http_tokens_bucket(&self) -> String {
        format!("{}_http_tokens", self.prefix)
    }

    /// The key-value bucket of webmail sessions (one key per session-id digest, expiring by itself).
    pub fn webmail_sessions_bucket(&self) -> String {
        format!("{}_webmail_sessions", self.prefix)
    }

    /// Where the mailbox role announces changes to one account's mailboxes.
    pub fn mailbox_events(&self, account_id: i64) -> String {
        format!("{}.mail.events.{account_id}", self.prefix)
    }

    /// Where the mailbox role announces that the directory changed (an account, alias or domain added,
    /// changed or removed), so that the roles keeping recipient answers forget them.
    pub fn directory_changes(&self) -> String {
        format!("{}.directory.changed", self.prefix)
    }

    /// Every account's mailbox events.
    pub fn all_mailbox_events(&self) -> String {
        format!("{}.mail.events.*", self.prefix)
    }
}

/// The partition of a message whose `Nats-Msg-Id` is `dedup_id`, among `partitions`: FNV-1a of the id,
/// so that it is the same in every process and every version, and a resent transaction (same id) lands in
/// the stream that remembers the id and drops the repeat (deduplication is per stream).
pub fn partition_for(dedup_id: &str, partitions: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = dedup_id.bytes().fold(OFFSET, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME));
    (hash % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_validated() {
        assert!(Names::new("mailbus").is_ok());
        assert!(Names::new("t_1-a").is_ok());
        for bad in ["", "a.b", "a b", "a*", ">", &"x".repeat(33)] {
            assert!(Names::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_carry_the_prefix() {
        let names = Names::new("t1").unwrap();
        assert_eq!(names.queue_stream(), "t1_queue");
        assert_eq!(names.queue_subject(), "t1.queue.envelopes");
        assert_eq!(names.bodies_bucket(), "t1_bodies");
        assert_eq!(names.bodies_stream(), "OBJ_t1_bodies");
        assert_eq!(names.queue_partition_claims_bucket(0), "t1_queue_claims");
        assert_eq!(names.queue_partition_claims_bucket(3), "t1_queue_claims_3");
        assert_eq!(names.queue_partition_of("t1_queue_claims_3"), None);
        assert_eq!(names.mailbox_events(42), "t1.mail.events.42");
        assert_eq!(names.http_tokens_bucket(), "t1_http_tokens");
        assert_eq!(names.webmail_sessions_bucket(), "t1_webmail_sessions");
    }

    #[test]
    fn partition_zero_keeps_the_single_queue_names() {
        let names = Names::new("t1").unwrap().with_partitions(4);
        assert_eq!(names.queue_partition_stream(0), "t1_queue");
        assert_eq!(names.queue_partition_subject(0), "t1.queue.envelopes");
        assert_eq!(names.queue_partition_stream(3), "t1_queue_3");
        assert_eq!(names.queue_partition_subject(3), "t1.queue.envelopes.3");
    }

    #[test]
    fn partition_streams_are_recognised_and_nothing_else() {
        let names = Names::new("t1").unwrap();
        assert_eq!(names.queue_partition_of("t1_queue"), Some(0));
        assert_eq!(names.queue_partition_of("t1_queue_7"), Some(7));
        assert_eq!(names.queue_partition_of("t1_queue_12"), Some(12));
        for other in ["t1_queue_", "t1_queue_07", "t1_queue_x", "t1_queue_claims", "t1_dead", "t2_queue", "KV_t1_queue"]
        {
            assert_eq!(names.queue_partition_of(other), None, "{other}");
        }
        // Another prefix that starts like this one owns its own streams.
        assert_eq!(names.queue_partition_of("t1_queue_queue"), None);
        let longer = Names::new("t1_queue").unwrap();
        assert_eq!(longer.queue_partition_of("t1_queue_queue"), Some(0));
    }

    #[test]
    fn the_partition_of_an_id_is_stable() {
        // Fixed values: the choice must not change between versions, or a resend after an upgrade would
        // land in another stream and be queued twice.
        assert_eq!(partition_for("", 4), (0xcbf2_9ce4_8422_2325u64 % 4) as u32);
        assert_eq!(partition_for("a", 1_000_000), (0xaf63_dc4c_8601_ec8cu64 % 1_000_000) as u32);
        for id in ["0190a4d3c6f07b2e8f1d2c3b4a596877", "x.dsn.Failed.0", "abc.3"] {
            assert_eq!(partition_for(id, 8), partition_for(id, 8), "{id}");
            assert!(partition_for(id, 8) < 8);
        }
        assert_eq!(partition_for("anything", 1), 0);
        assert_eq!(partition_for("anything", 0), 0);
    }

    #[test]
    fn ids_spread_over_the_partitions() {
        let mut counts = [0usize; 4];
        for n in 0..4000 {
            counts[partition_for(
                &uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &[n as u8, (n >> 8) as u8]).simple().to_string(),
                4,
            ) as usize] += 1;
        }
        // Each of four partitions gets a fair share (1000 expected; 800 is far outside chance).
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }

    #[test]
    fn counts_are_clamped() {
        let names = Names::new("t1").unwrap();
        assert_eq!((names.partitions(), names.replicas()), (1, 1));
        assert_eq!(names.clone().with_partitions(0).partitions(), 1);
        assert_eq!(names.clone().with_partitions(1000).partitions(), MAX_PARTITIONS);
        assert_eq!(names.clone().with_replicas(9).replicas(), MAX_REPLICAS);
        assert_eq!(names.with_replicas(3).replicas(), 3);
    }
}
