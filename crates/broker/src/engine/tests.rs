//! Engine rules, each walked through with a controlled clock.

use super::*;
use crate::journal::MemoryJournal;

fn engine() -> Engine<MemoryJournal> {
    Engine::new(MemoryJournal::default(), 1)
}

fn q(name: &str) -> Bytes {
    Bytes::copy_from_slice(name.as_bytes())
}

fn send(e: &mut Engine<MemoryJournal>, queue: &str, body: &str, now: Millis) -> MessageId {
    e.send(
        &q(queue),
        Bytes::copy_from_slice(body.as_bytes()),
        SendOptions::default(),
        now,
    )
    .unwrap()
}

fn bodies(deliveries: &[Delivery]) -> Vec<&[u8]> {
    deliveries.iter().map(|d| d.payload.as_ref()).collect()
}

#[test]
fn fifo_and_a_received_message_is_invisible_to_others() {
    let mut e = engine();
    for body in ["a", "b", "c"] {
        send(&mut e, "jobs", body, 0);
    }
    let first = e.receive(&q("jobs"), 2, None, 0).unwrap();
    assert_eq!(bodies(&first), [b"a", b"b"]);
    assert_eq!(first[0].deliveries, 1);
    let second = e.receive(&q("jobs"), 10, None, 0).unwrap();
    assert_eq!(bodies(&second), [b"c"]);
    assert!(e.receive(&q("jobs"), 10, None, 0).unwrap().is_empty());
    let stats = e.stats(&q("jobs"), 0).unwrap();
    assert_eq!(
        (stats.ready, stats.in_flight, stats.counters.sent),
        (0, 3, 3)
    );
}

#[test]
fn an_expired_delivery_comes_back_and_its_receipt_is_stale() {
    let mut e = engine();
    e.configure(&q("jobs"), |c| c.visibility = 1000).unwrap();
    send(&mut e, "jobs", "video-1", 0);
    let slow = e.receive(&q("jobs"), 1, None, 0).unwrap().remove(0);
    assert!(e.receive(&q("jobs"), 1, None, 999).unwrap().is_empty());
    // The lease ends at 1000: another worker gets the message, as delivery 2.
    let fast = e.receive(&q("jobs"), 1, None, 1000).unwrap().remove(0);
    assert_eq!((fast.id, fast.deliveries), (slow.id, 2));
    assert_ne!(fast.receipt, slow.receipt);
    // The slow worker finishes late: its ack must not delete the message the fast one holds.
    assert_eq!(
        e.ack(&q("jobs"), &slow.receipt, 1500),
        Err(Error::Stale(Stale::Superseded))
    );
    e.ack(&q("jobs"), &fast.receipt, 1500).unwrap();
    // Acked: every receipt is now stale, and the queue is empty.
    assert_eq!(
        e.ack(&q("jobs"), &fast.receipt, 1500),
        Err(Error::Stale(Stale::NotInFlight))
    );
    let stats = e.stats(&q("jobs"), 1500).unwrap();
    assert_eq!(
        (
            stats.ready + stats.in_flight,
            stats.counters.acked,
            stats.counters.redelivered
        ),
        (0, 1, 1)
    );
    assert_eq!(stats.counters.timed_out, 1);
}

#[test]
fn an_ack_at_the_deadline_is_too_late() {
    let mut e = engine();
    send(&mut e, "jobs", "x", 0);
    let d = e.receive(&q("jobs"), 1, Some(100), 0).unwrap().remove(0);
    assert!(e.ack(&q("jobs"), &d.receipt, 100).is_err());
}

#[test]
fn extend_is_a_heartbeat() {
    let mut e = engine();
    send(&mut e, "jobs", "long", 0);
    let d = e.receive(&q("jobs"), 1, Some(1000), 0).unwrap().remove(0);
    e.extend(&q("jobs"), &d.receipt, 1000, 900).unwrap();
    e.extend(&q("jobs"), &d.receipt, 1000, 1800).unwrap();
    assert!(e.receive(&q("jobs"), 1, None, 2500).unwrap().is_empty());
    e.ack(&q("jobs"), &d.receipt, 2700).unwrap();
    // Extending to 0 gives the message back, like SQS.
    send(&mut e, "jobs", "again", 3000);
    let d = e.receive(&q("jobs"), 1, None, 3000).unwrap().remove(0);
    e.extend(&q("jobs"), &d.receipt, 0, 3000).unwrap();
    assert_eq!(e.receive(&q("jobs"), 1, None, 3000).unwrap()[0].id, d.id);
}

#[test]
fn nack_now_or_later() {
    let mut e = engine();
    let id = send(&mut e, "jobs", "x", 0);
    let d = e.receive(&q("jobs"), 1, None, 0).unwrap().remove(0);
    e.nack(&q("jobs"), &d.receipt, 0, 10).unwrap();
    let d = e.receive(&q("jobs"), 1, None, 10).unwrap().remove(0);
    assert_eq!((d.id, d.deliveries), (id, 2));
    e.nack(&q("jobs"), &d.receipt, 500, 20).unwrap();
    assert!(e.receive(&q("jobs"), 1, None, 519).unwrap().is_empty());
    assert_eq!(e.stats(&q("jobs"), 519).unwrap().delayed, 1);
    assert_eq!(
        e.receive(&q("jobs"), 1, None, 520).unwrap()[0].deliveries,
        3
    );
    // A nacked receipt is over.
    assert!(e.nack(&q("jobs"), &d.receipt, 0, 600).is_err());
}

#[test]
fn delays_per_message_and_per_queue() {
    let mut e = engine();
    let later = SendOptions {
        delay: Some(1000),
        ..SendOptions::default()
    };
    e.send(&q("jobs"), q("later"), later, 0).unwrap();
    send(&mut e, "jobs", "now", 0);
    assert_eq!(
        bodies(&e.receive(&q("jobs"), 10, None, 0).unwrap()),
        [b"now"]
    );
    assert_eq!(e.next_due(&q("jobs")), Some(1000));
    assert!(e.receive(&q("jobs"), 10, None, 999).unwrap().is_empty());
    assert_eq!(
        bodies(&e.receive(&q("jobs"), 10, None, 1000).unwrap()),
        [b"later"]
    );

    e.configure(&q("slow"), |c| c.delay = 200).unwrap();
    send(&mut e, "slow", "x", 0);
    assert!(e.receive(&q("slow"), 1, None, 199).unwrap().is_empty());
    assert_eq!(e.receive(&q("slow"), 1, None, 200).unwrap().len(), 1);
}

#[test]
fn priorities_first_then_fifo() {
    let mut e = engine();
    let with = |priority| SendOptions {
        priority,
        ..SendOptions::default()
    };
    e.send(&q("jobs"), q("low-1"), with(2000), 0).unwrap();
    e.send(&q("jobs"), q("normal-1"), with(1024), 0).unwrap();
    e.send(&q("jobs"), q("urgent"), with(0), 0).unwrap();
    e.send(&q("jobs"), q("normal-2"), with(1024), 0).unwrap();
    e.send(&q("jobs"), q("low-2"), with(2000), 0).unwrap();
    let order = e.receive(&q("jobs"), 10, None, 0).unwrap();
    assert_eq!(
        bodies(&order),
        [&b"urgent"[..], b"normal-1", b"normal-2", b"low-1", b"low-2"]
    );
    // A message that comes back keeps its place: ahead of newer ones of its priority.
    let normal_1 = &order[1];
    e.send(&q("jobs"), q("normal-3"), with(1024), 1).unwrap();
    e.nack(&q("jobs"), &normal_1.receipt, 0, 1).unwrap();
    assert_eq!(
        bodies(&e.receive(&q("jobs"), 10, None, 1).unwrap()),
        [&b"normal-1"[..], b"normal-3"]
    );
}

#[test]
fn dead_letters_after_max_deliveries_and_redrive() {
    let mut e = engine();
    e.configure(&q("jobs"), |c| {
        c.visibility = 100;
        c.max_deliveries = Some(3);
        c.dead_letter = Some(q("poison"));
    })
    .unwrap();
    let id = send(&mut e, "jobs", "bad video", 0);
    // Delivery 1 times out, delivery 2 is nacked, delivery 3 times out: dead.
    e.receive(&q("jobs"), 1, None, 0).unwrap();
    let d2 = e.receive(&q("jobs"), 1, None, 100).unwrap().remove(0);
    e.nack(&q("jobs"), &d2.receipt, 0, 150).unwrap();
    let d3 = e.receive(&q("jobs"), 1, None, 150).unwrap().remove(0);
    assert_eq!(d3.deliveries, 3);
    assert!(e.receive(&q("jobs"), 1, None, 250).unwrap().is_empty());
    let jobs = e.stats(&q("jobs"), 250).unwrap();
    assert_eq!(
        (jobs.ready, jobs.in_flight, jobs.counters.dead_lettered),
        (0, 0, 1)
    );
    assert!(e.take_woken().contains(&q("poison")));
    let dead = e.peek(&q("poison"), 10, 250).unwrap();
    assert_eq!((dead[0].id, dead[0].deliveries), (id, 3));
    assert_eq!(dead[0].origin.as_deref(), Some(&b"jobs"[..]));

    // Fixed the bug: send it back, as good as new.
    assert_eq!(e.redrive(&q("poison"), usize::MAX, 300).unwrap(), 1);
    assert_eq!(e.stats(&q("poison"), 300).unwrap().ready, 0);
    let again = e.receive(&q("jobs"), 1, None, 300).unwrap().remove(0);
    assert_eq!((again.id, again.deliveries), (id, 1));
    e.ack(&q("jobs"), &again.receipt, 301).unwrap();
}

#[test]
fn default_dead_letter_queue_and_redrive_count() {
    let mut e = engine();
    e.configure(&q("jobs"), |c| c.max_deliveries = Some(1))
        .unwrap();
    for body in ["a", "b", "c"] {
        send(&mut e, "jobs", body, 0);
    }
    for d in e.receive(&q("jobs"), 3, None, 0).unwrap() {
        e.nack(&q("jobs"), &d.receipt, 0, 0).unwrap();
    }
    assert_eq!(e.stats(&q("jobs:dlq"), 0).unwrap().ready, 3);
    assert_eq!(e.redrive(&q("jobs:dlq"), 2, 0).unwrap(), 2);
    assert_eq!(
        bodies(&e.receive(&q("jobs"), 10, None, 0).unwrap()),
        [b"a", b"b"]
    );
    assert_eq!(
        e.configure(&q("x"), |c| c.dead_letter = Some(q("x"))),
        Err(Error::Invalid(
            "a queue cannot be its own dead-letter queue".into()
        ))
    );
}

#[test]
fn retention_deletes_old_messages() {
    let mut e = engine();
    e.configure(&q("jobs"), |c| c.retention = 1000).unwrap();
    send(&mut e, "jobs", "old", 0);
    send(&mut e, "jobs", "new", 500);
    e.receive(&q("jobs"), 1, None, 600).unwrap();
    let stats = e.stats(&q("jobs"), 1000).unwrap();
    assert_eq!(
        (stats.ready, stats.in_flight, stats.counters.expired),
        (1, 0, 1)
    );
}

#[test]
fn size_limit_unknown_queues_purge_and_delete() {
    let mut e = engine();
    e.configure(&q("small"), |c| c.max_size = 4).unwrap();
    send(&mut e, "small", "1234", 0);
    assert_eq!(
        e.send_batch(
            &q("small"),
            vec![q("ok"), q("12345")],
            SendOptions::default(),
            0
        ),
        Err(Error::TooLarge { size: 5, max: 4 })
    );
    assert_eq!(
        e.stats(&q("small"), 0).unwrap().counters.sent,
        1,
        "all or nothing"
    );
    let receipt = Receipt {
        message: 1,
        delivery: 1,
        nonce: 0,
    };
    assert_eq!(
        e.ack(&q("nope"), &receipt, 0),
        Err(Error::NoQueue(q("nope")))
    );
    e.receive(&q("small"), 1, None, 0).unwrap();
    send(&mut e, "small", "2", 0);
    assert_eq!(e.purge(&q("small"), 0).unwrap(), 2);
    assert!(e.delete(&q("small")).unwrap());
    assert!(!e.delete(&q("small")).unwrap());
    assert_eq!(e.names().count(), 0);
}

#[test]
fn released_deliveries_come_back_at_once() {
    let mut e = engine();
    send(&mut e, "jobs", "x", 0);
    let d = e.receive(&q("jobs"), 1, None, 0).unwrap().remove(0);
    e.take_woken();
    e.release(&[(q("jobs"), d.receipt)], 5).unwrap();
    assert_eq!(e.take_woken(), [q("jobs")]);
    let again = e.receive(&q("jobs"), 1, None, 5).unwrap().remove(0);
    // Releasing a receipt that is no longer current does nothing.
    e.release(&[(q("jobs"), d.receipt)], 6).unwrap();
    assert!(e.is_current(&q("jobs"), &again.receipt, 6));
    assert_eq!(e.stats(&q("jobs"), 6).unwrap().counters.released, 1);
}

#[test]
fn restore_keeps_or_releases_leases() {
    let mut source = engine();
    send(&mut source, "jobs", "x", 0);
    let d = source
        .receive(&q("jobs"), 1, Some(1000), 0)
        .unwrap()
        .remove(0);
    let message = source.peek_in_flight(&q("jobs"), d.id);
    for (release, visible) in [(false, false), (true, true)] {
        let mut e = engine();
        e.restore(
            vec![(q("jobs"), QueueConfig::default())],
            vec![(q("jobs"), message.clone())],
            release,
            10,
        )
        .unwrap();
        assert_eq!(
            e.receive(&q("jobs"), 1, None, 10).unwrap().len() == 1,
            visible
        );
        if !release {
            // The lease survived: the holder can still ack, and after the deadline the
            // message would have come back.
            assert!(e.is_current(&q("jobs"), &d.receipt, 10));
        }
    }
}

impl<J: Journal> Engine<J> {
    fn peek_in_flight(&self, name: &Bytes, id: MessageId) -> Message {
        self.queues[name].get(id).unwrap().clone()
    }
}

/// A FIFO queue's send to `group`, deduplicated by `dedup`.
fn send_fifo(
    e: &mut Engine<MemoryJournal>,
    body: &str,
    group: &str,
    dedup: &str,
    now: Millis,
) -> MessageId {
    let options = SendOptions {
        group: Some(q(group)),
        deduplication_id: Some(q(dedup)),
        ..SendOptions::default()
    };
    e.send(&q("orders.fifo"), q(body), options, now).unwrap()
}

#[test]
fn a_fifo_group_is_blocked_while_one_of_its_messages_is_in_flight() {
    let mut e = engine();
    e.configure(&q("orders.fifo"), |c| {
        c.fifo = Some(crate::fifo::FifoQueue::default());
        c.visibility = 1000;
    })
    .unwrap();
    for (body, group) in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("a3", "a")] {
        send_fifo(&mut e, body, group, body, 0);
    }
    let first = e.receive(&q("orders.fifo"), 1, None, 0).unwrap();
    assert_eq!(bodies(&first), [b"a1"]);
    // Group a is blocked while a1 is in flight: the next consumer gets group b.
    let second = e.receive(&q("orders.fifo"), 10, None, 0).unwrap();
    assert_eq!(bodies(&second), [b"b1"]);
    assert!(
        e.receive(&q("orders.fifo"), 10, None, 0)
            .unwrap()
            .is_empty()
    );
    e.ack(&q("orders.fifo"), &second[0].receipt, 500).unwrap();
    // a1 times out: it comes back first, before a2, and blocks the group again.
    let again = e.receive(&q("orders.fifo"), 10, None, 1000).unwrap();
    assert_eq!(bodies(&again), [b"a1", b"a2", b"a3"]);
    assert_eq!(again[0].deliveries, 2);
    for d in &again[..2] {
        e.ack(&q("orders.fifo"), &d.receipt, 1001).unwrap();
    }
    // a3 is still in flight: group a stays blocked.
    assert!(
        e.receive(&q("orders.fifo"), 10, None, 1001)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_fifo_send_with_a_seen_deduplication_id_adds_nothing_for_five_minutes() {
    let mut e = engine();
    e.configure(&q("orders.fifo"), |c| {
        c.fifo = Some(crate::fifo::FifoQueue::default())
    })
    .unwrap();
    let first = send_fifo(&mut e, "x", "g", "order-1", 0);
    assert_eq!(send_fifo(&mut e, "x", "g", "order-1", 1000), first);
    // Received and acknowledged: still a duplicate within the window.
    let got = e.receive(&q("orders.fifo"), 10, None, 2000).unwrap();
    assert_eq!(got.len(), 1);
    e.ack(&q("orders.fifo"), &got[0].receipt, 2000).unwrap();
    assert_eq!(send_fifo(&mut e, "x", "g", "order-1", 3000), first);
    assert_eq!(e.stats(&q("orders.fifo"), 3000).unwrap().ready, 0);
    let later = send_fifo(&mut e, "x", "g", "order-1", crate::fifo::DEDUP_WINDOW);
    assert!(later > first, "past the window it is a new message");
    // A standard queue ignores deduplication ids.
    let options = SendOptions {
        deduplication_id: Some(q("d")),
        ..SendOptions::default()
    };
    let a = e.send(&q("plain"), q("x"), options.clone(), 0).unwrap();
    assert_ne!(e.send(&q("plain"), q("x"), options, 0).unwrap(), a);
}
