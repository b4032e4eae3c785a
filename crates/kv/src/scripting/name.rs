//! A script's name: the SHA-1 of its body, which `EVALSHA`, `SCRIPT LOAD` and `SCRIPT
//! EXISTS` use to refer to it.

/// A script's name as the cache knows it: the SHA-1 of its body in lower-case hex. On
/// the stack, and the cache's key: `EVALSHA` looks one up per call.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShaName([u8; 40]);

impl ShaName {
    /// The name of `body`.
    pub fn of(body: &[u8]) -> ShaName {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut name = [0; 40];
        let digest = sha1_smol::Sha1::from(body).digest().bytes();
        for (pair, byte) in name.chunks_exact_mut(2).zip(digest) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 15)];
        }
        ShaName(name)
    }

    /// An `EVALSHA` or `SCRIPT EXISTS` argument (upper case accepted); `None` if it
    /// cannot be any script's name.
    pub fn parse(sha: &[u8]) -> Option<ShaName> {
        let name: [u8; 40] = sha.try_into().ok()?;
        name.iter()
            .all(u8::is_ascii_hexdigit)
            .then(|| ShaName(name.map(|b| b.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        // Hex digits only (see `of` and `parse`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::ShaName;

    #[test]
    fn script_names_are_lower_case_sha1_hex() {
        let name = ShaName::of(b"return 1");
        assert_eq!(name.as_str(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
        let upper = ShaName::parse(b"E0E1F9FABFC9D4800C877A703B823AC0578FF8DB");
        assert_eq!(
            upper.map(|n| n.as_str().to_owned()),
            Some(name.as_str().to_owned())
        );
        // Too short, too long, not hex: no script can have that name.
        assert!(ShaName::parse(b"nosuch").is_none());
        assert!(ShaName::parse(&[b'a'; 41]).is_none());
        assert!(ShaName::parse(&[b'g'; 40]).is_none());
    }
}
