//! Which DNS servers the roles ask: the system's (`/etc/resolv.conf`) or a list from the configuration,
//! with one timeout per query. The relay's MX lookups and smtp-ingress's SPF, DKIM, DMARC and ARC
//! lookups are built from the same [`DnsConfig`], so one setting points both at a resolver (a local
//! validating one in production, a loopback test server in the stack tests).
//!
//! It only builds resolver configurations; it performs no lookups itself.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{TokioResolver, system_conf};

/// The servers to ask.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DnsServers {
    /// The host's resolver configuration.
    #[default]
    System,
    /// These recursive resolvers, over UDP with TCP for truncated answers, in order.
    Servers(Vec<SocketAddr>),
}

impl FromStr for DnsServers {
    type Err = String;

    /// `system`, or a comma-separated list of `address:port` (`127.0.0.1:53,[::1]:53`).
    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim().eq_ignore_ascii_case("system") {
            return Ok(DnsServers::System);
        }
        let servers = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<SocketAddr>().map_err(|_| format!("{s:?} is not an address:port")))
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err("expected `system` or address:port, …".into());
        }
        Ok(DnsServers::Servers(servers))
    }
}

impl fmt::Display for DnsServers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsServers::System => f.write_str("system"),
            DnsServers::Servers(servers) => {
                let list: Vec<String> = servers.iter().map(ToString::to_string).collect();
                f.write_str(&list.join(","))
            }
        }
    }
}

/// The servers and how long one query may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    pub servers: DnsServers,
    /// One query's wait for an answer (hickory retries once more before giving up).
    pub timeout: Duration,
}

impl DnsConfig {
    /// What a hickory resolver is built from; the system's configuration can fail to read.
    pub fn parts(&self) -> Result<(ResolverConfig, ResolverOpts), NetError> {
        let (config, mut options) = match &self.servers {
            DnsServers::System => system_conf::read_system_conf()?,
            DnsServers::Servers(servers) => {
                let name_servers = servers
                    .iter()
                    .map(|server| {
                        let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                            .into_iter()
                            .map(|mut connection| {
                                connection.port = server.port();
                                connection
                            })
                            .collect();
                        NameServerConfig::new(server.ip(), true, connections)
                    })
                    .collect();
                (ResolverConfig::from_parts(None, Vec::new(), name_servers), ResolverOpts::default())
            }
        };
        options.timeout = self.timeout;
        options.attempts = 2;
        Ok((config, options))
    }

    /// A resolver on these servers.
    pub fn resolver(&self) -> Result<TokioResolver, NetError> {
        let (config, options) = self.parts()?;
        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default()).with_options(options).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_parse_as_system_or_a_list() {
        assert_eq!("system".parse(), Ok(DnsServers::System));
        assert_eq!(
            "127.0.0.1:5353, [::1]:53".parse(),
            Ok(DnsServers::Servers(vec!["127.0.0.1:5353".parse().unwrap(), "[::1]:53".parse().unwrap()]))
        );
        assert!("127.0.0.1".parse::<DnsServers>().is_err(), "a port is required");
        assert!(",".parse::<DnsServers>().is_err());
        assert_eq!("127.0.0.1:53,[::1]:53".parse::<DnsServers>().unwrap().to_string(), "127.0.0.1:53,[::1]:53");
    }

    #[test]
    fn a_configured_list_asks_each_server_on_its_port_over_udp_and_tcp() {
        let config = DnsConfig { servers: "127.0.0.1:5353".parse().unwrap(), timeout: Duration::from_millis(1500) };
        let (resolver, options) = config.parts().unwrap();
        assert_eq!(options.timeout, Duration::from_millis(1500));
        let server = &resolver.name_servers()[0];
        assert_eq!(server.ip.to_string(), "127.0.0.1");
        let ports: Vec<u16> = server.connections.iter().map(|c| c.port).collect();
        assert_eq!(ports, [5353, 5353]);
    }
}
