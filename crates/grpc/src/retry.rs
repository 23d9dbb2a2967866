//! Which failed calls may be sent again to another replica, decided in this one place.

/// Methods that may run twice with the effect of running once: reads, and the writes the server makes
/// idempotent by key (`Deliver` by its (queue id, recipient), `FollowUpsQueued` and `Expunge` by what
/// is already gone). `Append` (idempotent only with an import digest), `Store` (`UNCHANGEDSINCE` would
/// see its own first attempt) and every other write are not here: they are sent again only when no
/// replica read any of them.
const IDEMPOTENT: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/mailbus.v1.Directory/ResolveRecipient",
    "/mailbus.v1.Directory/Authenticate",
    "/mailbus.v1.Directory/CredentialEpoch",
    "/mailbus.v1.Directory/CheckSender",
    "/mailbus.v1.Directory/ListDomains",
    "/mailbus.v1.Directory/ListAccounts",
    "/mailbus.v1.Directory/ListAliases",
    "/mailbus.v1.Mailbox/Deliver",
    "/mailbus.v1.Mailbox/FollowUpsQueued",
    "/mailbus.v1.Mailbox/ListMessages",
    "/mailbus.v1.Mailbox/FetchMessage",
    "/mailbus.v1.Mailbox/Expunge",
    "/mailbus.v1.Mailbox/ListMailboxes",
    "/mailbus.v1.Mailbox/Status",
    "/mailbus.v1.Mailbox/Select",
    "/mailbus.v1.Mailbox/Changes",
    "/mailbus.v1.Mailbox/Fetch",
    "/mailbus.v1.Mailbox/Search",
    "/mailbus.v1.Mailbox/GetQuota",
    "/mailbus.v1.Jmap/Download",
    "/mailbus.v1.Jmap/State",
    "/mailbus.v1.DkimKeys/ListDkimKeys",
    "/mailbus.v1.DkimKeys/SigningKeys",
    "/mailbus.v1.Sieve/ListScripts",
    "/mailbus.v1.Sieve/GetScript",
    "/mailbus.v1.Sieve/CheckScript",
    "/mailbus.v1.Sieve/HaveSpace",
    "/mailbus.v1.QueueAdmin/QueueStatus",
    "/mailbus.v1.QueueAdmin/ListQueue",
];

/// Whether the method at `path` (`/package.Service/Method`) may be sent twice.
pub fn is_idempotent(path: &str) -> bool {
    IDEMPOTENT.contains(&path)
}

/// Whether a call that ended in `outcome` goes to another replica: one that no replica read any of
/// (`untouched`) after a transport failure, or an idempotent one whose whole request can be sent again
/// after a transport failure or an `UNAVAILABLE` answer. Any other answer is the caller's.
pub(crate) fn again<B, E>(
    outcome: &Result<http::Response<B>, E>,
    idempotent: bool,
    untouched: bool,
    can_replay: bool,
) -> bool {
    match outcome {
        Err(_) => untouched || (idempotent && can_replay),
        Ok(response) => idempotent && can_replay && status(response) == Some(tonic::Code::Unavailable),
    }
}

/// The status a response carries in its headers (a trailers-only answer: how a server refuses a call).
fn status<B>(response: &http::Response<B>) -> Option<tonic::Code> {
    response.headers().get("grpc-status").map(|code| tonic::Code::from_bytes(code.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: Option<&str>) -> Result<http::Response<()>, ()> {
        let mut response = http::Response::new(());
        if let Some(code) = code {
            response.headers_mut().insert("grpc-status", code.parse().unwrap());
        }
        Ok(response)
    }

    #[test]
    fn reads_and_keyed_writes_are_idempotent_other_writes_are_not() {
        assert!(is_idempotent("/mailbus.v1.Mailbox/Deliver"));
        assert!(is_idempotent("/mailbus.v1.Directory/ResolveRecipient"));
        assert!(!is_idempotent("/mailbus.v1.Mailbox/Append"));
        assert!(!is_idempotent("/mailbus.v1.Mailbox/Store"));
        assert!(!is_idempotent("/mailbus.v1.Jmap/Call"));
    }

    #[test]
    fn a_call_no_replica_read_is_sent_again_whatever_its_method() {
        assert!(again(&Err::<http::Response<()>, _>(()), false, true, false));
        assert!(!again(&Err::<http::Response<()>, _>(()), false, false, false), "a write a server may have run");
    }

    #[test]
    fn an_idempotent_call_is_sent_again_after_a_lost_connection_or_unavailable_if_it_can_be_replayed() {
        assert!(again(&Err::<http::Response<()>, _>(()), true, false, true));
        assert!(!again(&Err::<http::Response<()>, _>(()), true, false, false), "past the replay limit");
        assert!(again(&answer(Some("14")), true, false, true));
        assert!(!again(&answer(Some("14")), false, false, true), "not idempotent");
        assert!(!again(&answer(Some("5")), true, false, true), "NOT_FOUND is the answer");
        assert!(!again(&answer(None), true, false, true), "a reply is coming");
    }
}
