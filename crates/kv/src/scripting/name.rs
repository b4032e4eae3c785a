//! A script's name: the SHA-1 of its body, which `EVALSHA`, `SCRIPT LOAD` and `SCRIPT
//! EXISTS` use to refer to it.

use std::hash::{BuildHasherDefault, Hash, Hasher};

/// A script's name as the cache knows it: the SHA-1 of its body in lower-case hex. On
/// the stack, and the cache's key: `EVALSHA` looks one up per call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShaName([u8; 40]);

/// A name's hash is its first 16 hex digits, 64 bits of a SHA-1 already spread evenly:
/// hashing all 40 bytes again with the standard library's SipHash cost about 250
/// instructions per `EVALSHA`. (Nobody can crowd the cache by choosing names: a name is
/// the hash of a body, and `EVAL`'s scripts are capped, see [`super::vm::EVAL_CACHE`].)
impl Hash for ShaName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut digits = [0; 8];
        for (word, pair) in digits.iter_mut().zip(self.0.chunks_exact(2)) {
            *word = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
        }
        state.write_u64(u64::from_le_bytes(digits));
    }
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => digit.wrapping_sub(b'a').wrapping_add(10) & 15,
    }
}

/// The script cache's hasher: a [`ShaName`]'s hash as it is (see its `Hash`).
pub type ShaHash = BuildHasherDefault<ShaHasher>;

#[derive(Default)]
pub struct ShaHasher(u64);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is called (see `ShaName`'s `Hash`); anything else still hashes.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

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
