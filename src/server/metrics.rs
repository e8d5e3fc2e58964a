//! Prometheus metrics through `prometheus-client`: typed label sets, a fan-out latency
//! histogram, and lock-free counters on the hot path (each labelled series is created once at
//! start and kept by index, so counting a message is one atomic add).

use std::fmt;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

use crate::protocol::{ClientMsg, ErrorCode, LinkFailure, ServerMsg};

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `type` label: a message kind, one of `ClientMsg::KINDS` or `ServerMsg::KINDS`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ByType(&'static str);

impl EncodeLabelSet for ByType {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        [("type", self.0)].encode(encoder)
    }
}

/// The `code` label: why a request was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ByCode(ErrorCode);

impl EncodeLabelSet for ByCode {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        [("code", self.0.as_str())].encode(encoder)
    }
}

/// The `reason` label: why the TURN relay refused something, or why a call link failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ByReason(&'static str);

impl EncodeLabelSet for ByReason {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        [("reason", self.0)].encode(encoder)
    }
}

/// Everything `/metrics` reports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub connections_open: Gauge,
    pub connections_total: Counter,
    pub rooms_open: Gauge,
    pub members: Gauge,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub slow_disconnects: Counter,
    pub forbidden_requests: Counter,
    pub refused_tcp_connections: Counter,
    /// Shared with the chat store, which counts into them.
    pub store: super::store::StoreCounters,
    /// Shared with the media task, which counts into them.
    pub media: super::media::MediaCounters,
    /// Shared with the TURN relay's task.
    pub turn: super::turn::TurnCounters,
    /// Shared with the cluster (`--redis-url`); zero on a single node.
    pub cluster: super::cluster::ClusterCounters,
    /// Indexed by `ClientMsg::kind_index`.
    messages_in: Vec<Counter>,
    /// Indexed by `ServerMsg::kind_index`.
    messages_out: Vec<Counter>,
    /// Indexed by `ErrorCode as usize`.
    errors: Vec<Counter>,
    /// Browser-to-browser links given up, indexed by `LinkFailure as usize`.
    links_failed: Vec<Counter>,
    /// From a room request's arrival at the socket to its messages sitting in every
    /// recipient's queue.
    fan_out_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("room");
        let mut add = |name: &str, help: &str, metric: &dyn Registrable| {
            metric.register_in(&mut registry, name, help)
        };
        let connections_open = Gauge::default();
        add(
            "connections_open",
            "WebSocket connections currently open",
            &connections_open,
        );
        let connections_total = Counter::default();
        add(
            "connections",
            "WebSocket connections accepted since start",
            &connections_total,
        );
        let rooms_open = Gauge::default();
        add("rooms_open", "Rooms with a running task", &rooms_open);
        let members = Gauge::default();
        add(
            "members",
            "Connections that are members of a room",
            &members,
        );
        let bytes_in = Counter::default();
        add(
            "received_bytes",
            "Bytes of client messages received",
            &bytes_in,
        );
        let bytes_out = Counter::default();
        add(
            "sent_bytes",
            "Bytes of server messages queued for sending",
            &bytes_out,
        );
        let slow_disconnects = Counter::default();
        add(
            "slow_disconnects",
            "Connections dropped because their send queue was full",
            &slow_disconnects,
        );
        let forbidden_requests = Counter::default();
        add(
            "forbidden_requests",
            "Requests refused with 403: a host not served, or a WebSocket from a foreign origin",
            &forbidden_requests,
        );
        let refused_tcp_connections = Counter::default();
        add(
            "refused_tcp_connections",
            "TCP connections closed at once: over --max-http-connections-per-ip",
            &refused_tcp_connections,
        );
        let store = super::store::StoreCounters::default();
        add(
            "store_failures",
            "Chat store commits that failed (the messages are kept and retried)",
            &store.failures,
        );
        add(
            "store_dropped_messages",
            "Chat messages delivered but never stored: too much was waiting for storage",
            &store.dropped,
        );
        let media = super::media::MediaCounters::default();
        add(
            "sfu_participants",
            "Connections to the forwarding unit (members of calls through the server)",
            &media.participants,
        );
        add(
            "sfu_received_datagrams",
            "UDP datagrams received on the media socket",
            &media.datagrams_in,
        );
        add(
            "sfu_received_bytes",
            "Bytes received on the media socket",
            &media.bytes_in,
        );
        add(
            "sfu_sent_datagrams",
            "UDP datagrams sent from the media socket",
            &media.datagrams_out,
        );
        add(
            "sfu_sent_bytes",
            "Bytes sent from the media socket",
            &media.bytes_out,
        );
        add(
            "sfu_forwarded_packets",
            "Audio and video RTP packets written to a receiving participant",
            &media.packets_forwarded,
        );
        add(
            "sfu_keyframe_requests",
            "Keyframe requests (PLI) sent to publishing participants",
            &media.keyframe_requests,
        );
        add(
            "sfu_forwarding_errors",
            "Frames a receiving participant's connection refused (dropped)",
            &media.forwarding_errors,
        );
        add(
            "sfu_layer_switches",
            "Viewers moved to another simulcast layer (tile size, bandwidth) or resumed",
            &media.layer_switches,
        );
        add(
            "sfu_nacks_received",
            "Retransmission requests (NACK) from receiving participants",
            &media.nacks_received,
        );
        add(
            "sfu_nacks_sent",
            "Retransmission requests (NACK) sent to publishing participants",
            &media.nacks_sent,
        );
        add(
            "sfu_speaker_changes",
            "Changes of a room's active speaker",
            &media.speaker_changes,
        );
        add(
            "sfu_silence_dropped",
            "Microphone frames of silence not forwarded",
            &media.silence_dropped,
        );
        add(
            "sfu_withheld_dropped",
            "Frames of a microphone, camera or screen a host turned off, not forwarded",
            &media.withheld_dropped,
        );
        add(
            "sfu_recovery_probes",
            "Bandwidth estimates started over for viewers held below what their tiles want",
            &media.recovery_probes,
        );
        add(
            "sfu_mids_redrawn",
            "Offers whose new sections str0m gave a repeated mid, drawn again",
            &media.mids_redrawn,
        );
        add(
            "sfu_unknown_datagrams",
            "Datagrams from an address no participant uses, naming nobody either (dropped)",
            &media.unknown_datagrams,
        );
        let received = Family::<ByType, Counter>::default();
        add(
            "messages_received",
            "Client messages received, by type",
            &received,
        );
        let sent = Family::<ByType, Counter>::default();
        add(
            "messages_sent",
            "Server messages queued for sending (one per recipient), by type",
            &sent,
        );
        let refused = Family::<ByCode, Counter>::default();
        add(
            "errors",
            "Requests refused with an error, by code",
            &refused,
        );
        let links_failed = Family::<ByReason, Counter>::default();
        add(
            "call_links_failed",
            "Browser-to-browser call links given up, by reason (never_connected: the two networks had no path; a relay is missing or blocked)",
            &links_failed,
        );
        let turn = super::turn::TurnCounters::new();
        add(
            "turn_allocations_open",
            "Relay allocations the built-in TURN relay holds",
            &turn.allocations,
        );
        add(
            "turn_allocations",
            "Relay allocations made since start",
            &turn.allocations_total,
        );
        add(
            "turn_relayed_to_peers_bytes",
            "Bytes the TURN relay sent from relay sockets on behalf of its clients",
            &turn.bytes_to_peers,
        );
        add(
            "turn_relayed_to_clients_bytes",
            "Bytes the TURN relay passed from peers to its clients",
            &turn.bytes_to_clients,
        );
        add(
            "turn_tcp_connections",
            "TCP connections open to the TURN relay",
            &turn.tcp_connections,
        );
        let turn_refused = Family::<ByReason, Counter>::default();
        add(
            "turn_refused",
            "TURN requests or relayed packets refused, by reason",
            &turn_refused,
        );
        let turn = super::turn::TurnCounters {
            refused: series(
                &turn_refused,
                crate::turn::server::Refusal::ALL
                    .iter()
                    .map(|r| ByReason(r.as_str())),
            ),
            ..turn
        };
        let cluster = super::cluster::ClusterCounters::default();
        add(
            "cluster_relayed_up",
            "Frames of browsers connected here relayed to the nodes running their rooms",
            &cluster.relayed_up,
        );
        add(
            "cluster_relayed_down",
            "Frames of rooms running here relayed to their browsers connected to other nodes",
            &cluster.relayed_down,
        );
        add(
            "cluster_owned_rooms",
            "Rooms whose ownership lease this node holds",
            &cluster.owned_rooms,
        );
        add(
            "cluster_redis_up",
            "1 while this node's connections to Redis are up",
            &cluster.redis_up,
        );
        add(
            "cluster_lease_conflicts",
            "Rooms found running here while another node held their lease",
            &cluster.lease_conflicts,
        );
        add(
            "cluster_refused_unavailable",
            "Joins refused because Redis could not be asked who owns the room",
            &cluster.unavailable,
        );
        add(
            "cluster_unstored_messages",
            "Chat messages delivered but not stored because Redis was unavailable",
            &cluster.unstored,
        );
        add(
            "cluster_redis_round_trip_seconds",
            "Round trips of ownership queries to Redis",
            &cluster.round_trip_seconds,
        );
        // 10 µs to about 1.3 s.
        let fan_out_seconds = Histogram::new(exponential_buckets(0.000_01, 2.0, 18));
        add(
            "fan_out_seconds",
            "From a room request's arrival to its messages queued for every recipient",
            &fan_out_seconds,
        );
        Metrics {
            registry,
            connections_open,
            connections_total,
            rooms_open,
            members,
            bytes_in,
            bytes_out,
            slow_disconnects,
            forbidden_requests,
            refused_tcp_connections,
            store,
            media,
            turn,
            cluster,
            messages_in: series(&received, ClientMsg::KINDS.iter().map(|k| ByType(k))),
            messages_out: series(&sent, ServerMsg::KINDS.iter().map(|k| ByType(k))),
            errors: series(&refused, ErrorCode::ALL.iter().map(|c| ByCode(*c))),
            links_failed: series(
                &links_failed,
                LinkFailure::ALL.iter().map(|r| ByReason(r.as_str())),
            ),
            fan_out_seconds,
        }
    }

    /// A link given up, once per pair (the room forwards only the first side's report).
    pub fn count_link_failed(&self, reason: LinkFailure) {
        self.links_failed[reason as usize].inc();
    }

    pub fn count_received(&self, msg: &ClientMsg, bytes: usize) {
        self.messages_in[msg.kind_index()].inc();
        self.bytes_in.inc_by(bytes as u64);
    }

    /// One message encoded once and queued for `recipients` connections.
    pub fn count_sent(&self, msg: &ServerMsg, recipients: u64, frame_bytes: u64) {
        self.messages_out[msg.kind_index()].inc_by(recipients);
        self.bytes_out.inc_by(recipients * frame_bytes);
    }

    pub fn count_refusal(&self, code: ErrorCode) {
        self.errors[code as usize].inc();
    }

    pub fn observe_fan_out(&self, took: Duration) {
        self.fan_out_seconds.observe(took.as_secs_f64());
    }

    /// The OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A metric registered by a handle that shares its value (prometheus-client's metrics are
/// cheap clones over shared atomics), so one local both counts and is exported.
trait Registrable {
    fn register_in(&self, registry: &mut Registry, name: &str, help: &str);
}

impl<M: Metric + Clone> Registrable for M {
    fn register_in(&self, registry: &mut Registry, name: &str, help: &str) {
        registry.register(name, help, self.clone());
    }
}

/// Creates every labelled series of `family` up front (so each shows 0 from the start) and
/// returns them in order; they share their value with the family.
fn series<L>(family: &Family<L, Counter>, labels: impl Iterator<Item = L>) -> Vec<Counter>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + fmt::Debug,
{
    labels
        .map(|label| family.get_or_create(&label).clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{LeaveReason, PeerId};

    #[test]
    fn renders_counters_with_labels_and_the_histogram() {
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
        metrics.observe_fan_out(Duration::from_micros(15));
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
            "room_fan_out_seconds_count 1",
            "room_fan_out_seconds_bucket{le=\"0.00002\"} 1",
            "room_fan_out_seconds_bucket{le=\"0.00001\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
