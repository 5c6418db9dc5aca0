//! The control API's JSON bodies and the WebSocket first frame.
#![no_main]
use roost::control::protocol::{ExecRequest, SignalRequest, WsInit, WsResize};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<SignalRequest>(data);
    let _ = serde_json::from_slice::<ExecRequest>(data);
    let _ = serde_json::from_slice::<WsInit>(data);
    let _ = serde_json::from_slice::<WsResize>(data);
});
