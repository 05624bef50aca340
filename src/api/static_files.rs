//! Files and pages that never change while the process runs (the OpenAPI
//! document, the Swagger UI and ReDoc pages and their assets), served as
//! RFC 9110 and 9111 want them:
//!
//! - **Revalidation**: a strong `ETag` per representation and
//!   `Cache-Control: max-age=0, must-revalidate`, so a browser or CDN keeps
//!   its copy and asks each time whether it is still good; `If-None-Match`
//!   with a current tag gets `304 Not Modified` and no body. A second visit
//!   to /docs costs a few hundred bytes instead of 1.5 MB. (`no-cache` says
//!   the same to RFC 9111 caches, but CloudFront reads it as "do not
//!   store".) The tag is a hash of the bytes, so every replica of a build
//!   gives the same one.
//! - **Content negotiation**: gzip only for clients whose `Accept-Encoding`
//!   takes it (q-values, `*`, `q=0` and `identity` read as RFC 9110 §12.5.3
//!   says), the decoded bytes for the others, including clients that send
//!   no `Accept-Encoding` at all, and `Vary: Accept-Encoding` wherever the
//!   answer depends on it.
//! - **No copies**: the bytes are `&'static` (compiled in) or made once and
//!   shared; a request clones a reference count, never the bytes, so a
//!   crowd of stalled downloads holds no memory of its own.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
use std::sync::OnceLock;

use axum::body::{Body, Bytes};
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

/// What every static representation says to caches: keep it, but check.
const REVALIDATE: HeaderValue = HeaderValue::from_static("max-age=0, must-revalidate");

/// The content codings we can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
}

/// One representation: its bytes and their entity tag.
struct Representation {
    body: Bytes,
    etag: HeaderValue,
}

impl Representation {
    fn new(body: Bytes, coding: Coding) -> Self {
        let mut hasher = DefaultHasher::new();
        body.hash(&mut hasher);
        let suffix = match coding {
            Coding::Identity => "",
            Coding::Gzip => "-gzip",
        };
        let etag = format!("\"{:016x}{suffix}\"", hasher.finish());
        Self {
            body,
            etag: HeaderValue::from_str(&etag).expect("hex digits in quotes"),
        }
    }
}

/// A file as served: the bytes as stored, and, for those that may be
/// sent either way, their twin in the other coding, made on first need.
pub struct StaticFile {
    content_type: HeaderValue,
    stored_coding: Coding,
    stored: Representation,
    /// `None` when the file is sent only as stored (small ones: gzip would
    /// save little and add a `Vary`).
    twin: Option<OnceLock<Representation>>,
}

impl StaticFile {
    /// A file sent only as it is, uncompressed.
    pub fn plain(content_type: &str, body: impl Into<Bytes>) -> Self {
        Self::new(content_type, body.into(), Coding::Identity, false)
    }

    /// A file sent gzipped to clients that accept it, uncompressed to
    /// the others; `body` is in `coding`, the other is made when needed.
    pub fn negotiated(content_type: &str, body: impl Into<Bytes>, coding: Coding) -> Self {
        Self::new(content_type, body.into(), coding, true)
    }

    fn new(content_type: &str, body: Bytes, coding: Coding, twin: bool) -> Self {
        Self {
            content_type: HeaderValue::from_str(content_type).expect("a valid content type"),
            stored_coding: coding,
            stored: Representation::new(body, coding),
            twin: twin.then(OnceLock::new),
        }
    }

    /// The answer to a GET (or HEAD) with these request headers.
    pub fn respond(&self, request: &HeaderMap) -> Response {
        let (coding, representation) = match &self.twin {
            Some(_) => {
                let coding = preferred_coding(request);
                (coding, self.in_coding(coding))
            }
            None => (self.stored_coding, &self.stored),
        };
        let mut response = if matches_any(request, &representation.etag) {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        } else {
            let mut response = Response::new(Body::from(representation.body.clone()));
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, self.content_type.clone());
            if coding == Coding::Gzip {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        };
        // A 304 carries what the 200 would have said to caches (RFC 9110 §15.4.5).
        let headers = response.headers_mut();
        headers.insert(ETAG, representation.etag.clone());
        headers.insert(CACHE_CONTROL, REVALIDATE);
        if self.twin.is_some() {
            headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
        }
        response
    }
}

impl StaticFile {
    /// The representation in `coding`: the stored one, or its twin, made
    /// now if no request has needed it yet.
    fn in_coding(&self, coding: Coding) -> &Representation {
        match &self.twin {
            Some(twin) if coding != self.stored_coding => {
                twin.get_or_init(|| Representation::new(recode(&self.stored.body, coding), coding))
            }
            _ => &self.stored,
        }
    }
}

/// `body`, in `coding` from the other one.
fn recode(body: &[u8], coding: Coding) -> Bytes {
    let mut out = Vec::new();
    match coding {
        Coding::Identity => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("compiled-in gzip decodes");
        }
        Coding::Gzip => {
            // The default level: `best` took ten times as long on ReDoc's
            // page, for a few percent.
            let mut gzip = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            gzip.write_all(body).expect("writing to memory cannot fail");
            out = gzip.finish().expect("writing to memory cannot fail");
        }
    }
    Bytes::from(out)
}

/// gzip when the client takes it at least as gladly as identity, else
/// identity. A request without `Accept-Encoding` gets identity: RFC 9110
/// would allow gzip, but a client that says nothing may not decode it
/// (`curl` without `--compressed`).
pub fn preferred_coding(request: &HeaderMap) -> Coding {
    let mut values = request.get_all(ACCEPT_ENCODING).iter().peekable();
    if values.peek().is_none() {
        return Coding::Identity;
    }
    // (gzip's q, identity's q, `*`'s q), each if listed.
    let (mut gzip, mut identity, mut any) = (None, None, None);
    for entry in values
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
    {
        let mut parts = entry.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let q = parts
            .find_map(|parameter| {
                let (key, value) = parameter.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| value.trim().parse::<f32>().ok())?
            })
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(q);
        } else if name.eq_ignore_ascii_case("identity") {
            identity = Some(q);
        } else if name == "*" {
            any = Some(q);
        }
    }
    let gzip = gzip.or(any).unwrap_or(0.0);
    // identity is acceptable unless refused by name, or by `*` (`*;q=0`);
    // unnamed, it comes after every coding the client did name.
    let identity = identity.or(any).unwrap_or(f32::MIN_POSITIVE);
    if gzip > 0.0 && gzip >= identity {
        Coding::Gzip
    } else {
        Coding::Identity
    }
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110
/// §13.1.2 wants for it) or is `*`.
fn matches_any(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.as_bytes();
    request
        .get_all(IF_NONE_MATCH)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .map(|tag| tag.trim_ascii())
        .any(|tag| tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    name.parse().expect("a header name"),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    fn coding(accept_encoding: &'static str) -> Coding {
        preferred_coding(&headers(&[("accept-encoding", accept_encoding)]))
    }

    #[test]
    fn gzip_goes_only_where_it_is_accepted_at_least_as_gladly_as_identity() {
        use Coding::{Gzip, Identity};
        for (accept, expected) in [
            ("gzip, deflate, br", Gzip),
            ("br;q=1.0, GZIP;q=0.5", Gzip),
            ("*", Gzip),
            ("gzip;q=0", Identity),
            ("gzip; q=0.000", Identity),
            ("identity", Identity),
            ("", Identity),
            ("br", Identity),
            ("*;q=0, gzip", Gzip),
            ("gzip;q=0.5, identity;q=1", Identity),
            ("gzip;q=0.5, identity;q=0", Gzip),
            ("*;q=0.3, identity;q=0.2", Gzip),
            ("x-gzip", Gzip),
        ] {
            assert_eq!(coding(accept), expected, "Accept-Encoding: {accept}");
        }
        assert_eq!(
            preferred_coding(&HeaderMap::new()),
            Identity,
            "no Accept-Encoding at all"
        );
    }

    #[test]
    fn if_none_match_is_compared_weakly_and_star_matches() {
        let etag = HeaderValue::from_static("\"abc\"");
        for (value, matches) in [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abcd\"", false),
            ("abc", false),
        ] {
            let request = headers(&[("if-none-match", value)]);
            assert_eq!(
                matches_any(&request, &etag),
                matches,
                "If-None-Match: {value}"
            );
        }
        assert!(!matches_any(&HeaderMap::new(), &etag));
    }

    #[test]
    fn both_codings_carry_the_same_bytes_under_different_tags() {
        let page = StaticFile::negotiated("text/html", &b"<p>hello</p>"[..], Coding::Identity);
        let plain = page.respond(&HeaderMap::new());
        let gzipped = page.respond(&headers(&[("accept-encoding", "gzip")]));
        assert_ne!(plain.headers()[ETAG], gzipped.headers()[ETAG]);
        assert_eq!(gzipped.headers()[CONTENT_ENCODING], "gzip");
        assert!(plain.headers().get(CONTENT_ENCODING).is_none());
        for response in [&plain, &gzipped] {
            assert_eq!(response.headers()[VARY], "accept-encoding");
            assert_eq!(
                response.headers()[CACHE_CONTROL],
                "max-age=0, must-revalidate"
            );
        }
        let twin = page.twin.as_ref().and_then(OnceLock::get).expect("made");
        assert_eq!(&recode(&twin.body, Coding::Identity)[..], b"<p>hello</p>");
    }
}
