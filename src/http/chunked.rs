//! A strict, incremental decoder for `Transfer-Encoding: chunked` request bodies
//! (RFC 9112 §7.1). The server never keeps body bytes, so it only counts them.

use super::grammar::TCHAR;

/// Longest chunk-size line (size, extensions) or trailer line accepted.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size { digits: u8 },
    /// After the size: whitespace, which must lead to a `;`.
    SizeSpace,
    /// Inside the chunk extensions, until CR.
    Ext(Ext),
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

/// Where a byte falls in `chunk-ext = *( BWS ";" BWS chunk-ext-name
/// [ BWS "=" BWS chunk-ext-val ] )`, with `chunk-ext-val = token / quoted-string`
/// (RFC 9112 §7.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// After `;`: whitespace, then the first byte of a name.
    BeforeName,
    /// Inside a name.
    Name,
    /// Whitespace after a name: `=` or `;` must follow.
    AfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    BeforeValue,
    /// Inside a token value.
    Token,
    /// Inside a quoted string.
    Quoted,
    /// After a backslash in a quoted string.
    QuotedPair,
    /// Right after a value: `;`, CR or whitespace.
    AfterValue,
    /// Whitespace after a value: `;` must follow.
    ValueSpace,
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

impl Ext {
    /// The state after `b`, or `None` when `b` breaks the grammar. CR ends the line
    /// only where an extension may end: after a name or a value.
    fn next(self, b: u8) -> Option<State> {
        use Ext::*;
        let ext = |e| Some(State::Ext(e));
        match (self, b) {
            (Name | Token | AfterValue, b'\r') => Some(State::SizeLf),
            (Name | AfterName | Token | AfterValue | ValueSpace, b';') => ext(BeforeName),
            (BeforeName | BeforeValue | AfterName | ValueSpace, _) if is_ws(b) => ext(self),
            (Name | AfterName, b'=') => ext(BeforeValue),
            (Name, _) if is_ws(b) => ext(AfterName),
            (Token | AfterValue, _) if is_ws(b) => ext(ValueSpace),
            (BeforeName | Name, _) if is_tchar(b) => ext(Name),
            (BeforeValue, b'"') => ext(Quoted),
            (BeforeValue | Token, _) if is_tchar(b) => ext(Token),
            (Quoted, b'"') => ext(AfterValue),
            (Quoted, b'\\') => ext(QuotedPair),
            // qdtext and quoted-pair: HTAB, SP, VCHAR, obs-text (DEL is no VCHAR).
            (Quoted | QuotedPair, b'\t' | b' '..=b'~' | 0x80..=0xff) => ext(Quoted),
            _ => None,
        }
    }
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

/// `next` when `b` is `want`, else a framing error.
fn expect(b: u8, want: u8, next: State) -> Result<State, ChunkError> {
    if b == want {
        Ok(next)
    } else {
        Err(ChunkError::Malformed)
    }
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
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            if self.state == State::Data {
                i += self.skip_data(&input[i..]);
                continue;
            }
            let b = input[i];
            i += 1;
            // Counts every framing byte of a line; data bytes never get here.
            self.line += 1;
            if self.line > MAX_LINE {
                return Err(ChunkError::Malformed);
            }
            self.state = self.step(b)?;
        }
        Ok(i)
    }

    /// Counts chunk data without looking at it; returns how much of `input` it was.
    fn skip_data(&mut self, input: &[u8]) -> usize {
        let take = self.remaining.min(input.len() as u64);
        self.remaining -= take;
        if self.remaining == 0 {
            self.state = State::DataCr;
        }
        // `take` is at most `input.len()`, so it fits.
        take as usize
    }

    /// The state after one framing byte.
    fn step(&mut self, b: u8) -> Result<State, ChunkError> {
        use ChunkError::Malformed;
        match self.state {
            State::Size { digits } => self.size_byte(b, digits),
            // Whitespace after the size is only allowed before an extension.
            State::SizeSpace => match b {
                b' ' | b'\t' => Ok(State::SizeSpace),
                b';' => Ok(State::Ext(Ext::BeforeName)),
                _ => Err(Malformed),
            },
            State::Ext(ext) => ext.next(b).ok_or(Malformed),
            State::SizeLf => {
                expect(b, b'\n', State::SizeLf)?;
                self.end_size_line()
            }
            State::DataCr => expect(b, b'\r', State::DataLf),
            State::DataLf => {
                self.line = 0;
                expect(b, b'\n', State::Size { digits: 0 })
            }
            State::TrailerStart => match b {
                b'\r' => Ok(State::EndLf),
                // A trailer line may not start with whitespace (obs-fold) or ':'.
                b' ' | b'\t' | b':' => Err(Malformed),
                _ => self.trailer_byte(b, false),
            },
            State::Trailer { colon } => self.trailer_byte(b, colon),
            State::TrailerLf => {
                self.line = 0;
                expect(b, b'\n', State::TrailerStart)
            }
            State::EndLf => expect(b, b'\n', State::Done),
            // `feed` handles data in bulk and stops once done.
            State::Data | State::Done => Err(Malformed),
        }
    }

    fn size_byte(&mut self, b: u8, digits: u8) -> Result<State, ChunkError> {
        if let Some(v) = (b as char).to_digit(16) {
            if digits >= 16 {
                return Err(ChunkError::Malformed);
            }
            self.size = (self.size << 4) | u64::from(v);
            return Ok(State::Size { digits: digits + 1 });
        }
        match b {
            _ if digits == 0 => Err(ChunkError::Malformed),
            b';' => Ok(State::Ext(Ext::BeforeName)),
            b' ' | b'\t' => Ok(State::SizeSpace),
            b'\r' => Ok(State::SizeLf),
            _ => Err(ChunkError::Malformed),
        }
    }

    /// The size line is complete: count the chunk against the limit and start it.
    fn end_size_line(&mut self) -> Result<State, ChunkError> {
        self.line = 0;
        self.total = self
            .total
            .checked_add(self.size)
            .ok_or(ChunkError::TooLarge)?;
        if self.total > self.max_body {
            return Err(ChunkError::TooLarge);
        }
        if self.size == 0 {
            return Ok(State::TrailerStart);
        }
        self.remaining = self.size;
        self.size = 0;
        Ok(State::Data)
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
    fn chunk_extensions_follow_the_grammar() {
        for good in [
            &b"5;a\r\n"[..],
            b"5;a;b\r\n",
            b"5;a=b\r\n",
            b"5 ; a = b ; c\r\n",
            b"5;a=\"\"\r\n",
            b"5;a=\"q \\\" ;=\\\\ \xe9\"\r\n",
            b"5;a=\"q\" ;b=1\r\n",
            b"5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~\r\n",
        ] {
            let body = [good, b"hello\r\n0\r\n\r\n"].concat();
            assert_eq!(
                decode(&body),
                Ok((body.len(), 5, true)),
                "{:?}",
                String::from_utf8_lossy(good)
            );
        }
        for bad in [
            &b"5;\r\n"[..],
            b"5; \r\n",
            b"5;;a\r\n",
            b"5;bad[=x\r\n",
            b"5;a[\r\n",
            b"5;=x\r\n",
            b"5;a=\r\n",
            b"5;a= \r\n",
            b"5;a=b=c\r\n",
            b"5;a=b c\r\n",
            b"5;a b\r\n",
            b"5;a \r\n",
            b"5;a=b \r\n",
            b"5;a=\"x\r\n",
            b"5;a=\"x\"y\r\n",
            b"5;a=\"\x7f\"\r\n",
            b"5;a=\"\\\x00\"\r\n",
            b"5;a=x\"y\"\r\n",
            b"5;a\x80\r\n",
            b"5;a=b,c\r\n",
        ] {
            let body = [bad, b"hello\r\n0\r\n\r\n"].concat();
            assert_eq!(
                decode(&body).err(),
                Some(ChunkError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
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
