//! An emulated network link between one synthetic participant and the server: a rate limit
//! with a router's queue, random loss and a fixed delay, each way, switched on for a while.
//! Sans-IO: datagrams and the time go in, datagrams come out when they are due.
//!
//! It stands in for `tc netem`, which this machine's kernel is built without
//! (`CONFIG_NET_SCH_NETEM` is not set); the server cannot tell the difference, since all it
//! sees is what arrives, when, and the receiver's reports of the same.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What the link does while it is impaired.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkShape {
    /// What the link carries towards the participant; zero means no limit.
    pub bits_per_second: u64,
    /// Share of datagrams lost, each way, from 0 to 1.
    pub loss: f64,
    /// Added to every datagram, each way.
    pub delay: Duration,
}

/// When the link is impaired: from `from` until `until`.
#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    pub from: Instant,
    pub until: Instant,
    pub shape: LinkShape,
}

/// Longest a datagram waits in the downlink's queue behind others before it is dropped, as a
/// router's buffer would (about 60 KB at 1 Mbit/s).
const QUEUE_LIMIT: Duration = Duration::from_millis(500);

/// Datagrams in flight each way, in order.
pub struct Link {
    impairment: Option<Impairment>,
    /// When the downlink has sent everything queued so far.
    busy_until: Option<Instant>,
    incoming: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    outgoing: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    random: u64,
    pub dropped: u64,
}

impl Link {
    pub fn new(impairment: Option<Impairment>, seed: u64) -> Link {
        Link {
            impairment,
            busy_until: None,
            incoming: VecDeque::new(),
            outgoing: VecDeque::new(),
            // xorshift must not start at zero.
            random: seed | 1,
            dropped: 0,
        }
    }

    fn shape(&self, now: Instant) -> Option<LinkShape> {
        self.impairment
            .filter(|i| now >= i.from && now < i.until)
            .map(|i| i.shape)
    }

    /// A fraction in [0, 1); xorshift64, enough for dropping datagrams at random.
    fn next_random(&mut self) -> f64 {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        (self.random >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether the impaired link loses the next datagram (counted if so).
    fn loses(&mut self, shape: LinkShape) -> bool {
        let lost = self.next_random() < shape.loss;
        self.dropped += u64::from(lost);
        lost
    }

    /// Queues a datagram due at `due`, but never ahead of one already in flight: a link
    /// keeps order.
    fn enqueue(
        queue: &mut VecDeque<(Instant, SocketAddr, Vec<u8>)>,
        due: Instant,
        address: SocketAddr,
        contents: Vec<u8>,
    ) {
        let due = queue.back().map_or(due, |&(last, ..)| due.max(last));
        queue.push_back((due, address, contents));
    }

    /// A datagram from the server reached the participant's socket.
    pub fn arrive(&mut self, now: Instant, source: SocketAddr, contents: Vec<u8>) {
        let mut due = now;
        if let Some(shape) = self.shape(now) {
            if self.loses(shape) {
                return;
            }
            if shape.bits_per_second > 0 {
                let start = self.busy_until.map_or(now, |busy| busy.max(now));
                if start.saturating_duration_since(now) > QUEUE_LIMIT {
                    self.dropped += 1;
                    return;
                }
                let sending = Duration::from_secs_f64(
                    contents.len() as f64 * 8.0 / shape.bits_per_second as f64,
                );
                self.busy_until = Some(start + sending);
                due = start + sending;
            }
            due += shape.delay;
        }
        Self::enqueue(&mut self.incoming, due, source, contents);
    }

    /// The participant sends a datagram to the server.
    pub fn depart(&mut self, now: Instant, destination: SocketAddr, contents: Vec<u8>) {
        let mut due = now;
        if let Some(shape) = self.shape(now) {
            if self.loses(shape) {
                return;
            }
            due += shape.delay;
        }
        Self::enqueue(&mut self.outgoing, due, destination, contents);
    }

    /// The next datagram from the server the participant gets by `now`.
    pub fn delivered(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        Self::pop_due(&mut self.incoming, now)
    }

    /// The next datagram to the server due to leave by `now`.
    pub fn sent(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        Self::pop_due(&mut self.outgoing, now)
    }

    fn pop_due(
        queue: &mut VecDeque<(Instant, SocketAddr, Vec<u8>)>,
        now: Instant,
    ) -> Option<(SocketAddr, Vec<u8>)> {
        if queue.front().is_some_and(|&(due, ..)| due <= now) {
            queue
                .pop_front()
                .map(|(_, address, contents)| (address, contents))
        } else {
            None
        }
    }

    /// When the next datagram is due either way.
    pub fn next_due(&self) -> Option<Instant> {
        let first = |queue: &VecDeque<(Instant, SocketAddr, Vec<u8>)>| queue.front().map(|f| f.0);
        match (first(&self.incoming), first(&self.outgoing)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    #[test]
    fn an_unimpaired_link_delivers_at_once_and_in_order() {
        let now = Instant::now();
        let mut link = Link::new(None, 7);
        link.arrive(now, addr(), vec![1]);
        link.arrive(now, addr(), vec![2]);
        link.depart(now, addr(), vec![3]);
        assert_eq!(link.delivered(now).unwrap().1, [1]);
        assert_eq!(link.delivered(now).unwrap().1, [2]);
        assert_eq!(link.sent(now).unwrap().1, [3]);
        assert_eq!(link.next_due(), None);
    }

    #[test]
    fn an_impaired_link_limits_the_rate_delays_and_loses_about_its_share() {
        let start = Instant::now();
        let shape = LinkShape {
            bits_per_second: 1_000_000,
            loss: 0.03,
            delay: Duration::from_millis(80),
        };
        let impairment = Impairment {
            from: start,
            until: start + Duration::from_secs(60),
            shape,
        };
        let mut link = Link::new(Some(impairment), 42);
        // 2 Mbit/s offered for 10 s in 1,250-byte datagrams (200 a second).
        let mut delivered = 0usize;
        for i in 0..2_000u64 {
            let now = start + Duration::from_millis(i * 5);
            link.arrive(now, addr(), vec![0; 1_250]);
            while let Some((_, contents)) = link.delivered(now) {
                delivered += contents.len();
            }
        }
        // About 1 Mbit/s got through the 10 s (the rest queued or dropped).
        let bits = delivered as f64 * 8.0;
        assert!((8.5e6..=10.5e6).contains(&bits), "{bits} bits in 10 s");
        assert!(link.dropped > 600, "{} dropped", link.dropped);
        // Nothing comes before its delay (and its time on the link: 0.8 ms for 100 bytes).
        let lossless = Impairment {
            shape: LinkShape { loss: 0.0, ..shape },
            ..impairment
        };
        let mut fresh = Link::new(Some(lossless), 1);
        fresh.arrive(start, addr(), vec![0; 100]);
        assert!(fresh.delivered(start + Duration::from_millis(79)).is_none());
        assert!(fresh.delivered(start + Duration::from_millis(81)).is_some());
        // Loss alone (no rate limit): about 3% of 10,000.
        let lossy = Impairment {
            shape: LinkShape {
                bits_per_second: 0,
                ..shape
            },
            ..impairment
        };
        let mut link = Link::new(Some(lossy), 3);
        for _ in 0..10_000 {
            link.depart(start, addr(), vec![0]);
        }
        assert!((200..=400).contains(&link.dropped), "{}", link.dropped);
    }

    #[test]
    fn the_impairment_ends_when_it_says() {
        let start = Instant::now();
        let impairment = Impairment {
            from: start + Duration::from_secs(1),
            until: start + Duration::from_secs(2),
            shape: LinkShape {
                bits_per_second: 0,
                loss: 0.0,
                delay: Duration::from_millis(80),
            },
        };
        let mut link = Link::new(Some(impairment), 5);
        let during = start + Duration::from_millis(1_500);
        link.arrive(during, addr(), vec![1]);
        assert!(link.delivered(during).is_none());
        let after = start + Duration::from_secs(3);
        link.arrive(after, addr(), vec![2]);
        assert_eq!(link.delivered(after).unwrap().1, [1]);
        assert_eq!(link.delivered(after).unwrap().1, [2]);
    }
}
