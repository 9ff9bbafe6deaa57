//! The `CONNECT` target: `:authority` must be a literal `ip:port`.

use std::net::SocketAddr;

/// Why a `CONNECT` authority is not a usable `ip:port`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// The request carries no `:authority`.
    #[error("the CONNECT request has no :authority; HBONE needs the target as ip:port")]
    Missing,
    /// Not an IP literal and port (host names are not resolved by the proxy).
    #[error(
        "the CONNECT authority {0:?} is not ip:port (IPv6 in brackets, no host names): \
         HBONE tunnels go to a pod address"
    )]
    NotSocketAddr(String),
    /// Port zero or an unspecified address cannot be dialled.
    #[error("the CONNECT authority {0} cannot be dialled (unspecified address or port 0)")]
    Undialable(SocketAddr),
}

/// The target of a `CONNECT` request from its URI (authority form).
///
/// Accepts exactly what `SocketAddr` parses (`10.0.0.1:80`, `[fd00::1]:80`)
/// and refuses port 0 and unspecified addresses. This runs on bytes from the
/// network: it never panics.
pub fn parse_authority(uri: &http::Uri) -> Result<SocketAddr, AuthorityError> {
    let authority = uri.authority().ok_or(AuthorityError::Missing)?;
    let addr: SocketAddr = authority
        .as_str()
        .parse()
        .map_err(|_| AuthorityError::NotSocketAddr(authority.as_str().to_string()))?;
    if addr.port() == 0 || addr.ip().is_unspecified() {
        return Err(AuthorityError::Undialable(addr));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<SocketAddr, AuthorityError> {
        let uri: http::Uri = s.parse().expect("test URI parses");
        parse_authority(&uri)
    }

    #[test]
    fn accepts_ip_and_port() {
        assert_eq!(
            parse("10.1.2.3:8080"),
            Ok(SocketAddr::from(([10, 1, 2, 3], 8080)))
        );
        assert_eq!(
            parse("[fd00::1]:443").map(|a| a.port()),
            Ok(443),
            "IPv6 in brackets"
        );
    }

    #[test]
    fn refuses_host_names_missing_ports_and_zeroes() {
        assert!(matches!(
            parse("example.com:80"),
            Err(AuthorityError::NotSocketAddr(_))
        ));
        assert!(matches!(
            parse("10.0.0.1"),
            Err(AuthorityError::NotSocketAddr(_))
        ));
        assert!(matches!(
            parse("user@10.0.0.1:80"),
            Err(AuthorityError::NotSocketAddr(_))
        ));
        assert!(matches!(
            parse("10.0.0.1:0"),
            Err(AuthorityError::Undialable(_))
        ));
        assert!(matches!(
            parse("0.0.0.0:80"),
            Err(AuthorityError::Undialable(_))
        ));
        assert_eq!(parse("/path"), Err(AuthorityError::Missing));
    }
}
