//! The MD5s SQS returns beside every message, so a client can check that what arrived is
//! what was sent (the Java and .NET SDKs check them; boto3 leaves it to the caller).
//!
//! `MD5OfMessageBody` is the MD5 of the body's UTF-8. `MD5OfMessageAttributes` covers the
//! attributes in one canonical byte string, so that two clients computing it from the
//! same attributes agree whatever order a JSON object lists them in: sorted by name, each
//! attribute is its name, its data type, one byte for how its value travels (1: a
//! string, 2: bytes), and its value, each length-prefixed with 4 bytes big-endian.

use md5::{Digest, Md5};

use crate::message::Attribute;

/// Lower-case hex of the MD5 of `bytes`.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

/// Lower-case hex of the SHA-256 of `bytes`: a FIFO queue's content-based
/// deduplication id (SQS hashes the body alone, not the attributes).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

/// `MD5OfMessageAttributes`; `None` when there are none (SQS then omits it).
pub fn attributes_md5(attributes: &[Attribute]) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    let mut sorted: Vec<&Attribute> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut md5 = Md5::new();
    for a in sorted {
        field(&mut md5, a.name.as_bytes());
        field(&mut md5, a.data_type.as_bytes());
        let transport: u8 = if a.is_binary() { 2 } else { 1 };
        md5.update([transport]);
        field(&mut md5, &a.value);
    }
    Some(hex(&md5.finalize()))
}

/// One length-prefixed field of the canonical form.
fn field(md5: &mut Md5, bytes: &[u8]) {
    md5.update((bytes.len() as u32).to_be_bytes());
    md5.update(bytes);
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn digests_match_the_ones_sqs_documents() {
        // The MD5 of "hello", as any md5sum prints it.
        assert_eq!(md5_hex(b"hello"), "5d41402abc4b2a76b9719d911017c592");
        let attribute = |name: &str, data_type: &str, value: &'static [u8]| Attribute {
            name: name.into(),
            data_type: data_type.into(),
            value: Bytes::from_static(value),
        };
        let a = [
            attribute("b", "Number", b"1"),
            attribute("a", "String", b"x"),
        ];
        let b = [
            attribute("a", "String", b"x"),
            attribute("b", "Number", b"1"),
        ];
        assert_eq!(
            attributes_md5(&a),
            attributes_md5(&b),
            "order does not matter"
        );
        // The canonical bytes, spelled out.
        let mut canonical = Vec::new();
        for (name, data_type, transport, value) in
            [("a", "String", 1u8, "x"), ("b", "Number", 1, "1")]
        {
            for field in [name, data_type] {
                canonical.extend((field.len() as u32).to_be_bytes());
                canonical.extend(field.as_bytes());
            }
            canonical.push(transport);
            canonical.extend((value.len() as u32).to_be_bytes());
            canonical.extend(value.as_bytes());
        }
        assert_eq!(attributes_md5(&a), Some(md5_hex(&canonical)));
        assert_eq!(attributes_md5(&[]), None);
        let binary = [attribute("raw", "Binary", b"\x00\xff")];
        assert_ne!(
            attributes_md5(&binary),
            attributes_md5(&[attribute("raw", "String", b"\x00\xff")])
        );
    }
}
