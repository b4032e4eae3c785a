//! Each SQS action -> the shared engine -> its JSON reply.
//!
//! A message's `MessageId` is the engine's message id in decimal (`"42"`: the same number
//! `QSEND` returns and beanstalkd's `INSERTED 42` says), and its `ReceiptHandle` is the
//! delivery's receipt (`42-1-9e3779b97f4a7c15`, see [`crate::receipt`]), so a message
//! received over SQS can be acknowledged with `QACK` and the reverse.
//!
//! Where SQS is lenient, so is this: deleting a message whose receipt is no longer
//! current succeeds and changes nothing (SQS: "it's possible you will receive a message
//! even after you delete it"); `ChangeMessageVisibility` of a message no longer in flight
//! fails with `MessageNotInflight`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::digest::{attributes_md5, md5_hex};
use super::errors::SqsError;
use super::fifo::{is_fifo_name, send_ids};
use super::queue_attributes;
use super::wire::{
    ACCOUNT, Input, attributes_json, message_size, queue_of_arn, queue_of_url, queue_url,
    valid_queue_name,
};
use crate::dead_letter::dead_letter_queue;
use crate::engine::{Error, SendOptions};
use crate::fifo::FifoQueue;
use crate::queue::Delivery;
use crate::queue::QueueConfig;
use crate::receipt::Receipt;
use crate::shared_engine::{SharedEngine, Wait};

/// Who is asking: the host they reached us by (for queue URLs) and their region (ARNs).
pub struct Caller {
    pub host: String,
    pub region: String,
}

impl From<Error> for SqsError {
    fn from(e: Error) -> SqsError {
        match e {
            Error::NoQueue(_) => SqsError::no_queue(),
            Error::Stale(_) => SqsError::not_in_flight(),
            Error::TooLarge { max, .. } => SqsError::invalid(format!(
                "One or more parameters are invalid. Reason: Message must be shorter than \
                 {max} bytes."
            )),
            Error::Invalid(why) => SqsError::invalid(why),
            Error::Storage(e) => SqsError::internal(e.to_string()),
        }
    }
}

/// Runs `action` (the part of `X-Amz-Target` after `AmazonSQS.`).
pub(crate) async fn dispatch(
    inner: &Arc<SharedEngine>,
    caller: &Caller,
    action: &str,
    input: Input,
) -> Result<Value, SqsError> {
    match action {
        "CreateQueue" => create_queue(inner, caller, &input).await,
        "GetQueueUrl" => get_queue_url(inner, caller, &input),
        "ListQueues" => list_queues(inner, caller, &input),
        "GetQueueAttributes" => get_queue_attributes(inner, caller, &input),
        "SetQueueAttributes" => set_queue_attributes(inner, &input).await,
        "DeleteQueue" => delete_queue(inner, &input).await,
        "PurgeQueue" => purge_queue(inner, &input).await,
        "SendMessage" => {
            let queue = existing(inner, &input)?;
            Ok(Value::Object(send(inner, &queue, &input).await?))
        }
        "SendMessageBatch" => batch(inner, &input, Each::Send).await,
        "ReceiveMessage" => receive(inner, &input).await,
        "DeleteMessage" => {
            let queue = existing(inner, &input)?;
            delete(inner, &queue, &input).await.map(|()| json!({}))
        }
        "DeleteMessageBatch" => batch(inner, &input, Each::Delete).await,
        "ChangeMessageVisibility" => {
            let queue = existing(inner, &input)?;
            change_visibility(inner, &queue, &input)
                .await
                .map(|()| json!({}))
        }
        "ChangeMessageVisibilityBatch" => batch(inner, &input, Each::ChangeVisibility).await,
        "ListDeadLetterSourceQueues" => dead_letter_sources(inner, caller, &input),
        "StartMessageMoveTask" => move_messages(inner, caller, &input).await,
        _ => Err(SqsError::unknown_action(action)),
    }
}

/// The queue `QueueUrl` names, which must exist.
fn existing(inner: &SharedEngine, input: &Input) -> Result<Bytes, SqsError> {
    let name = queue_of_url(input.required_str("QueueUrl")?)?;
    if inner.run(|engine, _| Ok(engine.exists(&name)))? {
        Ok(name)
    } else {
        Err(SqsError::no_queue())
    }
}

async fn create_queue(
    inner: &Arc<SharedEngine>,
    caller: &Caller,
    input: &Input,
) -> Result<Value, SqsError> {
    let name = input.required_str("QueueName")?;
    let given = input.string_map("Attributes")?;
    // A FIFO queue is asked for with `FifoQueue: true`, and its name must end in `.fifo`.
    let fifo = given.contains(&("FifoQueue", "true"));
    if fifo && !is_fifo_name(name) {
        return Err(SqsError::invalid(
            "The name of a FIFO queue can only include alphanumeric characters, hyphens, or \
             underscores, must end with .fifo suffix and be 1 to 80 in length.",
        ));
    }
    let stem = if fifo { &name[..name.len() - 5] } else { name };
    if !valid_queue_name(stem) || name.len() > 80 {
        return Err(SqsError::invalid(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in \
             length",
        ));
    }
    let queue = Bytes::copy_from_slice(name.as_bytes());
    let current = inner.run(|engine, _| Ok(engine.config(&queue).cloned()))?;
    let mut config = current.clone().unwrap_or_else(|| QueueConfig {
        fifo: fifo.then(FifoQueue::default),
        ..QueueConfig::default()
    });
    let target = queue_attributes::apply(&mut config, &given)?;
    check_target(inner, &config, target)?;
    match current {
        // As SQS: creating an existing queue is fine if it would be the same.
        Some(current) if current != config => return Err(SqsError::queue_exists(name)),
        Some(_) => {}
        None => {
            inner
                .write(|engine, _| engine.configure(&queue, |c| *c = config))
                .await?
        }
    }
    Ok(json!({ "QueueUrl": queue_url(&caller.host, &queue) }))
}

/// A `RedrivePolicy` must name a queue that exists, of the same type (a FIFO queue's
/// dead letters go to a FIFO queue): SQS checks both.
fn check_target(
    inner: &SharedEngine,
    config: &QueueConfig,
    target: Option<Bytes>,
) -> Result<(), SqsError> {
    let Some(target) = target else {
        return Ok(());
    };
    let target_fifo =
        inner.run(|engine, _| Ok(engine.config(&target).map(|c| c.fifo.is_some())))?;
    match target_fifo {
        None => Err(SqsError::attribute_value(
            "RedrivePolicy",
            "Dead letter target does not exist.",
        )),
        Some(fifo) if fifo != config.fifo.is_some() => Err(SqsError::attribute_value(
            "RedrivePolicy",
            "Dead-letter queue must be same type of queue as the source.",
        )),
        Some(_) => Ok(()),
    }
}

fn get_queue_url(inner: &SharedEngine, caller: &Caller, input: &Input) -> Result<Value, SqsError> {
    let name = Bytes::copy_from_slice(input.required_str("QueueName")?.as_bytes());
    if !inner.run(|engine, _| Ok(engine.exists(&name)))? {
        return Err(SqsError::no_queue());
    }
    Ok(json!({ "QueueUrl": queue_url(&caller.host, &name) }))
}

fn list_queues(inner: &SharedEngine, caller: &Caller, input: &Input) -> Result<Value, SqsError> {
    let prefix = input.str("QueueNamePrefix")?.unwrap_or_default().as_bytes();
    let max = input.int("MaxResults", 1..=1000)?;
    // The token is the last name of the previous page (names are listed sorted).
    let after = input.str("NextToken")?.map(|t| t.as_bytes().to_vec());
    let names: Vec<Bytes> = inner.run(|engine, _| {
        Ok(engine
            .names()
            .filter(|n| n.starts_with(prefix))
            .filter(|n| after.as_ref().is_none_or(|a| n[..] > a[..]))
            .cloned()
            .collect())
    })?;
    let page = max.map_or(names.len(), |m| (m as usize).min(names.len()));
    let urls: Vec<String> = names[..page]
        .iter()
        .map(|n| queue_url(&caller.host, n))
        .collect();
    let mut out = json!({ "QueueUrls": urls });
    if page < names.len()
        && let Some(last) = page.checked_sub(1).and_then(|i| names.get(i))
    {
        out["NextToken"] = String::from_utf8_lossy(last).into_owned().into();
    }
    Ok(out)
}

fn get_queue_attributes(
    inner: &SharedEngine,
    caller: &Caller,
    input: &Input,
) -> Result<Value, SqsError> {
    let queue = existing(inner, input)?;
    let wanted = input.strings("AttributeNames")?;
    let stats = inner.run(|engine, now| engine.stats(&queue, now))?;
    let attributes = queue_attributes::get(&queue, &stats, &caller.region, &wanted)?;
    Ok(json!({ "Attributes": attributes }))
}

async fn set_queue_attributes(inner: &SharedEngine, input: &Input) -> Result<Value, SqsError> {
    let queue = existing(inner, input)?;
    let given = input.string_map("Attributes")?;
    let current = inner.run(|engine, _| Ok(engine.config(&queue).cloned()))?;
    let mut config = current.ok_or_else(SqsError::no_queue)?;
    let target = queue_attributes::apply(&mut config, &given)?;
    check_target(inner, &config, target)?;
    inner
        .write(|engine, _| engine.configure(&queue, |c| *c = config))
        .await?;
    Ok(json!({}))
}

async fn delete_queue(inner: &SharedEngine, input: &Input) -> Result<Value, SqsError> {
    let queue = existing(inner, input)?;
    inner.write(|engine, _| engine.delete(&queue)).await?;
    inner.forget_waker(&queue);
    Ok(json!({}))
}

async fn purge_queue(inner: &SharedEngine, input: &Input) -> Result<Value, SqsError> {
    let queue = existing(inner, input)?;
    inner.write(|engine, now| engine.purge(&queue, now)).await?;
    Ok(json!({}))
}

/// One `SendMessage`, or one entry of a batch.
async fn send(
    inner: &SharedEngine,
    queue: &Bytes,
    input: &Input,
) -> Result<Map<String, Value>, SqsError> {
    let body = match input.str("MessageBody")? {
        Some(body) if !body.is_empty() => body,
        _ => return Err(SqsError::missing("MessageBody")),
    };
    let fifo = inner.run(|engine, _| Ok(engine.config(queue).and_then(|c| c.fifo)))?;
    let ids = send_ids(fifo, input, body)?;
    let delay = input.int("DelaySeconds", 0..=900)?;
    let attributes = input.message_attributes()?;
    let size = message_size(body.as_bytes(), &attributes);
    let mut reply = Map::new();
    reply.insert("MD5OfMessageBody".into(), md5_hex(body.as_bytes()).into());
    if let Some(md5) = attributes_md5(&attributes) {
        reply.insert("MD5OfMessageAttributes".into(), md5.into());
    }
    let options = SendOptions {
        delay: delay.map(|s| s * 1000),
        attributes,
        group: ids.group,
        deduplication_id: ids.deduplication_id,
        ..SendOptions::default()
    };
    let payload = Bytes::copy_from_slice(body.as_bytes());
    let id = inner
        .write(|engine, now| {
            let max = engine
                .config(queue)
                .ok_or_else(|| Error::NoQueue(queue.clone()))?
                .max_size;
            // SQS counts the attributes against the limit too.
            if size as u64 > max {
                return Err(Error::TooLarge { size, max });
            }
            engine.send(queue, payload, options, now)
        })
        .await?;
    reply.insert("MessageId".into(), id.to_string().into());
    if fifo.is_some() {
        // Increasing within a group (and across the broker): the message id, as SQS's
        // 20-digit form.
        reply.insert("SequenceNumber".into(), sequence_number(id).into());
    }
    Ok(reply)
}

async fn receive(inner: &SharedEngine, input: &Input) -> Result<Value, SqsError> {
    let queue = existing(inner, input)?;
    let max = input.int("MaxNumberOfMessages", 1..=10)?.unwrap_or(1) as usize;
    let visibility = input
        .int("VisibilityTimeout", 0..=43_200)?
        .map(|s| s * 1000);
    let wait = match input.int("WaitTimeSeconds", 0..=20)? {
        Some(seconds) => seconds * 1000,
        None => inner.run(|engine, _| Ok(engine.config(&queue).map_or(0, |c| c.receive_wait)))?,
    };
    let wait = match wait {
        0 => Wait::No,
        ms => Wait::Until(Instant::now() + Duration::from_millis(ms)),
    };
    let mut system = input.strings("AttributeNames")?;
    system.extend(input.strings("MessageSystemAttributeNames")?);
    let wanted = input.strings("MessageAttributeNames")?;
    let got = inner.receive(&queue, max, visibility, wait).await?;
    let messages: Vec<Value> = got
        .iter()
        .map(|d| Value::Object(message_json(d, &system, &wanted)))
        .collect();
    Ok(json!({ "Messages": messages }))
}

/// A received message as `ReceiveMessage` lists it.
fn message_json(d: &Delivery, system: &[&str], wanted: &[&str]) -> Map<String, Value> {
    // SQS bodies are text: a body sent over RESP or beanstalkd that is not UTF-8 has its
    // invalid bytes replaced (and the MD5 is of what is returned).
    let body = String::from_utf8_lossy(&d.payload);
    let mut m = Map::new();
    m.insert("MessageId".into(), d.id.to_string().into());
    m.insert("ReceiptHandle".into(), d.receipt.to_string().into());
    m.insert("MD5OfBody".into(), md5_hex(body.as_bytes()).into());
    m.insert("Body".into(), body.into_owned().into());
    let all = system.contains(&"All");
    let mut attributes = Map::new();
    for (name, value) in [
        ("SentTimestamp", d.sent_at.to_string()),
        ("ApproximateReceiveCount", d.deliveries.to_string()),
        (
            "ApproximateFirstReceiveTimestamp",
            d.first_received.to_string(),
        ),
        ("SenderId", ACCOUNT.to_string()),
    ] {
        if all || system.contains(&name) {
            attributes.insert(name.into(), value.into());
        }
    }
    // FIFO messages: their group, deduplication id and sequence number.
    let fifo = [
        ("MessageGroupId", d.group.as_ref().map(text)),
        (
            "MessageDeduplicationId",
            d.deduplication_id.as_ref().map(text),
        ),
        (
            "SequenceNumber",
            d.deduplication_id.as_ref().map(|_| sequence_number(d.id)),
        ),
    ];
    for (name, value) in fifo {
        if let Some(value) = value
            && (all || system.contains(&name))
        {
            attributes.insert(name.into(), value.into());
        }
    }
    if !attributes.is_empty() {
        m.insert("Attributes".into(), Value::Object(attributes));
    }
    let user = attributes_json(&d.attributes, wanted);
    if !user.is_empty() {
        let returned: Vec<_> = d
            .attributes
            .iter()
            .filter(|a| user.contains_key(&a.name))
            .cloned()
            .collect();
        if let Some(md5) = attributes_md5(&returned) {
            m.insert("MD5OfMessageAttributes".into(), md5.into());
        }
        m.insert("MessageAttributes".into(), Value::Object(user));
    }
    m
}

/// A FIFO message's `SequenceNumber`: its id, zero-padded to SQS's 20 digits.
fn sequence_number(id: u64) -> String {
    format!("{id:020}")
}

/// A group or deduplication id (checked ASCII when sent) as text.
fn text(bytes: &Bytes) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn receipt(input: &Input) -> Result<Receipt, SqsError> {
    let handle = input.required_str("ReceiptHandle")?;
    Receipt::parse(handle.as_bytes()).map_err(|_| SqsError::receipt_invalid(handle))
}

async fn delete(inner: &SharedEngine, queue: &Bytes, input: &Input) -> Result<(), SqsError> {
    let receipt = receipt(input)?;
    match inner
        .write(|engine, now| engine.ack(queue, &receipt, now))
        .await
    {
        Ok(()) | Err(Error::Stale(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn change_visibility(
    inner: &SharedEngine,
    queue: &Bytes,
    input: &Input,
) -> Result<(), SqsError> {
    let receipt = receipt(input)?;
    let seconds = input
        .int("VisibilityTimeout", 0..=43_200)?
        .ok_or_else(|| SqsError::missing("VisibilityTimeout"))?;
    inner
        .write(|engine, now| engine.extend(queue, &receipt, seconds * 1000, now))
        .await?;
    Ok(())
}

/// What a batch does to each of its entries.
#[derive(Debug, Clone, Copy)]
enum Each {
    Send,
    Delete,
    ChangeVisibility,
}

/// Runs `each` on every entry of a batch: `{"Successful": [...], "Failed": [...]}`, one
/// entry's failure not stopping the others (as SQS).
async fn batch(inner: &SharedEngine, input: &Input, each: Each) -> Result<Value, SqsError> {
    let queue = existing(inner, input)?;
    let mut successful = Vec::new();
    let mut failed = Vec::new();
    for (id, entry) in input.entries()? {
        let done = match each {
            Each::Send => send(inner, &queue, &entry).await,
            Each::Delete => delete(inner, &queue, &entry).await.map(|()| Map::new()),
            Each::ChangeVisibility => change_visibility(inner, &queue, &entry)
                .await
                .map(|()| Map::new()),
        };
        match done {
            Ok(mut result) => {
                result.insert("Id".into(), id.into());
                successful.push(Value::Object(result));
            }
            Err(e) => failed.push(json!({
                "Id": id,
                "SenderFault": !e.status.is_server_error(),
                "Code": e.query_code,
                "Message": e.message,
            })),
        }
    }
    Ok(json!({ "Successful": successful, "Failed": failed }))
}

fn dead_letter_sources(
    inner: &SharedEngine,
    caller: &Caller,
    input: &Input,
) -> Result<Value, SqsError> {
    let dlq = existing(inner, input)?;
    let sources: Vec<String> = inner.run(|engine, _| {
        Ok(engine
            .names()
            .filter(|name| {
                engine.config(name).is_some_and(|c| {
                    c.max_deliveries.is_some() && dead_letter_queue(name, c) == dlq
                })
            })
            .map(|name| queue_url(&caller.host, name))
            .collect())
    })?;
    Ok(json!({ "queueUrls": sources }))
}

/// `StartMessageMoveTask`: redrive — every dead letter of `SourceArn` back to the queue it
/// came from (`QREDRIVE`, beanstalkd's `kick`), or to `DestinationArn`, done before the
/// reply (`MaxNumberOfMessagesPerSecond` is accepted: there is no rate to keep).
async fn move_messages(
    inner: &SharedEngine,
    caller: &Caller,
    input: &Input,
) -> Result<Value, SqsError> {
    let dlq = queue_of_arn(input.required_str("SourceArn")?)?;
    let to = input.str("DestinationArn")?.map(queue_of_arn).transpose()?;
    input.int("MaxNumberOfMessagesPerSecond", 1..=500)?;
    let exists = |q: &Bytes| inner.run(|engine, _| Ok(engine.exists(q)));
    if !exists(&dlq)? || to.as_ref().map(exists).transpose()? == Some(false) {
        return Err(SqsError::no_queue());
    }
    let moved = inner
        .write(|engine, now| engine.redrive_to(&dlq, to.as_ref(), usize::MAX, now))
        .await?;
    let handle = format!("{}:{moved}", super::wire::queue_arn(&caller.region, &dlq));
    Ok(json!({ "TaskHandle": handle }))
}
