//! Who is asking: the client's address (believing `X-Forwarded-For` only from trusted
//! proxies) and user agent.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use guichet_core::audit::RequestContext;
use ipnet::IpNet;

use crate::state::AppState;

/// Addresses or networks whose `X-Forwarded-For` header is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(none)");
        }
        let list: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&list.join(", "))
    }
}

impl TrustedProxies {
    /// Parses a comma- or space-separated list of addresses and CIDR networks.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split([',', ' '])
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("« {item} » is not an IP address or network"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub(crate) fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client's address: the peer, or — when the peer is a trusted proxy — the
    /// right-most address of `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_address(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let Some(header) = forwarded_for else { return peer };
        let mut client = peer;
        for hop in header.rsplit(',').map(str::trim) {
            let Some(address) = parse_hop(hop) else {
                tracing::warn!(hop, "unreadable X-Forwarded-For hop: the nearest readable address is used");
                break;
            };
            client = canonical(address);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| hop.trim_start_matches('[').trim_end_matches(']').parse().ok())
}

/// IPv4-mapped IPv6 addresses as plain IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// The request's origin, for the audit trail and the address throttle.
#[derive(Debug, Clone)]
pub struct Client(pub RequestContext);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        // Every X-Forwarded-For line, in order: some proxies add a line rather than append.
        let forwarded: Vec<&str> =
            parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        let forwarded = (!forwarded.is_empty()).then(|| forwarded.join(","));
        let address = peer.map(|peer| state.settings.trusted_proxies.client_address(peer, forwarded.as_deref()));
        let user_agent = parts.headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok());
        Ok(Self(RequestContext::new(address, user_agent)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let proxies = TrustedProxies::parse("10.0.0.1").unwrap_or_default();
        assert_eq!(proxies.client_address(ip("203.0.113.9"), Some("1.2.3.4")), ip("203.0.113.9"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap_or_default();
        let header = "6.6.6.6, 198.51.100.7, 192.168.1.1";
        assert_eq!(proxies.client_address(ip("10.0.0.1"), Some(header)), ip("198.51.100.7"));
        assert_eq!(proxies.client_address(ip("10.0.0.1"), None), ip("10.0.0.1"));
        assert_eq!(proxies.client_address(ip("::ffff:10.0.0.1"), Some("garbage")), ip("10.0.0.1"));
    }

    #[test]
    fn hops_with_ports_are_read() {
        let proxies = TrustedProxies::parse("10.0.0.1").unwrap_or_default();
        assert_eq!(proxies.client_address(ip("10.0.0.1"), Some("198.51.100.7:5678")), ip("198.51.100.7"));
        assert_eq!(proxies.client_address(ip("10.0.0.1"), Some("[2001:db8::7]:443")), ip("2001:db8::7"));
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(TrustedProxies::parse("10.0.0.1, nope").is_err());
        assert!(TrustedProxies::parse("").is_ok());
    }
}
