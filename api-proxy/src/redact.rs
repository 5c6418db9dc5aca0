//! Keeping the platform token out of every answer: response headers that carry it are
//! dropped ([`crate::headers::sanitize_response`]), and a response body is passed through
//! [`RedactedBody`], which masks every occurrence of it, also one split across chunks.
//!
//! The secrets are the configured token, the token actually sent (attenuated, when
//! `Api.Attenuate` is on), and each comma-separated macaroon of either (a platform quoting
//! one part of a bundle quotes a secret too). The mask has the secret's length, so a
//! `Content-Length` stays true.

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Shortest part of a token bundle that is searched for on its own: shorter parts are
/// scheme prefixes and separators, not secrets.
const MIN_PART: usize = 16;

/// The byte strings no answer may carry.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// One substring searcher per secret, built once: masking runs on every chunk of every
    /// response body.
    finders: Vec<memchr::memmem::Finder<'static>>,
    longest: usize,
}

impl Secrets {
    pub fn new(tokens: &[&str]) -> Self {
        let mut needles: Vec<Vec<u8>> = Vec::new();
        for token in tokens.iter().filter(|t| !t.is_empty()) {
            needles.push(token.as_bytes().to_vec());
            for part in token.split(',').map(str::trim) {
                if part.len() >= MIN_PART && part.len() < token.len() {
                    needles.push(part.as_bytes().to_vec());
                }
            }
        }
        needles.sort();
        needles.dedup();
        let longest = needles.iter().map(Vec::len).max().unwrap_or(0);
        let finders = needles
            .iter()
            .map(|n| memchr::memmem::Finder::new(n).into_owned())
            .collect();
        Secrets { finders, longest }
    }

    /// Whether any secret occurs in `bytes`.
    pub fn occurs_in(&self, bytes: &[u8]) -> bool {
        self.finders.iter().any(|f| f.find(bytes).is_some())
    }

    /// Masks every occurrence in place; returns how many were masked.
    pub fn mask(&self, bytes: &mut [u8]) -> usize {
        let mut masked = 0;
        for finder in &self.finders {
            let len = finder.needle().len();
            let mut from = 0;
            while let Some(at) = finder.find(&bytes[from..]) {
                let start = from + at;
                write_mask(&mut bytes[start..start + len]);
                masked += 1;
                from = start + len;
            }
        }
        masked
    }
}

/// `[redacted]xxxx…` of the secret's own length.
fn write_mask(slot: &mut [u8]) {
    const LABEL: &[u8] = b"[redacted]";
    for (i, b) in slot.iter_mut().enumerate() {
        *b = LABEL.get(i).copied().unwrap_or(b'x');
    }
}

/// The streaming part of the masking, without a body around it: feed chunks, get out what
/// is certain not to be the start of a secret. Holds back the last `longest - 1` bytes until
/// the next chunk (or the end), so a secret split across chunks is still found.
#[derive(Debug, Clone)]
pub struct Redactor {
    secrets: Secrets,
    held: BytesMut,
    /// How many occurrences were masked.
    pub masked: usize,
}

impl Redactor {
    pub fn new(secrets: Secrets) -> Self {
        Redactor {
            secrets,
            held: BytesMut::new(),
            masked: 0,
        }
    }

    /// Takes the next chunk; returns what can be passed on now (possibly nothing).
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        self.held.extend_from_slice(chunk);
        self.masked += self.secrets.mask(&mut self.held);
        let keep = self.secrets.longest.saturating_sub(1).min(self.held.len());
        let ready = self.held.len() - keep;
        self.held.split_to(ready).freeze()
    }

    /// The end: what was held back, masked.
    pub fn finish(&mut self) -> Bytes {
        self.masked += self.secrets.mask(&mut self.held);
        self.held.split().freeze()
    }

    fn held(&self) -> usize {
        self.held.len()
    }
}

/// A body with every secret masked (see [`Redactor`]).
#[derive(Debug)]
pub struct RedactedBody<B> {
    inner: B,
    redactor: Redactor,
    done: bool,
}

impl<B> RedactedBody<B> {
    pub fn new(inner: B, secrets: Secrets) -> Self {
        RedactedBody {
            inner,
            redactor: Redactor::new(secrets),
            done: false,
        }
    }
}

impl<B> Body for RedactedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        loop {
            if this.done {
                let rest = this.redactor.finish();
                if rest.is_empty() {
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Ok(Frame::data(rest))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.done = true,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    let data = match frame.into_data() {
                        Ok(data) => data,
                        // Trailers pass unchanged (HTTP/1.1 upstreams send none to us).
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    };
                    let out = this.redactor.push(&data);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        (self.done || self.inner.is_end_stream()) && self.redactor.held() == 0
    }

    fn size_hint(&self) -> SizeHint {
        // Masking keeps every length: what is left is what the inner body has left plus
        // what is held back.
        let inner = self.inner.size_hint();
        let held = self.redactor.held() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(held));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(held));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;

    async fn redact_chunks(chunks: Vec<&'static [u8]>, secrets: &Secrets) -> Vec<u8> {
        let stream = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::from_static(c)))),
        );
        RedactedBody::new(StreamBody::new(stream), secrets.clone())
            .collect()
            .await
            .map(|c| c.to_bytes().to_vec())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn masks_secrets_split_across_any_chunks() {
        let token = "fm2_aaaaaaaaaaaaaaaaaaaa,fm2_bbbbbbbbbbbbbbbbbbbb";
        let secrets = Secrets::new(&[token]);
        let body = format!("401: bad token FlyV1 {token} and again fm2_bbbbbbbbbbbbbbbbbbbb.");
        let bytes: &'static [u8] = Box::leak(body.clone().into_bytes().into_boxed_slice());
        for size in [1, 2, 3, 7, 16, 40, bytes.len()] {
            let chunks: Vec<&'static [u8]> = bytes.chunks(size).collect();
            let out = redact_chunks(chunks, &secrets).await;
            assert_eq!(out.len(), body.len(), "length kept (chunks of {size})");
            let text = String::from_utf8_lossy(&out);
            assert!(
                !text.contains("fm2_a") && !text.contains("fm2_b"),
                "{size}: {text}"
            );
            assert!(
                text.starts_with("401: bad token FlyV1 [redacted]"),
                "{text}"
            );
        }
        // A body without a secret passes byte for byte.
        let out = redact_chunks(vec![b"hello ", b"world"], &secrets).await;
        assert_eq!(out, b"hello world");
    }
}
