//! A stable, fast, non-cryptographic hash (FNV-1a, 64 bit).
//!
//! Resource versions are hashes of encoded resources; the hash must not
//! change between builds or runs (std's `DefaultHasher` may), so that a
//! restarted control plane computes the same versions and reconnecting
//! proxies are not sent unchanged resources.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over `bytes`.
pub(crate) fn fnv64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_vectors() {
        assert_eq!(super::fnv64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
