//! Receipts: the proof that *this* delivery is the current one.
//!
//! A consumer that receives a message gets a receipt, and acknowledges (or nacks, or
//! extends) with it. The receipt names the delivery, not the message: when a visibility
//! timeout expires the message is delivered again with a new receipt, and the first
//! consumer's receipt stops working. Without this a slow worker, finishing late, would
//! delete a message that a second worker is now processing — and if the second worker
//! then fails, the job is lost. This is why SQS hands out a new `ReceiptHandle` on every
//! receive, and why acking with an old one fails here.
//!
//! On the wire a receipt reads `<message id>-<delivery number>-<nonce>`, e.g.
//! `42-1-9e3779b97f4a7c15`. The nonce is random per delivery, so a receipt cannot be
//! guessed, and a delivery number reissued after a crash (a receive that never reached
//! the disk) still gets a receipt the old one does not match.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::message::MessageId;

/// Identifies one delivery of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Receipt {
    pub message: MessageId,
    /// 1 for the first delivery, 2 for the first redelivery, ...
    pub delivery: u32,
    pub nonce: u64,
}

/// A receipt that does not have the `<id>-<delivery>-<nonce>` shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedReceipt;

impl Receipt {
    /// Parses the wire form. Strict: exactly three parts, decimal id and delivery,
    /// 16 hex digits of nonce.
    pub fn parse(text: &[u8]) -> Result<Receipt, MalformedReceipt> {
        let text = std::str::from_utf8(text).map_err(|_| MalformedReceipt)?;
        let mut parts = text.split('-');
        let (Some(id), Some(delivery), Some(nonce), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MalformedReceipt);
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(id) || !digits(delivery) || nonce.len() != 16 {
            return Err(MalformedReceipt);
        }
        Ok(Receipt {
            message: id.parse().map_err(|_| MalformedReceipt)?,
            delivery: delivery.parse().map_err(|_| MalformedReceipt)?,
            nonce: u64::from_str_radix(nonce, 16).map_err(|_| MalformedReceipt)?,
        })
    }
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{:016x}", self.message, self.delivery, self.nonce)
    }
}

/// Makes the per-delivery nonces: splitmix64 over a counter, from a random seed in the
/// server and a fixed one in tests (so engine tests are deterministic).
#[derive(Debug, Clone)]
pub struct NonceSource(u64);

impl NonceSource {
    pub fn new(seed: u64) -> Self {
        NonceSource(seed)
    }

    /// A seed that differs between runs (std's `RandomState` is seeded from the OS).
    pub fn random_seed() -> u64 {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(std::process::id())
    }

    pub fn next_nonce(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let r = Receipt {
            message: 42,
            delivery: 3,
            nonce: 0x9e37_79b9_7f4a_7c15,
        };
        assert_eq!(r.to_string(), "42-3-9e3779b97f4a7c15");
        assert_eq!(Receipt::parse(r.to_string().as_bytes()), Ok(r));
        for bad in [
            "",
            "42",
            "42-3",
            "42-3-9e3779b97f4a7c1",
            "42-3-9e3779b97f4a7c15-1",
            "x-3-9e3779b97f4a7c15",
            "-42-3-9e3779b97f4a7c15",
            "42-+3-9e3779b97f4a7c15",
            "42-3-9e3779b97f4a7c1g",
            "99999999999999999999-3-9e3779b97f4a7c15",
        ] {
            assert_eq!(
                Receipt::parse(bad.as_bytes()),
                Err(MalformedReceipt),
                "{bad}"
            );
        }
        assert_eq!(
            Receipt::parse(b"\xff-1-0000000000000000"),
            Err(MalformedReceipt)
        );
    }

    #[test]
    fn nonces_differ() {
        let mut n = NonceSource::new(7);
        let (a, b) = (n.next_nonce(), n.next_nonce());
        assert_ne!(a, b);
    }
}
