//! HAProxy's PROXY protocol (v1 text and v2 binary): a load balancer in front of the mail ports
//! (HAProxy's `send-proxy-v2`, an AWS NLB, Kubernetes ingress controllers) opens each connection with a
//! header naming the client it accepted. Without it every client would have the balancer's address, so
//! per-address limits would cap all clients together and `Received:` would name the balancer.
//!
//! As in Postfix (`smtpd_upstream_proxy_protocol`) and Dovecot (`haproxy_trusted_networks`), only
//! connections from configured addresses are read this way, and from those the header is required:
//! anyone else could claim any address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 header's first 12 octets.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header's longest form, CRLF included (the specification's 107).
const V1_MAX: usize = 107;

/// The networks whose connections start with a PROXY header. Empty: none do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a connection from `peer` must open with a PROXY header.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|&(network, bits)| match (network, peer) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_matches(&net.octets(), &ip.octets(), bits),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_matches(&net.octets(), &ip.octets(), bits),
            _ => false,
        })
    }
}

fn prefix_matches(network: &[u8], ip: &[u8], bits: u8) -> bool {
    let bits = bits.min(u8::try_from(network.len() * 8).unwrap_or(u8::MAX));
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    network[..whole] == ip[..whole] && (rest == 0 || (network[whole] ^ ip[whole]) >> (8 - rest) == 0)
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list of addresses and networks: `10.0.0.0/8, 172.16.0.0/12, fd00::/8, 192.0.2.7`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut networks = Vec::new();
        for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let (address, bits) = match item.split_once('/') {
                Some((address, bits)) => (address, Some(bits)),
                None => (item, None),
            };
            let address: IpAddr = address.parse().map_err(|_| format!("{item:?} is not an address or network"))?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(bits) => bits
                    .parse::<u8>()
                    .ok()
                    .filter(|&b| b <= max)
                    .ok_or_else(|| format!("{item:?}: the prefix length must be 0 to {max}"))?,
            };
            // An IPv4-mapped network (::ffff:10.0.0.0/104) is the IPv4 network it maps.
            let canonical = address.to_canonical();
            let bits = match (address, canonical) {
                (IpAddr::V6(_), IpAddr::V4(_)) => bits
                    .checked_sub(96)
                    .ok_or_else(|| format!("{item:?}: an IPv4-mapped network needs a prefix length of 96 to 128"))?,
                _ => bits,
            };
            networks.push((canonical, bits));
        }
        Ok(TrustedProxies(networks))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("the connection closed before the PROXY header ended")]
    Truncated,
    #[error("no PROXY header from a trusted proxy")]
    Missing,
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
}

/// Reads the PROXY header, and not one octet more: the session's own bytes follow it. `Some` is the
/// client the proxy accepted; `None` means the proxy speaks for itself (v2 LOCAL, as in its health
/// checks, or v1 UNKNOWN), so the connection's own address stands.
pub async fn read_header<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Option<SocketAddr>, ProxyError> {
    let mut start = [0u8; 5];
    read(stream, &mut start).await?;
    if &start == b"PROXY" {
        return read_v1(stream).await;
    }
    if start != V2_SIGNATURE[..5] {
        return Err(ProxyError::Missing);
    }
    let mut head = [0u8; 11];
    read(stream, &mut head).await?;
    if head[..7] != V2_SIGNATURE[5..] {
        return Err(ProxyError::Missing);
    }
    let (version_command, family) = (head[7], head[8]);
    let length = usize::from(u16::from_be_bytes([head[9], head[10]]));
    if version_command >> 4 != 2 {
        return Err(ProxyError::Malformed("not version 2"));
    }
    // At most 65,535 octets: the addresses and any TLVs (HAProxy's SSL TLVs can carry a client
    // certificate's names), all skipped but the addresses.
    let mut payload = vec![0u8; length];
    read(stream, &mut payload).await?;
    match version_command & 0x0f {
        // LOCAL: the proxy's own connection.
        0 => Ok(None),
        1 => v2_source(family, &payload),
        _ => Err(ProxyError::Malformed("unknown command")),
    }
}

/// The source address of a v2 PROXY command. TLVs after the addresses are ignored.
fn v2_source(family: u8, payload: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    // The low nibble is the transport: a mail session is a stream (1), or unspecified (0).
    if family & 0x0f > 1 {
        return Err(ProxyError::Malformed("not a stream connection"));
    }
    match family >> 4 {
        // AF_UNSPEC: no address to use.
        0 => Ok(None),
        1 => {
            let block: &[u8; 12] =
                payload.get(..12).and_then(|b| b.try_into().ok()).ok_or(ProxyError::Malformed("short IPv4 block"))?;
            let ip = Ipv4Addr::new(block[0], block[1], block[2], block[3]);
            Ok(Some(SocketAddr::new(ip.into(), u16::from_be_bytes([block[8], block[9]]))))
        }
        2 => {
            let block: &[u8; 36] =
                payload.get(..36).and_then(|b| b.try_into().ok()).ok_or(ProxyError::Malformed("short IPv6 block"))?;
            let octets: [u8; 16] = block[..16].try_into().map_err(|_| ProxyError::Malformed("short IPv6 block"))?;
            let port = u16::from_be_bytes([block[32], block[33]]);
            // A client of an IPv4 listener behind a dual-stack proxy is the IPv4 client it maps.
            Ok(Some(SocketAddr::new(Ipv6Addr::from(octets).to_canonical(), port)))
        }
        // AF_UNIX: a local client, no network address.
        3 => Ok(None),
        _ => Err(ProxyError::Malformed("unknown address family")),
    }
}

/// `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (or TCP6, or UNKNOWN …), after the `PROXY` already read.
async fn read_v1<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Option<SocketAddr>, ProxyError> {
    let mut line = Vec::with_capacity(V1_MAX);
    line.extend_from_slice(b"PROXY");
    while !line.ends_with(b"\r\n") {
        if line.len() >= V1_MAX {
            return Err(ProxyError::Malformed("v1 line too long"));
        }
        let mut octet = [0u8; 1];
        read(stream, &mut octet).await?;
        line.push(octet[0]);
    }
    let line = std::str::from_utf8(&line[..line.len() - 2]).map_err(|_| ProxyError::Malformed("not text"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    match fields[..] {
        ["PROXY", "UNKNOWN", ..] => Ok(None),
        ["PROXY", family @ ("TCP4" | "TCP6"), source, _destination, source_port, _destination_port] => {
            let ip: IpAddr = source.parse().map_err(|_| ProxyError::Malformed("bad source address"))?;
            if ip.is_ipv4() != (family == "TCP4") {
                return Err(ProxyError::Malformed("address does not match the family"));
            }
            let port = source_port.parse().map_err(|_| ProxyError::Malformed("bad source port"))?;
            Ok(Some(SocketAddr::new(ip.to_canonical(), port)))
        }
        _ => Err(ProxyError::Malformed("not a v1 PROXY line")),
    }
}

async fn read<R: AsyncRead + Unpin>(stream: &mut R, buffer: &mut [u8]) -> Result<(), ProxyError> {
    stream.read_exact(buffer).await.map(drop).map_err(|_| ProxyError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyError>, Vec<u8>) {
        let mut stream = bytes;
        let header = read_header(&mut stream).await;
        (header, stream.to_vec())
    }

    fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.extend([0x20 | command, family]);
        header.extend((payload.len() as u16).to_be_bytes());
        header.extend(payload);
        header
    }

    #[tokio::test]
    async fn v1_headers_name_the_client_and_leave_the_session_bytes() {
        let (header, rest) = parse(b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 25\r\nEHLO x\r\n").await;
        assert_eq!(header, Ok(Some("192.0.2.1:56324".parse().unwrap())));
        assert_eq!(rest, b"EHLO x\r\n");
        let (header, _) = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 143\r\n").await;
        assert_eq!(header, Ok(Some("[2001:db8::1]:4000".parse().unwrap())));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").await.0, Ok(None));
        assert_eq!(parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").await.0, Ok(None));
    }

    #[tokio::test]
    async fn v2_headers_name_the_client_and_skip_their_tlvs() {
        let mut ipv4 = vec![203, 0, 113, 9, 10, 0, 0, 2];
        ipv4.extend(40000u16.to_be_bytes());
        ipv4.extend(25u16.to_be_bytes());
        ipv4.extend([0x04, 0x00, 0x01, 0x00]); // a NOOP TLV
        let mut bytes = v2(1, 0x11, &ipv4);
        bytes.extend(b"* session bytes");
        let (header, rest) = parse(&bytes).await;
        assert_eq!(header, Ok(Some("203.0.113.9:40000".parse().unwrap())));
        assert_eq!(rest, b"* session bytes");

        let mut ipv6 = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        ipv6.extend([0; 16]);
        ipv6.extend(993u16.to_be_bytes());
        ipv6.extend(993u16.to_be_bytes());
        assert_eq!(parse(&v2(1, 0x21, &ipv6)).await.0, Ok(Some("[2001:db8::7]:993".parse().unwrap())));
        let mut mapped = "::ffff:198.51.100.4".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        mapped.extend([0; 16]);
        mapped.extend(2525u16.to_be_bytes());
        mapped.extend(25u16.to_be_bytes());
        assert_eq!(parse(&v2(1, 0x21, &mapped)).await.0, Ok(Some("198.51.100.4:2525".parse().unwrap())));
        // LOCAL (the proxy's health check) and AF_UNSPEC keep the connection's own address.
        assert_eq!(parse(&v2(0, 0x00, &[])).await.0, Ok(None));
        assert_eq!(parse(&v2(1, 0x00, &[])).await.0, Ok(None));
    }

    #[tokio::test]
    async fn anything_else_is_refused_without_hanging() {
        for (bytes, expected) in [
            (&b"EHLO client.example\r\n"[..], ProxyError::Missing),
            (b"PROXY TCP4 192.0.2.1", ProxyError::Truncated),
            (b"PROXY TCP4 not-an-ip 198.51.100.1 1 2\r\n", ProxyError::Malformed("bad source address")),
            (b"PROXY TCP6 192.0.2.1 198.51.100.1 1 2\r\n", ProxyError::Malformed("address does not match the family")),
            (b"PROXY TCP4 192.0.2.1 198.51.100.1 99999 2\r\n", ProxyError::Malformed("bad source port")),
            (b"PROXY HELLO\r\n", ProxyError::Malformed("not a v1 PROXY line")),
            (b"\r\n\r\n\0\r\nQUIX\n\x21\x11\0\0", ProxyError::Missing),
            (b"", ProxyError::Truncated),
        ] {
            assert_eq!(parse(bytes).await.0, Err(expected), "{bytes:?}");
        }
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        assert_eq!(parse(long.as_bytes()).await.0, Err(ProxyError::Malformed("v1 line too long")));
        assert_eq!(parse(&v2(1, 0x11, &[1, 2, 3])).await.0, Err(ProxyError::Malformed("short IPv4 block")));
        assert_eq!(parse(&v2(1, 0x21, &[0; 12])).await.0, Err(ProxyError::Malformed("short IPv6 block")));
        assert_eq!(parse(&v2(7, 0x11, &[0; 12])).await.0, Err(ProxyError::Malformed("unknown command")));
        assert_eq!(parse(&v2(1, 0x12, &[0; 12])).await.0, Err(ProxyError::Malformed("not a stream connection")));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend([0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&huge).await.0, Err(ProxyError::Truncated), "65535 octets announced, none sent");
    }

    #[test]
    fn trusted_networks_match_by_prefix() {
        let trusted: TrustedProxies = "10.0.0.0/8, 192.0.2.7, fd00::/8,172.16.0.0/12".parse().unwrap();
        for ip in ["10.1.2.3", "192.0.2.7", "fd12::1", "172.31.255.255", "::ffff:10.9.9.9"] {
            assert!(trusted.trusts(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["11.0.0.1", "192.0.2.8", "fe80::1", "172.32.0.1", "127.0.0.1"] {
            assert!(!trusted.trusts(ip.parse().unwrap()), "{ip}");
        }
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        assert!("0.0.0.0/0".parse::<TrustedProxies>().unwrap().trusts("198.51.100.1".parse().unwrap()));
        // IPv4-mapped networks are the IPv4 networks they map, and never reach past an address's length.
        let mapped: TrustedProxies = "::ffff:10.0.0.0/104, ::ffff:192.0.2.7".parse().unwrap();
        assert!(mapped.trusts("10.200.0.1".parse().unwrap()) && mapped.trusts("192.0.2.7".parse().unwrap()));
        assert!(!mapped.trusts("11.0.0.1".parse().unwrap()));
        assert!("::ffff:10.0.0.0/80".parse::<TrustedProxies>().is_err());
        for bad in ["10.0.0.0/33", "fd00::/129", "example.com", "10.0.0.0/x"] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
    }
}
