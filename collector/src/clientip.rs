//! The client's address: the socket's peer, or, when the peer is a trusted
//! proxy, the right-most address of X-Forwarded-For that is not itself a
//! trusted proxy (each proxy appends the address it received from, so the
//! entries left of the first untrusted one are whatever the client wrote).

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Every X-Forwarded-For header, in order, as one comma-separated list.
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut nearest = peer;
    for entry in entries.iter().rev() {
        match parse_entry(entry) {
            Some(ip) if is_trusted(&ip) => nearest = ip,
            Some(ip) => return ip,
            // Garbage where an address should be: the last trusted hop is the
            // best we know.
            None => return nearest,
        }
    }
    nearest
}

/// "1.2.3.4", "1.2.3.4:5678", "2001:db8::1", "[2001:db8::1]:443".
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')).and_then(|e| e.parse().ok()))
        .map(|ip: IpAddr| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let ip = client_ip("203.0.113.7".parse().unwrap(), &headers(&["1.1.1.1"]), &nets(&["10.0.0.0/8"]));
        assert_eq!(ip, "203.0.113.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn right_most_untrusted_entry() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        let h = headers(&["6.6.6.6, 198.51.100.4", "10.1.1.1"]);
        assert_eq!(client_ip("127.0.0.1".parse().unwrap(), &h, &trusted), "198.51.100.4".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ports_brackets_and_mapped_addresses() {
        let trusted = nets(&["127.0.0.1/32"]);
        let peer: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(client_ip(peer, &headers(&["198.51.100.4:5555"]), &trusted), "198.51.100.4".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(peer, &headers(&["[2001:db8::1]:443"]), &trusted), "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(peer, &headers(&["[2001:db8::2]"]), &trusted), "2001:db8::2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn all_trusted_or_garbage_falls_back_to_the_nearest_trusted_hop() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(client_ip(peer, &headers(&["10.2.2.2"]), &trusted), "10.2.2.2".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(peer, &headers(&["1.1.1.1, unknown, 10.3.3.3"]), &trusted), "10.3.3.3".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(peer, &headers(&[]), &trusted), peer);
    }
}
