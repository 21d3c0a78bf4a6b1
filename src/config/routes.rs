//! A site's nginx-style routes, as configured: `--try-files` (candidate paths tried
//! in order, then a fallback) and `--error-page` (a file from the root as the body of
//! error responses), parsed and checked at load. Serving them is `serve::routes`.

use crate::config::settings::ConfigError;
use crate::files;
use crate::http::Status;

/// Statuses a `=CODE` item may answer with.
const TERMINAL: &[Status] = &[
    Status::BadRequest,
    Status::Forbidden,
    Status::NotFound,
    Status::InternalError,
    Status::ServiceUnavailable,
];

/// One `--try-files` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// `$uri` and a suffix (`""`, `".html"`, `"/"`): the request path with it appended.
    Uri(String),
    /// A fixed path under the root, already normalised (`/index.html` -> `index.html`).
    Fixed(String),
    /// `=CODE`: answer with this status.
    Code(Status),
}

/// A parsed `--try-files` list: candidates tried in order, then the last item,
/// which is served whatever it yields (a fallback URI) or is a status (`=404`).
#[derive(Debug, Clone)]
pub struct TryFiles {
    pub(crate) candidates: Vec<Item>,
    pub(crate) last: Item,
}

impl TryFiles {
    /// Parses `LIST`: items separated by spaces, at least two, `=CODE` only last.
    pub fn parse(list: &str) -> Result<TryFiles, ConfigError> {
        let err = |why: String| ConfigError(format!("--try-files {list:?}: {why}"));
        let mut candidates = list
            .split_ascii_whitespace()
            .map(parse_item)
            .collect::<Result<Vec<_>, String>>()
            .map_err(err)?;
        let (Some(last), true) = (candidates.pop(), !candidates.is_empty()) else {
            return Err(err(
                "needs at least two items: candidates such as $uri, then a fallback URI or =CODE"
                    .into(),
            ));
        };
        if candidates.iter().any(|i| matches!(i, Item::Code(_))) {
            return Err(err("=CODE may only be the last item".into()));
        }
        Ok(TryFiles { candidates, last })
    }
}

/// Parses one `--try-files` item; the error says what is wrong with it.
fn parse_item(w: &str) -> Result<Item, String> {
    if let Some(code) = w.strip_prefix('=') {
        let n: u16 = code.parse().map_err(|_| format!("{w:?}: expected =CODE"))?;
        return TERMINAL
            .iter()
            .find(|s| s.code() == n)
            .map(|&s| Item::Code(s))
            .ok_or_else(|| format!("{w:?}: =CODE may be =400, =403, =404, =500 or =503"));
    }
    if w.contains(['?', '#']) {
        return Err(format!("{w:?}: queries and fragments are not supported"));
    }
    if let Some(suffix) = w.strip_prefix("$uri") {
        if suffix.contains('$') {
            return Err(format!("{w:?}: the only variable is $uri"));
        }
        // The suffix is appended to request paths: it must keep one valid.
        normalized(&format!("/x{suffix}")).map_err(|why| format!("{w:?}: {why}"))?;
        return Ok(Item::Uri(suffix.to_string()));
    }
    if w.contains('$') {
        return Err(format!("{w:?}: the only variable is $uri"));
    }
    if !w.starts_with('/') {
        return Err(format!(
            "{w:?}: expected $uri, $uri.html, $uri/, a path starting with '/' or =CODE"
        ));
    }
    normalized(w)
        .map(Item::Fixed)
        .map_err(|why| format!("{w:?}: {why}"))
}

/// `p` normalised under the root, refusing what a request could never be served.
fn normalized(p: &str) -> Result<String, String> {
    let (mut scratch, mut out) = (Vec::new(), String::new());
    files::normalize(p, &mut scratch, &mut out)
        .map_err(|_| "not a valid path under the root".to_string())?;
    if files::is_hidden(&out) {
        return Err("names a hidden path, which is never served".into());
    }
    Ok(out)
}

/// Which statuses an error page is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    /// One status code.
    Exact(u16),
    /// A class: `4xx` is 4, `5xx` is 5.
    Class(u16),
}

/// The `--error-page` files of a site, by status.
#[derive(Debug, Clone, Default)]
pub struct ErrorPages {
    /// Codes and normalised paths under the root.
    pages: Vec<(Code, String)>,
}

impl ErrorPages {
    /// Parses `CODE=PATH` specs (CODE: 400-599, `4xx` or `5xx`; PATH a file under
    /// the root, starting with `/`). A code given twice is refused.
    pub fn parse(specs: &[String]) -> Result<ErrorPages, ConfigError> {
        let mut pages: Vec<(Code, String)> = Vec::with_capacity(specs.len());
        for spec in specs {
            let err = |why: &str| ConfigError(format!("--error-page {spec:?}: {why}"));
            let Some((code, path)) = spec.split_once('=') else {
                return Err(err("expected CODE=PATH, e.g. 404=/404.html"));
            };
            let code = parse_code(code.trim())
                .ok_or_else(|| err("CODE must be a status from 400 to 599, or 4xx or 5xx"))?;
            let path = path.trim();
            if !path.starts_with('/') || path.ends_with('/') || path.contains(['?', '#']) {
                return Err(err("PATH must name a file under the root, e.g. /404.html"));
            }
            let rel = normalized(path).map_err(|why| err(&why))?;
            if rel.is_empty() || rel.ends_with('/') {
                return Err(err("PATH must name a file, not a directory"));
            }
            if pages.iter().any(|(c, _)| *c == code) {
                return Err(err("this code already has an error page"));
            }
            pages.push((code, rel));
        }
        Ok(ErrorPages { pages })
    }

    /// The page path for `code`: an exact code wins over its class.
    pub fn path(&self, code: u16) -> Option<&str> {
        let exact = self.pages.iter().find(|(c, _)| *c == Code::Exact(code));
        exact
            .or_else(|| {
                self.pages
                    .iter()
                    .find(|(c, _)| *c == Code::Class(code / 100))
            })
            .map(|(_, p)| p.as_str())
    }
}

/// `404` -> exact, `4xx`/`5xx` -> class; anything else is refused.
fn parse_code(s: &str) -> Option<Code> {
    let b = s.as_bytes();
    if b.len() != 3 {
        return None;
    }
    if b[1..].eq_ignore_ascii_case(b"xx") && matches!(b[0], b'4' | b'5') {
        return Some(Code::Class(u16::from(b[0] - b'0')));
    }
    let n: u16 = s.parse().ok()?;
    (400..=599).contains(&n).then_some(Code::Exact(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(list: &str) -> (Vec<Item>, Item) {
        let t = TryFiles::parse(list).unwrap();
        (t.candidates, t.last)
    }

    #[test]
    fn try_files_lists() {
        let uri = |s: &str| Item::Uri(s.to_string());
        assert_eq!(
            items("$uri $uri.html $uri/ =404"),
            (
                vec![uri(""), uri(".html"), uri("/")],
                Item::Code(Status::NotFound)
            )
        );
        assert_eq!(
            items("  $uri\t/index.html "),
            (vec![uri("")], Item::Fixed("index.html".into()))
        );
        assert_eq!(
            items("/maintenance.html $uri"),
            (vec![Item::Fixed("maintenance.html".into())], uri(""))
        );
        assert_eq!(items("$uri /").1, Item::Fixed(String::new()));
    }

    #[test]
    fn bad_try_files_lists() {
        for bad in [
            "",
            "$uri",
            "=404",
            "$uri =404 /index.html",
            "$uri =200",
            "$uri =abc",
            "$uri index.html",
            "$uri $args",
            "$uri$is_args /x",
            "$uri /../x",
            "$uri /.env",
            "$uri /a?b",
            "$uri%zz /x",
        ] {
            let e = TryFiles::parse(bad);
            assert!(e.is_err(), "{bad:?} accepted");
            assert!(e.unwrap_err().0.starts_with("--try-files"));
        }
    }

    #[test]
    fn error_page_specs() {
        let specs: Vec<String> = ["404=/errors/404.html", "4XX=/4xx.html", "5xx = /oops.html"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = ErrorPages::parse(&specs).unwrap();
        assert_eq!(p.path(404), Some("errors/404.html"));
        assert_eq!(p.path(403), Some("4xx.html"));
        assert_eq!(p.path(503), Some("oops.html"));
        assert_eq!(p.path(301), None);
        assert_eq!(ErrorPages::default().path(404), None);
        for bad in [
            "404",
            "404=",
            "404=x.html",
            "200=/x.html",
            "600=/x.html",
            "3xx=/x.html",
            "4x=/x.html",
            "abc=/x.html",
            "404=/dir/",
            "404=/",
            "404=/../x.html",
            "404=/.hidden.html",
            "404=/x.html?a",
        ] {
            let e = ErrorPages::parse(&[bad.to_string()]);
            assert!(e.is_err(), "{bad:?} accepted");
            assert!(e.unwrap_err().0.starts_with("--error-page"));
        }
        let twice = ["404=/a.html".to_string(), "404=/b.html".to_string()];
        assert!(ErrorPages::parse(&twice).is_err());
    }
}
