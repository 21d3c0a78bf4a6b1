//! Why a request is refused, in one place: the parser, the body decoder, the driver
//! and the handler all speak [`Refusal`], and [`Refusal::status`] and
//! [`Refusal::then`] are the one map from a reason to the status sent and what
//! becomes of the connection.

use crate::http::chunked::ChunkError;
use crate::http::Status;

/// Why a request cannot be served normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A malformed request line, header field, Host, framing or target.
    Malformed,
    /// A method longer than any the server knows, or not a method at all.
    UnknownMethod,
    /// A transfer coding other than `chunked`.
    UnknownCoding,
    /// A request line longer than `--max-uri`.
    UriTooLong,
    /// A head longer than `--max-header`, or with too many fields.
    HeadTooLarge,
    /// An HTTP major version other than 1.
    BadVersion,
    /// A body longer than `--max-body`.
    BodyTooLarge,
    /// A malformed chunked body.
    BadChunk,
    /// An `Expect` other than `100-continue`.
    Expectation,
}

/// What becomes of the connection after a refusal's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Close: where the next request would start is unknown.
    Close,
    /// A body follows that will not be read: answer, shut down writing and drain
    /// input until the client closes, so the close does not reset the response.
    CloseUnread,
}

impl Refusal {
    /// The status sent.
    pub fn status(self) -> Status {
        match self {
            Refusal::Malformed | Refusal::BadChunk => Status::BadRequest,
            Refusal::UnknownMethod | Refusal::UnknownCoding => Status::NotImplemented,
            Refusal::UriTooLong => Status::UriTooLong,
            Refusal::HeadTooLarge => Status::HeaderFieldsTooLarge,
            Refusal::BadVersion => Status::VersionNotSupported,
            Refusal::BodyTooLarge => Status::PayloadTooLarge,
            Refusal::Expectation => Status::ExpectationFailed,
        }
    }

    /// What becomes of the connection. A refused head leaves the stream's framing
    /// unknown; a refused body is never read.
    pub fn then(self) -> Then {
        match self {
            Refusal::BodyTooLarge | Refusal::BadChunk | Refusal::Expectation => Then::CloseUnread,
            _ => Then::Close,
        }
    }
}

impl From<ChunkError> for Refusal {
    fn from(e: ChunkError) -> Refusal {
        match e {
            ChunkError::Malformed => Refusal::BadChunk,
            ChunkError::TooLarge => Refusal::BodyTooLarge,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_closes_and_body_refusals_leave_the_body_unread() {
        use Refusal::*;
        let all = [
            Malformed,
            UnknownMethod,
            UnknownCoding,
            UriTooLong,
            HeadTooLarge,
            BadVersion,
            BodyTooLarge,
            BadChunk,
            Expectation,
        ];
        let codes: Vec<u16> = all.iter().map(|r| r.status().code()).collect();
        assert_eq!(codes, [400, 501, 501, 414, 431, 505, 413, 400, 417]);
        for r in all {
            let unread = matches!(r, BodyTooLarge | BadChunk | Expectation);
            assert_eq!(r.then() == Then::CloseUnread, unread, "{r:?}");
        }
        assert_eq!(Refusal::from(ChunkError::TooLarge), BodyTooLarge);
    }
}
