//! Which host names the server answers for and which pages may open its WebSocket: the
//! defence against DNS rebinding and cross-site WebSocket hijacking.
//!
//! A page on another site can open `ws://` to a Room server on the visitor's network, and a
//! rebound DNS name can make the browser treat that server as the attacker's own site. So a
//! request must name a host the server serves (an IP literal, `localhost`, or a host from
//! `--public-url`/`--allowed-origins`: never an arbitrary DNS name), and a WebSocket upgrade
//! must come from the page's own origin or one configured explicitly.

use std::fmt;
use std::net::IpAddr;

/// Allowed origins and host names, built once from the flags.
#[derive(Clone, Debug, Default)]
pub struct OriginPolicy {
    /// Exact origins (`scheme://host[:port]`, lower case, default port dropped).
    origins: Vec<String>,
    /// Host names (no port, lower case) served beyond IP literals and `localhost`.
    hosts: Vec<String>,
}

/// Why a request was refused, said plainly in the 403 body and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forbidden {
    MissingHost,
    UnknownHost(String),
    MissingOrigin,
    ForeignOrigin(String),
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Forbidden::MissingHost => write!(f, "the request names no host"),
            Forbidden::UnknownHost(host) => write!(
                f,
                "this server does not serve the host {host:?}; add its address to --public-url or --allowed-origins"
            ),
            Forbidden::MissingOrigin => {
                write!(f, "WebSocket requests must carry an Origin header")
            }
            Forbidden::ForeignOrigin(origin) => write!(
                f,
                "pages from {origin:?} may not connect; add it to --allowed-origins"
            ),
        }
    }
}

impl OriginPolicy {
    /// From `--public-url` and `--allowed-origins`; an entry that is not an http(s) origin is
    /// an error, so a typo does not silently lock everyone out.
    pub fn new(public_url: Option<&str>, allowed_origins: &[String]) -> Result<Self, String> {
        let mut policy = OriginPolicy::default();
        let entries = public_url
            .into_iter()
            .chain(allowed_origins.iter().map(String::as_str))
            .map(str::trim)
            .filter(|entry| !entry.is_empty());
        for entry in entries {
            let (scheme, authority) = split_origin(entry.trim_end_matches('/'))
                .ok_or_else(|| format!("{entry:?} is not an http:// or https:// address"))?;
            let authority = without_default_port(scheme, &authority);
            policy.hosts.push(host_name(&authority).to_string());
            policy.origins.push(format!("{scheme}://{authority}"));
        }
        Ok(policy)
    }

    /// Every request: the `Host` header must be one this server serves.
    pub fn check_host(&self, host: Option<&str>) -> Result<(), Forbidden> {
        let host = host
            .ok_or(Forbidden::MissingHost)?
            .trim()
            .to_ascii_lowercase();
        let name = host_name(&host);
        let name = name.strip_suffix('.').unwrap_or(name);
        let literal = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok();
        let local = name == "localhost" || name.ends_with(".localhost");
        if literal || local || self.hosts.iter().any(|served| served == name) {
            Ok(())
        } else {
            Err(Forbidden::UnknownHost(host))
        }
    }

    /// A WebSocket upgrade: a served host, and an `Origin` that is the page's own (same host
    /// and port as `Host`) or configured.
    pub fn check_websocket(
        &self,
        host: Option<&str>,
        origin: Option<&str>,
    ) -> Result<(), Forbidden> {
        self.check_host(host)?;
        let origin = origin.ok_or(Forbidden::MissingOrigin)?.trim();
        let foreign = || Forbidden::ForeignOrigin(origin.chars().take(100).collect());
        let (scheme, authority) = split_origin(origin).ok_or_else(foreign)?;
        let authority = without_default_port(scheme, &authority);
        let host = host.unwrap_or_default().trim().to_ascii_lowercase();
        let same_origin = authority == without_default_port(scheme, &host);
        let configured = || {
            let origin = format!("{scheme}://{authority}");
            self.origins.contains(&origin)
        };
        if same_origin || configured() {
            Ok(())
        } else {
            Err(foreign())
        }
    }
}

/// `http://Host:Port` → (`"http"`, `"host:port"`); anything else (`null`, a path, another
/// scheme) → `None`.
fn split_origin(origin: &str) -> Option<(&'static str, String)> {
    let (scheme, authority) = origin.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => "http",
        "https" => "https",
        _ => return None,
    };
    let valid = !authority.is_empty()
        && !authority.contains(['/', '?', '#', '@'])
        && !authority.chars().any(char::is_whitespace);
    valid.then(|| (scheme, authority.to_ascii_lowercase()))
}

/// `example.com:443` under https is `example.com`, as browsers write it in `Origin`.
fn without_default_port(scheme: &str, authority: &str) -> String {
    let default = if scheme == "https" { ":443" } else { ":80" };
    authority
        .strip_suffix(default)
        .unwrap_or(authority)
        .to_string()
}

/// The host name in an http(s) address such as `--public-url`, e.g. `meet.example.com`: what
/// its TLS certificate names.
pub fn url_host(url: &str) -> Option<String> {
    let (_, authority) = split_origin(url.trim().trim_end_matches('/'))?;
    Some(host_name(&authority).to_string())
}

/// The host part of `host[:port]` or `[v6]:port`.
fn host_name(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    match authority.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_urls_host_is_what_a_certificate_names() {
        assert_eq!(
            url_host("https://Meet.Example.com/").as_deref(),
            Some("meet.example.com")
        );
        assert_eq!(
            url_host("https://meet.example.com:8443").as_deref(),
            Some("meet.example.com")
        );
        assert_eq!(
            url_host("https://[2001:db8::1]:8443").as_deref(),
            Some("[2001:db8::1]")
        );
        assert_eq!(url_host("ftp://meet.example.com"), None);
    }

    fn policy() -> OriginPolicy {
        OriginPolicy::new(
            Some("https://Meet.Example.com/"),
            &["http://lan.example:8080".to_string()],
        )
        .unwrap()
    }

    #[test]
    fn ip_literals_localhost_and_configured_hosts_are_served() {
        let policy = policy();
        for host in [
            "127.0.0.1:3000",
            "192.168.1.5",
            "[::1]:3000",
            "localhost:3000",
            "app.localhost",
            "meet.example.com",
            "MEET.example.com.",
            "lan.example:8080",
        ] {
            assert_eq!(policy.check_host(Some(host)), Ok(()), "{host}");
        }
    }

    #[test]
    fn rebound_dns_names_are_not_served() {
        let policy = policy();
        assert_eq!(
            policy.check_host(Some("attacker.example:3000")),
            Err(Forbidden::UnknownHost("attacker.example:3000".into()))
        );
        assert_eq!(policy.check_host(None), Err(Forbidden::MissingHost));
        assert!(OriginPolicy::default()
            .check_host(Some("meet.example.com"))
            .is_err());
    }

    #[test]
    fn the_pages_own_origin_may_open_a_websocket() {
        let policy = OriginPolicy::default();
        let ok = |host, origin| policy.check_websocket(Some(host), Some(origin));
        assert_eq!(ok("127.0.0.1:3000", "http://127.0.0.1:3000"), Ok(()));
        assert_eq!(ok("localhost:3000", "http://LOCALHOST:3000"), Ok(()));
        assert_eq!(ok("[::1]:3000", "http://[::1]:3000"), Ok(()));
        assert_eq!(ok("10.0.0.2", "http://10.0.0.2:80"), Ok(()));
    }

    #[test]
    fn configured_origins_may_open_a_websocket_behind_a_proxy() {
        let policy = policy();
        // The proxy passes its own upstream address as Host.
        assert_eq!(
            policy.check_websocket(Some("127.0.0.1:3000"), Some("https://meet.example.com:443")),
            Ok(())
        );
        assert_eq!(
            policy.check_websocket(Some("127.0.0.1:3000"), Some("http://lan.example:8080")),
            Ok(())
        );
    }

    #[test]
    fn other_sites_null_and_missing_origins_are_refused() {
        let policy = policy();
        let check = |origin| policy.check_websocket(Some("127.0.0.1:3000"), origin);
        for origin in [
            "https://evil.example",
            "null",
            "http://127.0.0.1:3001",
            "https://127.0.0.1:3000.evil.example",
            "file://",
            "http://meet.example.com",
        ] {
            assert!(
                matches!(check(Some(origin)), Err(Forbidden::ForeignOrigin(_))),
                "{origin}"
            );
        }
        assert_eq!(check(None), Err(Forbidden::MissingOrigin));
        // DNS rebinding: the names match each other, but the host is not one we serve.
        assert!(matches!(
            policy.check_websocket(Some("evil.example:3000"), Some("http://evil.example:3000")),
            Err(Forbidden::UnknownHost(_))
        ));
    }

    #[test]
    fn a_malformed_flag_is_an_error() {
        assert!(OriginPolicy::new(Some("meet.example.com"), &[]).is_err());
        assert!(OriginPolicy::new(None, &["ftp://x".into()]).is_err());
    }
}
