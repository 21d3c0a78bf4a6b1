//! A strict, incremental decoder for `Transfer-Encoding: chunked` request bodies
//! (RFC 9112 §7.1). The server never keeps body bytes, so it only counts them.

/// Longest chunk-size line (size, extensions) or trailer line accepted.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size { digits: u8 },
    /// After the size: optional whitespace before `;`.
    SizeSpace,
    /// Inside chunk extensions, until CR.
    Ext,
    /// Expecting LF after the size line's CR.
    SizeLf,
    /// Chunk data bytes left.
    Data,
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer { colon: bool },
    /// Expecting LF after a trailer line's CR.
    TrailerLf,
    /// Expecting LF after the final CR.
    EndLf,
    /// The body is complete.
    Done,
}

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// Malformed framing: 400.
    Malformed,
    /// Decoded body larger than the limit: 413.
    TooLarge,
}

/// Decoder state carried between reads.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    size: u64,
    remaining: u64,
    total: u64,
    line: usize,
    trailer_bytes: usize,
    max_body: u64,
    max_trailer: usize,
}

impl Decoder {
    /// A decoder that refuses bodies over `max_body` bytes and trailers over `max_trailer`.
    pub fn new(max_body: u64, max_trailer: usize) -> Decoder {
        Decoder {
            state: State::Size { digits: 0 },
            size: 0,
            remaining: 0,
            total: 0,
            line: 0,
            trailer_bytes: 0,
            max_body,
            max_trailer,
        }
    }

    /// True once the last chunk and trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decoded body bytes so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Consumes bytes from `input`; returns how many were used. Stops at the end of the
    /// body, so bytes after it (a pipelined request) are left for the caller.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, ChunkError> {
        use ChunkError::Malformed;
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Done {
                break;
            }
            if self.state == State::Data {
                let take = (self.remaining).min((input.len() - i) as u64) as usize;
                self.remaining -= take as u64;
                i += take;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.line += 1;
            if self.line > MAX_LINE {
                return Err(Malformed);
            }
            self.state = match self.state {
                State::Size { digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits >= 16 {
                            return Err(Malformed);
                        }
                        let v = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.size = (self.size << 4) | v;
                        State::Size { digits: digits + 1 }
                    }
                    _ if digits == 0 => return Err(Malformed),
                    b';' => State::Ext,
                    b' ' | b'\t' => State::SizeSpace,
                    b'\r' => State::SizeLf,
                    _ => return Err(Malformed),
                },
                // Whitespace after the size is only allowed before an extension.
                State::SizeSpace => match b {
                    b' ' | b'\t' => State::SizeSpace,
                    b';' => State::Ext,
                    _ => return Err(Malformed),
                },
                State::Ext => match b {
                    b'\r' => State::SizeLf,
                    b'\t' | b' '..=b'~' | 0x80..=0xff => State::Ext,
                    _ => return Err(Malformed),
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(Malformed);
                    }
                    self.line = 0;
                    self.total = self
                        .total
                        .checked_add(self.size)
                        .ok_or(ChunkError::TooLarge)?;
                    if self.total > self.max_body {
                        return Err(ChunkError::TooLarge);
                    }
                    if self.size == 0 {
                        State::TrailerStart
                    } else {
                        self.remaining = self.size;
                        self.size = 0;
                        State::Data
                    }
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(Malformed);
                    }
                    State::DataLf
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(Malformed);
                    }
                    self.line = 0;
                    State::Size { digits: 0 }
                }
                State::TrailerStart => match b {
                    b'\r' => State::EndLf,
                    // A trailer line may not start with whitespace (obs-fold) or ':'.
                    b' ' | b'\t' | b':' => return Err(Malformed),
                    _ => self.trailer_byte(b, false)?,
                },
                State::Trailer { colon } => self.trailer_byte(b, colon)?,
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(Malformed);
                    }
                    self.line = 0;
                    State::TrailerStart
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(Malformed);
                    }
                    State::Done
                }
                State::Data | State::Done => unreachable!("handled above"),
            };
        }
        Ok(i)
    }

    fn trailer_byte(&mut self, b: u8, colon: bool) -> Result<State, ChunkError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.max_trailer {
            return Err(ChunkError::Malformed);
        }
        match b {
            b'\r' if colon => Ok(State::TrailerLf),
            b':' => Ok(State::Trailer { colon: true }),
            // Before the colon only token characters; after it, field-value text.
            b' ' | b'\t' if !colon => Err(ChunkError::Malformed),
            b'\t' | b' '..=b'~' | 0x80..=0xff => Ok(State::Trailer { colon }),
            _ => Err(ChunkError::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &[u8]) -> Result<(usize, u64, bool), ChunkError> {
        let mut d = Decoder::new(1000, 1000);
        let n = d.feed(body)?;
        Ok((n, d.total(), d.is_done()))
    }

    #[test]
    fn valid_bodies() {
        assert_eq!(decode(b"5\r\nhello\r\n0\r\n\r\n"), Ok((15, 5, true)));
        assert_eq!(
            decode(b"5;ext=1;x=\"q\"\r\nhello\r\n0\r\n\r\nGET"),
            Ok((27, 5, true))
        );
        assert_eq!(
            decode(b"5 ;ext\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
            Ok((28, 5, true))
        );
        assert_eq!(decode(b"A\r\n0123456789\r\n0\r\n\r\n"), Ok((20, 10, true)));
    }

    #[test]
    fn byte_at_a_time_matches_whole() {
        let body = b"3;a=b\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\n";
        let mut d = Decoder::new(1000, 1000);
        for b in body.iter() {
            assert_eq!(d.feed(std::slice::from_ref(b)), Ok(1));
        }
        assert!(d.is_done());
        assert_eq!(d.total(), 19);
    }

    #[test]
    fn malformed_bodies() {
        for bad in [
            &b"5 \r\nhello\r\n0\r\n\r\n"[..],
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n",
            b"g\r\n",
            b"\r\n",
            b"11111111111111111\r\n",
            b"0\r\n bad\r\n\r\n",
            b"0\r\nNoColon\r\n\r\n",
            b"0\r\nA: b\n\r\n",
        ] {
            assert_eq!(
                decode(bad).err(),
                Some(ChunkError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(decode(b"fffff\r\n").err(), Some(ChunkError::TooLarge));
    }
}
