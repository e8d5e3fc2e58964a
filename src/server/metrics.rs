//! Prometheus metrics: lock-free counters updated on the hot path, rendered as text at
//! `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::protocol::{ClientMsg, ErrorCode, ServerMsg};

#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Everything `/metrics` reports.
#[derive(Debug)]
pub struct Metrics {
    pub connections_open: Gauge,
    pub connections_total: Counter,
    pub rooms_open: Gauge,
    pub members: Gauge,
    pub messages_in: Vec<Counter>,
    pub messages_out: Vec<Counter>,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub errors: Vec<Counter>,
    pub slow_disconnects: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let counters = |n: usize| (0..n).map(|_| Counter::default()).collect();
        Metrics {
            connections_open: Gauge::default(),
            connections_total: Counter::default(),
            rooms_open: Gauge::default(),
            members: Gauge::default(),
            messages_in: counters(ClientMsg::KINDS.len()),
            messages_out: counters(ServerMsg::KINDS.len()),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            errors: counters(ErrorCode::ALL.len()),
            slow_disconnects: Counter::default(),
        }
    }
}

impl Metrics {
    pub fn count_received(&self, msg: &ClientMsg, bytes: usize) {
        self.messages_in[msg.kind_index()].inc();
        self.bytes_in.add(bytes as u64);
    }

    /// One message encoded once and queued for `recipients` connections.
    pub fn count_sent(&self, msg: &ServerMsg, recipients: u64, frame_bytes: u64) {
        self.messages_out[msg.kind_index()].add(recipients);
        self.bytes_out.add(recipients * frame_bytes);
    }

    pub fn count_refusal(&self, code: ErrorCode) {
        self.errors[code as usize].inc();
    }

    /// The Prometheus text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut single = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        single(
            "room_connections_open",
            "gauge",
            "WebSocket connections currently open.",
            self.connections_open.get().to_string(),
        );
        single(
            "room_connections_total",
            "counter",
            "WebSocket connections accepted since start.",
            self.connections_total.get().to_string(),
        );
        single(
            "room_rooms_open",
            "gauge",
            "Rooms with a running task.",
            self.rooms_open.get().to_string(),
        );
        single(
            "room_members",
            "gauge",
            "Connections that are members of a room.",
            self.members.get().to_string(),
        );
        single(
            "room_received_bytes_total",
            "counter",
            "Bytes of client messages received.",
            self.bytes_in.get().to_string(),
        );
        single(
            "room_sent_bytes_total",
            "counter",
            "Bytes of server messages queued for sending.",
            self.bytes_out.get().to_string(),
        );
        single(
            "room_slow_disconnects_total",
            "counter",
            "Connections dropped because their send queue was full.",
            self.slow_disconnects.get().to_string(),
        );
        labelled(
            &mut out,
            "room_messages_received_total",
            "Client messages received, by type.",
            "type",
            ClientMsg::KINDS.iter().copied().zip(&self.messages_in),
        );
        labelled(
            &mut out,
            "room_messages_sent_total",
            "Server messages queued for sending (one per recipient), by type.",
            "type",
            ServerMsg::KINDS.iter().copied().zip(&self.messages_out),
        );
        labelled(
            &mut out,
            "room_errors_total",
            "Requests refused with an error, by code.",
            "code",
            ErrorCode::ALL.iter().map(|c| c.as_str()).zip(&self.errors),
        );
        out
    }
}

fn labelled<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    series: impl Iterator<Item = (&'a str, &'a Counter)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, counter) in series {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {}", counter.get());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{LeaveReason, PeerId};

    #[test]
    fn renders_counters_with_labels() {
        let metrics = Metrics::default();
        metrics.connections_open.inc();
        metrics.count_received(&ClientMsg::Chat { text: "hi".into() }, 30);
        metrics.count_sent(
            &ServerMsg::PeerLeft {
                peer: PeerId(1),
                reason: LeaveReason::Left,
            },
            3,
            40,
        );
        metrics.count_refusal(ErrorCode::RateLimited);
        let text = metrics.render();
        for line in [
            "room_connections_open 1",
            "room_messages_received_total{type=\"chat\"} 1",
            "room_messages_sent_total{type=\"peer_left\"} 3",
            "room_sent_bytes_total 120",
            "room_received_bytes_total 30",
            "room_errors_total{code=\"rate_limited\"} 1",
            "room_errors_total{code=\"name_taken\"} 0",
            "# TYPE room_members gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
