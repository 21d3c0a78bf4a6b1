//! Request paths: decoding and normalisation, the dotfile rule, escaping for URLs and
//! HTML, and MIME types.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use parking_lot::Mutex;

use crate::http::Status;

/// Decodes and normalises the path of a request target into `out` (relative to the
/// root, segments joined by `/`, no leading slash, and a trailing slash when the
/// path names a directory: ends in `/`, `/.` or `/..`; the root is the empty string).
///
/// Refused with 400: a path not starting with `/`, malformed or overlong escapes,
/// an encoded `/` (`%2F`), NUL and other control bytes, backslashes in any spelling,
/// bytes that are not UTF-8 once decoded (overlong forms included), and `..` that
/// would climb above the root. Escapes are decoded exactly once.
pub fn normalize(path: &str, scratch: &mut Vec<u8>, out: &mut String) -> Result<(), Status> {
    let bad = Status::BadRequest;
    let raw = path.as_bytes();
    if raw.first() != Some(&b'/') {
        return Err(bad);
    }
    scratch.clear();
    let mut i = 0;
    while i < raw.len() {
        let mut b = raw[i];
        if b == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (Some(hi), Some(lo)) = (
                raw.get(i + 1).and_then(|&c| hex(c)),
                raw.get(i + 2).and_then(|&c| hex(c)),
            ) else {
                return Err(bad);
            };
            b = (hi * 16 + lo) as u8;
            if b == b'/' {
                return Err(bad);
            }
            i += 3;
        } else {
            i += 1;
        }
        if b < 0x20 || b == 0x7f || b == b'\\' {
            return Err(bad);
        }
        scratch.push(b);
    }
    let decoded = std::str::from_utf8(scratch).map_err(|_| bad)?;
    out.clear();
    let mut dir = false;
    for seg in decoded.split('/') {
        dir = false;
        match seg {
            "" => dir = true,
            "." => dir = true,
            ".." => {
                if out.is_empty() {
                    return Err(bad);
                }
                let cut = out.rfind('/').unwrap_or(0);
                out.truncate(cut);
                dir = true;
            }
            _ => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(seg);
            }
        }
    }
    if dir && !out.is_empty() {
        out.push('/');
    }
    Ok(())
}

/// Characters escaped when a path is written back into a URL or an HTML attribute.
pub(super) const PATH_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'&')
    .add(b'\'')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Percent-encodes a normalised path for a `Location` header or a link.
pub fn encode_path(path: &str) -> percent_encoding::PercentEncode<'_> {
    utf8_percent_encode(path, PATH_ESCAPES)
}

/// True if a segment of the normalised path is hidden (`.git`, `.env`); `.well-known`
/// stays reachable for ACME and similar protocols.
pub fn is_hidden(rel: &str) -> bool {
    rel.split('/')
        .any(|s| s.starts_with('.') && s != ".well-known")
}

/// The Content-Type for a file name.
pub fn content_type(name: &str) -> &'static str {
    let ext = match name.rsplit_once('.') {
        Some((_, ext)) if !ext.contains('/') => ext.to_ascii_lowercase(),
        _ => return "application/octet-stream",
    };
    // Types where the MIME table's answer is outdated or charset matters.
    match ext.as_str() {
        "html" | "htm" => return "text/html; charset=utf-8",
        "css" => return "text/css; charset=utf-8",
        "js" | "mjs" | "cjs" => return "text/javascript; charset=utf-8",
        "json" | "map" => return "application/json; charset=utf-8",
        "webmanifest" => return "application/manifest+json; charset=utf-8",
        "txt" | "text" | "log" => return "text/plain; charset=utf-8",
        "md" | "markdown" => return "text/markdown; charset=utf-8",
        "csv" => return "text/csv; charset=utf-8",
        "xml" => return "application/xml; charset=utf-8",
        "svg" | "svgz" => return "image/svg+xml; charset=utf-8",
        "wasm" => return "application/wasm",
        "avif" => return "image/avif",
        "webp" => return "image/webp",
        "woff2" => return "font/woff2",
        "woff" => return "font/woff",
        "ico" => return "image/x-icon",
        _ => {}
    }
    let Some(mime) = mime_guess::from_ext(&ext).first_raw() else {
        return "application/octet-stream";
    };
    if mime.starts_with("text/") {
        // Leaked once per distinct text type: a bounded set from the static table.
        static TEXT: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
        let mut known = TEXT.lock();
        let with_charset = format!("{mime}; charset=utf-8");
        if let Some(t) = known.iter().find(|t| **t == with_charset) {
            return t;
        }
        let leaked: &'static str = Box::leak(with_charset.into_boxed_str());
        known.push(leaked);
        return leaked;
    }
    mime
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, Status> {
        let (mut s, mut o) = (Vec::new(), String::new());
        normalize(p, &mut s, &mut o).map(|()| o)
    }

    #[test]
    fn normalisation() {
        let ok = |p: &str, want: &str| assert_eq!(norm(p), Ok(want.to_string()), "{p}");
        ok("/", "");
        ok("/index.html", "index.html");
        ok("/a/b/", "a/b/");
        ok("/a//b", "a/b");
        ok("/a/./b", "a/b");
        ok("/a/../b", "b");
        ok("/a/b/..", "a/");
        ok("/a/..", "");
        ok("/a%20b", "a b");
        ok("/%E2%9C%93", "\u{2713}");
        ok("/%252e%252e/x", "%2e%2e/x");
        ok("/a/%2e%2e/b", "b");
        for bad in [
            "",
            "x",
            "/..",
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/",
            "/%2E./x",
            "/..%2fetc",
            "/a%2Fb",
            "/a%00",
            "/a\\..\\b",
            "/%5c..",
            "/%zz",
            "/%4",
            "/%c0%ae%c0%ae/",
            "/%ff",
            "/a%0ab",
        ] {
            assert_eq!(norm(bad), Err(Status::BadRequest), "{bad:?}");
        }
    }

    #[test]
    fn hidden_segments() {
        assert!(is_hidden(".git/config"));
        assert!(is_hidden("a/.env"));
        assert!(!is_hidden(".well-known/acme"));
        assert!(!is_hidden("a.b/c"));
    }

    #[test]
    fn mime_types() {
        assert_eq!(content_type("a.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("a.PNG"), "image/png");
        assert_eq!(content_type("a.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a.wasm"), "application/wasm");
        assert_eq!(content_type("a.pdf"), "application/pdf");
        assert_eq!(content_type("a.mp4"), "video/mp4");
        assert_eq!(content_type("a.jpg"), "image/jpeg");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(content_type("a.unknownext"), "application/octet-stream");
    }
}
