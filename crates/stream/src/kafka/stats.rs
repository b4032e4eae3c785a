//! What the Kafka listener counts, for `INFO stream` (Redis's names where Redis counts
//! the same thing for its own port).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::request_buffer::RequestMemory;

#[derive(Debug)]
pub struct KafkaStats {
    pub connected_clients: AtomicUsize,
    pub total_connections_received: AtomicU64,
    pub total_net_input_bytes: AtomicU64,
    /// Connections closed for a request too large, a size no request has, or partial
    /// requests over `--kafka-max-buffered-request-bytes`.
    pub rejected_requests: AtomicU64,
    /// Failed SASL attempts, and connections that sent another API before authenticating.
    pub auth_failures: AtomicU64,
    /// The memory partial requests hold, and its limit.
    pub buffered_requests: RequestMemory,
}

impl KafkaStats {
    pub fn new(max_buffered_request_bytes: usize) -> KafkaStats {
        KafkaStats {
            connected_clients: AtomicUsize::new(0),
            total_connections_received: AtomicU64::new(0),
            total_net_input_bytes: AtomicU64::new(0),
            rejected_requests: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            buffered_requests: RequestMemory::new(max_buffered_request_bytes),
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// `(name, value)` pairs for `INFO stream`.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            (
                "kafka_connected_clients",
                self.connected_clients.load(Ordering::Relaxed) as u64,
            ),
            (
                "kafka_total_connections_received",
                get(&self.total_connections_received),
            ),
            (
                "kafka_total_net_input_bytes",
                get(&self.total_net_input_bytes),
            ),
            (
                "kafka_buffered_request_bytes",
                self.buffered_requests.held() as u64,
            ),
            ("kafka_rejected_requests", get(&self.rejected_requests)),
            ("kafka_auth_failures", get(&self.auth_failures)),
        ]
    }
}
