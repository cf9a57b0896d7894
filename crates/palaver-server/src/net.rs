//! Client addresses: which IP address a request comes from, behind trusted reverse
//! proxies, and the keys rate limits group addresses by.
//!
//! # The client address
//!
//! [`client_addr`] takes the TCP peer's address, unless the peer is one of the configured
//! `trusted_proxies` ([`IpNet`]s): then it walks the configured forwarding header
//! (`X-Forwarded-For`, or RFC 7239 `Forwarded`'s `for=` parameters) from the right, the
//! entry the nearest proxy added first, skipping trusted proxies, and takes the first
//! address that is not one. A client can write anything into these headers, but only the
//! entries to the right of the right-most untrusted address were added by proxies we
//! trust, so only that address is believed. An entry that is not an IP address (`unknown`,
//! an RFC 7239 obfuscated identifier) stops the walk at the last trusted hop, whose
//! address is then used. With no trusted proxies (the default) the headers are ignored.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are treated as the IPv4 address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use axum::http::HeaderMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IP network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or a single address
/// (`192.0.2.7`, meaning `/32`, or `/128` for IPv6). Host bits are ignored
/// (`10.1.2.3/8` is `10.0.0.0/8`). Serialized as that string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(ip, self.prefix) == mask_v4(net, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(ip, self.prefix) == mask_v6(net, self.prefix)
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("`{s}` is not an IP address or CIDR network (like 10.0.0.0/8)");
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr = IpAddr::from_str(addr).map_err(|_| bad())?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Deserializes a list of [`IpNet`]s from a sequence of strings or from one string of
/// comma- or space-separated entries (how an environment variable gives it:
/// `PALAVER_TRUSTED_PROXIES="10.0.0.1, 192.168.0.0/16"`).
pub fn deserialize_nets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        One(String),
    }
    let entries = match Raw::deserialize(d)? {
        Raw::List(list) => list,
        Raw::One(one) => one
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    entries
        .iter()
        .map(|e| e.parse().map_err(serde::de::Error::custom))
        .collect()
}

/// Which header a trusted proxy states the client address in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, Caddy, Traefik, HAProxy).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:4711"`.
    Forwarded,
}

/// Where the client address of a request is read from (see the [module docs](self)).
#[derive(Debug, Clone, Default)]
pub struct ClientAddrConfig {
    /// Peers whose forwarding header is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The header they write.
    pub header: ForwardedHeader,
}

impl ClientAddrConfig {
    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }
}

/// The client address of a request from TCP peer `peer` with `headers` (see the
/// [module docs](self)).
pub fn client_addr(config: &ClientAddrConfig, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let mut addr = peer.to_canonical();
    if !config.is_trusted(addr) {
        return addr;
    }
    let name = match config.header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => "forwarded",
    };
    // Every occurrence of the header, in order, is one list (RFC 9110 §5.3).
    let mut entries: Vec<&str> = Vec::new();
    for value in headers.get_all(name) {
        let Ok(value) = value.to_str() else {
            return addr;
        };
        entries.extend(value.split(','));
    }
    for entry in entries.iter().rev() {
        let parsed = match config.header {
            ForwardedHeader::XForwardedFor => parse_node(entry),
            ForwardedHeader::Forwarded => forwarded_for(entry).and_then(parse_node),
        };
        let Some(ip) = parsed else {
            return addr;
        };
        addr = ip.to_canonical();
        if !config.is_trusted(addr) {
            return addr;
        }
    }
    addr
}

/// The `for=` value of one RFC 7239 `forwarded-element` (`for=x;proto=https;by=y`),
/// unquoted.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// An address as a forwarding header writes it: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Ok(ip) = IpAddr::from_str(node) {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, _port) = rest.split_once(']')?;
        return Ipv6Addr::from_str(ip).ok().map(IpAddr::V6);
    }
    let (ip, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    Ipv4Addr::from_str(ip).ok().map(IpAddr::V4)
}

/// Whether the request's `Host` names a loopback host (`localhost`, `*.localhost`,
/// `127.0.0.1`, `[::1]`, any port): development over plain HTTP, where cookies cannot be
/// `Secure`.
pub fn host_is_loopback(headers: &HeaderMap) -> bool {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let hostname = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    matches!(hostname, "localhost" | "127.0.0.1" | "[::1]") || hostname.ends_with(".localhost")
}

/// The value of cookie `name` in the request's `Cookie` headers, if present, non-empty
/// and at most 256 bytes.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty() && v.len() <= 256)
}

/// The key a per-address limit counts `ip` under: the IPv4 address itself, or the IPv6
/// /64 it lies in (one subscriber usually holds a whole /64).
pub fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{}/64", Ipv6Addr::from(mask_v6(v6, 64))),
    }
}

/// The network `ip` is grouped in when limits are keyed by account and network: its IPv4
/// /24 or its IPv6 /64, as `a.b.c.0/24` or `x:x:x:x::/64`.
pub fn network_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("{}/24", Ipv4Addr::from(mask_v4(v4, 24))),
        IpAddr::V6(v6) => format!("{}/64", Ipv6Addr::from(mask_v6(v6, 64))),
    }
}

fn mask_v4(ip: Ipv4Addr, prefix: u8) -> u32 {
    let bits = u32::from(ip);
    match prefix {
        0 => 0,
        p => bits & (u32::MAX << (32 - u32::from(p.min(32)))),
    }
}

fn mask_v6(ip: Ipv6Addr, prefix: u8) -> u128 {
    let bits = u128::from(ip);
    match prefix {
        0 => 0,
        p => bits & (u128::MAX << (128 - u32::from(p.min(128)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn config(nets: &[&str], header: ForwardedHeader) -> ClientAddrConfig {
        ClientAddrConfig {
            trusted_proxies: nets.iter().map(|n| n.parse().unwrap()).collect(),
            header,
        }
    }

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn networks_parse_and_contain() {
        let net: IpNet = "10.1.2.3/8".parse().unwrap();
        assert!(net.contains(ip("10.200.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped");
        let one: IpNet = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "nonsense",
            "10.0.0/8",
            "10.0.0.0/x",
            "",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
        assert_eq!(
            "10.1.2.3/8".parse::<IpNet>().unwrap().to_string(),
            "10.1.2.3/8"
        );
    }

    #[test]
    fn an_untrusted_peer_s_headers_are_ignored() {
        let c = config(&["10.0.0.1"], ForwardedHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(client_addr(&c, ip("198.51.100.1"), &h), ip("198.51.100.1"));
        let none = ClientAddrConfig::default();
        assert_eq!(client_addr(&none, ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_client() {
        let c = config(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        // The client forged the first entry; our proxies appended the rest.
        let h = headers(
            "x-forwarded-for",
            &["1.2.3.4, 203.0.113.9", "10.0.0.7, 10.0.0.8"],
        );
        assert_eq!(client_addr(&c, ip("10.0.0.1"), &h), ip("203.0.113.9"));
        // Ports and brackets.
        let h = headers("x-forwarded-for", &["[2001:db8::5]:4711"]);
        assert_eq!(client_addr(&c, ip("10.0.0.1"), &h), ip("2001:db8::5"));
        let h = headers("x-forwarded-for", &["203.0.113.9:1234"]);
        assert_eq!(client_addr(&c, ip("10.0.0.1"), &h), ip("203.0.113.9"));
        // No header, or only trusted hops: the last trusted address.
        assert_eq!(
            client_addr(&c, ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        let h = headers("x-forwarded-for", &["10.0.0.9"]);
        assert_eq!(client_addr(&c, ip("10.0.0.1"), &h), ip("10.0.0.9"));
        // Garbage stops the walk at the last trusted hop.
        let h = headers("x-forwarded-for", &["203.0.113.9, unknown"]);
        assert_eq!(client_addr(&c, ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn rfc_7239_forwarded() {
        let c = config(&["10.0.0.1"], ForwardedHeader::Forwarded);
        let h = headers(
            "forwarded",
            &["for=1.2.3.4, for=\"[2001:db8:cafe::17]:4711\";proto=https;by=10.0.0.1"],
        );
        assert_eq!(client_addr(&c, ip("10.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers("forwarded", &["proto=https;For=192.0.2.60"]);
        assert_eq!(client_addr(&c, ip("10.0.0.1"), &h), ip("192.0.2.60"));
        let h = headers("forwarded", &["for=_hidden"]);
        assert_eq!(client_addr(&c, ip("10.0.0.1"), &h), ip("10.0.0.1"));
        // X-Forwarded-For is not read in this mode.
        let h = headers("x-forwarded-for", &["192.0.2.60"]);
        assert_eq!(client_addr(&c, ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn keys_group_ipv6_by_64_and_networks_by_24() {
        assert_eq!(address_key(ip("192.0.2.7")), "192.0.2.7");
        assert_eq!(address_key(ip("::ffff:192.0.2.7")), "192.0.2.7");
        assert_eq!(address_key(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
        assert_eq!(network_key(ip("192.0.2.7")), "192.0.2.0/24");
        assert_eq!(network_key(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
    }

    #[test]
    fn lists_come_from_a_sequence_or_a_separated_string() {
        #[derive(Deserialize)]
        struct C {
            #[serde(deserialize_with = "deserialize_nets")]
            nets: Vec<IpNet>,
        }
        let c: C = serde_json::from_str(r#"{"nets": ["10.0.0.1", "fd00::/8"]}"#).unwrap();
        assert_eq!(c.nets.len(), 2);
        let c: C = serde_json::from_str(r#"{"nets": "10.0.0.1, 192.168.0.0/16 ::1"}"#).unwrap();
        assert_eq!(c.nets.len(), 3);
        let e = serde_json::from_str::<C>(r#"{"nets": ["10.0.0.300"]}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("10.0.0.300"), "{e}");
    }
}
