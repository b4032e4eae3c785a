use super::*;

fn record(key: Option<&str>, value: &str, ts: i64) -> Record {
    Record {
        key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        timestamp: ts,
        headers: vec![],
    }
}

#[test]
fn round_trip_with_keys_headers_and_nulls() {
    let mut with_headers = record(Some("k"), "v", 1_700_000_000_123);
    with_headers.headers = vec![
        (
            Bytes::from_static(b"trace"),
            Some(Bytes::from_static(b"abc")),
        ),
        (Bytes::from_static(b"empty"), None),
    ];
    let records = vec![
        with_headers,
        record(None, "", 1_700_000_000_000),
        Record {
            key: Some(Bytes::from_static(b"tombstone")),
            value: None,
            timestamp: 1_700_000_000_500,
            headers: vec![],
        },
    ];
    let mut batch = encode_batch(&records);
    stamp(&mut batch, 42);
    let header = verify(&batch).unwrap();
    assert_eq!(header.base_offset, 42);
    assert_eq!(header.last_offset(), 44);
    assert_eq!(header.max_timestamp, 1_700_000_000_500);
    assert_eq!(header.size, batch.len());
    let decoded = decode_batches(&batch.freeze(), 0, usize::MAX).unwrap();
    let offsets: Vec<u64> = decoded.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [42, 43, 44]);
    let back: Vec<Record> = decoded.into_iter().map(|r| r.record).collect();
    assert_eq!(back, records);
}

/// A batch of borrowed [`Message`]s is byte for byte the batch of the same
/// [`Record`]s: the produce path encodes from the request, other paths from owned
/// records, and the log and Kafka clients see one format.
#[test]
fn messages_encode_like_records() {
    let long = "v".repeat(300);
    let records = vec![
        record(Some("k"), "a", 1_700_000_000_000),
        record(None, &long, 1_700_000_000_000),
        record(Some(""), "", 1_700_000_000_007),
        Record {
            key: Some(Bytes::from_static(b"tombstone")),
            value: None,
            timestamp: 1_699_999_999_000,
            headers: vec![],
        },
    ];
    let messages: Vec<Message> = records
        .iter()
        .map(|r| Message {
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            timestamp: r.timestamp,
        })
        .collect();
    let mut from_records = Vec::new();
    let mut from_messages = Vec::new();
    let a = encode_batch_into(&mut from_records, &records, 9);
    let b = encode_batch_into(&mut from_messages, &messages, 9);
    assert_eq!(a, b);
    assert_eq!(from_records, from_messages);
    assert_eq!(verify(&from_messages).unwrap().size, from_messages.len());
    let decoded = decode_batches(&Bytes::from(from_messages), 0, usize::MAX).unwrap();
    let back: Vec<Record> = decoded.into_iter().map(|r| r.record).collect();
    assert_eq!(back, records);
}

#[test]
fn crc_catches_a_flipped_bit_but_not_a_restamped_offset() {
    let mut batch = encode_batch(&[record(Some("k"), "value", 5)]);
    stamp(&mut batch, 7);
    assert!(verify(&batch).is_ok(), "the offset is outside the CRC");
    let last = batch.len() - 1;
    batch[last] ^= 1;
    assert!(matches!(
        verify(&batch),
        Err(BatchError::CrcMismatch { .. })
    ));
    assert_eq!(verify(&batch[..30]), Err(BatchError::Truncated));
}

#[test]
fn decode_skips_records_before_the_requested_offset() {
    let records: Vec<Record> = (0..5).map(|i| record(None, &i.to_string(), i)).collect();
    let mut batch = encode_batch(&records);
    stamp(&mut batch, 100);
    let decoded = decode_batches(&batch.freeze(), 103, usize::MAX).unwrap();
    assert_eq!(decoded.len(), 2);
    assert_eq!(decoded[0].offset, 103);
    assert_eq!(decoded[0].record.value.as_deref(), Some(&b"3"[..]));
}

#[test]
fn compressed_batches_verify_but_are_not_decoded() {
    let mut batch = encode_batch(&[record(None, "v", 0)]);
    batch[ATTRIBUTES_OFFSET + 1] = 1; // gzip
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    assert!(
        verify(&batch).is_ok(),
        "a log stores compressed batches as they are"
    );
    assert_eq!(
        decode_batches(&batch.freeze(), 0, usize::MAX),
        Err(BatchError::Compressed(1))
    );
}

#[test]
fn varint_len_matches_the_encoding() {
    for n in [
        0,
        1,
        -1,
        63,
        -64,
        64,
        -65,
        8191,
        8192,
        i64::from(i32::MAX),
        i64::MIN,
        i64::MAX,
    ] {
        let mut buf = Vec::new();
        put_varlong(&mut buf, n);
        assert_eq!(varint_len(n), buf.len(), "{n}");
    }
}

#[test]
fn varints_match_kafka_zigzag() {
    // Values and encodings from Kafka's ByteUtilsTest.
    let cases: [(i64, &[u8]); 5] = [
        (0, &[0x00]),
        (-1, &[0x01]),
        (1, &[0x02]),
        (-64, &[0x7f]),
        (64, &[0x80, 0x01]),
    ];
    for (n, bytes) in cases {
        let mut buf = Vec::new();
        put_varlong(&mut buf, n);
        assert_eq!(buf, bytes, "{n}");
        let mut c = Cursor { buf: &buf, pos: 0 };
        assert_eq!(c.varlong().unwrap(), n);
        assert_eq!(varint_len(n), bytes.len(), "{n}");
    }
}
