//! Serving a site's routes: `--try-files` candidates looked up in order, and
//! `--error-page` files as the bodies of error responses (parsed in
//! `config::routes`).
//!
//! Every candidate goes through [`files::normalize`] and [`Files::lookup`], so the
//! traversal, dotfile and symlink rules hold for each one as for a plain request.

use std::sync::Arc;

use crate::config::routes::{ErrorPages, Item, TryFiles};
use crate::config::site::Site;
use crate::files::{self, Content, Entry, Files, Lookup};
use crate::http::body::{Body, Bytes};
use crate::http::Status;

impl TryFiles {
    /// Resolves the raw request `path` (before decoding). A candidate matches when
    /// it names a file, or a directory with an index (or a listing); the last item
    /// is looked up whatever it yields. `Err` is a request path that does not
    /// normalise (400, as for a plain lookup). On `Ok`, `out` holds the normalised
    /// path of what was looked up; `scratch` and `raw` are reused buffers.
    pub fn resolve(
        &self,
        site: &Site,
        path: &str,
        scratch: &mut Vec<u8>,
        raw: &mut String,
        out: &mut String,
    ) -> Result<Lookup, Status> {
        // A path that is refused on its own (traversal, bad escapes) must not reach
        // the fallback either.
        files::normalize(path, scratch, out)?;
        for item in &self.candidates {
            match candidate(item, site, path, scratch, raw, out) {
                Some(l @ (Lookup::File(_) | Lookup::Listing(_))) => return Ok(l),
                // Server trouble is reported, not hidden behind the next candidate.
                Some(Lookup::Error(s @ (Status::InternalError | Status::ServiceUnavailable))) => {
                    return Ok(Lookup::Error(s))
                }
                _ => {}
            }
        }
        let last = candidate(&self.last, site, path, scratch, raw, out);
        Ok(last.unwrap_or(Lookup::Error(Status::NotFound)))
    }
}

impl ErrorPages {
    /// The file to send as the body of a `status` response, if one is configured and
    /// is a regular file the policies let through; otherwise the built-in page.
    pub fn page(&self, files: &Files, status: Status) -> Option<Arc<Entry>> {
        let rel = self.path(status.code())?;
        match files.lookup(rel) {
            Lookup::File(e) => Some(e),
            other => {
                log::debug!("error page {rel:?} for {}: {other:?}", status.code());
                None
            }
        }
    }
}

/// Looks up one item; `None` when `$uri` with its suffix does not normalise.
fn candidate(
    item: &Item,
    site: &Site,
    path: &str,
    scratch: &mut Vec<u8>,
    raw: &mut String,
    out: &mut String,
) -> Option<Lookup> {
    match item {
        Item::Uri(suffix) if suffix.is_empty() => files::normalize(path, scratch, out).ok()?,
        Item::Uri(suffix) => {
            raw.clear();
            raw.push_str(path);
            raw.push_str(suffix);
            files::normalize(raw, scratch, out).ok()?;
        }
        Item::Fixed(p) => {
            out.clear();
            out.push_str(p);
        }
        Item::Code(s) => return Some(Lookup::Error(*s)),
    }
    Some(site.lookup(out))
}

/// The whole of a file, as a response body (an error page is never a range).
pub fn whole_body(e: &Entry) -> Body {
    match &e.content {
        Content::Memory(m) => Body::Memory {
            bytes: Bytes::Shared(m.clone()),
            pos: 0,
            end: m.len(),
        },
        Content::Disk(f) => Body::File {
            file: f.clone(),
            offset: 0,
            end: e.len,
        },
    }
}
