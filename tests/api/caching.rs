//! HTTP caching and content negotiation (RFC 9110, 9111): what a browser,
//! a CDN in front, or a client without gzip gets.

use std::io::Read;

use axum::http::Method;

use crate::helpers::{call, get, get_with, test_app};

/// Every route whose answer is static: revalidated with an ETag.
const STATIC_ROUTES: [&str; 7] = [
    "/openapi.json",
    "/docs",
    "/docs/",
    "/redoc",
    "/docs/swagger-ui-bundle.js",
    "/docs/swagger-ui.css",
    "/docs/swagger-initializer.js",
];

/// The routes that may be sent gzipped: they vary by Accept-Encoding.
const NEGOTIATED_ROUTES: [&str; 3] = [
    "/redoc",
    "/docs/swagger-ui-bundle.js",
    "/docs/swagger-ui.css",
];

#[tokio::test]
async fn api_answers_errors_and_redirects_are_never_stored() {
    let app = test_app;
    for (method, uri, status) in [
        (Method::GET, "/hello_world", 200),
        (Method::GET, "/current_time?name=x", 200),
        (Method::GET, "/current_time", 422),
        (Method::GET, "/healthcheck", 200),
        (Method::HEAD, "/healthcheck", 200),
        (Method::GET, "/nope", 404),
        (Method::POST, "/hello_world", 405),
        (Method::POST, "/docs", 405),
        (Method::GET, "/hello_world/", 307),
        (Method::GET, "/docs/no-such-file.js", 404),
    ] {
        let answer = call(app(), method.clone(), uri).await;
        assert_eq!(answer.status(), status, "{method} {uri}");
        assert_eq!(
            answer.header("cache-control"),
            Some("no-store"),
            "{method} {uri}"
        );
        assert_eq!(answer.header("etag"), None, "{method} {uri}");
    }
}

#[tokio::test]
async fn static_routes_revalidate_with_a_strong_etag_and_answer_304() {
    for uri in STATIC_ROUTES {
        let first = get(uri).await;
        assert_eq!(first.status(), 200, "{uri}");
        assert_eq!(
            first.header("cache-control"),
            Some("max-age=0, must-revalidate"),
            "{uri}"
        );
        let etag = first.header("etag").expect("an ETag").to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "{uri}: strong, quoted: {etag}"
        );
        assert_eq!(
            get(uri).await.header("etag"),
            Some(etag.as_str()),
            "{uri}: stable"
        );

        for if_none_match in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"other\", {etag}"),
            "*".to_owned(),
        ] {
            let again = get_with(uri, &[("if-none-match", &if_none_match)]).await;
            assert_eq!(again.status(), 304, "{uri} If-None-Match: {if_none_match}");
            assert!(again.body.is_empty(), "{uri}: a 304 has no body");
            assert_eq!(again.header("etag"), Some(etag.as_str()), "{uri}");
            assert_eq!(
                again.header("cache-control"),
                Some("max-age=0, must-revalidate"),
                "{uri}"
            );
            assert_eq!(again.header("vary"), first.header("vary"), "{uri}");
        }
        let changed = get_with(uri, &[("if-none-match", "\"some-older-version\"")]).await;
        assert_eq!(changed.status(), 200, "{uri}: a stale tag gets the file");
        assert_eq!(changed.body, first.body, "{uri}");
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gzip data");
    out
}

#[tokio::test]
async fn gzip_goes_only_to_clients_that_take_it_and_says_so_in_vary() {
    for uri in NEGOTIATED_ROUTES {
        let plain = get(uri).await;
        assert_eq!(plain.status(), 200, "{uri}");
        assert_eq!(
            plain.header("content-encoding"),
            None,
            "{uri}: no Accept-Encoding, no gzip"
        );
        assert!(
            !plain.body.starts_with(&[0x1f, 0x8b]),
            "{uri}: decoded bytes"
        );
        for identity in ["identity", "gzip;q=0", "br", ""] {
            let answer = get_with(uri, &[("accept-encoding", identity)]).await;
            assert_eq!(
                answer.header("content-encoding"),
                None,
                "{uri} Accept-Encoding: {identity}"
            );
            assert_eq!(answer.body, plain.body, "{uri} Accept-Encoding: {identity}");
        }
        let gzipped = get_with(uri, &[("accept-encoding", "gzip, deflate, br")]).await;
        assert_eq!(gzipped.header("content-encoding"), Some("gzip"), "{uri}");
        assert_eq!(gunzip(&gzipped.body), plain.body, "{uri}: the same file");
        assert!(gzipped.body.len() < plain.body.len(), "{uri}: smaller");
        assert_ne!(
            gzipped.header("etag"),
            plain.header("etag"),
            "{uri}: one tag per coding"
        );
        for answer in [&plain, &gzipped] {
            assert_eq!(answer.header("vary"), Some("accept-encoding"), "{uri}");
        }
    }
    for uri in ["/openapi.json", "/docs", "/docs/swagger-initializer.js"] {
        let answer = get_with(uri, &[("accept-encoding", "gzip")]).await;
        assert_eq!(
            answer.header("content-encoding"),
            None,
            "{uri}: small, sent as it is"
        );
        assert_eq!(
            answer.header("vary"),
            None,
            "{uri}: the same for every client"
        );
    }
}
