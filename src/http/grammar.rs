//! The byte-level grammar of a request (RFC 9110, RFC 9112, RFC 3986): tokens,
//! request-target bytes, percent-escapes and the `Host` value.

/// A byte class as a lookup table: ASCII letters and digits plus `extra`.
const fn byte_set(extra: &[u8]) -> [bool; 256] {
    let mut set = [false; 256];
    let mut b = 0;
    while b < 256 {
        set[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        set[extra[i] as usize] = true;
        i += 1;
    }
    set
}

/// `tchar` (RFC 9110 §5.6.2): method names, field names, chunk-extension tokens.
pub const TCHAR: [bool; 256] = byte_set(b"!#$%&'*+-.^_`|~");

/// Bytes a request-target may hold unencoded (RFC 9112 §3.2 built from RFC 3986:
/// unreserved, sub-delims, ":" "@" "/" "?", "%" for pct-encoded, and "[" "]" for an
/// IP literal in the authority).
pub const TARGET: [bool; 256] = byte_set(b"-._~!$&'()*+,;=:@/?%[]");

/// reg-name bytes of a Host (RFC 3986 §3.2.2: unreserved, sub-delims, "%"). The comma
/// sub-delim is left out: no host name contains one, and `a,b` is what a list of
/// hosts folded into one field looks like.
const REG_NAME: [bool; 256] = byte_set(b"-._~!$&'()*+;=%");

/// Every `%` starts a `%XX` escape of two hex digits.
fn pct_encoded_ok(s: &[u8]) -> bool {
    s.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || (s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// A `Host` value: `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2), so no
/// userinfo, path, list or whitespace.
pub fn host_ok(v: &[u8]) -> bool {
    let port = if let Some(rest) = v.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        if !ip_literal_ok(&rest[..close]) {
            return false;
        }
        &rest[close + 1..]
    } else {
        // An IPv4 address is a reg-name as far as the bytes go.
        let colon = v.iter().position(|&b| b == b':').unwrap_or(v.len());
        let name = &v[..colon];
        if !name.iter().all(|&b| REG_NAME[usize::from(b)]) || !pct_encoded_ok(name) {
            return false;
        }
        &v[colon..]
    };
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// What sits between `[` and `]`: an IPv6 address or `v` HEXDIG "." followed by
/// unreserved / sub-delims / ":" (IPvFuture).
fn ip_literal_ok(lit: &[u8]) -> bool {
    if let Some(rest) = lit.strip_prefix(b"v").or_else(|| lit.strip_prefix(b"V")) {
        let hex = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        return match rest[hex..].split_first() {
            Some((b'.', tail)) if hex > 0 && !tail.is_empty() => tail
                .iter()
                .all(|&b| b != b'%' && (REG_NAME[usize::from(b)] || b == b',' || b == b':')),
            _ => false,
        };
    }
    std::str::from_utf8(lit)
        .ok()
        .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
        .is_some()
}

/// Length of the authority at the start of a target: none for origin-form (`/…`) and
/// asterisk-form, the part after `scheme://` up to the path or query for absolute-form,
/// all of it for authority-form (`host:port`).
fn authority_len(target: &[u8]) -> usize {
    if target.first().is_some_and(|&b| b == b'/' || b == b'*') {
        return 0;
    }
    let start = target
        .windows(3)
        .position(|w| w == b"://")
        .map_or(0, |i| i + 3);
    start
        + target[start..]
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(target.len() - start)
}

/// A complete request target is inside the grammar: escapes are `%XX`, and brackets
/// appear only around an IP literal in the authority.
pub fn target_ok(target: &[u8]) -> bool {
    let authority = authority_len(target);
    pct_encoded_ok(target)
        && !target[authority..].iter().any(|&b| b == b'[' || b == b']')
        && absolute_authority_ok(&target[..authority])
}

/// The authority of an absolute-form target (`scheme://authority`) is held to the
/// `Host` grammar: a host, one optional numeric port, no userinfo (RFC 9110 §4.2.4),
/// so the site it picks is the one every URL parser would read.
fn absolute_authority_ok(head: &[u8]) -> bool {
    match head.windows(3).position(|w| w == b"://") {
        Some(i) => {
            let authority = &head[i + 3..];
            !authority.is_empty() && host_ok(authority)
        }
        None => true,
    }
}
