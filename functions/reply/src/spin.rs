//! (feature `spin`) A [`Reply`] as a spin-sdk 7 response: status, headers in
//! their order (a repeated name is sent repeatedly) and body, unchanged, plus a
//! `Content-Length` when the body has bytes and the reply does not name its
//! length itself.
//!
//! The body is complete in memory, so its length is known; without the header
//! the host streams it chunked, and an HTTP server only learns that a chunked
//! response is over when the guest closes its body stream, one more wake-up of
//! the guest and usually one more write to the socket per response. HTTP/1.0
//! clients get a length instead of a connection closed at the end. An empty
//! body gets no header: it is also how `HEAD` answers, whose length is the
//! `GET`'s (RFC 9110 §8.6), and statuses without content (1xx, 204, 304) must
//! not claim one.
//!
//! A glue crate returns the `Reply` itself (or a `Result` of it) from its
//! `#[spin_sdk::http_service]` handler, through [`IntoResponse`]. A reply that
//! is not valid HTTP (a status outside 100–999, a header name that is not a
//! token, a value with control characters) is not sent half-mended: the
//! conversion fails with spin-sdk's `Error::HttpError` describing it, which
//! spin-sdk hands to the host as `ErrorCode::InternalError`.

use bytes::Bytes;
use spin_sdk::http::{FullBody, IntoResponse, Response};
use spin_sdk::wasip3::http::types;

use crate::Reply;

impl Reply {
    /// The reply as spin-sdk's response type, or why it is not valid HTTP.
    pub fn into_spin_response(self) -> Result<Response<FullBody<Bytes>>, spin_sdk::http::Error> {
        let content_length = (!self.body.is_empty() && self.header("content-length").is_none())
            .then_some(self.body.len());
        let mut response = Response::<()>::builder().status(self.status);
        for (name, value) in self.headers {
            response = response.header(name, value);
        }
        if let Some(len) = content_length {
            response = response.header("content-length", len);
        }
        Ok(response.body(FullBody::new(Bytes::from(self.body)))?)
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Result<types::Response, types::ErrorCode> {
        self.into_spin_response().into_response()
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use http_body_util::BodyExt;

    use super::*;

    fn body_bytes(response: Response<FullBody<Bytes>>) -> Vec<u8> {
        let collected = block_on(response.into_body().collect()).expect("a full body cannot fail");
        collected.to_bytes().to_vec()
    }

    #[test]
    fn status_headers_in_order_and_body_are_carried_over() {
        let reply = Reply {
            status: 405,
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("cache-control", "no-store".to_owned()),
                ("allow", "GET, HEAD".to_owned()),
                ("set-cookie", "a=1".to_owned()),
                ("set-cookie", "b=2".to_owned()),
            ],
            body: br#"{"error":"no"}"#.to_vec(),
        };
        let response = reply.into_spin_response().expect("a valid reply");
        assert_eq!(response.status().as_u16(), 405);
        let headers: Vec<(&str, &str)> = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            headers,
            [
                ("content-type", "application/json"),
                ("cache-control", "no-store"),
                ("allow", "GET, HEAD"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("content-length", "14"),
            ]
        );
        assert_eq!(body_bytes(response), br#"{"error":"no"}"#);
    }

    #[test]
    fn a_length_the_reply_names_is_kept() {
        let reply = Reply::json(200, &[1]).with_header("content-length", "3");
        let response = reply.into_spin_response().expect("a valid reply");
        let lengths: Vec<_> = response
            .headers()
            .get_all("content-length")
            .iter()
            .collect();
        assert_eq!(lengths, ["3"]);
    }

    #[test]
    fn an_empty_body_stays_empty() {
        let reply = Reply {
            status: 304,
            headers: vec![("etag", "\"pi-5\"".to_owned())],
            body: Vec::new(),
        };
        let response = reply.into_spin_response().expect("a valid reply");
        assert_eq!(response.status().as_u16(), 304);
        assert_eq!(
            response.headers().get("content-length"),
            None,
            "a 304 has no content, and an empty HEAD answer is not a zero length"
        );
        assert_eq!(body_bytes(response), b"");
    }

    #[test]
    fn invalid_http_is_an_error_not_a_mended_response() {
        let bad_status = Reply::json_error(1000, "x");
        assert!(bad_status.into_spin_response().is_err());
        let bad_value = Reply::json_error(400, "x").with_header("etag", "a\nb");
        assert!(bad_value.into_spin_response().is_err());
        let bad_name = Reply::json_error(400, "x").with_header("no spaces", "v");
        assert!(bad_name.into_spin_response().is_err());
    }
}
