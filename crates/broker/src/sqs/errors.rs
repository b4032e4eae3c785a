//! SQS's errors, in the shape its SDKs parse.
//!
//! Under the JSON protocol an error is an HTTP status and a body
//! `{"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "..."}`. SQS moved from
//! its older query (XML) protocol, whose error codes were different
//! (`AWS.SimpleQueueService.NonExistentQueue`); so that code written against the old codes
//! keeps working, SQS also sends the old one in an `x-amzn-query-error: CODE;Sender`
//! header, and the SDKs (boto3 included) report *that* code when it is there. Both are
//! sent here, so `except client.exceptions.QueueDoesNotExist` works as against AWS.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

/// One error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsError {
    /// The JSON protocol's error name (`__type` after the `#`).
    pub code: &'static str,
    /// The query protocol's code, for `x-amzn-query-error`.
    pub query_code: &'static str,
    pub status: StatusCode,
    pub message: String,
}

impl SqsError {
    fn new(
        code: &'static str,
        query_code: &'static str,
        status: StatusCode,
        message: impl Into<String>,
    ) -> SqsError {
        SqsError {
            code,
            query_code,
            status,
            message: message.into(),
        }
    }

    fn bad(code: &'static str, query_code: &'static str, message: impl Into<String>) -> SqsError {
        SqsError::new(code, query_code, StatusCode::BAD_REQUEST, message)
    }

    pub fn no_queue() -> SqsError {
        SqsError::bad(
            "QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
            "The specified queue does not exist.",
        )
    }

    pub fn queue_exists(name: &str) -> SqsError {
        SqsError::bad(
            "QueueNameExists",
            "QueueAlreadyExists",
            format!(
                "A queue already exists with the same name and a different value for attribute(s) ({name})"
            ),
        )
    }

    pub fn invalid(message: impl Into<String>) -> SqsError {
        SqsError::bad("InvalidParameterValue", "InvalidParameterValue", message)
    }

    pub fn missing(parameter: &str) -> SqsError {
        SqsError::bad(
            "MissingParameter",
            "MissingParameter",
            format!("The request must contain the parameter {parameter}."),
        )
    }

    pub fn attribute_name(name: &str) -> SqsError {
        SqsError::bad(
            "InvalidAttributeName",
            "InvalidAttributeName",
            format!("Unknown Attribute {name}."),
        )
    }

    pub fn attribute_value(name: &str, reason: &str) -> SqsError {
        SqsError::bad(
            "InvalidAttributeValue",
            "InvalidAttributeValue",
            format!("Invalid value for the parameter {name}. Reason: {reason}"),
        )
    }

    pub fn receipt_invalid(handle: &str) -> SqsError {
        SqsError::bad(
            "ReceiptHandleIsInvalid",
            "ReceiptHandleIsInvalid",
            format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
        )
    }

    pub fn not_in_flight() -> SqsError {
        SqsError::bad(
            "MessageNotInflight",
            "AWS.SimpleQueueService.MessageNotInflight",
            "The message referred to isn't in flight (its receipt handle has expired, or the \
             message was deleted).",
        )
    }

    pub fn too_many_entries(count: usize) -> SqsError {
        SqsError::bad(
            "TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            format!("Maximum number of entries per request are 10. You have sent {count}."),
        )
    }

    pub fn empty_batch() -> SqsError {
        SqsError::bad(
            "EmptyBatchRequest",
            "AWS.SimpleQueueService.EmptyBatchRequest",
            "There should be at least one entry in the request.",
        )
    }

    pub fn ids_not_distinct(id: &str) -> SqsError {
        SqsError::bad(
            "BatchEntryIdsNotDistinct",
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            format!("Id {id} repeated."),
        )
    }

    pub fn batch_id(id: &str) -> SqsError {
        SqsError::bad(
            "InvalidBatchEntryId",
            "AWS.SimpleQueueService.InvalidBatchEntryId",
            format!(
                "A batch entry id can only contain alphanumeric characters, hyphens and \
                 underscores. It can be at most 80 letters long: {id:?}."
            ),
        )
    }

    pub fn unsupported(message: impl Into<String>) -> SqsError {
        SqsError::bad(
            "UnsupportedOperation",
            "AWS.SimpleQueueService.UnsupportedOperation",
            message,
        )
    }

    pub fn unknown_action(action: &str) -> SqsError {
        SqsError::bad(
            "InvalidAction",
            "InvalidAction",
            format!("The action {action} is not valid for this endpoint."),
        )
    }

    /// Not JSON, or not the shape an action takes.
    pub fn malformed(message: impl Into<String>) -> SqsError {
        SqsError::bad("SerializationException", "MalformedInput", message)
    }

    pub fn denied(code: &'static str, message: impl Into<String>) -> SqsError {
        SqsError::new(code, code, StatusCode::FORBIDDEN, message)
    }

    pub fn too_large(limit: usize) -> SqsError {
        SqsError::new(
            "RequestEntityTooLarge",
            "RequestEntityTooLarge",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request is larger than {limit} bytes."),
        )
    }

    pub fn internal(message: impl Into<String>) -> SqsError {
        SqsError::new(
            "InternalError",
            "InternalError",
            StatusCode::INTERNAL_SERVER_ERROR,
            message,
        )
    }

    /// The error as an HTTP response.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({
            "__type": format!("com.amazonaws.sqs#{}", self.code),
            "message": self.message,
        });
        let fault = if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        let mut response = super::json_response(self.status, &body);
        if let Ok(value) = format!("{};{fault}", self.query_code).parse() {
            response.headers_mut().insert("x-amzn-query-error", value);
        }
        response
    }
}
