//! Property tests of the untrusted-input parsers: the request-head parser, path
//! normalisation and the chunked body decoder. Case counts are kept small so the
//! file runs in seconds.

use hearth::files::normalize;
use hearth::http::chunked::{ChunkError, Decoder};
use hearth::http::error::Refusal;
use hearth::http::request::{parse, BodyKind, Limits, Parsed};
use hearth::http::Status;
use proptest::prelude::*;

const LIMITS: Limits = Limits {
    max_uri: 8 * 1024,
    max_header: 16 * 1024,
};
const SMALL: Limits = Limits {
    max_uri: 64,
    max_header: 256,
};

// ---------------------------------------------------------------------------
// request heads
// ---------------------------------------------------------------------------

/// Every LF is preceded by CR and every CR followed by LF.
fn crlf_only(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, &c)| match c {
        b'\n' => i > 0 && b[i - 1] == b'\r',
        b'\r' => b.get(i + 1) == Some(&b'\n'),
        _ => true,
    })
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("GET".to_string()),
        2 => Just("HEAD".to_string()),
        4 => Just("POST".to_string()),
        1 => Just("OPTIONS".to_string()),
        1 => Just("PRI".to_string()),
        1 => "[A-Za-z]{1,8}",
        1 => "[ -~]{0,6}",
    ]
}

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "/[a-z0-9./%?=&-]{0,40}",
        1 => Just("*".to_string()),
        1 => "http://[a-z]{1,8}(:[0-9]{1,5})?(/[a-z.]{0,10})?",
        1 => "[ -~]{0,20}",
    ]
}

fn version() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => Just("HTTP/1.1".to_string()),
        2 => Just("HTTP/1.0".to_string()),
        1 => "HTTP/[0-9]\\.[0-9]",
        1 => "[ -~]{0,10}",
    ]
}

fn header() -> impl Strategy<Value = (String, String)> {
    let name = prop_oneof![
        2 => Just("Host".to_string()),
        4 => Just("Content-Length".to_string()),
        4 => Just("Transfer-Encoding".to_string()),
        1 => Just("Connection".to_string()),
        1 => Just("Expect".to_string()),
        1 => Just("Range".to_string()),
        1 => Just("If-None-Match".to_string()),
        3 => "[A-Za-z-]{1,12}",
        1 => "[ -~]{0,8}",
    ];
    let value = prop_oneof![
        4 => "[0-9]{1,3}",
        1 => "[0-9]{1,22}",
        1 => "[0-9 ,+-]{1,6}",
        3 => Just("chunked".to_string()),
        1 => Just("gzip, chunked".to_string()),
        1 => Just("chunked, gzip".to_string()),
        1 => Just("chunked,chunked".to_string()),
        1 => Just(" chunked ".to_string()),
        1 => Just("close".to_string()),
        1 => Just("100-continue".to_string()),
        3 => "[ -~]{0,24}",
        1 => "[\\x00-\\xff]{0,8}",
    ];
    (name, value)
}

fn eol() -> impl Strategy<Value = &'static str> {
    prop_oneof![30 => Just("\r\n"), 1 => Just("\n"), 1 => Just("\r"), 1 => Just("\r\r\n"), 1 => Just("")]
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![20 => Just(": "), 4 => Just(":"), 1 => Just(" : "), 1 => Just(":\t"), 1 => Just("")]
}

/// A request-like head: mostly well-formed, with damage of the kinds clients send.
fn request_like() -> impl Strategy<Value = (Vec<u8>, Vec<(String, String)>)> {
    (
        prop::collection::vec(Just("\r\n"), 0..3),
        method(),
        target(),
        version(),
        eol(),
        prop::bool::weighted(0.85),
        prop::collection::vec((header(), eol(), separator()), 0..5),
        eol(),
        "[\\x00-\\xff]{0,16}",
    )
        .prop_map(|(lead, m, t, v, e1, host, hs, e2, tail)| {
            let mut s = lead.concat();
            s.push_str(&format!("{m} {t} {v}{e1}"));
            if host {
                s.push_str("Host: example\r\n");
            }
            let mut fields = Vec::new();
            for ((n, val), e, sep) in hs {
                s.push_str(&format!("{n}{sep}{val}{e}"));
                fields.push((n, val));
            }
            s.push_str(e2);
            s.push_str(&tail);
            (s.into_bytes(), fields)
        })
}

/// A well-formed GET head.
fn valid_request() -> impl Strategy<Value = Vec<u8>> {
    (
        "/[a-z0-9./-]{0,30}",
        prop::collection::vec(("X-[A-Za-z]{1,10}", "[!-~]{0,20}"), 0..10),
    )
        .prop_map(|(t, hs)| {
            let mut s = format!("GET {t} HTTP/1.1\r\nHost: example\r\n");
            for (n, v) in hs {
                s.push_str(&format!("{n}: {v}\r\n"));
            }
            s.push_str("\r\n");
            s.into_bytes()
        })
}

fn check_complete_invariants(buf: &[u8], limits: &Limits) {
    let Ok(Parsed::Complete(h)) = parse(buf, limits) else {
        return;
    };
    assert!(
        h.len <= buf.len(),
        "head length {} beyond the buffer {}",
        h.len,
        buf.len()
    );
    let head = &buf[..h.len];
    assert!(head.ends_with(b"\r\n\r\n"), "{head:?}");
    assert!(crlf_only(head), "bare CR or LF accepted: {head:?}");
    assert!(!head.contains(&0), "NUL accepted: {head:?}");
    let mut skip = 0;
    while head[skip..].starts_with(b"\r\n") {
        skip += 2;
    }
    assert!(
        h.len - skip <= limits.max_header,
        "head of {} bytes over the limit",
        h.len - skip
    );
    let line = head[skip..].iter().position(|&b| b == b'\n').unwrap();
    assert!(
        line <= limits.max_uri,
        "request line of {line} bytes over the limit"
    );
    assert!(h.minor <= 1);
    assert!(!h.target.is_empty());
    // Obs-fold is never accepted: no header line starts with whitespace.
    for line in head.split(|&b| b == b'\n').skip(1) {
        assert!(
            !line.starts_with(b" ") && !line.starts_with(b"\t"),
            "obs-fold accepted: {head:?}"
        );
    }
    check_framing_invariants(head, h.minor, h.body);
}

/// An accepted head of HTTP version 1.`minor` framed as `body`: HTTP/1.1 has
/// exactly one Host; a length comes from exactly one Content-Length and no
/// Transfer-Encoding; chunked comes from a Transfer-Encoding ending in one
/// "chunked", on HTTP/1.1, with no Content-Length.
fn check_framing_invariants(head: &[u8], minor: u8, body: BodyKind) {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let count = |name: &str| {
        text.split("\r\n")
            .filter(|l| l.starts_with(&format!("{name}:")))
            .count()
    };
    if minor == 1 {
        assert_eq!(
            count("host"),
            1,
            "HTTP/1.1 needs exactly one Host: {text:?}"
        );
    }
    match body {
        BodyKind::Length(n) => {
            assert!(n > 0);
            assert_eq!(count("content-length"), 1, "{text:?}");
            assert_eq!(count("transfer-encoding"), 0, "{text:?}");
        }
        BodyKind::Chunked => {
            assert_eq!(count("content-length"), 0, "CL with TE accepted: {text:?}");
            assert_eq!(minor, 1);
            let te: Vec<&str> = text
                .split("\r\n")
                .filter_map(|l| l.strip_prefix("transfer-encoding:"))
                .flat_map(|v| v.split(','))
                .map(|c| c.trim())
                .filter(|c| !c.is_empty())
                .collect();
            assert_eq!(te.last(), Some(&"chunked"), "{text:?}");
            assert_eq!(
                te.iter().filter(|c| **c == "chunked").count(),
                1,
                "{text:?}"
            );
        }
        BodyKind::None => {
            assert_eq!(count("transfer-encoding"), 0, "{text:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_never_panics_on_random_bytes(buf in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse(&buf, &LIMITS);
        let _ = parse(&buf, &SMALL);
        check_complete_invariants(&buf, &LIMITS);
        check_complete_invariants(&buf, &SMALL);
    }

    #[test]
    fn parse_never_panics_on_request_like_heads((buf, _fields) in request_like()) {
        for limits in [&LIMITS, &SMALL] {
            let _ = parse(&buf, limits);
            check_complete_invariants(&buf, limits);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_prefix_of_a_valid_head_is_partial(buf in valid_request()) {
        match parse(&buf, &LIMITS) {
            Ok(Parsed::Complete(h)) => prop_assert_eq!(h.len, buf.len()),
            other => prop_assert!(false, "valid head refused: {:?} for {:?}", other, String::from_utf8_lossy(&buf)),
        }
        for i in 0..buf.len() {
            let r = parse(&buf[..i], &LIMITS);
            prop_assert!(matches!(r, Ok(Parsed::Partial)), "prefix {} of {:?}: {:?}", i, String::from_utf8_lossy(&buf), r);
        }
    }

    #[test]
    fn limits_hold_for_any_head_size(line in 0usize..200, pad in 0usize..400) {
        let buf = format!("GET /{} HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "a".repeat(line), "b".repeat(pad));
        let request_line = "GET /".len() + line + " HTTP/1.1\r".len();
        match parse(buf.as_bytes(), &SMALL) {
            Ok(Parsed::Complete(h)) => {
                prop_assert!(request_line <= SMALL.max_uri);
                prop_assert!(h.len <= SMALL.max_header);
            }
            Ok(Parsed::Partial) => prop_assert!(false, "a whole head is never partial"),
            Err(Refusal::UriTooLong) => prop_assert!(request_line > SMALL.max_uri),
            Err(Refusal::HeadTooLarge) => prop_assert!(buf.len() > SMALL.max_header),
            Err(e) => prop_assert!(false, "{:?}", e),
        }
    }
}

// ---------------------------------------------------------------------------
// path normalisation
// ---------------------------------------------------------------------------

fn path_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => Just("/".to_string()),
        3 => Just("..".to_string()),
        2 => Just(".".to_string()),
        3 => "[a-z]{1,4}",
        1 => Just("%2e".to_string()),
        1 => Just("%2E".to_string()),
        1 => Just("%2f".to_string()),
        1 => Just("%2F".to_string()),
        1 => Just("%5c".to_string()),
        1 => Just("\\".to_string()),
        1 => Just("%00".to_string()),
        1 => Just("\u{0}".to_string()),
        1 => Just("%c0%ae".to_string()),
        1 => Just("%25".to_string()),
        1 => "%[0-9a-fA-F]{2}",
        1 => "%[0-9a-zA-Z]{0,2}",
        1 => "[^/]{1,3}",
    ];
    (
        prop::bool::weighted(0.9),
        prop::collection::vec(piece, 0..16),
    )
        .prop_map(|(slash, ps)| format!("{}{}", if slash { "/" } else { "" }, ps.concat()))
}

/// Only pieces that can be valid: exercises `.`/`..` resolution rather than refusals.
fn path_benign() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => Just("/".to_string()),
        3 => Just("..".to_string()),
        2 => Just(".".to_string()),
        4 => "[a-z]{1,4}",
        1 => Just("%2e".to_string()),
        1 => Just("%2E".to_string()),
        1 => Just("%25".to_string()),
        1 => Just("%41".to_string()),
        1 => Just("%E2%9C%93".to_string()),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|ps| format!("/{}", ps.concat()))
}

fn norm(p: &str) -> Result<String, Status> {
    let (mut scratch, mut out) = (Vec::new(), String::new());
    normalize(p, &mut scratch, &mut out).map(|()| out)
}

fn check_normalized(input: &str) {
    let Ok(out) = norm(input) else { return };
    assert!(!out.starts_with('/'), "{input:?} -> {out:?}");
    assert!(!out.contains("//"), "{input:?} -> {out:?}");
    for seg in out.split('/') {
        assert!(seg != ".." && seg != ".", "{input:?} -> {out:?}");
    }
    assert!(
        !out.contains('\0') && !out.contains('\\'),
        "{input:?} -> {out:?}"
    );
    assert!(
        !out.chars().any(|c| c.is_ascii_control()),
        "{input:?} -> {out:?}"
    );
    let lower = input.to_ascii_lowercase();
    assert!(
        !lower.contains("%2f") && !lower.contains("%00") && !input.contains('\0'),
        "{input:?} accepted as {out:?}"
    );
    assert!(
        !lower.contains("%5c") && !input.contains('\\'),
        "{input:?} accepted as {out:?}"
    );
    assert!(input.starts_with('/'));
    // Normalising the result again changes nothing (when no escape survived).
    if !out.contains('%') {
        assert_eq!(
            norm(&format!("/{out}")).as_deref(),
            Ok(out.as_str()),
            "{input:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn normalize_never_escapes_the_root(p in path_like()) {
        check_normalized(&p);
    }

    #[test]
    fn normalize_resolves_dots_inside_the_root(p in path_benign()) {
        check_normalized(&p);
        // Accepted exactly when no `..` climbs above the root: replay the segments.
        let decoded = p.replace("%2e", ".").replace("%2E", ".");
        let mut depth: i64 = 0;
        let mut climbs = false;
        for seg in decoded.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    depth -= 1;
                    climbs |= depth < 0;
                }
                _ => depth += 1,
            }
        }
        prop_assert_eq!(norm(&p).is_ok(), !climbs, "{:?} -> {:?}", p, norm(&p));
    }

    #[test]
    fn normalize_never_panics_on_any_string(p in any::<String>()) {
        check_normalized(&p);
        check_normalized(&format!("/{p}"));
    }

    #[test]
    fn normalize_refuses_encoded_slash_and_nul(
        a in "/[a-z./]{0,10}",
        bad in prop_oneof![Just("%2f"), Just("%2F"), Just("%00"), Just("\u{0}")],
        b in "[a-z./]{0,10}",
    ) {
        let p = format!("{a}{bad}{b}");
        prop_assert_eq!(norm(&p), Err(Status::BadRequest), "{:?}", p);
    }
}

// ---------------------------------------------------------------------------
// chunked decoder
// ---------------------------------------------------------------------------

/// Encodes `chunks` as a chunked body with optional extensions and trailers.
fn encode(chunks: &[Vec<u8>], ext: bool, trailers: &[(String, String)], upper: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        let size = if upper {
            format!("{:X}", c.len())
        } else {
            format!("{:x}", c.len())
        };
        out.extend_from_slice(size.as_bytes());
        if ext {
            out.extend_from_slice(b";name=\"v a l\";x");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    for (n, v) in trailers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Feeds `input` as if it arrived in pieces ending at `cuts`; returns how much was
/// consumed and whether an error stopped it.
fn feed_split(d: &mut Decoder, input: &[u8], cuts: &[usize]) -> (usize, Result<(), ChunkError>) {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.push(input.len());
    points.sort_unstable();
    let mut consumed = 0;
    for p in points {
        // Like the server: what was not consumed stays at the front of the buffer.
        let piece = &input[consumed..p];
        match d.feed(piece) {
            Ok(n) => {
                assert!(n <= piece.len(), "consumed {n} of {}", piece.len());
                if n < piece.len() {
                    assert!(d.is_done(), "stopped early without being done");
                }
                consumed += n;
            }
            Err(e) => return (consumed, Err(e)),
        }
        if d.is_done() {
            break;
        }
    }
    (consumed, Ok(()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn decoder_on_random_bytes(
        input in prop::collection::vec(any::<u8>(), 0..300),
        max_body in 0u64..5000,
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut d = Decoder::new(max_body, 256);
        if let Ok(n) = d.feed(&input) {
            prop_assert!(n <= input.len());
            prop_assert!(d.total() <= max_body);
            if n < input.len() { prop_assert!(d.is_done()); }
        }
        let mut d = Decoder::new(max_body, 256);
        let (consumed, r) = feed_split(&mut d, &input, &cuts);
        prop_assert!(consumed <= input.len());
        if r.is_ok() { prop_assert!(d.total() <= max_body); }
        // Once done, nothing more is taken.
        if d.is_done() { prop_assert_eq!(d.feed(b"GET / HTTP/1.1\r\n"), Ok(0)); }
    }

    #[test]
    fn decoder_on_valid_bodies(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..200), 0..8),
        ext in any::<bool>(),
        upper in any::<bool>(),
        trailers in prop::collection::vec(("X-[A-Za-z]{1,8}", "[ -~]{0,12}"), 0..3),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        max_body in prop_oneof![Just(u64::MAX), 0u64..1600],
    ) {
        let body = encode(&chunks, ext, &trailers, upper);
        let sum: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        let mut input = body.clone();
        input.extend_from_slice(b"GET /next HTTP/1.1\r\n\r\n");

        let mut whole = Decoder::new(max_body, 4096);
        let r = whole.feed(&input);
        let mut split = Decoder::new(max_body, 4096);
        let (consumed, rs) = feed_split(&mut split, &input, &cuts);
        if sum <= max_body {
            prop_assert_eq!(r, Ok(body.len()), "the decoder stops exactly at the end of the body");
            prop_assert!(whole.is_done());
            prop_assert_eq!(whole.total(), sum);
            prop_assert_eq!(rs, Ok(()));
            prop_assert_eq!(consumed, body.len());
            prop_assert!(split.is_done());
            prop_assert_eq!(split.total(), sum);
        } else {
            prop_assert_eq!(r, Err(ChunkError::TooLarge));
            prop_assert_eq!(rs, Err(ChunkError::TooLarge));
            prop_assert!(consumed < body.len());
        }
    }

    #[test]
    fn decoder_rejects_a_damaged_body(
        chunks in prop::collection::vec(prop::collection::vec(b'a'..=b'z', 1..50), 1..4),
        pos in any::<prop::sample::Index>(),
        byte in prop_oneof![Just(b'\n'), Just(b'\r'), Just(b' '), Just(0u8), Just(b'g')],
    ) {
        // Replacing one framing byte (not chunk data) with junk must never yield a
        // completed body of the same length.
        let body = encode(&chunks, false, &[], false);
        let mut framing = Vec::new();
        let mut i = 0;
        for c in &chunks {
            let size_len = format!("{:x}", c.len()).len() + 2;
            framing.extend(i..i + size_len);
            i += size_len + c.len();
            framing.extend(i..i + 2);
            i += 2;
        }
        framing.extend(i..body.len());
        let at = framing[pos.index(framing.len())];
        prop_assume!(body[at] != byte);
        let mut bad = body.clone();
        bad[at] = byte;
        let mut d = Decoder::new(u64::MAX, 4096);
        let r = d.feed(&bad);
        prop_assert!(r.is_err() || !d.is_done(), "damaged body accepted: {:?} -> {:?}", String::from_utf8_lossy(&bad), r);
    }
}
