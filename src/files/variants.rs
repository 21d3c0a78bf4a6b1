//! Precompressed siblings (`F.br`, `F.zst`, `F.gz` beside `F`): which exist, which
//! are stale, and which one a request's `Accept-Encoding` picks.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;

use super::entry::{Entry, Identity};

/// A content coding a sibling may carry, in the order preferred at equal quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// Brotli, `F.br`.
    Br,
    /// Zstandard, `F.zst`.
    Zstd,
    /// gzip, `F.gz`.
    Gzip,
}

/// Every coding, best first.
pub const CODINGS: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

impl Coding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// The file name suffix of a sibling in this coding.
    pub(super) fn suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Zstd => ".zst",
            Coding::Gzip => ".gz",
        }
    }

    fn names(self, name: &str) -> bool {
        name.eq_ignore_ascii_case(self.token())
            || (self == Coding::Gzip && name.eq_ignore_ascii_case("x-gzip"))
    }
}

/// True if `name` is itself a compressed sibling, which has none of its own.
pub(super) fn is_compressed(name: &str) -> bool {
    CODINGS.iter().any(|c| name.ends_with(c.suffix()))
}

/// The siblings of one file as found when its entry was built.
#[derive(Debug, Clone, Default)]
pub(super) struct Variants {
    /// Whether siblings were looked for at all.
    pub(super) looked: bool,
    /// What stood at each sibling's name (in [`CODINGS`] order), served or not, so a
    /// check sees one appear, change or go.
    pub(super) seen: [Option<Identity>; 3],
    /// The siblings served: present, readable and not older than the file.
    pub(super) served: [Option<Arc<Entry>>; 3],
}

impl Variants {
    /// True if at least one sibling is served, so responses vary by Accept-Encoding.
    pub(super) fn any(&self) -> bool {
        self.served.iter().any(Option::is_some)
    }
}

/// A qvalue (RFC 9110 §12.4.2) in thousandths; `None` if malformed.
fn qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut q: u16 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    for (i, b) in frac.bytes().enumerate() {
        q += u16::from(b - b'0') * [100, 10, 1][i];
    }
    (q <= 1000).then_some(q)
}

/// Which served sibling (an index into [`CODINGS`]) to send for `accept`, or `None`
/// for the file itself. Without the header, or when no listed coding is served, the
/// file itself; equal qualities go to the earlier coding; `q=0` excludes; `*` covers
/// codings not named. An explicit `identity` of higher quality than every sibling
/// keeps the file itself.
pub fn choose(accept: Option<&str>, served: [bool; 3]) -> Option<usize> {
    let accept = accept?;
    let mut q: [Option<u16>; 3] = [None; 3];
    let (mut star, mut identity) = (None, None);
    for member in accept.split(',') {
        let mut parts = member.split(';');
        let name = parts.next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let mut quality = Some(1000);
        for param in parts {
            if let Some((k, v)) = param.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    quality = qvalue(v.trim());
                }
            }
        }
        // A malformed weight is read as no weight at all: not acceptable.
        let quality = quality.unwrap_or(0);
        if name == "*" {
            star = Some(quality);
        } else if name.eq_ignore_ascii_case("identity") {
            identity = Some(quality);
        } else if let Some(i) = CODINGS.iter().position(|c| c.names(name)) {
            q[i] = Some(q[i].map_or(quality, |old: u16| old.max(quality)));
        }
    }
    let mut best: Option<(usize, u16)> = None;
    for i in 0..CODINGS.len() {
        let quality = q[i].or(star).unwrap_or(0);
        if served[i] && quality > 0 && best.map_or(true, |(_, b)| quality > b) {
            best = Some((i, quality));
        }
    }
    let (i, quality) = best?;
    match identity {
        Some(id) if id > quality => None,
        _ => Some(i),
    }
}

/// A sibling's path and modification time.
type Stale = (Box<str>, (i64, i64));

/// Stale siblings already logged, so a stale file is reported once, not per check.
#[derive(Debug, Default)]
pub(super) struct StaleLog {
    seen: Mutex<HashSet<Stale>>,
}

/// Bounds the set; a sibling forgotten is merely logged again.
const STALE_LOGGED: usize = 1024;

impl StaleLog {
    /// Logs that `path`, modified at `mtime`, is older than its source, unless it
    /// already was.
    pub(super) fn report(&self, path: &str, mtime: (i64, i64)) {
        let mut seen = self.seen.lock();
        if seen.len() >= STALE_LOGGED {
            seen.clear();
        }
        if seen.insert((path.into(), mtime)) {
            log::warn!(
                "{path:?} is older than the file it compresses (in whole seconds); not serving \
                 it (--precompressed-check off serves it anyway)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [bool; 3] = [true, true, true];

    #[test]
    fn negotiation() {
        let cases: &[(Option<&str>, [bool; 3], Option<usize>)] = &[
            (None, ALL, None),
            (Some(""), ALL, None),
            (Some("gzip, deflate, br, zstd"), ALL, Some(0)),
            (Some("gzip, zstd"), ALL, Some(1)),
            (Some("gzip"), ALL, Some(2)),
            (Some("x-gzip"), ALL, Some(2)),
            (Some("GZIP;Q=0.5"), ALL, Some(2)),
            (Some("br;q=0.5, gzip;q=0.8"), ALL, Some(2)),
            (Some("br;q=0.8, gzip;q=0.8"), ALL, Some(0)),
            (Some("br;q=0, gzip"), ALL, Some(2)),
            (Some("br;q=0, gzip;q=0"), ALL, None),
            (Some("*"), ALL, Some(0)),
            (Some("*;q=0.5, br;q=0.1"), ALL, Some(1)),
            (Some("*;q=0"), ALL, None),
            (Some("br"), [false, true, true], None),
            (Some("br, gzip"), [false, false, true], Some(2)),
            (Some("gzip;q=0.5, identity"), ALL, None),
            (Some("gzip, identity;q=0.5"), ALL, Some(2)),
            (Some("gzip;q=2"), ALL, None),
            (Some("gzip;q=0.1234"), ALL, None),
            (Some("gzip;q=0.001"), ALL, Some(2)),
            (Some("gzip;q=1.000"), ALL, Some(2)),
            (Some(" , br ;q=1"), ALL, Some(0)),
        ];
        for (accept, served, want) in cases {
            assert_eq!(choose(*accept, *served), *want, "{accept:?} {served:?}");
        }
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.25"), Some(250));
        assert_eq!(qvalue("1.001"), None);
        assert_eq!(qvalue("2"), None);
        assert_eq!(qvalue(""), None);
        assert_eq!(qvalue("0.x"), None);
    }

    #[test]
    fn compressed_names() {
        assert!(is_compressed("a.js.gz"));
        assert!(is_compressed("a.br"));
        assert!(!is_compressed("a.js"));
    }
}
