//! Conditional requests (RFC 9110 §13) and byte ranges (§14) for one file.

use super::request::Head;
use super::response::parse_http_date;

/// What a file's validators are.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    /// The strong entity tag, quotes included.
    pub etag: &'a str,
    /// Last modification, seconds since the epoch.
    pub mtime: u64,
    /// Now, seconds since the epoch (dates in the future are invalid).
    pub now: u64,
}

/// What to send for a file request once the preconditions and Range are evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// 200 with the whole file.
    Full,
    /// 304.
    NotModified,
    /// 412.
    PreconditionFailed,
    /// 206 with bytes `start..=end`.
    Partial(u64, u64),
    /// 206 with `multipart/byteranges`: several ranges, sorted, coalesced, none
    /// touching another.
    Multi(Box<Ranges>),
    /// 416.
    Unsatisfiable,
}

/// Splits an entity-tag list and reports whether any member matches `etag`.
fn list_matches(list: &str, etag: &str, weak: bool) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    list.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .any(|tag| {
            let (is_weak, opaque) = match tag.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, tag),
            };
            if is_weak && !weak {
                return false;
            }
            opaque == etag
        })
}

/// Evaluates preconditions in the order of RFC 9110 §13.2.2, then Range.
/// `get` is true for GET (ranges apply), `safe` for GET or HEAD.
pub fn evaluate(head: &Head<'_>, v: &Validators<'_>, size: u64, get: bool, safe: bool) -> Decision {
    let date = |s: &str| parse_http_date(s).filter(|&d| d <= v.now);
    if let Some(im) = head.if_match {
        if !list_matches(im, v.etag, false) {
            return Decision::PreconditionFailed;
        }
    } else if let Some(d) = head.if_unmodified_since.and_then(date) {
        if v.mtime > d {
            return Decision::PreconditionFailed;
        }
    }
    if let Some(inm) = head.if_none_match {
        if list_matches(inm, v.etag, true) {
            return if safe {
                Decision::NotModified
            } else {
                Decision::PreconditionFailed
            };
        }
    } else if safe {
        if let Some(d) = head.if_modified_since.and_then(date) {
            if v.mtime <= d {
                return Decision::NotModified;
            }
        }
    }
    match head.range {
        Some(range) if get && if_range_holds(head.if_range, v) => match parse_range(range, size) {
            Some(RangeSet::One(a, b)) => Decision::Partial(a, b),
            Some(RangeSet::Many(r)) => Decision::Multi(r),
            Some(RangeSet::None) => Decision::Unsatisfiable,
            // Too many ranges, or more bytes than the file: the whole file (RFC 9110
            // §14.2 lets a server ignore Range), not an amplified response.
            Some(RangeSet::TooMany) | None => Decision::Full,
        },
        _ => Decision::Full,
    }
}

/// If-Range: an entity tag must match strongly; a date must equal Last-Modified.
fn if_range_holds(if_range: Option<&str>, v: &Validators<'_>) -> bool {
    match if_range.map(str::trim) {
        None => true,
        Some(tag) if tag.starts_with('"') => tag == v.etag,
        Some(tag) if tag.starts_with("W/") => false,
        Some(date) => parse_http_date(date) == Some(v.mtime),
    }
}

/// The most ranges one request may ask for; past it the whole file is sent.
pub const MAX_RANGES: usize = 16;

/// Several satisfiable ranges (inclusive bounds), at most [`MAX_RANGES`], kept
/// without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Ranges {
    len: usize,
    r: [(u64, u64); MAX_RANGES],
}

impl PartialEq for Ranges {
    fn eq(&self, other: &Ranges) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Ranges {}

impl Ranges {
    const EMPTY: Ranges = Ranges {
        len: 0,
        r: [(0, 0); MAX_RANGES],
    };

    /// The ranges, in order.
    pub fn as_slice(&self) -> &[(u64, u64)] {
        &self.r[..self.len]
    }

    fn push(&mut self, range: (u64, u64)) -> bool {
        if self.len == MAX_RANGES {
            return false;
        }
        self.r[self.len] = range;
        self.len += 1;
        true
    }

    /// Sorts the ranges and merges those that overlap or touch.
    fn coalesce(&mut self) {
        let n = self.len;
        self.r[..n].sort_unstable();
        let mut out = 0;
        for i in 1..n {
            let (a, b) = self.r[i];
            let last = &mut self.r[out];
            if a <= last.1.saturating_add(1) {
                last.1 = last.1.max(b);
            } else {
                out += 1;
                self.r[out] = (a, b);
            }
        }
        self.len = if n == 0 { 0 } else { out + 1 };
    }
}

/// The satisfiable ranges of a `Range` header for a representation of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeSet {
    /// None is satisfiable: 416.
    None,
    /// Exactly one once coalesced, inclusive bounds.
    One(u64, u64),
    /// Several, sorted and coalesced.
    Many(Box<Ranges>),
    /// More than [`MAX_RANGES`], or more bytes in all than the representation: the
    /// whole representation is sent instead.
    TooMany,
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `bytes=...`; `None` means the header is invalid and must be ignored.
pub fn parse_range(header: &str, size: u64) -> Option<RangeSet> {
    let (unit, specs) = header.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut found = Ranges::EMPTY;
    let mut asked = 0usize;
    let mut total = 0u64;
    let mut any = false;
    for spec in specs.split(',').map(|s| s.trim_matches([' ', '\t'])) {
        if spec.is_empty() {
            continue;
        }
        any = true;
        asked += 1;
        let (first, last) = spec.split_once('-')?;
        let bounds = if first.is_empty() {
            let n = digits(last)?;
            (n > 0 && size > 0).then(|| (size - n.min(size), size - 1))
        } else {
            let a = digits(first)?;
            let b = if last.is_empty() {
                None
            } else {
                Some(digits(last)?)
            };
            if matches!(b, Some(b) if b < a) {
                return None;
            }
            (a < size).then(|| (a, b.map_or(size - 1, |b| b.min(size - 1))))
        };
        if let Some((a, b)) = bounds {
            total = total.saturating_add(b - a + 1);
            if !found.push((a, b)) {
                asked = usize::MAX;
            }
        }
    }
    if !any {
        return None;
    }
    // Every member counts, satisfiable or not, and before coalescing: the checks
    // are on what the client asked for.
    if asked > MAX_RANGES || total > size {
        return Some(RangeSet::TooMany);
    }
    found.coalesce();
    Some(match found.as_slice() {
        [] => RangeSet::None,
        [(a, b)] => RangeSet::One(*a, *b),
        _ => RangeSet::Many(Box::new(found)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn many(r: &[(u64, u64)]) -> RangeSet {
        let mut m = Ranges::EMPTY;
        for &x in r {
            m.push(x);
        }
        RangeSet::Many(Box::new(m))
    }

    #[test]
    fn ranges() {
        use RangeSet::*;
        let cases: &[(&str, u64, Option<RangeSet>)] = &[
            ("bytes=0-9", 100, Some(One(0, 9))),
            ("bytes=90-", 100, Some(One(90, 99))),
            ("bytes=-10", 100, Some(One(90, 99))),
            ("bytes=-1000", 100, Some(One(0, 99))),
            ("bytes=50-1000", 100, Some(One(50, 99))),
            ("bytes=100-", 100, Some(None)),
            ("bytes=-0", 100, Some(None)),
            ("bytes=0-0", 0, Some(None)),
            ("bytes=0-1,5-6", 100, Some(many(&[(0, 1), (5, 6)]))),
            ("bytes=50-59, 0-9", 100, Some(many(&[(0, 9), (50, 59)]))),
            ("bytes=0-1, 500-600", 100, Some(One(0, 1))),
            // Overlapping and adjacent ranges are merged.
            ("bytes=0-9,5-14", 100, Some(One(0, 14))),
            (
                "bytes=0-9,10-19,30-39",
                100,
                Some(many(&[(0, 19), (30, 39)])),
            ),
            ("bytes=0-9,-5", 100, Some(many(&[(0, 9), (95, 99)]))),
            // More bytes than the file, or too many ranges: the whole file.
            ("bytes=0-59,40-99", 100, Some(TooMany)),
            ("bytes=0-,0-", 100, Some(TooMany)),
            ("bytes=9-1", 100, Option::None),
            ("bytes=a-b", 100, Option::None),
            ("items=0-1", 100, Option::None),
            ("bytes=", 100, Option::None),
            (
                "bytes=4294967296-4294967305",
                5 << 30,
                Some(One(4_294_967_296, 4_294_967_305)),
            ),
        ];
        for (h, size, want) in cases {
            assert_eq!(parse_range(h, *size), *want, "{h} / {size}");
        }
        let spec = |n: u64| {
            let list: Vec<String> = (0..n).map(|i| format!("{}-{}", i * 4, i * 4)).collect();
            format!("bytes={}", list.join(","))
        };
        assert!(matches!(parse_range(&spec(16), 100), Some(Many(r)) if r.as_slice().len() == 16));
        assert_eq!(parse_range(&spec(17), 100), Some(TooMany));
    }

    #[test]
    fn etag_lists() {
        assert!(list_matches("\"a\", \"b\"", "\"b\"", true));
        assert!(list_matches("W/\"b\"", "\"b\"", true));
        assert!(!list_matches("W/\"b\"", "\"b\"", false));
        assert!(list_matches("*", "\"b\"", false));
        assert!(!list_matches("\"c\"", "\"b\"", true));
    }
}
