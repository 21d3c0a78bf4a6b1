//! Answering with a file: looking it up (through try-files when the site has them),
//! choosing its representation (the file, a precompressed sibling or a variant
//! compressed on the fly), preconditions and ranges, and the head and body.

use std::sync::Arc;

use super::*;
use crate::files::{self, Content, Entry, Lookup};
use crate::http::body::{Body, Bytes};
use crate::http::precondition::{self, Decision, Validators};
use crate::http::request::{Head, Method};
use crate::http::response::{self as resp, unix_secs};
use crate::http::Status;
use crate::serve::multipart;
use crate::serve::reply::{Frame, Plan, Reply};

impl<C: Context> Handler<C> {
    pub(super) fn file(
        &mut self,
        site: &Site,
        h: &Head<'_>,
        path: &str,
        query: Option<&str>,
        frame: Frame,
    ) -> Plan {
        let found = match &site.try_files {
            None => files::normalize(path, &mut self.scratch, &mut self.path)
                .map(|()| site.lookup(&self.path)),
            Some(t) => t.resolve(
                site,
                path,
                &mut self.scratch,
                &mut self.candidate,
                &mut self.path,
            ),
        };
        let lookup = match found {
            Ok(lookup) => lookup,
            Err(status) => {
                let frame = Frame {
                    close: true,
                    ..frame
                };
                return self.error(site, status, frame, None);
            }
        };
        match lookup {
            Lookup::File(entry) => self.entry(site, h, &entry, frame),
            Lookup::Redirect => {
                let location = redirect_location(&self.path, query);
                let extra = Some((&b"Location"[..], &location[..]));
                self.error(site, Status::MovedPermanently, frame, extra)
            }
            Lookup::Listing(html) => self.memory(
                site,
                Status::Ok,
                frame,
                "text/html; charset=utf-8",
                Bytes::Shared(html),
            ),
            Lookup::Error(status) => self.error(site, status, frame, None),
        }
    }

    pub(super) fn entry(
        &mut self,
        site: &Site,
        h: &Head<'_>,
        e: &Arc<Entry>,
        frame: Frame,
    ) -> Plan {
        // The file, a precompressed sibling, or the file compressed on the fly; every
        // response for a file that has siblings or is compressible says it depends
        // on Accept-Encoding.
        let compressible = site.compress.as_ref().is_some_and(|p| p.applies(e));
        // A location may turn siblings off where its site serves them.
        let vary = (site.precompressed && e.varies()) || compressible;
        // Header rules match the file served (an index file, a try-files result).
        let served = e.path();
        let sibling = if site.precompressed {
            e.select(h.accept_encoding)
        } else {
            e
        };
        let fly = if compressible && sibling.coding.is_none() {
            self.compressed(site, h, e)
        } else {
            None
        };
        let e = fly.as_deref().unwrap_or(sibling);
        let v = Validators {
            etag: &e.etag,
            mtime: e.mtime,
            now: unix_secs(std::time::SystemTime::now()) + 1,
        };
        let (start, end, status) =
            match precondition::evaluate(h, &v, e.len, h.method == Method::Get, true) {
                Decision::Full => (0, e.len, Status::Ok),
                Decision::Partial(a, b) => (a, b + 1, Status::PartialContent),
                Decision::Multi(ranges) => {
                    return self.multipart(site, e, served, frame, vary, ranges.as_slice())
                }
                Decision::NotModified => return self.not_modified(site, e, served, frame, vary),
                Decision::PreconditionFailed => {
                    return self.error(site, Status::PreconditionFailed, frame, None)
                }
                Decision::Unsatisfiable => return self.unsatisfiable(site, e, frame),
            };
        let mut reply = Reply::new(&mut self.head, status, frame, &[])
            .header(b"Content-Type", e.content_type.as_bytes())
            .header_opt(b"Content-Encoding", e.coding.map(|c| c.token().as_bytes()));
        if status == Status::PartialContent {
            content_range(reply.raw(), start, end, e.len);
        }
        let rules = site.file_headers(served, vary, &mut self.matched, reply.raw());
        let reply = validators(
            reply.header(b"Accept-Ranges", b"bytes"),
            e,
            site,
            rules,
            vary,
        );
        reply.body(end - start, range_body(e, start, end))
    }

    /// A `304` for `e`: its validators and headers, no body.
    fn not_modified(
        &mut self,
        site: &Site,
        e: &Entry,
        served: &str,
        frame: Frame,
        vary: bool,
    ) -> Plan {
        let mut reply = Reply::new(&mut self.head, Status::NotModified, frame, &[]);
        let rules = site.file_headers(served, vary, &mut self.matched, reply.raw());
        validators(reply, e, site, rules, vary).no_body()
    }

    /// A `416` naming the length of `e`.
    fn unsatisfiable(&mut self, site: &Site, e: &Entry, frame: Frame) -> Plan {
        let mut range = b"bytes */".to_vec();
        resp::push_u64(&mut range, e.len);
        let extra = Some((&b"Content-Range"[..], &range[..]));
        self.error(site, Status::RangeNotSatisfiable, frame, extra)
    }

    /// `e` compressed on the fly in the coding the client prefers, once a worker
    /// has made it (until then, `None`: the file goes out as it is).
    fn compressed(&self, site: &Site, h: &Head<'_>, e: &Arc<Entry>) -> Option<Arc<Entry>> {
        let i = files::choose(h.accept_encoding, [true; 3])?;
        let root = site.files.root_id();
        self.ctx.compressor().get(root, e, files::CODINGS[i])
    }

    /// A 206 with several ranges of `e` as `multipart/byteranges`.
    pub(super) fn multipart(
        &mut self,
        site: &Site,
        e: &Entry,
        served: &str,
        frame: Frame,
        vary: bool,
        ranges: &[(u64, u64)],
    ) -> Plan {
        let boundary = multipart::boundary();
        let mut ctype = b"multipart/byteranges; boundary=".to_vec();
        ctype.extend_from_slice(&boundary);
        let reply = Reply::new(&mut self.head, Status::PartialContent, frame, &[])
            .header(b"Content-Type", &ctype)
            .header_opt(b"Content-Encoding", e.coding.map(|c| c.token().as_bytes()));
        let mut reply = reply.header(b"Accept-Ranges", b"bytes");
        let rules = site.file_headers(served, vary, &mut self.matched, reply.raw());
        let reply = validators(reply, e, site, rules, vary);
        let body = multipart::body(&e.content, e.len, e.content_type, &boundary, ranges);
        reply.body(body.remaining(), body)
    }
}

/// ETag, Last-Modified, Cache-Control and Vary of a file response; `ruled` says a
/// `[[headers]]` rule already set Cache-Control for this path, `vary` that the file
/// has precompressed siblings.
fn validators<'a>(reply: Reply<'a>, e: &Entry, site: &Site, ruled: bool, vary: bool) -> Reply<'a> {
    let cache_control = site.cache_control.as_deref().filter(|_| !ruled);
    reply
        .header(b"Last-Modified", &e.last_modified)
        .header(b"ETag", e.etag.as_bytes())
        .header_opt(b"Cache-Control", cache_control.map(str::as_bytes))
        .header_opt(b"Vary", vary.then(|| site.vary()))
}

/// `Content-Range: bytes start-(end-1)/len`.
fn content_range(b: &mut Vec<u8>, start: u64, end: u64, len: u64) {
    b.extend_from_slice(b"Content-Range: bytes ");
    resp::push_u64(b, start);
    b.push(b'-');
    resp::push_u64(b, end - 1);
    b.push(b'/');
    resp::push_u64(b, len);
    b.extend_from_slice(b"\r\n");
}

/// Bytes `start..end` of `e` as a response body.
fn range_body(e: &Entry, start: u64, end: u64) -> Body {
    match &e.content {
        _ if start == end => Body::Empty,
        Content::Memory(m) => Body::Memory {
            bytes: Bytes::Shared(m.clone()),
            pos: start as usize,
            end: end as usize,
        },
        Content::Disk(f) => Body::File {
            file: f.clone(),
            offset: start,
            end,
        },
    }
}
