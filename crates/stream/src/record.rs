//! Records and record batches, in Kafka's on-disk and on-wire format (message format v2).
//!
//! A producer does not send records one by one: it sends a *batch*, and the batch is the
//! unit everything else works in. The log appends whole batches, the checksum covers a
//! whole batch, the offset index points at batches, a fetch returns whole batches. Using
//! Kafka's exact layout means the Kafka listener can store a batch as the client sent it
//! and serve it back byte for byte; the broker only stamps the base offset (and the
//! leader epoch), which the checksum deliberately does not cover.
//!
//! ```text
//! offset  field                   type    notes
//!      0  base_offset             i64     stamped by the log on append
//!      8  batch_length            i32     bytes after this field
//!     12  partition_leader_epoch  i32     stamped by the log (-1 here: no replication)
//!     16  magic                   i8      2
//!     17  crc                     u32     CRC32C of everything from `attributes` to the end
//!     21  attributes              i16     bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control
//!     23  last_offset_delta       i32     records - 1
//!     27  base_timestamp          i64     ms since the epoch
//!     35  max_timestamp           i64
//!     43  producer_id             i64     -1: not idempotent
//!     51  producer_epoch          i16
//!     53  base_sequence           i32
//!     57  records_count           i32
//!     61  records...
//!
//! record: length varint, attributes i8, timestamp_delta varlong, offset_delta varint,
//!         key_length varint (-1: null), key, value_length varint (-1: null), value,
//!         header_count varint, then per header: key_length varint, key, value_length varint, value
//! ```
//!
//! Varints are zigzag-encoded (as protobuf's `sint32`/`sint64`), so -1 costs one byte.

use bytes::{BufMut, Bytes, BytesMut};

/// Size of the batch header, before the first record.
pub const BATCH_HEADER_LEN: usize = 61;
/// `base_offset` + `batch_length`: the part of the header outside `batch_length`.
pub const LOG_OVERHEAD: usize = 12;
/// The message format this log stores.
pub const MAGIC: i8 = 2;

const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORDS_COUNT_OFFSET: usize = 57;
const COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 4: the batch belongs to a transaction (see `crate::transaction`).
pub const TRANSACTIONAL_FLAG: i16 = 0x10;
/// Attribute bit 5: a control batch (a transaction marker, see `crate::marker`).
pub const CONTROL_FLAG: i16 = 0x20;
/// `producer_id` of a batch written without an idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;

/// One message as producers write it and consumers read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Picks the partition (by murmur2) when the producer names none.
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// Milliseconds since the Unix epoch (`CreateTime`: set by the producer).
    pub timestamp: i64,
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

/// What the batch encoder reads of a record. [`Record`] owns its fields; a [`Message`]
/// borrows them from the request that carried them, so `PRODUCE.BATCH` encodes its
/// values straight from the bytes it read instead of first building an owned `Record`
/// per message (a reference-count increment to build it, a decrement to drop it, an
/// allocation per batch to hold them: on 100-byte values, a fifth of the server's
/// instructions per message).
pub trait Encodable {
    fn key(&self) -> Option<&[u8]>;
    fn value(&self) -> Option<&[u8]>;
    /// Milliseconds since the Unix epoch.
    fn timestamp(&self) -> i64;
    fn headers(&self) -> &[(Bytes, Option<Bytes>)];
}

impl Encodable for Record {
    fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }
    fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }
    fn timestamp(&self) -> i64 {
        self.timestamp
    }
    fn headers(&self) -> &[(Bytes, Option<Bytes>)] {
        &self.headers
    }
}

/// A message without headers, its key and value borrowed (from a request's arguments):
/// what `PRODUCE.BATCH` appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp: i64,
}

impl Encodable for Message<'_> {
    fn key(&self) -> Option<&[u8]> {
        self.key
    }
    fn value(&self) -> Option<&[u8]> {
        self.value
    }
    fn timestamp(&self) -> i64 {
        self.timestamp
    }
    fn headers(&self) -> &[(Bytes, Option<Bytes>)] {
        &[]
    }
}

/// A record read back from the log, with the offset the log gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub offset: u64,
    pub record: Record,
}

/// Why bytes are not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than the header or the length field promises (a torn write).
    Truncated,
    /// A field holds an impossible value (bad magic, negative length...).
    Malformed(&'static str),
    /// The checksum does not match the contents.
    CrcMismatch { stored: u32, computed: u32 },
    /// The batch is compressed with a codec this reader does not decompress.
    Compressed(i16),
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Truncated => f.write_str("truncated record batch"),
            BatchError::Malformed(what) => write!(f, "malformed record batch: {what}"),
            BatchError::CrcMismatch { stored, computed } => write!(
                f,
                "record batch CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            BatchError::Compressed(codec) => {
                write!(
                    f,
                    "record batch compressed with codec {codec} is not supported"
                )
            }
        }
    }
}

impl std::error::Error for BatchError {}

/// The fixed-size facts about a batch, read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: u64,
    /// Total bytes of the batch, header included.
    pub size: usize,
    pub last_offset_delta: u32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub attributes: i16,
    pub records_count: u32,
    /// The idempotent producer that wrote the batch ([`NO_PRODUCER_ID`]: none), its
    /// epoch and the sequence number of the batch's first record (see
    /// `crate::producer_state`).
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchHeader {
    /// The offset of the batch's last record.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta)
    }

    /// The offset the record after this batch will get.
    pub fn next_offset(&self) -> u64 {
        self.last_offset() + 1
    }

    /// Transaction markers: part of the log, never shown to consumers.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// Written inside a transaction: hidden from `read_committed` consumers until its
    /// commit marker, and for ever if the transaction aborts.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    /// The sequence number of the batch's last record (sequences wrap at `i32::MAX`, as
    /// Kafka's do).
    pub fn last_sequence(&self) -> i32 {
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        (last % (i64::from(i32::MAX) + 1)) as i32
    }

    /// Reads a header from the start of `buf` (which may hold more than one batch). Checks
    /// the fields but not the CRC (see [`verify`]), so a reader can skip through a segment
    /// cheaply.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated);
        }
        let batch_length = i32_at(buf, 8);
        if batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::Malformed("batch length too small"));
        }
        if buf[16] as i8 != MAGIC {
            return Err(BatchError::Malformed("unsupported magic (only v2 batches)"));
        }
        let last_offset_delta = i32_at(buf, LAST_OFFSET_DELTA_OFFSET);
        let records_count = i32_at(buf, RECORDS_COUNT_OFFSET);
        let base_offset = i64_at(buf, 0);
        if last_offset_delta < 0 || records_count < 0 || base_offset < 0 {
            return Err(BatchError::Malformed("negative offset or count"));
        }
        Ok(BatchHeader {
            base_offset: base_offset as u64,
            size: LOG_OVERHEAD + batch_length as usize,
            last_offset_delta: last_offset_delta as u32,
            base_timestamp: i64_at(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: i64_at(buf, MAX_TIMESTAMP_OFFSET),
            attributes: i16::from_be_bytes([buf[ATTRIBUTES_OFFSET], buf[ATTRIBUTES_OFFSET + 1]]),
            records_count: records_count as u32,
            producer_id: i64_at(buf, PRODUCER_ID_OFFSET),
            producer_epoch: i16::from_be_bytes([
                buf[PRODUCER_EPOCH_OFFSET],
                buf[PRODUCER_EPOCH_OFFSET + 1],
            ]),
            base_sequence: i32_at(buf, BASE_SEQUENCE_OFFSET),
        })
    }
}

/// Checks one whole batch (`batch` is exactly its bytes): header fields and CRC32C.
pub fn verify(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if batch.len() < header.size {
        return Err(BatchError::Truncated);
    }
    let stored = u32::from_be_bytes([
        batch[CRC_OFFSET],
        batch[CRC_OFFSET + 1],
        batch[CRC_OFFSET + 2],
        batch[CRC_OFFSET + 3],
    ]);
    let computed = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..header.size]);
    if stored != computed {
        return Err(BatchError::CrcMismatch { stored, computed });
    }
    Ok(header)
}

/// Splits a buffer of concatenated batches into `(header, bytes)` pairs, verifying each.
/// A trailing partial batch is an error: callers decide whether that is a torn write
/// (recovery) or a bad request (produce).
pub fn verify_all(mut buf: &[u8]) -> Result<Vec<BatchHeader>, BatchError> {
    let mut headers = Vec::new();
    while !buf.is_empty() {
        let header = verify(buf)?;
        buf = &buf[header.size..];
        headers.push(header);
    }
    Ok(headers)
}

/// Writes the log-assigned fields into a batch: its base offset and leader epoch. Neither
/// is covered by the CRC, which is why a broker can stamp them without re-checksumming.
pub fn stamp(batch: &mut [u8], base_offset: u64) {
    batch[0..8].copy_from_slice(&(base_offset as i64).to_be_bytes());
    batch[12..16].copy_from_slice(&(-1i32).to_be_bytes());
}

/// Encodes records as one uncompressed batch with base offset 0 (the log stamps the real
/// one). Panics never: an empty slice gives an empty buffer, which the log rejects.
pub fn encode_batch(records: &[impl Encodable]) -> BytesMut {
    let mut out = Vec::new();
    encode_batch_into(&mut out, records, 0);
    BytesMut::from(Bytes::from(out))
}

/// Appends records to `out` as one uncompressed batch starting at `base_offset`, and
/// returns its header (`None`, and nothing written, for no records).
///
/// Every length is computed before a byte is written, so the batch goes straight into
/// `out` with at most one reservation: no scratch buffer per record, no re-growing. On
/// the produce path that is what keeps a 100-byte message from costing more in
/// allocations than in bytes. The CRC is computed once, here; the log trusts a batch it
/// encoded itself and verifies only the batches producers send.
pub fn encode_batch_into(
    out: &mut Vec<u8>,
    records: &[impl Encodable],
    base_offset: u64,
) -> Option<BatchHeader> {
    let mut bodies = Vec::with_capacity(records.len());
    let header = batch_header(records, base_offset, &mut bodies)?;
    encode_batch_with_header(out, records, &header, &bodies);
    Some(header)
}

/// [`encode_batch_into`] for a caller that already has the batch's header and its
/// records' body lengths from [`batch_header`] (the log computes them to decide on
/// rolling first): every record's size is computed once, not again here.
pub fn encode_batch_with_header(
    out: &mut Vec<u8>,
    records: &[impl Encodable],
    header: &BatchHeader,
    bodies: &[usize],
) {
    let base_offset = header.base_offset;
    let (size, base_timestamp, max_timestamp) =
        (header.size, header.base_timestamp, header.max_timestamp);
    let start = out.len();
    out.reserve(size);
    out.put_i64(base_offset as i64);
    out.put_i32((size - LOG_OVERHEAD) as i32); // batch length
    out.put_i32(-1); // partition leader epoch
    out.put_i8(MAGIC);
    out.put_u32(0); // crc, filled in below
    out.put_i16(header.attributes); // no compression, CreateTime; transactional, control
    out.put_i32(records.len() as i32 - 1);
    out.put_i64(base_timestamp);
    out.put_i64(max_timestamp);
    out.put_i64(header.producer_id);
    out.put_i16(header.producer_epoch);
    out.put_i32(header.base_sequence);
    out.put_i32(records.len() as i32);
    for (delta, (record, &body)) in records.iter().zip(bodies).enumerate() {
        let timestamp_delta = record.timestamp() - base_timestamp;
        put_varint(out, body as i32);
        out.put_i8(0);
        put_varlong(out, timestamp_delta);
        put_varint(out, delta as i32);
        put_nullable(out, record.key());
        put_nullable(out, record.value());
        put_varint(out, record.headers().len() as i32);
        for (name, value) in record.headers() {
            put_nullable(out, Some(name));
            put_nullable(out, value.as_deref());
        }
    }
    let batch = &mut out[start..];
    debug_assert_eq!(batch.len(), size);
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The header of the batch [`encode_batch_into`] would write, computed without encoding
/// (the log decides on rolling a segment before it encodes), and in `bodies` each
/// record's length after its length prefix, for [`encode_batch_with_header`]: a length
/// costs a few varint sizes, and computing each twice was a tenth of a batched 100-byte
/// produce. `None` for no records.
pub fn batch_header(
    records: &[impl Encodable],
    base_offset: u64,
    bodies: &mut Vec<usize>,
) -> Option<BatchHeader> {
    let base_timestamp = records.first()?.timestamp();
    let mut max_timestamp = base_timestamp;
    let mut size = BATCH_HEADER_LEN;
    bodies.clear();
    for (delta, r) in records.iter().enumerate() {
        let body = record_body_len(r, r.timestamp() - base_timestamp, delta as i32);
        size += varint_len(body as i64) + body;
        max_timestamp = max_timestamp.max(r.timestamp());
        bodies.push(body);
    }
    Some(BatchHeader {
        base_offset,
        size,
        last_offset_delta: records.len() as u32 - 1,
        base_timestamp,
        max_timestamp,
        attributes: 0,
        records_count: records.len() as u32,
        producer_id: NO_PRODUCER_ID,
        producer_epoch: -1,
        base_sequence: -1,
    })
}

/// Bytes of one record after its length prefix.
fn record_body_len(r: &impl Encodable, timestamp_delta: i64, offset_delta: i32) -> usize {
    let nullable = |b: Option<&[u8]>| b.map_or(1, |b| varint_len(b.len() as i64) + b.len());
    let headers: usize = r
        .headers()
        .iter()
        .map(|(k, v)| nullable(Some(k)) + nullable(v.as_deref()))
        .sum();
    1 + varint_len(timestamp_delta)
        + varint_len(i64::from(offset_delta))
        + nullable(r.key())
        + nullable(r.value())
        + varint_len(r.headers().len() as i64)
        + headers
}

/// Bytes of a zigzag varint (see [`put_varlong`]): one per 7 significant bits, at least
/// one — `(70 - leading zeros) / 7`. It runs nine times per record appended, mostly on
/// numbers below 64 (timestamp and offset deltas, header counts), so those take a branch
/// of their own.
#[inline]
fn varint_len(n: i64) -> usize {
    let v = ((n << 1) ^ (n >> 63)) as u64;
    if v < 0x80 {
        1
    } else {
        (70 - v.leading_zeros() as usize) / 7
    }
}

/// One record as it lies in a batch: every field borrowed from the batch's bytes, so
/// reading a record copies nothing. [`for_each_record`] hands these out; an owner that
/// wants [`Record`]s slices them out of a `Bytes` ([`decode_batches`]), a reply encoder
/// copies the fields once, straight into the reply.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// How many headers [`RecordRef::headers`] yields.
    pub header_count: usize,
    /// The headers, still encoded (already checked to be whole).
    headers: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// The headers as `(name, value)` pairs (a null name reads as empty).
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + use<'a> {
        let mut cursor = Cursor {
            buf: self.headers,
            pos: 0,
        };
        // Checked while walking the record: these cannot fail, and stop if they did.
        std::iter::from_fn(move || {
            let name = cursor.nullable().ok()?.unwrap_or_default();
            Some((name, cursor.nullable().ok()?))
        })
        .take(self.header_count)
    }
}

/// Whether a reader re-checks each batch's CRC32C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crc {
    /// Recompute it: bytes from outside (recovery, a stored offsets log, tests).
    Verify,
    /// Trust it: batches served from the log, which checked every batch when it was
    /// appended (and re-checks the newest segment after a crash). Kafka's broker does the
    /// same — its Fetch path never recomputes CRCs, consumers may — and recomputing on
    /// every read cost a tenth of a fetch. The headers and every record length are still
    /// checked, so bytes that do not parse are an error, never a panic.
    Trust,
}

/// Walks the records of concatenated batches (as a fetch returns them), skipping control
/// batches and records before `from_offset`, calling `visit` on up to `limit` records;
/// returns how many it visited. `bytes` must be whole batches.
pub fn for_each_record<'a>(
    bytes: &'a [u8],
    from_offset: u64,
    limit: usize,
    crc: Crc,
    mut visit: impl FnMut(RecordRef<'a>),
) -> Result<usize, BatchError> {
    let mut visited = 0;
    let mut pos = 0;
    while pos < bytes.len() && visited < limit {
        let header = match crc {
            Crc::Verify => verify(&bytes[pos..])?,
            Crc::Trust => BatchHeader::parse(&bytes[pos..])?,
        };
        let batch = bytes
            .get(pos..pos + header.size)
            .ok_or(BatchError::Truncated)?;
        pos += header.size;
        if header.is_control() || header.last_offset() < from_offset {
            continue;
        }
        let codec = header.attributes & COMPRESSION_MASK;
        if codec != 0 {
            return Err(BatchError::Compressed(codec));
        }
        let mut cursor = Cursor {
            buf: batch,
            pos: BATCH_HEADER_LEN,
        };
        for _ in 0..header.records_count {
            let length = cursor.varint()?;
            let end = cursor.pos + usize::try_from(length).map_err(|_| malformed("length"))?;
            if end > batch.len() {
                return Err(BatchError::Truncated);
            }
            cursor.pos += 1; // record attributes: unused in v2
            let timestamp = header.base_timestamp + cursor.varlong()?;
            let offset_delta = u64::try_from(cursor.varint()?).map_err(|_| malformed("delta"))?;
            let key = cursor.nullable()?;
            let value = cursor.nullable()?;
            let header_count = usize::try_from(cursor.varint()?).unwrap_or(0);
            let headers_start = cursor.pos;
            for _ in 0..header_count {
                cursor.nullable()?;
                cursor.nullable()?;
            }
            if cursor.pos != end {
                return Err(malformed("record length"));
            }
            let offset = header.base_offset + offset_delta;
            if offset >= from_offset && visited < limit {
                visited += 1;
                visit(RecordRef {
                    offset,
                    timestamp,
                    key,
                    value,
                    header_count,
                    headers: &batch[headers_start..end],
                });
            }
        }
    }
    Ok(visited)
}

/// Decodes the records of concatenated batches into owned [`StoredRecord`]s (see
/// [`for_each_record`]); keys, values and headers are slices of `bytes`, not copies.
pub fn decode_batches(
    bytes: &Bytes,
    from_offset: u64,
    limit: usize,
) -> Result<Vec<StoredRecord>, BatchError> {
    let mut out = Vec::new();
    let owned = |b: Option<&[u8]>| b.map(|b| bytes.slice_ref(b));
    for_each_record(bytes, from_offset, limit, Crc::Verify, |r| {
        out.push(StoredRecord {
            offset: r.offset,
            record: Record {
                key: owned(r.key),
                value: owned(r.value),
                timestamp: r.timestamp,
                headers: r
                    .headers()
                    .map(|(name, value)| (bytes.slice_ref(name), owned(value)))
                    .collect(),
            },
        });
    })?;
    Ok(out)
}

/// The key of a batch's first record, read without decoding the rest: what a transaction
/// marker's type is stored in (see `crate::marker`). `None` for a compressed batch or
/// bytes that do not parse.
pub fn first_record_key(batch: &[u8]) -> Option<&[u8]> {
    let header = BatchHeader::parse(batch).ok()?;
    if header.attributes & COMPRESSION_MASK != 0 || header.records_count == 0 {
        return None;
    }
    let mut cursor = Cursor {
        buf: batch.get(..header.size)?,
        pos: BATCH_HEADER_LEN,
    };
    cursor.varint().ok()?;
    cursor.pos += 1;
    cursor.varlong().ok()?;
    cursor.varint().ok()?;
    cursor.nullable().ok()?
}

fn malformed(what: &'static str) -> BatchError {
    BatchError::Malformed(what)
}

fn i32_at(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn i64_at(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

#[inline]
fn put_nullable(buf: &mut impl BufMut, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i32);
            buf.put_slice(b);
        }
    }
}

/// Zigzag varint: 0, -1, 1, -2... become 0, 1, 2, 3..., then 7 bits per byte, low first.
fn put_varint(buf: &mut impl BufMut, n: i32) {
    put_varlong(buf, i64::from(n));
}

#[inline]
fn put_varlong(buf: &mut impl BufMut, n: i64) {
    let mut v = ((n << 1) ^ (n >> 63)) as u64;
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn varlong(&mut self) -> Result<i64, BatchError> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or(BatchError::Truncated)?;
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        Err(malformed("varint too long"))
    }

    fn varint(&mut self) -> Result<i64, BatchError> {
        let v = self.varlong()?;
        if i32::try_from(v).is_err() {
            return Err(malformed("varint out of range"));
        }
        Ok(v)
    }

    fn nullable(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        let len = self.varint()?;
        if len < 0 {
            return Ok(None);
        }
        let end = self.pos + len as usize;
        let out = self.buf.get(self.pos..end).ok_or(BatchError::Truncated)?;
        self.pos = end;
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests;
