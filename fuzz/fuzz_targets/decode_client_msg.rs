//! Decoding client frames: any bytes either fail to decode or decode to a message that
//! survives a round trip through its own encoding. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use room::protocol::ClientMsg;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = serde_json::from_slice::<ClientMsg>(data) {
        let again: ClientMsg =
            serde_json::from_str(&msg.to_json()).expect("an encoded message decodes");
        assert_eq!(again, msg);
        let _ = msg.kind();
    }
});
