//! Micro-benchmarks of the per-request CPU work: parsing a head, normalising the
//! path, and encoding a response head.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use hearth::files::normalize;
use hearth::http::request::{parse, Limits};
use hearth::http::response;
use hearth::http::Status;

const REQ: &[u8] = b"GET /static/app.js?v=3 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\nAccept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\nIf-None-Match: \"5e1-18b-6b04256b\"\r\n\r\n";

fn benches(c: &mut Criterion) {
    let limits = Limits {
        max_uri: 8192,
        max_header: 16384,
    };
    c.bench_function("parse_head", |b| {
        b.iter(|| parse(black_box(REQ), &limits).map(|_| ()))
    });
    let (mut scratch, mut out) = (Vec::new(), String::new());
    c.bench_function("normalize_path", |b| {
        b.iter(|| {
            normalize(
                black_box("/static/js/../app%20v2.js"),
                &mut scratch,
                &mut out,
            )
        })
    });
    let mut head = Vec::with_capacity(512);
    c.bench_function("encode_head", |b| {
        b.iter(|| {
            head.clear();
            response::begin(&mut head, Status::Ok);
            response::header(
                &mut head,
                b"Content-Type",
                b"text/javascript; charset=utf-8",
            );
            response::content_length(&mut head, black_box(48_213));
            response::header(
                &mut head,
                b"Last-Modified",
                b"Mon, 23 Nov 2026 11:37:15 GMT",
            );
            response::header(&mut head, b"ETag", b"\"510298-44f-6b04256b35c6bcaf\"");
            response::finish(&mut head, true, 1);
            black_box(head.len())
        })
    });
}

criterion_group!(http, benches);
criterion_main!(http);
