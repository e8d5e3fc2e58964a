//! Drives the room logic with arbitrary sequences of joins, leaves, dropped connections,
//! resumes, chat, calls, signaling and time, checking its invariants after every step.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use room::core::simulate::{Op, Simulation};

#[derive(Arbitrary, Debug)]
enum FuzzOp {
    Join { peer: u8, name: String, resume_of: Option<u8>, last_seen: Option<u8> },
    Leave { peer: u8 },
    Disconnect { peer: u8 },
    Chat { peer: u8, text: String },
    JoinCall { peer: u8, mic: bool, camera: bool },
    LeaveCall { peer: u8 },
    Media { peer: u8, mic: bool, camera: bool },
    Signal { from: u8, to: u8 },
    Hand { peer: u8, raised: bool },
    React { peer: u8, emoji: String },
    Wait { ms: u16 },
    Expire,
    LoadHistory,
    LoadOlder { peer: u8, before: u8 },
    Announce,
    MediaOffer { peer: u8 },
}

impl From<FuzzOp> for Op {
    fn from(op: FuzzOp) -> Op {
        // Few distinct peers, so sequences collide on names, seats and tokens.
        let p = |peer: u8| peer % 8;
        match op {
            FuzzOp::Join { peer, name, resume_of, last_seen } => Op::Join {
                peer: p(peer),
                name,
                resume_of: resume_of.map(p),
                last_seen: last_seen.map(u64::from),
            },
            FuzzOp::Leave { peer } => Op::Leave { peer: p(peer) },
            FuzzOp::Disconnect { peer } => Op::Disconnect { peer: p(peer) },
            FuzzOp::Chat { peer, text } => Op::Chat { peer: p(peer), text },
            FuzzOp::JoinCall { peer, mic, camera } => Op::JoinCall { peer: p(peer), mic, camera },
            FuzzOp::LeaveCall { peer } => Op::LeaveCall { peer: p(peer) },
            FuzzOp::Media { peer, mic, camera } => Op::Media { peer: p(peer), mic, camera },
            FuzzOp::Signal { from, to } => Op::Signal { from: p(from), to: p(to) },
            FuzzOp::Hand { peer, raised } => Op::Hand { peer: p(peer), raised },
            FuzzOp::React { peer, emoji } => Op::React { peer: p(peer), emoji },
            FuzzOp::Wait { ms } => Op::Wait { ms: u32::from(ms) * 8 },
            FuzzOp::Expire => Op::Expire,
            FuzzOp::LoadHistory => Op::LoadHistory,
            FuzzOp::LoadOlder { peer, before } => Op::LoadOlder { peer: p(peer), before: u64::from(before) },
            FuzzOp::Announce => Op::Announce,
            FuzzOp::MediaOffer { peer } => Op::MediaOffer { peer: p(peer) },
        }
    }
}

fuzz_target!(|ops: Vec<FuzzOp>| {
    let mut simulation = Simulation::new();
    for op in ops {
        let op = Op::from(op);
        if let Err(broken) = simulation.apply(&op) {
            panic!("{broken}");
        }
    }
});
