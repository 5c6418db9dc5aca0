//! The proxy's masking of the token in response bodies: however an upstream's body is cut
//! into chunks, the streamed result is the whole body masked at once, of the same length.
#![no_main]
use api_proxy::redact::{Redactor, Secrets};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // [token length][chunk sizes...][0][body]: a token of 16..=64 bytes from the body's start.
    let Some((&len, rest)) = data.split_first() else { return };
    let token_len = 16 + usize::from(len % 49);
    let Some(zero) = rest.iter().position(|&b| b == 0) else { return };
    let (sizes, body) = (&rest[..zero], &rest[zero + 1..]);
    if body.len() < token_len {
        return;
    }
    // Tokens of capitals and digits: an alphabet apart from the mask's ("[redacted]xxx"), so
    // a masked stretch can never be the start of another match.
    let token_bytes = &body[..token_len];
    if !token_bytes.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        return;
    }
    let Ok(token) = std::str::from_utf8(token_bytes) else { return };
    let secrets = Secrets::new(&[token]);
    let mut whole = body.to_vec();
    secrets.mask(&mut whole);
    let mut redactor = Redactor::new(secrets);
    let mut out = Vec::new();
    let mut at = 0;
    for &size in sizes.iter().cycle().take(body.len() + 1) {
        if at >= body.len() {
            break;
        }
        let end = (at + usize::from(size.max(1))).min(body.len());
        out.extend_from_slice(&redactor.push(&body[at..end]));
        at = end;
    }
    out.extend_from_slice(&redactor.push(&body[at..]));
    out.extend_from_slice(&redactor.finish());
    assert_eq!(out.len(), body.len());
    assert_eq!(out, whole, "chunking changed the result");
});
