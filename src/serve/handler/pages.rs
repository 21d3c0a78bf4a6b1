//! The answers that are not files: HTTPS policy (`308` to HTTPS, `421`), the health
//! and statistics pages, and OPTIONS.

use std::net::SocketAddr;

use super::*;
use crate::http::body::Bytes;
use crate::http::error::Refusal;
use crate::http::request::{BodyKind, Head, Method};
use crate::http::response::{self as resp};
use crate::http::Status;
use crate::obs::stats::Snapshot;
use crate::serve::reply::{Frame, Plan};

impl<C: Context> Handler<C> {
    /// The answers HTTPS adds: on the plain port with `--redirect-https`, a `308`
    /// to the same target over HTTPS; over TLS, a `421` when `Host` names a vhost
    /// whose certificate is not the one the handshake's SNI chose.
    pub(super) fn tls_policy(&mut self, site: &Site, via: &Via<'_>, h: &Head<'_>) -> Option<Plan> {
        let frame = Frame {
            head_only: h.method == Method::Head,
            close: !h.keep_alive || self.ctx.is_draining(),
            minor: h.minor,
        };
        let s = self.ctx.settings();
        match via.tls {
            None if s.redirect_https => {
                let target = origin_form(h.target)?;
                let Some(host) = request_host(h).map(host_without_port) else {
                    return Some(self.refuse(site, Refusal::Malformed, frame));
                };
                let mut location = Vec::with_capacity(16 + host.len() + target.len());
                location.extend_from_slice(b"https://");
                location.extend_from_slice(host.as_bytes());
                if s.tls_port != 443 {
                    location.push(b':');
                    resp::push_u64(&mut location, u64::from(s.tls_port));
                }
                location.extend_from_slice(target.as_bytes());
                let extra = Some((&b"Location"[..], &location[..]));
                // The request body, if any, is not read: answer, then linger.
                let plan = self.error(site, Status::PermanentRedirect, frame, extra);
                Some(if h.body == BodyKind::None {
                    plan
                } else {
                    plan.skipping_body()
                })
            }
            Some(sni) => {
                let tls = self.ctx.tls()?;
                let host = crate::config::sites::host_name(request_host(h)?);
                if !tls.resolver.store().misdirected(sni, host) {
                    return None;
                }
                let frame = Frame {
                    close: true,
                    ..frame
                };
                let plan = self.error(site, Status::MisdirectedRequest, frame, None);
                Some(if h.body == BodyKind::None {
                    plan
                } else {
                    plan.skipping_body()
                })
            }
            None => None,
        }
    }

    pub(super) fn health(&mut self, site: &Site, h: &Head<'_>, frame: Frame) -> Plan {
        if h.method == Method::Other {
            return self.error(site, Status::MethodNotAllowed, frame, None);
        }
        let (status, body): (Status, &'static [u8]) = if self.ctx.is_draining() {
            (Status::ServiceUnavailable, b"draining\n")
        } else {
            (Status::Ok, b"ok\n")
        };
        self.memory(
            site,
            status,
            frame,
            "text/plain; charset=utf-8",
            Bytes::Static(body),
        )
    }

    pub(super) fn options(&mut self, site: &Site, h: &Head<'_>, frame: Frame) -> Plan {
        let cors = site.cors.is_some();
        let mut reply = self
            .start(site, Status::NoContent, frame)
            .header(b"Allow", ALLOW);
        if cors && h.origin.is_some() && h.acr_method.is_some() {
            let asked = h.acr_headers.filter(|v| {
                v.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_, ".contains(&c))
            });
            reply = reply
                .header(b"Access-Control-Allow-Methods", ALLOW)
                .header_opt(b"Access-Control-Allow-Headers", asked.map(str::as_bytes))
                .header(b"Access-Control-Max-Age", b"86400");
        }
        reply.no_body()
    }

    pub(super) fn stats(
        &mut self,
        site: &Site,
        peer: &SocketAddr,
        h: &Head<'_>,
        query: Option<&str>,
        f: Frame,
    ) -> Plan {
        if !self.ctx.settings().stats_allowed(peer.ip()) {
            return self.error(site, Status::Forbidden, f, None);
        }
        if h.method == Method::Other {
            return self.error(site, Status::MethodNotAllowed, f, None);
        }
        let format = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|kv| kv.strip_prefix("format="))
            .next_back()
            .unwrap_or("text");
        let render: fn(&Snapshot) -> String = match format {
            "text" => Snapshot::text,
            "json" => Snapshot::json,
            "prometheus" => Snapshot::prometheus,
            _ => {
                // A typo must not look like the text page.
                let body = b"unknown format; the formats are text, json and prometheus\n";
                return self.memory(
                    site,
                    Status::BadRequest,
                    f,
                    "text/plain; charset=utf-8",
                    Bytes::Static(body),
                );
            }
        };
        let ctype = match format {
            "json" => "application/json",
            "prometheus" => "text/plain; version=0.0.4; charset=utf-8",
            _ => "text/plain; charset=utf-8",
        };
        let text = render(&self.ctx.snapshot());
        self.memory(site, Status::Ok, f, ctype, Bytes::Owned(text.into_bytes()))
    }
}
