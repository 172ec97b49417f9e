//! Where a request comes from, for sign-in throttling: the TCP peer, or the client address a
//! trusted proxy reports in `X-Forwarded-For`, reduced to the unit one party controls (an IPv4
//! address, an IPv6 /64). Parsing the `trusted_proxies` setting lives here too; reading the
//! peer and the headers off a request is the server's business.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// One entry of `trusted_proxies`: an address, or a network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    network: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_bits(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_bits(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// Whether `a` and `b` agree on their first `prefix` of `width` bits.
fn prefix_bits(a: u128, b: u128, prefix: u8, width: u32) -> bool {
    let prefix = u32::from(prefix).min(width);
    if prefix == 0 {
        return true;
    }
    let shift = width - prefix;
    (a >> shift) == (b >> shift)
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an IP address or a network such as 10.0.0.0/8");
        let (address, prefix) = match s.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (s.trim(), None),
        };
        let network = canonical(IpAddr::from_str(address).map_err(|_| bad())?);
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(bad)?,
        };
        Ok(IpNet { network, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The `trusted_proxies` setting: the peers whose `X-Forwarded-For` is believed. Empty by
/// default: then the TCP peer is the client, whatever the headers say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(proxies: Vec<IpNet>) -> Self {
        Self(proxies)
    }

    /// Parses every entry; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| e.as_ref().parse())
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client's address: the peer, unless the peer is a trusted proxy; then the
    /// `X-Forwarded-For` entries (every such header's, in order) are read from the right,
    /// skipping trusted proxies, and the first other address is the client. Only the right
    /// end of the list can be trusted: a client writes whatever it likes on the left. An entry
    /// that is no address stops the walk at the proxy that reported it.
    pub fn client_address<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        if !self.contains(peer) {
            return canonical(peer);
        }
        let entries: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|header| header.split(','))
            .collect();
        let mut client = canonical(peer);
        for entry in entries.iter().rev() {
            let Some(address) = parse_forwarded(entry) else {
                break;
            };
            client = address;
            if !self.contains(address) {
                break;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, maybe with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = IpAddr::from_str(entry) {
        return Some(canonical(ip));
    }
    std::net::SocketAddr::from_str(entry)
        .ok()
        .map(|socket| canonical(socket.ip()))
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack socket reports) are the
/// IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The source sign-in throttling counts by: an IPv4 address, or the /64 network of an IPv6
/// address (one subscriber gets a whole /64, so counting single IPv6 addresses would let one
/// party look like 2^64 sources).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(String);

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match canonical(ip) {
            IpAddr::V4(v4) => Source(v4.to_string()),
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !(u128::MAX >> 64);
                Source(format!("{}/64", Ipv6Addr::from(network)))
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Ipv4Addr> for Source {
    fn from(ip: Ipv4Addr) -> Self {
        Source::of(IpAddr::V4(ip))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries).unwrap()
    }

    #[test]
    fn networks_parse_and_contain_their_addresses() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.255.1.2")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        let one: IpNet = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "example.com",
            "10.0.0.1/x",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?}");
        }
        assert_eq!(net.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = proxies(&["10.0.0.1"]);
        assert_eq!(
            trusted.client_address(ip("203.0.113.9"), ["198.51.100.1"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::default().client_address(ip("127.0.0.1"), ["198.51.100.1"]),
            ip("127.0.0.1"),
            "no trusted proxies: headers are ignored"
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client_from_the_right() {
        let trusted = proxies(&["10.0.0.0/8", "127.0.0.1"]);
        // A client-written entry on the left is not believed.
        assert_eq!(
            trusted.client_address(ip("127.0.0.1"), ["6.6.6.6, 198.51.100.1"]),
            ip("198.51.100.1")
        );
        // Trusted hops are skipped, across several headers.
        assert_eq!(
            trusted.client_address(ip("127.0.0.1"), ["198.51.100.1", "10.1.1.1, 10.2.2.2"]),
            ip("198.51.100.1")
        );
        // Ports and IPv6 brackets.
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), ["198.51.100.1:4711"]),
            ip("198.51.100.1")
        );
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), ["[2001:db8::1]:4711"]),
            ip("2001:db8::1")
        );
        // No header: the proxy itself; nonsense: the last hop that could be read.
        assert_eq!(trusted.client_address(ip("10.0.0.1"), []), ip("10.0.0.1"));
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), ["unknown, 10.0.0.2"]),
            ip("10.0.0.2")
        );
        // Every hop trusted: the leftmost.
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), ["10.0.0.3, 10.0.0.2"]),
            ip("10.0.0.3")
        );
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_slash_64s() {
        assert_eq!(Source::of(ip("192.0.2.1")).as_str(), "192.0.2.1");
        assert_eq!(Source::of(ip("::ffff:192.0.2.1")).as_str(), "192.0.2.1");
        assert_eq!(
            Source::of(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")).as_str(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:3::1"))
        );
    }
}
