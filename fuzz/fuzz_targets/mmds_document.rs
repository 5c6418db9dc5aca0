//! What roost does with an MMDS answer: the status decision, JSON, then the config.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() >= 2 {
        let status = u16::from_be_bytes([data[0], data[1]]);
        let _ = roost::vm::mmds::next_after(status);
    }
    if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(bytes) = serde_json::to_vec(&doc) {
            let _ = roost::config::parse(&bytes);
        }
    }
});
