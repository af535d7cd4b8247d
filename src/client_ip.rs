//! The client's IP: the peer's address, unless the peer is a configured trusted proxy, in which
//! case the nearest untrusted address of `X-Forwarded-For` (read from the right, so a client
//! cannot spoof it by prepending).

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|p| p.contains(&ip))
}

/// The address per-client limits count `ip` under: an IPv4 address (also one mapped into
/// IPv6) as it is, an IPv6 address as its network of `ipv6_prefix` bits, since whoever holds
/// one address of a /64 usually holds them all.
pub fn limit_key(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ipnet::Ipv6Net::new(v6, ipv6_prefix.min(128))
                .map(|net| IpAddr::V6(net.network()))
                .unwrap_or(ip),
        },
    }
}

/// `peer` is the TCP peer; `headers` the request's headers.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted(peer, proxies) {
        return Some(peer);
    }
    let mut client = peer;
    for value in headers
        .get_all("x-forwarded-for")
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let Ok(text) = value.to_str() else {
            return Some(client);
        };
        for hop in text.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return Some(client);
            };
            client = ip;
            if !trusted(ip, proxies) {
                return Some(ip);
            }
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_network() {
        let key = |ip: &str, prefix| limit_key(ip.parse().expect("an address"), prefix).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::");
        assert_eq!(
            key("2001:db8:1:2:ffff:ffff:ffff:ffff", 64),
            "2001:db8:1:2::"
        );
        assert_ne!(key("2001:db8:1:3::1", 64), key("2001:db8:1:2::1", 64));
        assert_eq!(key("2001:db8:1:2:aaaa::1", 48), "2001:db8:1::");
        assert_eq!(key("2001:db8::1", 128), "2001:db8::1");
        assert_eq!(key("::ffff:192.0.2.7", 64), "192.0.2.7");
        assert_eq!(key("192.0.2.7", 64), "192.0.2.7");
    }
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn check(peer: &str, xff: &[&str], proxies: &[&str], expected: &str) {
        let mut headers = HeaderMap::new();
        for v in xff {
            headers.append(
                HeaderName::from_static("x-forwarded-for"),
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
        }
        let proxies: Vec<IpNet> = proxies.iter().filter_map(|p| p.parse().ok()).collect();
        let got = client_ip(peer.parse().ok(), &headers, &proxies).map(|ip| ip.to_string());
        assert_eq!(got.as_deref(), Some(expected), "{peer} {xff:?}");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        // An untrusted peer cannot choose its address.
        check("203.0.113.9", &["1.2.3.4"], &[], "203.0.113.9");
        check("203.0.113.9", &["1.2.3.4"], &["10.0.0.0/8"], "203.0.113.9");
        // Behind one trusted proxy: the address it saw.
        check(
            "10.0.0.2",
            &["198.51.100.7"],
            &["10.0.0.0/8"],
            "198.51.100.7",
        );
        // A client prepending a fake hop does not move the answer.
        check(
            "10.0.0.2",
            &["1.1.1.1, 198.51.100.7"],
            &["10.0.0.0/8"],
            "198.51.100.7",
        );
        check(
            "10.0.0.2",
            &["1.1.1.1", "198.51.100.7"],
            &["10.0.0.0/8"],
            "198.51.100.7",
        );
        // Two trusted hops.
        check(
            "10.0.0.2",
            &["198.51.100.7, 10.0.0.9"],
            &["10.0.0.0/8"],
            "198.51.100.7",
        );
        // Garbage stops the walk at the last good address.
        check("10.0.0.2", &["nonsense"], &["10.0.0.0/8"], "10.0.0.2");
        check("10.0.0.2", &[], &["10.0.0.0/8"], "10.0.0.2");
    }
}
