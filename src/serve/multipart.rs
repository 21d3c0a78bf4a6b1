//! `multipart/byteranges` bodies (RFC 9110 §14.6): several ranges of one
//! representation, each part with its own `Content-Type` and `Content-Range`.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::files::Content;
use crate::http::body::{Body, Bytes, Parts};
use crate::http::response as resp;

/// A boundary for one response: unpredictable, so a file cannot contain it by
/// design, and different for every response.
pub fn boundary() -> [u8; 23] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let h = std::collections::hash_map::RandomState::new().hash_one(n);
    let mut b = *b"hearth-0000000000000000";
    for (i, shift) in (0..16).rev().enumerate() {
        b[7 + i] = b"0123456789abcdef"[((h >> (shift * 4)) & 0xf) as usize];
    }
    b
}

/// The body of a 206 with `ranges` (inclusive, sorted, not touching) of `content`
/// (`len` bytes of type `ctype`) between `boundary` lines.
pub fn body(
    content: &Content,
    len: u64,
    ctype: &str,
    boundary: &[u8],
    ranges: &[(u64, u64)],
) -> Body {
    let mut pieces = Vec::with_capacity(ranges.len() * 2 + 1);
    for (i, &(a, b)) in ranges.iter().enumerate() {
        let mut head = Vec::with_capacity(96 + ctype.len());
        // The first delimiter needs no CRLF before it; the others end the part before.
        if i > 0 {
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"--");
        head.extend_from_slice(boundary);
        head.extend_from_slice(b"\r\nContent-Type: ");
        head.extend_from_slice(ctype.as_bytes());
        head.extend_from_slice(b"\r\nContent-Range: bytes ");
        resp::push_u64(&mut head, a);
        head.push(b'-');
        resp::push_u64(&mut head, b);
        head.push(b'/');
        resp::push_u64(&mut head, len);
        head.extend_from_slice(b"\r\n\r\n");
        pieces.push(memory(head));
        pieces.push(match content {
            Content::Memory(m) => Body::Memory {
                bytes: Bytes::Shared(m.clone()),
                pos: a as usize,
                end: b as usize + 1,
            },
            Content::Disk(f) => Body::File {
                file: f.clone(),
                offset: a,
                end: b + 1,
            },
        });
    }
    let mut tail = Vec::with_capacity(boundary.len() + 8);
    tail.extend_from_slice(b"\r\n--");
    tail.extend_from_slice(boundary);
    tail.extend_from_slice(b"--\r\n");
    pieces.push(memory(tail));
    Body::Parts(Box::new(Parts { pieces, next: 0 }))
}

fn memory(v: Vec<u8>) -> Body {
    let end = v.len();
    Body::Memory {
        bytes: Bytes::Owned(v),
        pos: 0,
        end,
    }
}
