//! Kubernetes name syntax (RFC 1123), shared by every crate that checks
//! names that end up in identities, host names or resource names.

/// An RFC 1123 label, as Kubernetes requires of namespace names: at most 63
/// lowercase letters, digits and `-`, starting and ending with a letter or digit.
pub fn is_dns1123_label(value: &str) -> bool {
    value.len() <= 63 && is_label(value)
}

/// An RFC 1035 label, as Kubernetes requires of Service names: an RFC 1123
/// label that starts with a letter.
pub fn is_dns1035_label(value: &str) -> bool {
    is_dns1123_label(value) && value.starts_with(|c: char| c.is_ascii_lowercase())
}

/// An RFC 1123 subdomain, as Kubernetes requires of most object names:
/// dot-separated labels, at most 253 bytes in all.
pub fn is_dns1123_subdomain(value: &str) -> bool {
    value.len() <= 253 && value.split('.').all(is_label)
}

fn is_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            is_lower_alnum(*first)
                && is_lower_alnum(*last)
                && bytes.iter().all(|b| is_lower_alnum(*b) || *b == b'-')
        }
        _ => false,
    }
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert!(is_dns1123_label("shop-1"));
        assert!(
            !is_dns1123_label("Shop")
                && !is_dns1123_label("-a")
                && !is_dns1123_label("a.b")
                && !is_dns1123_label("")
        );
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("build-bot.ci"));
        assert!(!is_dns1123_subdomain("a..b") && !is_dns1123_subdomain(&"a".repeat(254)));
    }
}
