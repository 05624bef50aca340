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

use std::sync::Arc;

use axum::http::{Request, Uri};

/// The route templates of the app, to tell whether a path would match one.
pub struct Routes(matchit::Router<Arc<str>>);

impl Routes {
    pub fn new<T: Into<Arc<str>>>(templates: impl IntoIterator<Item = T>) -> Self {
        let mut router = matchit::Router::new();
        for template in templates {
            let template = template.into();
            router
                .insert(&*template, template.clone())
                .expect("route templates are valid and distinct");
        }
        Self(router)
    }

    fn matched(&self, path: &str) -> Option<Arc<str>> {
        self.0.at(path).ok().map(|found| found.value.clone())
    }

    /// Where a path that matches no route should be redirected: the path
    /// with its trailing slashes removed (all of them, as Starlette does) or
    /// one added, if that matches a route. Returns the new path and the
    /// route it matches.
    pub fn trailing_slash_redirect(&self, path: &str) -> Option<(String, Arc<str>)> {
        let other = if path.ends_with('/') {
            match path.trim_end_matches('/') {
                "" => return None,
                without => without.to_owned(),
            }
        } else {
            format!("{path}/")
        };
        // A relative Location of `//host/...` would leave this host. Route
        // templates never start that way, so this cannot match; refuse it
        // anyway rather than rely on that.
        if other.starts_with("//") || other.starts_with("/\\") {
            return None;
        }
        self.matched(&other).map(|route| (other, route))
    }
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
    fn trailing_slashes_redirect_only_to_routes_that_exist() {
        let routes = Routes::new(["/hello_world", "/slashed/", "/docs/{*file}"]);
        let (location, route) = routes
            .trailing_slash_redirect("/hello_world/")
            .expect("a redirect");
        assert_eq!(
            (location.as_str(), &*route),
            ("/hello_world", "/hello_world")
        );
        let (location, _) = routes
            .trailing_slash_redirect("/slashed")
            .expect("a redirect");
        assert_eq!(
            location, "/slashed/",
            "a slash is added where only that matches"
        );
        assert_eq!(routes.trailing_slash_redirect("/nope/"), None);
        assert_eq!(routes.trailing_slash_redirect("/"), None);
        assert_eq!(routes.trailing_slash_redirect("//evil.example/"), None);
        assert_eq!(routes.trailing_slash_redirect("//hello_world/"), None);
    }
}
