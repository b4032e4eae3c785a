//! SQS's query protocol: the older wire format, still what the AWS CLI v1, older SDKs
//! and plenty of scripts speak. Same actions, same handlers ([`super::actions`]); only
//! the envelope differs:
//!
//! - **Request**: form parameters (`application/x-www-form-urlencoded` body, or the URL's
//!   query string), `Action=SendMessage&QueueUrl=...&MessageBody=...`. The JSON
//!   protocol's nested values are flattened into numbered names: a list is
//!   `AttributeName.1=All&AttributeName.2=...`, a map is `Attribute.1.Name=...&
//!   Attribute.1.Value=...`, a batch is `SendMessageBatchRequestEntry.1.Id=...`. [`parse`]
//!   folds them back into the JSON shape, so the handlers see one input either way.
//! - **Reply**: XML, `<SendMessageResponse><SendMessageResult><MessageId>...` with a
//!   `ResponseMetadata`; lists are repeated elements (`<QueueUrl>` after `<QueueUrl>`),
//!   maps are `<Attribute><Name/><Value/></Attribute>` entries. [`response`] unfolds the
//!   handlers' JSON reply that way; [`error_response`] is the query protocol's
//!   `<ErrorResponse>`, with the query-era error codes (`AWS.SimpleQueueService.
//!   NonExistentQueue`).
//!
//! A request is the query protocol's when it has no `X-Amz-Target` header.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use percent_encoding::percent_decode;
use serde_json::{Map, Value};

use super::errors::SqsError;
use super::wire::Input;

/// The namespace of SQS's query API.
const XMLNS: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

/// A form's parameters, `+` and `%XX` decoded, in order.
fn form_pairs(form: &[u8]) -> Result<Vec<(String, String)>, SqsError> {
    let decode = |part: &[u8]| -> Result<String, SqsError> {
        let spaced: Vec<u8> = part
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        percent_decode(&spaced)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| SqsError::malformed("a form parameter is not UTF-8"))
    };
    form.split(|&b| b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut halves = part.splitn(2, |&b| b == b'=');
            let name = decode(halves.next().unwrap_or_default())?;
            let value = decode(halves.next().unwrap_or_default())?;
            Ok((name, value))
        })
        .collect()
}

/// The flattened lists' names, and the JSON names they fold into. `Attribute` and
/// `MessageAttribute` are maps (entries of `Name` and `Value`), the rest lists.
const FOLDS: &[(&str, &str)] = &[
    ("Attribute", "Attributes"),
    ("MessageAttribute", "MessageAttributes"),
    ("AttributeName", "AttributeNames"),
    ("MessageAttributeName", "MessageAttributeNames"),
    ("MessageSystemAttributeName", "MessageSystemAttributeNames"),
    ("SendMessageBatchRequestEntry", "Entries"),
    ("DeleteMessageBatchRequestEntry", "Entries"),
    ("ChangeMessageVisibilityBatchRequestEntry", "Entries"),
];

/// Puts `value` at the dotted `path` of `tree`; a numeric segment is a list position
/// (kept as an object keyed by the number until [`fold`] orders it).
fn insert(tree: &mut Map<String, Value>, path: &[&str], value: String) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        tree.insert((*first).to_string(), Value::String(value));
        return;
    }
    let child = tree
        .entry((*first).to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !child.is_object() {
        *child = Value::Object(Map::new());
    }
    if let Value::Object(child) = child {
        insert(child, rest, value);
    }
}

/// Orders a numbered object (`{"2": .., "1": ..}`) into its list.
fn numbered(map: Map<String, Value>) -> Vec<Value> {
    let mut items: Vec<(u64, Value)> = map
        .into_iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
        .collect();
    items.sort_by_key(|(n, _)| *n);
    items.into_iter().map(|(_, v)| v).collect()
}

/// Folds the flattened names of `tree` into the JSON protocol's shapes, recursively (a
/// batch entry has its own `MessageAttribute.N`).
fn fold(tree: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in tree {
        let Some(&(_, json)) = FOLDS.iter().find(|(flat, _)| *flat == name) else {
            out.insert(name, value);
            continue;
        };
        let Value::Object(numbered_items) = value else {
            continue;
        };
        let items = numbered(numbered_items);
        let folded = match name.as_str() {
            "Attribute" | "MessageAttribute" => {
                let mut map = Map::new();
                for item in items {
                    if let Value::Object(mut entry) = item
                        && let Some(Value::String(key)) = entry.remove("Name")
                    {
                        map.insert(key, entry.remove("Value").unwrap_or(Value::Null));
                    }
                }
                Value::Object(map)
            }
            _ if json == "Entries" => Value::Array(
                items
                    .into_iter()
                    .map(|item| match item {
                        Value::Object(entry) => Value::Object(fold(entry)),
                        other => other,
                    })
                    .collect(),
            ),
            _ => Value::Array(items),
        };
        out.insert(json.to_string(), folded);
    }
    out
}

/// The action and its input from a query-protocol request: the parameters of the URL's
/// query string and of the form body. A request to a queue's URL (`POST
/// /000000000000/jobs`) names its queue by the path, as the old SDKs send it.
pub fn parse(path: &str, query: &str, body: &[u8]) -> Result<(String, Input), SqsError> {
    let mut pairs = form_pairs(query.as_bytes())?;
    pairs.extend(form_pairs(body)?);
    let mut tree = Map::new();
    let mut action = None;
    for (name, value) in pairs {
        match name.as_str() {
            "Action" => action = Some(value),
            // The API version, and signature-v2 fields: nothing to do with them.
            "Version" | "AWSAccessKeyId" | "SignatureMethod" | "SignatureVersion" | "Signature"
            | "Timestamp" | "Expires" => {}
            _ => insert(&mut tree, &name.split('.').collect::<Vec<_>>(), value),
        }
    }
    let action = action.ok_or_else(|| {
        SqsError::missing("Action (SQS's query protocol: Action=<name> as a form parameter)")
    })?;
    let mut input = fold(tree);
    if !input.contains_key("QueueUrl") && path.trim_matches('/').contains('/') {
        input.insert("QueueUrl".into(), Value::String(path.to_string()));
    }
    Ok((action, Input::from_map(input)))
}

/// Escapes text for XML; a carriage return as `&#xD;` (as SQS does, so it survives
/// the parser's line-end normalisation).
fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn element(out: &mut String, name: &str, body: impl FnOnce(&mut String)) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    body(out);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// A JSON value as XML content: scalars as text, objects member by member.
fn value(out: &mut String, action: &str, v: &Value) {
    match v {
        Value::String(s) => escape(s, out),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Object(map) => members(out, action, map),
        Value::Null | Value::Array(_) => {}
    }
}

/// An object's members, each as the query protocol writes that member.
fn members(out: &mut String, action: &str, map: &Map<String, Value>) {
    for (name, v) in map {
        match (name.as_str(), v) {
            // Maps: one entry element per key.
            ("Attributes", Value::Object(m)) | ("MessageAttributes", Value::Object(m)) => {
                let entry = if name == "Attributes" {
                    "Attribute"
                } else {
                    "MessageAttribute"
                };
                for (key, v) in m {
                    element(out, entry, |out| {
                        element(out, "Name", |out| escape(key, out));
                        element(out, "Value", |out| value(out, action, v));
                    });
                }
            }
            // Lists: the element repeated, under its singular name.
            (_, Value::Array(items)) => {
                let item = match name.as_str() {
                    "QueueUrls" | "queueUrls" => "QueueUrl".to_string(),
                    "Messages" => "Message".to_string(),
                    "Successful" => format!("{action}ResultEntry"),
                    "Failed" => "BatchResultErrorEntry".to_string(),
                    other => other.trim_end_matches('s').to_string(),
                };
                for v in items {
                    element(out, &item, |out| value(out, action, v));
                }
            }
            _ => element(out, name, |out| value(out, action, v)),
        }
    }
}

/// An identifier for the reply's `RequestId` (SQS's are UUIDs; any unique text does).
fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "00000000-0000-0000-0000-{:012x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn xml_response(status: StatusCode, xml: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(xml)));
    *response.status_mut() = status;
    if let Ok(value) = "text/xml".parse() {
        response.headers_mut().insert("content-type", value);
    }
    response
}

/// `action`'s JSON reply as the query protocol's XML.
pub fn response(action: &str, reply: &Value) -> Response<Full<Bytes>> {
    let mut out = String::from(r#"<?xml version="1.0"?>"#);
    let root = format!("{action}Response");
    out.push_str(&format!(r#"<{root} xmlns="{XMLNS}">"#));
    if let Value::Object(map) = reply
        && !map.is_empty()
    {
        element(&mut out, &format!("{action}Result"), |out| {
            members(out, action, map)
        });
    }
    element(&mut out, "ResponseMetadata", |out| {
        element(out, "RequestId", |out| out.push_str(&request_id()))
    });
    out.push_str(&format!("</{root}>"));
    xml_response(StatusCode::OK, out)
}

/// An error as the query protocol's `<ErrorResponse>`, with the query-era code.
pub fn error_response(e: &SqsError) -> Response<Full<Bytes>> {
    let fault = if e.status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    let mut out = format!(r#"<?xml version="1.0"?><ErrorResponse xmlns="{XMLNS}">"#);
    element(&mut out, "Error", |out| {
        element(out, "Type", |out| out.push_str(fault));
        element(out, "Code", |out| escape(e.query_code, out));
        element(out, "Message", |out| escape(&e.message, out));
        out.push_str("<Detail/>");
    });
    element(&mut out, "RequestId", |out| out.push_str(&request_id()));
    out.push_str("</ErrorResponse>");
    xml_response(e.status, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattened_parameters_fold_into_the_json_shapes() {
        let body = b"Action=SendMessageBatch&QueueUrl=http%3A%2F%2Fh%2F000000000000%2Fq\
            &SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=two\
            &SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=one+%26+more\
            &SendMessageBatchRequestEntry.1.MessageAttribute.1.Name=kind\
            &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType=String\
            &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue=video\
            &Version=2012-11-05";
        let (action, input) = parse("/", "", body).unwrap();
        assert_eq!(action, "SendMessageBatch");
        let entries = input.entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0, "a");
        assert_eq!(entries[0].1.str("MessageBody").unwrap(), Some("one & more"));
        let attributes = entries[0].1.message_attributes().unwrap();
        assert_eq!(
            (attributes[0].name.as_str(), &attributes[0].value[..]),
            ("kind", &b"video"[..])
        );
        assert_eq!(entries[1].1.str("MessageBody").unwrap(), Some("two"));

        let (_, input) = parse(
            "/000000000000/jobs",
            "Action=GetQueueAttributes&AttributeName.1=All",
            b"Attribute.1.Name=VisibilityTimeout&Attribute.1.Value=5",
        )
        .unwrap();
        assert_eq!(input.str("QueueUrl").unwrap(), Some("/000000000000/jobs"));
        assert_eq!(input.strings("AttributeNames").unwrap(), ["All"]);
        assert_eq!(
            input.string_map("Attributes").unwrap(),
            [("VisibilityTimeout", "5")]
        );
        assert_eq!(
            parse("/", "", b"QueueName=x").err().unwrap().code,
            "MissingParameter"
        );
    }

    #[test]
    fn replies_unfold_into_repeated_elements() {
        let reply = json!({
            "Messages": [{
                "MessageId": "7", "Body": "a<b",
                "Attributes": {"SentTimestamp": "1"},
            }],
        });
        let response = response("ReceiveMessage", &reply);
        let body = response.into_body();
        let bytes = futures_body(body);
        assert!(bytes.contains("<ReceiveMessageResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\"><ReceiveMessageResult><Message>"), "{bytes}");
        assert!(bytes.contains("<Body>a&lt;b</Body>"), "{bytes}");
        assert!(
            bytes.contains("<Attribute><Name>SentTimestamp</Name><Value>1</Value></Attribute>"),
            "{bytes}"
        );
        let empty = futures_body(response_body("DeleteMessage", &json!({})));
        assert!(empty.contains("<DeleteMessageResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\"><ResponseMetadata>"), "{empty}");
    }

    fn response_body(action: &str, reply: &Value) -> Full<Bytes> {
        response(action, reply).into_body()
    }

    /// The whole body of a `Full` (ready at once).
    fn futures_body(body: Full<Bytes>) -> String {
        use http_body_util::BodyExt;
        let collected = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(body.collect())
            .unwrap();
        String::from_utf8(collected.to_bytes().to_vec()).unwrap()
    }
}
