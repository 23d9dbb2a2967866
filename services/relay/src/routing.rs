//! Where mail for a domain goes: a static transport map (Postfix's `transport_maps`/`relayhost`: a
//! domain, or `*` for every domain, to `host:port`) when it has an entry, else the domain's MX hosts in
//! preference order, else the domain itself (RFC 5321 §5.1's implicit MX). A null MX (RFC 7505) means the
//! domain accepts no mail at all.

use std::collections::HashMap;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use mailbus_dns::{DnsConfig, DnsServers};

/// One host to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub host: String,
    pub port: u16,
}

/// Why a domain has no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// RFC 7505: the domain says it accepts no mail. Permanent.
    NullMx,
    /// The domain does not exist (NXDOMAIN). Permanent.
    NoSuchDomain,
    /// The lookup failed; try again later.
    Lookup(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportMap {
    routes: HashMap<String, Hop>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transport map entry {0:?} is not domain=host:port")]
pub struct BadTransport(pub String);

impl std::str::FromStr for TransportMap {
    type Err = BadTransport;

    /// `example.net=mx.example.net:25,*=smarthost:587`; empty for none.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut routes = HashMap::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || BadTransport(entry.to_owned());
            let (domain, target) = entry.split_once('=').ok_or_else(bad)?;
            let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
            let port = port.parse().map_err(|_| bad())?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if domain.is_empty() || host.is_empty() {
                return Err(bad());
            }
            routes.insert(domain.to_lowercase(), Hop { host: host.to_owned(), port });
        }
        Ok(TransportMap { routes })
    }
}

impl TransportMap {
    fn route(&self, domain: &str) -> Option<&Hop> {
        self.routes.get(domain).or_else(|| self.routes.get("*"))
    }
}

pub struct Router {
    transports: TransportMap,
    resolver: Option<TokioResolver>,
}

impl Router {
    /// A router that falls back to DNS on the system's resolvers, when their configuration can be read.
    pub fn new(transports: TransportMap) -> Self {
        Self::with_dns(transports, &DnsConfig { servers: DnsServers::System, timeout: Duration::from_secs(5) })
    }

    /// A router that falls back to DNS on `dns` (`MAILBUS_DNS_RESOLVER`), when it can be set up.
    pub fn with_dns(transports: TransportMap, dns: &DnsConfig) -> Self {
        let resolver = dns
            .resolver()
            .map_err(|error| tracing::warn!(%error, "no DNS resolver: only the transport map routes mail"))
            .ok();
        Router { transports, resolver }
    }

    /// The hosts to try for `domain`, best first.
    pub async fn hops(&self, domain: &str) -> Result<Vec<Hop>, NoRoute> {
        if let Some(hop) = self.transports.route(domain) {
            return Ok(vec![hop.clone()]);
        }
        let Some(resolver) = &self.resolver else {
            return Err(NoRoute::Lookup("no DNS resolver configured".into()));
        };
        match resolver.mx_lookup(format!("{domain}.")).await {
            Ok(lookup) => {
                let mut mx: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        hickory_resolver::proto::rr::RData::MX(mx) => {
                            Some((mx.preference, mx.exchange.to_utf8().trim_end_matches('.').to_owned()))
                        }
                        _ => None,
                    })
                    .collect();
                if mx.iter().any(|(_, host)| host.is_empty()) {
                    return Err(NoRoute::NullMx);
                }
                mx.sort();
                mx.dedup_by(|a, b| a.1.eq_ignore_ascii_case(&b.1));
                Ok(best_hops(mx))
            }
            Err(error) if error.is_nx_domain() => Err(NoRoute::NoSuchDomain),
            // RFC 5321 §5.1: no MX records, so the domain itself is the host.
            Err(error) if error.is_no_records_found() => Ok(vec![Hop { host: domain.to_owned(), port: 25 }]),
            Err(error) => Err(NoRoute::Lookup(error.to_string())),
        }
    }
}

/// The most MX hosts one attempt tries (Postfix's `smtp_mx_address_limit` is 5 addresses): a domain
/// that publishes hundreds of unreachable exchangers would otherwise hold a relay slot for hours, each
/// host waiting out its timeouts.
pub const MAX_MX_HOSTS: usize = 5;

/// The best [`MAX_MX_HOSTS`] of `mx`, sorted by preference, as hops on port 25.
fn best_hops(mx: Vec<(u16, String)>) -> Vec<Hop> {
    mx.into_iter().take(MAX_MX_HOSTS).map(|(_, host)| Hop { host, port: 25 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_five_exchangers_are_tried_best_first() {
        let mx: Vec<(u16, String)> = (0..100).map(|i| (i, format!("mx{i}.example"))).collect();
        let hops = best_hops(mx);
        assert_eq!(hops.len(), MAX_MX_HOSTS);
        assert_eq!(hops[0], Hop { host: "mx0.example".into(), port: 25 });
        assert_eq!(hops[4].host, "mx4.example");
    }

    #[test]
    fn transport_maps_parse_and_fall_back_to_the_wildcard() {
        let map: TransportMap = "b.test=127.0.0.1:2526, *=[::1]:2587".parse().unwrap();
        assert_eq!(map.route("b.test"), Some(&Hop { host: "127.0.0.1".into(), port: 2526 }));
        assert_eq!(map.route("other.test"), Some(&Hop { host: "::1".into(), port: 2587 }));
        assert_eq!("".parse::<TransportMap>().unwrap().route("x"), None);
        for bad in ["b.test", "b.test=host", "=h:1", "b.test=h:port"] {
            assert!(bad.parse::<TransportMap>().is_err(), "{bad}");
        }
    }
}
