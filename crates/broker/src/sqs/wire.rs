//! Reading an action's JSON input, and the shapes shared by several actions: queue URLs
//! and ARNs, message attributes, batches.
//!
//! A queue is named on the wire by its URL, `http://HOST/000000000000/NAME` (ElasticMQ's
//! shape: the account is always `000000000000`), or by its ARN,
//! `arn:aws:sqs:REGION:000000000000:NAME` (in a `RedrivePolicy`). Only the last part
//! matters here; the host in a URL is whatever the client used to reach the server.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Map, Value};

use super::errors::SqsError;
use crate::message::Attribute;

/// The account every queue URL and ARN names.
pub const ACCOUNT: &str = "000000000000";

/// At most this many entries in a batch (SQS's limit).
pub const MAX_BATCH: usize = 10;

/// Characters kept as they are in a queue URL's last segment.
const NAME_KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// An action's input: a JSON object.
#[derive(Debug)]
pub struct Input(Map<String, Value>);

impl Input {
    pub fn parse(body: &[u8]) -> Result<Input, SqsError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input(Map::new()));
        }
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Ok(Input(map)),
            Ok(_) => Err(SqsError::malformed("the request body is not a JSON object")),
            Err(e) => Err(SqsError::malformed(format!(
                "the request body is not JSON: {e}"
            ))),
        }
    }

    pub fn from_map(map: Map<String, Value>) -> Input {
        Input(map)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub fn str(&self, key: &str) -> Result<Option<&str>, SqsError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(SqsError::malformed(format!("{key} must be a string"))),
        }
    }

    pub fn required_str(&self, key: &str) -> Result<&str, SqsError> {
        self.str(key)?.ok_or_else(|| SqsError::missing(key))
    }

    /// An integer parameter within `range` (SDKs send numbers; strings of digits are
    /// accepted too).
    pub fn int(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>, SqsError> {
        let value = match self.get(key) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            Some(_) => None,
        };
        match value {
            Some(v) if range.contains(&v) => Ok(Some(v)),
            _ => Err(SqsError::invalid(format!(
                "Value {} for parameter {key} is invalid. Reason: must be between {} and {}.",
                self.get(key).map_or_else(String::new, Value::to_string),
                range.start(),
                range.end()
            ))),
        }
    }

    /// A list of strings (`AttributeNames`, `MessageAttributeNames`); empty if absent.
    pub fn strings(&self, key: &str) -> Result<Vec<&str>, SqsError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| SqsError::malformed(format!("{key} must hold strings")))
                })
                .collect(),
            Some(_) => Err(SqsError::malformed(format!("{key} must be a list"))),
        }
    }

    /// A map of strings to strings (`Attributes`); empty if absent.
    pub fn string_map(&self, key: &str) -> Result<Vec<(&str, &str)>, SqsError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.as_str(), s.as_str())),
                    _ => Err(SqsError::attribute_value(k, "the value must be a string")),
                })
                .collect(),
            Some(_) => Err(SqsError::malformed(format!("{key} must be a map"))),
        }
    }

    /// A batch's entries: 1 to 10 objects with distinct, well-formed `Id`s.
    pub fn entries(&self) -> Result<Vec<(String, Input)>, SqsError> {
        let items = match self.get("Entries") {
            None => return Err(SqsError::empty_batch()),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(SqsError::malformed("Entries must be a list")),
        };
        if items.is_empty() {
            return Err(SqsError::empty_batch());
        }
        if items.len() > MAX_BATCH {
            return Err(SqsError::too_many_entries(items.len()));
        }
        let mut seen = HashSet::new();
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            let Value::Object(map) = item else {
                return Err(SqsError::malformed("each entry must be an object"));
            };
            let entry = Input(map.clone());
            let id = entry.required_str("Id")?.to_string();
            let well_formed = !id.is_empty()
                && id.len() <= 80
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !well_formed {
                return Err(SqsError::batch_id(&id));
            }
            if !seen.insert(id.clone()) {
                return Err(SqsError::ids_not_distinct(&id));
            }
            entries.push((id, entry));
        }
        Ok(entries)
    }

    /// `MessageAttributes`: `{name: {DataType, StringValue | BinaryValue}}`.
    pub fn message_attributes(&self) -> Result<Vec<Attribute>, SqsError> {
        let Some(value) = self.get("MessageAttributes") else {
            return Ok(Vec::new());
        };
        let Value::Object(map) = value else {
            return Err(SqsError::malformed("MessageAttributes must be a map"));
        };
        if map.len() > 10 {
            return Err(SqsError::invalid(format!(
                "Number of message attributes [{}] exceeds the allowed maximum [10].",
                map.len()
            )));
        }
        let mut attributes = Vec::with_capacity(map.len());
        for (name, spec) in map {
            let Value::Object(spec) = spec else {
                return Err(SqsError::malformed(format!(
                    "message attribute {name} must be an object"
                )));
            };
            let spec = Input(spec.clone());
            let data_type = spec.required_str("DataType")?.to_string();
            let base = data_type.split('.').next().unwrap_or_default();
            let value = match base {
                "String" | "Number" => match spec.str("StringValue")? {
                    Some(s) if !s.is_empty() => Bytes::copy_from_slice(s.as_bytes()),
                    _ => {
                        return Err(SqsError::invalid(format!(
                            "Message (user) attribute '{name}' must contain a non-empty \
                             value of message attribute type '{data_type}'."
                        )));
                    }
                },
                "Binary" => {
                    let encoded = spec.str("BinaryValue")?.unwrap_or_default();
                    match STANDARD.decode(encoded) {
                        Ok(bytes) if !bytes.is_empty() => Bytes::from(bytes),
                        _ => {
                            return Err(SqsError::invalid(format!(
                                "Message (user) attribute '{name}' must contain a non-empty, \
                                 base64-encoded BinaryValue."
                            )));
                        }
                    }
                }
                _ => {
                    return Err(SqsError::invalid(format!(
                        "The type of message (user) attribute '{name}' is invalid. You must \
                         use only the following supported type prefixes: Binary, Number, \
                         String."
                    )));
                }
            };
            attributes.push(Attribute {
                name: name.clone(),
                data_type,
                value,
            });
        }
        Ok(attributes)
    }
}

/// Message attributes as `ReceiveMessage` returns them, those `wanted` only (`All`,
/// `.*`, a name, or a prefix `name.*`).
pub fn attributes_json(attributes: &[Attribute], wanted: &[&str]) -> Map<String, Value> {
    let selected = |name: &str| {
        wanted.iter().any(|w| {
            *w == "All"
                || *w == ".*"
                || *w == name
                || w.strip_suffix(".*")
                    .is_some_and(|prefix| name.starts_with(prefix))
        })
    };
    let mut out = Map::new();
    for a in attributes.iter().filter(|a| selected(&a.name)) {
        let mut spec = Map::new();
        spec.insert("DataType".into(), a.data_type.clone().into());
        if a.is_binary() {
            spec.insert("BinaryValue".into(), STANDARD.encode(&a.value).into());
        } else {
            spec.insert(
                "StringValue".into(),
                String::from_utf8_lossy(&a.value).into_owned().into(),
            );
        }
        out.insert(a.name.clone(), Value::Object(spec));
    }
    out
}

/// The size SQS counts against `MaximumMessageSize`: the body and every attribute's
/// name, type and value.
pub fn message_size(body: &[u8], attributes: &[Attribute]) -> usize {
    body.len()
        + attributes
            .iter()
            .map(|a| a.name.len() + a.data_type.len() + a.value.len())
            .sum::<usize>()
}

/// The URL of queue `name` for a client that reached the server as `host`.
pub fn queue_url(host: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    format!(
        "http://{host}/{ACCOUNT}/{}",
        utf8_percent_encode(&name, NAME_KEEP)
    )
}

/// The queue a `QueueUrl` names (its last path segment).
pub fn queue_of_url(url: &str) -> Result<Bytes, SqsError> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let name: Vec<u8> = percent_decode_str(last).collect();
    if name.is_empty() || url.is_empty() {
        return Err(SqsError::no_queue());
    }
    Ok(Bytes::from(name))
}

/// The ARN of queue `name`.
pub fn queue_arn(region: &str, name: &[u8]) -> String {
    format!(
        "arn:aws:sqs:{region}:{ACCOUNT}:{}",
        String::from_utf8_lossy(name)
    )
}

/// The queue an ARN names (what follows its last `:`).
pub fn queue_of_arn(arn: &str) -> Result<Bytes, SqsError> {
    match arn
        .strip_prefix("arn:")
        .and_then(|rest| rest.rsplit_once(':'))
    {
        Some((_, name)) if !name.is_empty() => Ok(Bytes::copy_from_slice(name.as_bytes())),
        _ => Err(SqsError::invalid(format!("{arn:?} is not a queue ARN"))),
    }
}

/// Is `name` a name `CreateQueue` accepts: 1 to 80 letters, digits, `-` and `_`?
pub fn valid_queue_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_arns_name_queues() {
        let url = queue_url("localhost:9324", b"jobs:dlq");
        assert_eq!(url, "http://localhost:9324/000000000000/jobs%3Adlq");
        assert_eq!(&queue_of_url(&url).unwrap()[..], b"jobs:dlq");
        assert_eq!(&queue_of_url("http://h/000000000000/q/").unwrap()[..], b"q");
        assert!(queue_of_url("").is_err());
        let arn = queue_arn("eu-west-1", b"dead");
        assert_eq!(arn, "arn:aws:sqs:eu-west-1:000000000000:dead");
        assert_eq!(&queue_of_arn(&arn).unwrap()[..], b"dead");
        assert!(queue_of_arn("dead").is_err());
        assert!(valid_queue_name("jobs-1_a"));
        assert!(!valid_queue_name("jobs:dlq"));
        assert!(!valid_queue_name(&"a".repeat(81)));
    }

    #[test]
    fn batches_are_checked_before_anything_runs() {
        let input = |json: &str| Input::parse(json.as_bytes()).unwrap();
        let code = |json: &str| input(json).entries().unwrap_err().code;
        assert_eq!(code(r#"{"Entries": []}"#), "EmptyBatchRequest");
        assert_eq!(code("{}"), "EmptyBatchRequest");
        let eleven: Vec<String> = (0..11).map(|i| format!(r#"{{"Id": "m{i}"}}"#)).collect();
        assert_eq!(
            code(&format!(r#"{{"Entries": [{}]}}"#, eleven.join(","))),
            "TooManyEntriesInBatchRequest"
        );
        assert_eq!(
            code(r#"{"Entries": [{"Id": "a"}, {"Id": "a"}]}"#),
            "BatchEntryIdsNotDistinct"
        );
        assert_eq!(
            code(r#"{"Entries": [{"Id": "a b"}]}"#),
            "InvalidBatchEntryId"
        );
        assert_eq!(
            input(r#"{"Entries": [{"Id": "a"}, {"Id": "b"}]}"#)
                .entries()
                .unwrap()
                .len(),
            2
        );
        assert!(Input::parse(b"[1]").is_err());
        assert!(Input::parse(b"{").is_err());
    }

    #[test]
    fn message_attributes_round_trip_and_filter() {
        let input = Input::parse(
            br#"{"MessageAttributes": {
                "kind": {"DataType": "String", "StringValue": "video"},
                "size": {"DataType": "Number.int", "StringValue": "42"},
                "raw": {"DataType": "Binary", "BinaryValue": "AP8="}}}"#,
        )
        .unwrap();
        let attributes = input.message_attributes().unwrap();
        assert_eq!(attributes.len(), 3);
        let raw = attributes.iter().find(|a| a.name == "raw").unwrap();
        assert_eq!(&raw.value[..], b"\x00\xff");
        let all = attributes_json(&attributes, &["All"]);
        assert_eq!(all["raw"]["BinaryValue"], "AP8=");
        assert_eq!(all["size"]["StringValue"], "42");
        let some = attributes_json(&attributes, &["ki.*", "size"]);
        assert_eq!(some.len(), 2);
        assert!(attributes_json(&attributes, &[]).is_empty());
        let bad = Input::parse(
            br#"{"MessageAttributes": {"x": {"DataType": "Float", "StringValue": "1"}}}"#,
        )
        .unwrap();
        assert_eq!(
            bad.message_attributes().unwrap_err().code,
            "InvalidParameterValue"
        );
    }
}
