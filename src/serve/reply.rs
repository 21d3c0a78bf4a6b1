//! A response being built: the head encoded into a reused buffer, the body, and
//! what the connection does once it is sent. Handlers build one with [`Reply`]
//! and hand the driver a [`Plan`].

use crate::http::body::{Body, Bytes};
use crate::http::request::BodyKind;
use crate::http::response as resp;
use crate::http::Status;

/// How every response to one request is framed.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// HEAD: the head says what a GET would send, and no body follows.
    pub head_only: bool,
    /// Close the connection after this response.
    pub close: bool,
    /// The request's minor version (0 for HTTP/1.0).
    pub minor: u8,
}

/// A response ready for the driver.
#[derive(Debug)]
pub struct Plan {
    /// The status, for the access log and the counters.
    pub status: Status,
    /// The body (the head is in the handler's head buffer).
    pub body: Body,
    /// Close after sending.
    pub close: bool,
    /// Answer without reading the request body: send, then linger.
    pub skip_body: bool,
    /// The request body still to be read (and discarded) before the next request.
    pub request_body: BodyKind,
    /// Send `100 Continue` before reading the body.
    pub send_continue: bool,
}

impl Plan {
    /// The same response, sent without reading the request body and then closed.
    pub fn skipping_body(mut self) -> Plan {
        self.skip_body = true;
        self.close = true;
        self
    }

    /// Bytes of body the response carries.
    pub fn body_len(&self) -> u64 {
        self.body.remaining()
    }
}

/// A response head under construction in a reused buffer.
pub struct Reply<'a> {
    buf: &'a mut Vec<u8>,
    status: Status,
    frame: Frame,
}

impl<'a> Reply<'a> {
    /// Starts `status` in `buf`: status line, `Server`, `Date`, then `extra` (the
    /// configured headers, already encoded).
    pub fn new(buf: &'a mut Vec<u8>, status: Status, frame: Frame, extra: &[u8]) -> Reply<'a> {
        buf.clear();
        resp::begin(buf, status);
        buf.extend_from_slice(extra);
        Reply { buf, status, frame }
    }

    /// Adds `name: value`.
    pub fn header(self, name: &[u8], value: &[u8]) -> Reply<'a> {
        resp::header(self.buf, name, value);
        self
    }

    /// Adds `name: value` when there is a value.
    pub fn header_opt(self, name: &[u8], value: Option<&[u8]>) -> Reply<'a> {
        match value {
            Some(v) => self.header(name, v),
            None => self,
        }
    }

    /// The head buffer, for headers built in place (ranges, numbers).
    pub fn raw(&mut self) -> &mut Vec<u8> {
        self.buf
    }

    /// Ends the head with `Content-Length: len`; `body` follows unless this answers
    /// a HEAD request.
    pub fn body(self, len: u64, body: Body) -> Plan {
        resp::content_length(self.buf, len);
        let body = if self.frame.head_only {
            Body::Empty
        } else {
            body
        };
        self.end(body)
    }

    /// Ends the head of an in-memory body.
    pub fn memory(self, bytes: Bytes) -> Plan {
        let end = bytes.len();
        self.body(end as u64, Body::Memory { bytes, pos: 0, end })
    }

    /// Ends a head that has no body and no length (204, 304).
    pub fn no_body(self) -> Plan {
        self.end(Body::Empty)
    }

    fn end(self, body: Body) -> Plan {
        resp::finish(self.buf, !self.frame.close, self.frame.minor);
        Plan {
            status: self.status,
            body,
            close: self.frame.close,
            skip_body: false,
            request_body: BodyKind::None,
            send_continue: false,
        }
    }
}
