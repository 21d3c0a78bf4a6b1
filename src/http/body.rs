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
}
