//! Listen addresses in the Go original's forms (`:8080`, `host:8080`, `[::1]:8080`), and binding
//! them.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::str::FromStr;

/// A listen address in Go's forms: `:8080`, `host:8080`, `127.0.0.1:8080`, `[::1]:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddress {
    /// `None`: all interfaces.
    pub host: Option<String>,
    pub port: u16,
}

impl FromStr for ListenAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid address {s:?}: {why}; use :PORT, HOST:PORT or [IPv6]:PORT");
        let (host, port) = s.rsplit_once(':').ok_or_else(|| match s.parse::<u16>() {
            Ok(port) => bad(&format!("no port (for port {port} on all interfaces, write :{port})")),
            Err(_) => bad("no port"),
        })?;
        let port: u16 = port.parse().map_err(|_| bad("the port must be a number from 0 to 65535"))?;
        let host = if let Some(inner) = host.strip_prefix('[') {
            let ip = inner.strip_suffix(']').ok_or_else(|| bad("unclosed ["))?;
            ip.parse::<std::net::Ipv6Addr>().map_err(|_| bad("not an IPv6 address inside [ ]"))?;
            Some(ip.to_string())
        } else if host.contains(':') {
            return Err(bad("an IPv6 address must be written in brackets"));
        } else if host.is_empty() {
            None
        } else {
            Some(host.to_string())
        };
        Ok(ListenAddress { host, port })
    }
}

impl ListenAddress {
    /// Binds a listener. All interfaces means IPv6 and IPv4 where the host has IPv6, else IPv4.
    pub fn bind(&self) -> std::io::Result<TcpListener> {
        let candidates: Vec<SocketAddr> = match &self.host {
            None => vec![
                (std::net::Ipv6Addr::UNSPECIFIED, self.port).into(),
                (std::net::Ipv4Addr::UNSPECIFIED, self.port).into(),
            ],
            Some(host) => (host.as_str(), self.port).to_socket_addrs()?.collect(),
        };
        let mut last = std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address to bind");
        for addr in candidates {
            match TcpListener::bind(addr) {
                Ok(l) => return Ok(l),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            None => write!(f, ":{}", self.port),
            Some(h) if h.contains(':') => write!(f, "[{h}]:{}", self.port),
            Some(h) => write!(f, "{h}:{}", self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_addresses() {
        let a = |s: &str| s.parse::<ListenAddress>();
        assert_eq!(a(":8080").unwrap(), ListenAddress { host: None, port: 8080 });
        assert_eq!(a("localhost:80").unwrap().host.as_deref(), Some("localhost"));
        assert_eq!(a("127.0.0.1:0").unwrap().port, 0);
        assert_eq!(a("[::1]:8080").unwrap().host.as_deref(), Some("::1"));
        for bad in ["8080", ":http", ":70000", "::1:80", "[::1:80", "[zz]:80", ""] {
            assert!(a(bad).is_err(), "{bad}");
        }
        assert_eq!(a("[::1]:8080").unwrap().to_string(), "[::1]:8080");
        assert!(a("8080").unwrap_err().contains("write :8080"), "{:?}", a("8080"));
    }
}
