//! HTTP/1.1: request heads, chunked bodies, response heads, conditional requests and
//! ranges.

pub mod body;
pub mod chunked;
pub mod error;
pub mod grammar;
pub mod precondition;
pub mod request;
pub mod response;

/// Every status the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 100
    Continue,
    /// 200
    Ok,
    /// 204
    NoContent,
    /// 206
    PartialContent,
    /// 301
    MovedPermanently,
    /// 302
    Found,
    /// 304
    NotModified,
    /// 307
    TemporaryRedirect,
    /// 308
    PermanentRedirect,
    /// 400
    BadRequest,
    /// 401
    Unauthorized,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 408
    RequestTimeout,
    /// 412
    PreconditionFailed,
    /// 413
    PayloadTooLarge,
    /// 414
    UriTooLong,
    /// 416
    RangeNotSatisfiable,
    /// 417
    ExpectationFailed,
    /// 421
    MisdirectedRequest,
    /// 431
    HeaderFieldsTooLarge,
    /// 500
    InternalError,
    /// 501
    NotImplemented,
    /// 503
    ServiceUnavailable,
    /// 505
    VersionNotSupported,
}

impl Status {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Status::Continue => 100,
            Status::Ok => 200,
            Status::NoContent => 204,
            Status::PartialContent => 206,
            Status::MovedPermanently => 301,
            Status::Found => 302,
            Status::NotModified => 304,
            Status::TemporaryRedirect => 307,
            Status::PermanentRedirect => 308,
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::PreconditionFailed => 412,
            Status::PayloadTooLarge => 413,
            Status::UriTooLong => 414,
            Status::RangeNotSatisfiable => 416,
            Status::ExpectationFailed => 417,
            Status::MisdirectedRequest => 421,
            Status::HeaderFieldsTooLarge => 431,
            Status::InternalError => 500,
            Status::NotImplemented => 501,
            Status::ServiceUnavailable => 503,
            Status::VersionNotSupported => 505,
        }
    }

    /// The status line, CRLF included.
    pub fn line(self) -> &'static [u8] {
        match self {
            Status::Continue => b"HTTP/1.1 100 Continue\r\n",
            Status::Ok => b"HTTP/1.1 200 OK\r\n",
            Status::NoContent => b"HTTP/1.1 204 No Content\r\n",
            Status::PartialContent => b"HTTP/1.1 206 Partial Content\r\n",
            Status::MovedPermanently => b"HTTP/1.1 301 Moved Permanently\r\n",
            Status::Found => b"HTTP/1.1 302 Found\r\n",
            Status::NotModified => b"HTTP/1.1 304 Not Modified\r\n",
            Status::TemporaryRedirect => b"HTTP/1.1 307 Temporary Redirect\r\n",
            Status::PermanentRedirect => b"HTTP/1.1 308 Permanent Redirect\r\n",
            Status::BadRequest => b"HTTP/1.1 400 Bad Request\r\n",
            Status::Unauthorized => b"HTTP/1.1 401 Unauthorized\r\n",
            Status::Forbidden => b"HTTP/1.1 403 Forbidden\r\n",
            Status::NotFound => b"HTTP/1.1 404 Not Found\r\n",
            Status::MethodNotAllowed => b"HTTP/1.1 405 Method Not Allowed\r\n",
            Status::RequestTimeout => b"HTTP/1.1 408 Request Timeout\r\n",
            Status::PreconditionFailed => b"HTTP/1.1 412 Precondition Failed\r\n",
            Status::PayloadTooLarge => b"HTTP/1.1 413 Content Too Large\r\n",
            Status::UriTooLong => b"HTTP/1.1 414 URI Too Long\r\n",
            Status::RangeNotSatisfiable => b"HTTP/1.1 416 Range Not Satisfiable\r\n",
            Status::ExpectationFailed => b"HTTP/1.1 417 Expectation Failed\r\n",
            Status::MisdirectedRequest => b"HTTP/1.1 421 Misdirected Request\r\n",
            Status::HeaderFieldsTooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
            Status::InternalError => b"HTTP/1.1 500 Internal Server Error\r\n",
            Status::NotImplemented => b"HTTP/1.1 501 Not Implemented\r\n",
            Status::ServiceUnavailable => b"HTTP/1.1 503 Service Unavailable\r\n",
            Status::VersionNotSupported => b"HTTP/1.1 505 HTTP Version Not Supported\r\n",
        }
    }

    /// A small HTML page describing the status, for error responses.
    pub fn page(self) -> &'static [u8] {
        macro_rules! page {
            ($t:literal) => {
                concat!(
                    "<!DOCTYPE html>\n<html><head><title>",
                    $t,
                    "</title></head>\n<body><h1>",
                    $t,
                    "</h1><hr><p>hearth</p></body></html>\n"
                )
                .as_bytes()
            };
        }
        match self {
            Status::MovedPermanently => page!("301 Moved Permanently"),
            Status::Found => page!("302 Found"),
            Status::TemporaryRedirect => page!("307 Temporary Redirect"),
            Status::PermanentRedirect => page!("308 Permanent Redirect"),
            Status::BadRequest => page!("400 Bad Request"),
            Status::Unauthorized => page!("401 Unauthorized"),
            Status::Forbidden => page!("403 Forbidden"),
            Status::NotFound => page!("404 Not Found"),
            Status::MethodNotAllowed => page!("405 Method Not Allowed"),
            Status::RequestTimeout => page!("408 Request Timeout"),
            Status::PreconditionFailed => page!("412 Precondition Failed"),
            Status::PayloadTooLarge => page!("413 Content Too Large"),
            Status::UriTooLong => page!("414 URI Too Long"),
            Status::RangeNotSatisfiable => page!("416 Range Not Satisfiable"),
            Status::ExpectationFailed => page!("417 Expectation Failed"),
            Status::MisdirectedRequest => page!("421 Misdirected Request"),
            Status::HeaderFieldsTooLarge => page!("431 Request Header Fields Too Large"),
            Status::InternalError => page!("500 Internal Server Error"),
            Status::NotImplemented => page!("501 Not Implemented"),
            Status::ServiceUnavailable => page!("503 Service Unavailable"),
            Status::VersionNotSupported => page!("505 HTTP Version Not Supported"),
            Status::Continue
            | Status::Ok
            | Status::NoContent
            | Status::PartialContent
            | Status::NotModified => b"",
        }
    }
}
