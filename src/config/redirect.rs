//! `[[redirect]]`: a regular expression over the request path and the target it
//! redirects to (`$1`..`$9` captures, `$host`), compiled once at load. Serving runs
//! a site's redirects before any file lookup, in file order; the first match wins.

use regex::Regex;

use crate::files;
use crate::http::Status;

/// One piece of a redirect target.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Text copied as it is.
    Text(String),
    /// A capture group of `from` (`$1`..`$9`), percent-encoded as a path.
    Group(usize),
    /// The request's host, without its port.
    Host,
}

/// One redirect rule.
#[derive(Debug, Clone)]
pub struct Redirect {
    from: Regex,
    to: Vec<Part>,
    /// The status it answers with.
    pub status: Status,
    /// `to` has a query of its own, so the request's is dropped.
    own_query: bool,
}

impl Redirect {
    /// A rule from `from` (a regular expression), `to` and `status` (301, 302, 307
    /// or 308); the error says which of the three is wrong.
    pub fn new(from: &str, to: &str, status: u16) -> Result<Redirect, (&'static str, String)> {
        let status = match status {
            301 => Status::MovedPermanently,
            302 => Status::Found,
            307 => Status::TemporaryRedirect,
            308 => Status::PermanentRedirect,
            n => return Err(("status", format!("{n}: expected 301, 302, 307 or 308"))),
        };
        let from_re = Regex::new(from).map_err(|e| ("from", format!("{from:?}: {e}")))?;
        let to_parts = parse_to(to).map_err(|e| ("to", format!("{to:?}: {e}")))?;
        let groups = from_re.captures_len() - 1;
        if let Some(n) = to_parts.iter().find_map(|p| match p {
            Part::Group(n) if *n > groups => Some(*n),
            _ => None,
        }) {
            let msg = format!("{to:?}: ${n}, but {from:?} has {groups} capture group(s)");
            return Err(("to", msg));
        }
        Ok(Redirect {
            from: from_re,
            to: to_parts,
            status,
            own_query: to.contains('?'),
        })
    }

    /// When `path` (decoded, normalised, starting with `/`) matches, writes the
    /// target into `out` (cleared first) and returns true. The request's `query` is
    /// kept unless the target has its own.
    pub fn target(&self, path: &str, host: &str, query: Option<&str>, out: &mut Vec<u8>) -> bool {
        let Some(caps) = self.from.captures(path) else {
            return false;
        };
        out.clear();
        for part in &self.to {
            match part {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Host => out.extend_from_slice(host.as_bytes()),
                Part::Group(n) => {
                    let text = caps.get(*n).map_or("", |m| m.as_str());
                    for piece in files::encode_path(text) {
                        out.extend_from_slice(piece.as_bytes());
                    }
                }
            }
        }
        if let Some(q) = query.filter(|_| !self.own_query) {
            out.push(b'?');
            out.extend_from_slice(q.as_bytes());
        }
        true
    }
}

/// Splits a target into text, `$1`..`$9` and `$host`; refuses other variables and
/// what a `Location` header cannot hold.
fn parse_to(to: &str) -> Result<Vec<Part>, String> {
    if to.is_empty() {
        return Err("expected a path or an absolute URL".into());
    }
    if !(to.starts_with('/') || to.starts_with("http://") || to.starts_with("https://")) {
        return Err("expected a path starting with '/' or an http:// or https:// URL".into());
    }
    if to.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("spaces and control characters cannot go in a Location".into());
    }
    let mut parts = Vec::new();
    let mut rest = to;
    while let Some(i) = rest.find('$') {
        if i > 0 {
            parts.push(Part::Text(rest[..i].to_string()));
        }
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("host") {
            parts.push(Part::Host);
            rest = tail;
        } else if let Some(d) = after.bytes().next().filter(|d| (b'1'..=b'9').contains(d)) {
            parts.push(Part::Group(usize::from(d - b'0')));
            rest = &after[1..];
        } else {
            return Err("the variables are $1 to $9 and $host".into());
        }
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(r: &Redirect, path: &str, query: Option<&str>) -> Option<String> {
        let mut out = Vec::new();
        r.target(path, "a.test", query, &mut out)
            .then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn targets() {
        let r = Redirect::new("^/old/(.*)$", "/new/$1", 301).unwrap();
        assert_eq!(go(&r, "/old/a b", Some("x=1")).unwrap(), "/new/a%20b?x=1");
        assert_eq!(go(&r, "/other", None), None);
        let r = Redirect::new("^/(.*)", "https://$host/$1?from=old", 308).unwrap();
        assert_eq!(r.status, Status::PermanentRedirect);
        assert_eq!(
            go(&r, "/x", Some("q")).unwrap(),
            "https://a.test/x?from=old"
        );
    }

    #[test]
    fn bad_rules() {
        assert_eq!(Redirect::new("(", "/", 301).unwrap_err().0, "from");
        assert_eq!(Redirect::new("/a", "/$2", 301).unwrap_err().0, "to");
        assert_eq!(Redirect::new("/a", "/$uri", 301).unwrap_err().0, "to");
        assert_eq!(Redirect::new("/a", "x", 301).unwrap_err().0, "to");
        assert_eq!(Redirect::new("/a", "/b", 303).unwrap_err().0, "status");
    }
}
