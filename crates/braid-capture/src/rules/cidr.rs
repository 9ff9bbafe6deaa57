//! A strict CIDR block, as used in `exclude_outbound_cidrs`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::Family;
use crate::Error;

/// An IPv4 or IPv6 network such as `198.18.0.0/16` or `2001:db8::/32`.
///
/// Parsing is strict: the prefix length is required and host bits must be
/// zero, because iptables silently masks them and a typo such as
/// `198.18.1.0/16` would exclude far more than the author meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix_len: u8,
}

// === impl Cidr ===

impl Cidr {
    /// Builds a CIDR from a network address and prefix length.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<Cidr, Error> {
        let invalid = |reason| Error::InvalidCidr {
            text: format!("{addr}/{prefix_len}"),
            reason,
        };
        let max = max_prefix(addr);
        if prefix_len > max {
            return Err(invalid(if max == 32 {
                "prefix length exceeds 32 for an IPv4 address"
            } else {
                "prefix length exceeds 128 for an IPv6 address"
            }));
        }
        if to_bits(addr) & !mask(prefix_len, max) != 0 {
            return Err(invalid(
                "host bits are set; use the network address (e.g. 198.18.0.0/16)",
            ));
        }
        Ok(Cidr { addr, prefix_len })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether this is an IPv4 or an IPv6 block.
    pub fn family(&self) -> Family {
        match self.addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// Whether `ip` lies inside this block (always false across families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4()
            && to_bits(ip) & mask(self.prefix_len, max_prefix(ip)) == to_bits(self.addr)
    }
}

impl FromStr for Cidr {
    type Err = Error;

    fn from_str(text: &str) -> Result<Cidr, Error> {
        let invalid = |reason| Error::InvalidCidr {
            text: text.to_owned(),
            reason,
        };
        let (addr, len) = text
            .split_once('/')
            .ok_or_else(|| invalid("missing /prefix-length (e.g. 198.18.0.0/16)"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| invalid("the address is neither IPv4 nor IPv6"))?;
        // u8::from_str would accept "+8"; insist on plain digits.
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the prefix length is not a number from 0 to 128"));
        }
        let len: u8 = len
            .parse()
            .map_err(|_| invalid("the prefix length is not a number from 0 to 128"))?;
        Cidr::new(addr, len).map_err(|err| match err {
            Error::InvalidCidr { reason, .. } => invalid(reason),
            other => other,
        })
    }
}

/// The form iptables-save prints, so rendered rules compare equal to saved.
impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// The address as the low bits of a u128, so one mask routine serves both.
fn to_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(v4.to_bits()),
        IpAddr::V6(v6) => v6.to_bits(),
    }
}

fn mask(prefix_len: u8, max: u8) -> u128 {
    let all = if max == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    let host_bits = u32::from(max - prefix_len);
    all.checked_shl(host_bits).map_or(0, |m| m & all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(text: &str) -> String {
        text.parse::<Cidr>().expect_err(text).to_string()
    }

    #[test]
    fn parses_and_displays_both_families() {
        for text in [
            "198.18.0.0/15",
            "0.0.0.0/0",
            "198.19.7.1/32",
            "2001:db8::/32",
            "::1/128",
        ] {
            let cidr: Cidr = text.parse().expect(text);
            assert_eq!(cidr.to_string(), text);
        }
        let v6: Cidr = "2001:db8::/32".parse().expect("v6");
        assert_eq!((v6.family(), v6.prefix_len()), (Family::Ipv6, 32));
    }

    #[test]
    fn contains_respects_prefix_and_family() {
        let net: Cidr = "198.18.0.0/15".parse().expect("cidr");
        assert!(net.contains("198.19.255.1".parse().expect("ip")));
        assert!(!net.contains("198.20.0.1".parse().expect("ip")));
        assert!(!net.contains("::ffff:198.18.0.1".parse().expect("ip")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains("203.0.113.9".parse().expect("ip")));
    }

    #[test]
    fn rejects_bad_text_and_names_it() {
        assert!(reason("198.18.0.0").contains("missing /prefix-length"));
        assert!(reason("198.18.0.0").contains("\"198.18.0.0\""));
        assert!(reason("198.18.0/16").contains("neither IPv4 nor IPv6"));
        assert!(reason("198.18.0.0/+8").contains("not a number"));
        assert!(reason("198.18.0.0/").contains("not a number"));
        assert!(reason("198.18.0.0/33").contains("exceeds 32"));
        assert!(reason("::/129").contains("exceeds 128"));
        assert!(reason("198.18.1.0/16").contains("host bits"));
        assert!(reason("198.18.1.0/16").contains("\"198.18.1.0/16\""));
        assert!(reason(" 198.18.0.0/16").contains("neither"));
    }
}
