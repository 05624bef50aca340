//! How a request's path finds its route, as close to FastAPI as is safe:
//!
//! - Percent-encoded *unreserved* characters are decoded before routing
//!   (RFC 3986 §6.2.2.2: `/hello%5Fworld` is `/hello_world`). Reserved ones
//!   stay encoded: `%2F` is data, never a path separator (FastAPI decodes
//!   it, so `/hello_world%2F` reaches `/hello_world/` there and 404s here).
//!   The access log keeps the path as the client sent it.
//! - A path that matches no route, but would with its trailing slash removed
//!   (or added), is redirected there with 307, which keeps the method, and
//!   the same query string, as Starlette does. The `Location` is relative
//!   (`/hello_world?name=x`): FastAPI writes an absolute URL from the `Host`
//!   header, which behind a TLS-terminating balancer points at `http://`
//!   unless proxy headers are trusted; RFC 9110 allows a relative one, and
//!   the browser resolves it against the URL it really used.

use axum::http::{Request, Uri};

/// The path to redirect to when `path` matches no route, if that one
/// does: `path` with its trailing slashes removed (all of them, as
/// Starlette does) or one added.
pub fn other_trailing_slash(path: &str) -> Option<String> {
    let other = if path.ends_with('/') {
        match path.trim_end_matches('/') {
            "" => return None,
            without => without.to_owned(),
        }
    } else {
        format!("{path}/")
    };
    // A relative Location of `//host/...` would leave this host. Route
    // templates never start that way, so it could not match; refuse it
    // anyway rather than rely on that.
    if other.starts_with("//") || other.starts_with("/\\") {
        return None;
    }
    Some(other)
}

/// `path` with its percent-encoded unreserved characters (ALPHA, DIGIT,
/// `-`, `.`, `_`, `~`) decoded, or `None` when it has none.
pub fn decode_unreserved(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let decoded_at = |i: usize| -> Option<u8> {
        let hex = bytes.get(i + 1..i + 3)?;
        let byte = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
        (byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)).then_some(byte)
    };
    let first = (0..bytes.len()).find(|&i| bytes[i] == b'%' && decoded_at(i).is_some())?;
    let mut decoded = Vec::with_capacity(bytes.len());
    decoded.extend_from_slice(&bytes[..first]);
    let mut i = first;
    while i < bytes.len() {
        match (bytes[i], decoded_at(i)) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    Some(String::from_utf8(decoded).expect("only ASCII bytes were decoded"))
}

/// `path`, followed by `?query` when there is one.
pub fn with_query(path: String, query: Option<&str>) -> String {
    match query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    }
}

/// Decodes the unreserved characters of `request`'s path, if it has any
/// encoded, so that it is routed on the decoded path. The original stays in
/// the observer's hands for the access log.
pub fn decode_for_routing<B>(request: &mut Request<B>) {
    // `%` never appears in the paths of normal traffic: one byte search.
    if !request.uri().path().contains('%') {
        return;
    }
    let Some(path) = decode_unreserved(request.uri().path()) else {
        return;
    };
    let decoded = with_query(path, request.uri().query());
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = Some(
        decoded
            .parse()
            .expect("decoding unreserved bytes keeps a valid path"),
    );
    *request.uri_mut() = Uri::from_parts(parts).expect("only the path changed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_escapes_are_decoded_and_reserved_ones_kept() {
        assert_eq!(
            decode_unreserved("/hello%5Fworld").as_deref(),
            Some("/hello_world")
        );
        assert_eq!(
            decode_unreserved("/%68ello_world").as_deref(),
            Some("/hello_world")
        );
        assert_eq!(decode_unreserved("/%7e%2D%2e").as_deref(), Some("/~-."));
        assert_eq!(decode_unreserved("/hello_world%2F"), None, "%2F is data");
        assert_eq!(decode_unreserved("/a%2Fb%5F").as_deref(), Some("/a%2Fb_"));
        assert_eq!(decode_unreserved("/hello_world"), None);
        assert_eq!(
            decode_unreserved("/bad%5"),
            None,
            "a truncated escape stays"
        );
        assert_eq!(decode_unreserved("/bad%zz%41").as_deref(), Some("/bad%zzA"));
    }

    #[test]
    fn the_other_trailing_slash_never_leaves_the_host() {
        assert_eq!(
            other_trailing_slash("/hello_world/").as_deref(),
            Some("/hello_world")
        );
        assert_eq!(other_trailing_slash("/a//").as_deref(), Some("/a"));
        assert_eq!(
            other_trailing_slash("/slashed").as_deref(),
            Some("/slashed/")
        );
        assert_eq!(other_trailing_slash("/"), None);
        assert_eq!(other_trailing_slash("//evil.example/"), None);
        assert_eq!(other_trailing_slash("/\\evil.example/"), None);
    }
}
