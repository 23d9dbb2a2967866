//! Where a client's calls go: one or more `http://host:port` URLs, each an IP address or a name that may
//! resolve to several addresses (a Kubernetes headless Service, a compose service with replicas), and
//! how the set of replica addresses follows the names as they are resolved again.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use http::Uri;

use crate::GrpcError;

/// How often names are resolved again when no setting says otherwise.
pub const DEFAULT_RESOLVE_EVERY: Duration = Duration::from_secs(5);

/// The replicas of one role, as configured: `http://mailbox:50051`, or
/// `http://10.0.0.1:50051,http://10.0.0.2:50051`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    targets: Vec<Target>,
    resolve_every: Duration,
}

/// One configured URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// As configured.
    pub(crate) url: String,
    pub(crate) host: Host,
    pub(crate) port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    Ip(IpAddr),
    Name(String),
}

impl Upstream {
    /// Parses a comma-separated list of `http://host:port` URLs (the port defaults to the scheme's).
    pub fn parse(text: &str) -> Result<Self, GrpcError> {
        let targets = text
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(Target::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if targets.is_empty() {
            return Err(GrpcError::Upstream { text: text.to_owned(), reason: "no URL" });
        }
        Ok(Upstream { targets, resolve_every: DEFAULT_RESOLVE_EVERY })
    }

    /// The same replicas, their names resolved again every `interval`.
    pub fn resolving_every(self, interval: Duration) -> Self {
        Upstream { resolve_every: interval, ..self }
    }

    pub fn resolve_every(&self) -> Duration {
        self.resolve_every
    }

    pub(crate) fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The addresses known without asking DNS: every target's when all are IP addresses, else `None`.
    pub(crate) fn fixed_addrs(&self) -> Option<BTreeSet<SocketAddr>> {
        self.targets
            .iter()
            .map(|target| match target.host {
                Host::Ip(ip) => Some(SocketAddr::new(ip, target.port)),
                Host::Name(_) => None,
            })
            .collect()
    }
}

impl FromStr for Upstream {
    type Err = GrpcError;

    fn from_str(text: &str) -> Result<Self, GrpcError> {
        Upstream::parse(text)
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<&str> = self.targets.iter().map(|t| t.url.as_str()).collect();
        f.write_str(&urls.join(","))
    }
}

impl Target {
    fn parse(url: &str) -> Result<Self, GrpcError> {
        let invalid = |reason| GrpcError::Upstream { text: url.to_owned(), reason };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        let default_port = match uri.scheme_str() {
            Some("http") => 80,
            Some("https") => 443,
            _ => return Err(invalid("the scheme is not http or https")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        let port = authority.port_u16().unwrap_or(default_port);
        // An IPv6 literal comes bracketed, as in `http://[::1]:50051`.
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(host.to_owned()),
        };
        Ok(Target { url: url.to_owned(), host, port })
    }
}

/// The replica addresses of an upstream, kept per target so that one name failing to resolve keeps its
/// last answer instead of dropping its replicas: a DNS hiccup must not empty the set, while a replica
/// that left the answer (a pod gone from a headless Service) leaves the set.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    per_target: Vec<BTreeSet<SocketAddr>>,
}

impl Resolved {
    /// Takes in one round of look-ups, one result per target in order; an error or an empty answer keeps
    /// that target's previous addresses. Returns every address now known.
    pub(crate) fn update(&mut self, answers: Vec<std::io::Result<Vec<SocketAddr>>>) -> BTreeSet<SocketAddr> {
        self.per_target.resize_with(answers.len(), BTreeSet::new);
        for (known, answer) in self.per_target.iter_mut().zip(answers) {
            match answer {
                Ok(addrs) if !addrs.is_empty() => *known = addrs.into_iter().collect(),
                Ok(_) => tracing::warn!("a gRPC upstream name resolved to no address; keeping the last answer"),
                Err(error) => tracing::warn!(%error, "resolving a gRPC upstream failed; keeping the last answer"),
            }
        }
        self.per_target.iter().flatten().copied().collect()
    }
}

/// One target's addresses by the system resolver (`getaddrinfo`, as compose's and Kubernetes' DNS are
/// reached), every A and AAAA record.
pub(crate) async fn lookup(target: &Target) -> std::io::Result<Vec<SocketAddr>> {
    match &target.host {
        Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, target.port)]),
        Host::Name(name) => Ok(tokio::net::lookup_host((name.as_str(), target.port)).await?.collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_list_of_urls_and_names_parses_into_targets() {
        let upstream = Upstream::parse("http://127.0.0.1:50051, http://[::1]:50052,http://mailbox:7").unwrap();
        let hosts: Vec<_> = upstream.targets().iter().map(|t| (t.host.clone(), t.port)).collect();
        assert_eq!(
            hosts,
            [
                (Host::Ip("127.0.0.1".parse().unwrap()), 50051),
                (Host::Ip("::1".parse().unwrap()), 50052),
                (Host::Name("mailbox".into()), 7),
            ]
        );
        assert_eq!(upstream.fixed_addrs(), None, "a name needs resolving");
        assert_eq!(Upstream::parse("http://mailbox").unwrap().targets()[0].port, 80);
    }

    #[test]
    fn ip_addresses_alone_need_no_resolving() {
        let upstream = Upstream::parse("http://127.0.0.1:1,http://127.0.0.2:2").unwrap();
        assert_eq!(upstream.fixed_addrs(), Some([addr("127.0.0.1:1"), addr("127.0.0.2:2")].into()));
    }

    #[test]
    fn bad_urls_are_refused_with_their_text() {
        for bad in ["", " , ", "mailbox:50051", "ftp://mailbox:21", "http://", "http://a b"] {
            let error = Upstream::parse(bad).expect_err(bad).to_string();
            assert!(error.contains("gRPC upstream"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn resolving_again_adds_and_removes_addresses_but_a_failure_keeps_the_last_answer() {
        let mut resolved = Resolved::default();
        let first = resolved.update(vec![Ok(vec![addr("10.0.0.1:1"), addr("10.0.0.2:1")]), Ok(vec![addr("[::1]:2")])]);
        assert_eq!(first, [addr("10.0.0.1:1"), addr("10.0.0.2:1"), addr("[::1]:2")].into());
        // A replica left the first name's answer and another joined; the second name failed this time.
        let second = resolved
            .update(vec![Ok(vec![addr("10.0.0.2:1"), addr("10.0.0.3:1")]), Err(std::io::Error::other("SERVFAIL"))]);
        assert_eq!(second, [addr("10.0.0.2:1"), addr("10.0.0.3:1"), addr("[::1]:2")].into());
        // An empty answer (every pod not ready at once) keeps the last one rather than emptying the set.
        let third = resolved.update(vec![Ok(vec![]), Ok(vec![addr("[::1]:3")])]);
        assert_eq!(third, [addr("10.0.0.2:1"), addr("10.0.0.3:1"), addr("[::1]:3")].into());
    }

    #[tokio::test]
    async fn localhost_resolves_through_the_system_resolver() {
        let upstream = Upstream::parse("http://localhost:50051").unwrap();
        let addrs = lookup(&upstream.targets()[0]).await.expect("localhost resolves");
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 50051), "{addrs:?}");
        assert!(!addrs.is_empty());
    }
}
