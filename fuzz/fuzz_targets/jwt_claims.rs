//! The broker's reading of a platform answer and its JWT claims.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(token) = broker::jwt::token_from_answer(data) {
        let _ = broker::jwt::read_claims(&token);
        let _ = broker::jwt::usable_claims(&token, 1_700_000_000);
    }
});
