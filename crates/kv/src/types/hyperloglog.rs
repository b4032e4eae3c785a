//! HyperLogLog: counting distinct elements in 12 KB, whatever their number.
//!
//! Counting unique visitors exactly needs a set of every visitor: memory grows with the
//! answer. HyperLogLog answers "about how many distinct elements have I seen?" with a
//! fixed 12 KB and a standard error of 0.81%, and two sketches merge losslessly, so a
//! day's counts combine into a week's. It is the classic probabilistic counter.
//!
//! ## The idea
//!
//! Hash each element to 64 random-looking bits. In a stream of random numbers, a value
//! whose binary form starts with k zero bits turns up about once in 2^k values, so "the
//! longest run of leading zeros I have seen is k" says "I have seen about 2^k distinct
//! values" (repeats hash to the same bits and change nothing: that is why it counts
//! *distinct* elements). One such observation is very noisy, so the sketch keeps many:
//!
//! - **Registers.** The low 14 bits of the hash pick one of m = 16384 registers; the rest
//!   of the hash is the random number. Each register remembers the longest run it has
//!   seen (counted from the low bit, plus one: a value from 1 to 51), in 6 bits. 16384 x
//!   6 bits = 12288 bytes. This splits the stream into m sub-streams of n/m elements.
//! - **Harmonic mean.** Each register j estimates 2^M[j] elements in its sub-stream. The
//!   raw estimate is `alpha * m^2 / sum(2^-M[j])`: m times the *harmonic* mean of the
//!   per-register estimates. A harmonic mean is dominated by the small values, so a
//!   register that got lucky with a long run does not drag the estimate up. The standard
//!   error is 1.04 / sqrt(m) = 0.81% for m = 16384.
//! - **Small and large ranges.** With few elements most registers are still 0 and the
//!   raw estimate is biased. The original paper switches to *linear counting* there
//!   (`m * ln(m / empty registers)`: the birthday-problem estimate from how many registers
//!   no element has hit) and corrects for hash collisions near 2^64. Redis 7 (and this
//!   module) uses Otmar Ertl's improved estimator instead, which folds both corrections
//!   into one formula over the histogram of register values: `sigma` accounts for the
//!   empty registers (linear counting's information), `tau` for saturated ones, and the
//!   result is unbiased across the whole range with no thresholds to tune.
//! - **Merging.** The union of two streams has, in each register, the larger of the two
//!   values: `PFMERGE` and multi-key `PFCOUNT` take the register-wise maximum.
//!
//! ## Format: Redis's own
//!
//! The sketch is stored as an ordinary string (`TYPE` says `string`; `GET`, `SET`,
//! `DUMP`/`RESTORE`, persistence and replication need nothing new), byte for byte Redis's
//! "HYLL" layout, so a sketch copied from Redis counts the same here and vice versa:
//!
//! ```text
//! "HYLL" | encoding: u8 (0 dense, 1 sparse) | 3 unused | cached count: 8 bytes LE
//! dense: 16384 registers x 6 bits, little-endian bit order within bytes (12288 bytes)
//! ```
//!
//! The top bit of the cached count's last byte marks the cache stale; every write sets
//! it, and a single-key `PFCOUNT` stores its estimate there, so counting a sketch that has
//! not changed is a read of 8 bytes. We always write the *dense* encoding. Redis starts small sketches in a *sparse*
//! run-length encoding (runs of zero registers cost a byte or two) and converts at 3000
//! bytes; we read sparse sketches (a string copied from Redis) and turn them dense on
//! their first change, but never produce them: a simpler format at 12 KB per key.
//! Hashing is MurmurHash64A with Redis's seed, so the same elements fill the same
//! registers and `PFCOUNT` gives exactly Redis's answer.

use proto::CommandError;

/// Bits of the hash that choose a register.
const P: u32 = 14;
/// Registers: 2^14.
pub const REGISTERS: usize = 1 << P;
/// Bits per register in the dense encoding.
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
/// Bits left for the run after the register index (`Q + 1` is the longest run).
const Q: u32 = 64 - P;
const HEADER: usize = 16;
/// A dense sketch's length: header and 16384 six-bit registers.
pub const DENSE_LEN: usize = HEADER + REGISTERS * BITS / 8;
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
/// Redis's seed for MurmurHash64A in `hllPatLen`.
const SEED: u64 = 0xadc8_3b19;
/// 1 / (2 ln 2): the bias constant of the estimator as m grows without bound.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// Why a string is not a usable sketch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not the HYLL layout at all.
    NotHll,
    /// A sparse sketch whose runs do not add up to 16384 registers.
    Corrupt,
}

impl Invalid {
    /// Redis's replies: `WRONGTYPE` for a string that is no sketch, `INVALIDOBJ` for a
    /// damaged one.
    pub fn error(self) -> CommandError {
        match self {
            Invalid::Corrupt => CommandError::coded("INVALIDOBJ", "Corrupted HLL object detected"),
            Invalid::NotHll => {
                CommandError::coded("WRONGTYPE", "Key is not a valid HyperLogLog string value.")
            }
        }
    }
}

/// MurmurHash64A (Austin Appleby), the 64-bit hash Redis uses for HyperLogLog.
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element goes to and the run it contributes: the number of the
/// lowest set bit of the remaining 50 bits, counting from 1.
fn observe(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    // The guard bit at Q makes the run end by Q + 1 even if all 50 bits are zero.
    let rest = (hash >> P) | (1 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// Register `i` of a dense sketch's register bytes.
fn get(regs: &[u8], i: usize) -> u8 {
    let (byte, shift) = (i * BITS / 8, i * BITS % 8);
    let low = u16::from(regs[byte]);
    let high = u16::from(regs.get(byte + 1).copied().unwrap_or(0));
    (((low | high << 8) >> shift) as u8) & REGISTER_MAX
}

fn set(regs: &mut [u8], i: usize, value: u8) {
    let (byte, shift) = (i * BITS / 8, i * BITS % 8);
    let mask = u16::from(REGISTER_MAX) << shift;
    let value = u16::from(value) << shift;
    regs[byte] = (regs[byte] & !(mask as u8)) | value as u8;
    if let Some(next) = regs.get_mut(byte + 1) {
        *next = (*next & !((mask >> 8) as u8)) | (value >> 8) as u8;
    }
}

/// A new, empty dense sketch.
pub fn empty() -> Vec<u8> {
    let mut bytes = vec![0; DENSE_LEN];
    bytes[..4].copy_from_slice(b"HYLL");
    bytes[4] = DENSE;
    bytes
}

/// Checks the header as Redis's `isHLLObjectOrReply` does.
fn check(bytes: &[u8]) -> Result<u8, Invalid> {
    let valid = bytes.len() >= HEADER
        && &bytes[..4] == b"HYLL"
        && bytes[4] <= SPARSE
        && (bytes[4] != DENSE || bytes.len() == DENSE_LEN);
    if valid {
        Ok(bytes[4])
    } else {
        Err(Invalid::NotHll)
    }
}

/// Every register of a sketch, one byte each (dense or sparse input).
pub fn registers(bytes: &[u8]) -> Result<Vec<u8>, Invalid> {
    match check(bytes)? {
        DENSE => {
            let regs = &bytes[HEADER..];
            Ok((0..REGISTERS).map(|i| get(regs, i)).collect())
        }
        _ => sparse_registers(&bytes[HEADER..]),
    }
}

/// Decodes Redis's sparse encoding: `00xxxxxx` is a run of up to 64 zero registers,
/// `01xxxxxx yyyyyyyy` a run of up to 16384, `1vvvvvxx` a run of up to 4 registers of
/// value 1 to 32.
fn sparse_registers(ops: &[u8]) -> Result<Vec<u8>, Invalid> {
    let mut out = Vec::with_capacity(REGISTERS);
    let mut i = 0;
    while i < ops.len() {
        let op = ops[i];
        let (run, value) = if op & 0xc0 == 0 {
            i += 1;
            (usize::from(op & 0x3f) + 1, 0)
        } else if op & 0xc0 == 0x40 {
            let low = *ops.get(i + 1).ok_or(Invalid::Corrupt)?;
            i += 2;
            ((usize::from(op & 0x3f) << 8 | usize::from(low)) + 1, 0)
        } else {
            i += 1;
            (usize::from(op & 0x3) + 1, ((op >> 2) & 0x1f) + 1)
        };
        if out.len() + run > REGISTERS {
            return Err(Invalid::Corrupt);
        }
        out.resize(out.len() + run, value);
    }
    if out.len() != REGISTERS {
        return Err(Invalid::Corrupt);
    }
    Ok(out)
}

/// A dense sketch holding `registers` (one byte each), its cache marked stale.
pub fn from_registers(registers: &[u8]) -> Vec<u8> {
    let mut bytes = empty();
    let regs = &mut bytes[HEADER..];
    for (i, &r) in registers.iter().enumerate() {
        if r != 0 {
            set(regs, i, r.min(REGISTER_MAX));
        }
    }
    invalidate(&mut bytes);
    bytes
}

/// The sketch as a dense one we can change in place (a copy; sparse input converted).
pub fn to_dense(bytes: &[u8]) -> Result<Vec<u8>, Invalid> {
    match check(bytes)? {
        DENSE => Ok(bytes.to_vec()),
        _ => {
            let mut dense = from_registers(&sparse_registers(&bytes[HEADER..])?);
            dense[8..16].copy_from_slice(&bytes[8..16]);
            Ok(dense)
        }
    }
}

/// Is `bytes` a dense sketch (one [`add`] can change in place)?
pub fn is_dense(bytes: &[u8]) -> bool {
    check(bytes) == Ok(DENSE)
}

/// Would adding `element` to a dense sketch grow a register? (A read: most `PFADD`s of a
/// sketch that has seen many elements change nothing, and need no writable copy.)
pub fn would_grow(dense: &[u8], element: &[u8]) -> bool {
    let (index, run) = observe(element);
    get(&dense[HEADER..], index) < run
}

/// Adds an element to a dense sketch; `true` if a register grew (the count may change).
pub fn add(dense: &mut [u8], element: &[u8]) -> bool {
    let (index, run) = observe(element);
    let regs = &mut dense[HEADER..];
    if get(regs, index) >= run {
        return false;
    }
    set(regs, index, run);
    true
}

/// Marks the cached count stale (after any change to the registers).
pub fn invalidate(dense: &mut [u8]) {
    dense[15] |= 0x80;
}

/// Caches `count` in a valid sketch's header (what Redis's `PFCOUNT` does).
pub fn set_cached(sketch: &mut [u8], count: u64) {
    sketch[8..16].copy_from_slice(&(count & (u64::MAX >> 1)).to_le_bytes());
}

/// The count cached in the header, if it is still valid.
pub fn cached(bytes: &[u8]) -> Option<u64> {
    check(bytes).ok()?;
    if bytes[15] & 0x80 != 0 {
        return None;
    }
    let mut le = [0; 8];
    le.copy_from_slice(&bytes[8..16]);
    Some(u64::from_le_bytes(le))
}

/// The estimated number of distinct elements behind these registers (one byte each):
/// Ertl's estimator over the histogram of register values, as Redis's `hllCount`.
pub fn count(registers: &[u8]) -> u64 {
    let m = REGISTERS as f64;
    let mut histogram = [0u32; 64];
    for &r in registers {
        histogram[usize::from(r & 63)] += 1;
    }
    let q = Q as usize;
    let mut z = m * tau((m - f64::from(histogram[q + 1])) / m);
    for &n in histogram[1..=q].iter().rev() {
        z += f64::from(n);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// The correction for empty registers: sigma(x) = x + sum_k x^(2^k) 2^(k-1).
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if z == previous {
            return z;
        }
    }
}

/// The correction for registers at the maximum run.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z == previous {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur_reads_every_tail_length() {
        // That it is Redis's hash is shown end to end: differential.rs compares whole
        // sketches with redis-server's byte for byte. Here: each tail length (0 to 7
        // bytes after the 8-byte blocks) changes the hash.
        assert_eq!(murmur64a(b"", 0), 0);
        let data = b"0123456789abcdef";
        let hashes: std::collections::HashSet<u64> = (0..=data.len())
            .map(|n| murmur64a(&data[..n], SEED))
            .collect();
        assert_eq!(hashes.len(), data.len() + 1);
    }

    #[test]
    fn registers_round_trip() {
        let mut regs = vec![0; REGISTERS * BITS / 8];
        for i in [0, 1, 2, 3, 4, 1000, REGISTERS - 1] {
            set(&mut regs, i, (i % 63) as u8 + 1);
        }
        for i in [0, 1, 2, 3, 4, 1000, REGISTERS - 1] {
            assert_eq!(get(&regs, i), (i % 63) as u8 + 1, "register {i}");
        }
        assert_eq!(get(&regs, 5), 0);
    }

    #[test]
    fn counts_within_the_error_bound() {
        let mut hll = empty();
        assert_eq!(count(&registers(&hll).unwrap()), 0);
        for i in 0..100_000u32 {
            add(&mut hll, format!("element:{i}").as_bytes());
        }
        let n = count(&registers(&hll).unwrap()) as f64;
        assert!((n - 100_000.0).abs() / 100_000.0 < 0.02, "estimate {n}");
        // Small counts are exact in practice.
        let mut small = empty();
        for e in ["a", "b", "c", "a"] {
            add(&mut small, e.as_bytes());
        }
        assert_eq!(count(&registers(&small).unwrap()), 3);
    }

    #[test]
    fn sparse_sketches_decode() {
        // Redis's PFADD of one element to an empty key: XZERO, VAL, XZERO.
        let mut sparse = b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80".to_vec();
        sparse.extend([0x7f, 0xff]); // 16384 zeros
        assert_eq!(registers(&sparse).unwrap(), vec![0; REGISTERS]);
        sparse.push(0x80);
        assert_eq!(registers(&sparse), Err(Invalid::Corrupt));
        assert_eq!(registers(b"HYLL"), Err(Invalid::NotHll));
        assert_eq!(registers(&empty()[..100]), Err(Invalid::NotHll));
    }
}
