//! A response body: bytes in memory or a range of an open file, and how much of it
//! is left to send.

use std::fs::File;
use std::sync::Arc;

/// Bytes held in memory.
#[derive(Debug)]
pub enum Bytes {
    /// Compiled into the binary (error pages).
    Static(&'static [u8]),
    /// Shared with the file cache.
    Shared(Arc<[u8]>),
    /// Made for this response (listings, stats).
    Owned(Vec<u8>),
}

impl Bytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Static(b) => b,
            Bytes::Shared(b) => b,
            Bytes::Owned(b) => b,
        }
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response body and how much of it is left.
#[derive(Debug, Default)]
pub enum Body {
    /// No body (HEAD, 304, 204).
    #[default]
    Empty,
    /// In memory: bytes `pos..end`.
    Memory {
        /// The bytes.
        bytes: Bytes,
        /// Next byte to send.
        pos: usize,
        /// One past the last byte to send.
        end: usize,
    },
    /// From a file (`sendfile` on a plain socket): bytes `offset..end`.
    File {
        /// The open file.
        file: Arc<File>,
        /// Next byte to send.
        offset: u64,
        /// One past the last byte to send.
        end: u64,
    },
    /// Several bodies sent one after the other (a `multipart/byteranges` response:
    /// part headers in memory, ranges of a file or of memory).
    Parts(Box<Parts>),
}

/// The pieces of a [`Body::Parts`], none of them `Parts` itself.
#[derive(Debug)]
pub struct Parts {
    /// The pieces in order.
    pub pieces: Vec<Body>,
    /// The first piece not yet wholly sent.
    pub next: usize,
}

impl Body {
    /// Bytes left to send.
    pub fn remaining(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Memory { pos, end, .. } => end.saturating_sub(*pos) as u64,
            Body::File { offset, end, .. } => end.saturating_sub(*offset),
            Body::Parts(p) => p.pieces[p.next..].iter().map(Body::remaining).sum(),
        }
    }

    /// The piece being sent (itself unless it is `Parts`), skipping pieces already
    /// sent, and whether other bytes follow it.
    pub fn current(&mut self) -> (&mut Body, bool) {
        if matches!(self, Body::Parts(p) if p.pieces.is_empty()) {
            return (self, false);
        }
        match self {
            Body::Parts(p) => {
                while p.next + 1 < p.pieces.len() && p.pieces[p.next].remaining() == 0 {
                    p.next += 1;
                }
                let more = p.next + 1 < p.pieces.len();
                (&mut p.pieces[p.next], more)
            }
            other => (other, false),
        }
    }
}
