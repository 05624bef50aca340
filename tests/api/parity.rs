//! Where FastAPI answers more than the contract says, and clients of the
//! original rely on it: /redoc, trailing-slash redirects, percent-encoded
//! paths.

use std::io::Read;

use axum::body::Body;
use axum::http::{Method, Request};

use crate::helpers::{call, get, send, test_app};

#[tokio::test]
async fn redoc_renders_openapi_json_with_the_bundle_served_by_the_binary() {
    let page = get("/redoc").await;
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(html.contains("<title>api - ReDoc</title>"), "{html:.300}");
    assert!(html.contains(r#"Redoc.init("/openapi.json""#));
    assert!(html.len() > 500_000, "the ReDoc bundle is in the page");
    assert!(
        !html.contains("<script src="),
        "no script is fetched from elsewhere"
    );
}

#[tokio::test]
async fn redoc_is_sent_gzipped_to_clients_that_accept_it() {
    let request = Request::get("/redoc")
        .header("accept-encoding", "gzip, deflate, br")
        .body(Body::empty())
        .expect("valid request");
    let page = send(test_app(), request).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.header("content-encoding"), Some("gzip"));
    assert_eq!(page.header("vary"), Some("accept-encoding"));
    assert!(page.body.len() < 400_000, "{} bytes", page.body.len());
    let mut html = String::new();
    flate2::read::GzDecoder::new(&page.body[..])
        .read_to_string(&mut html)
        .expect("valid gzip");
    assert!(html.contains(r#"Redoc.init("/openapi.json""#));
}

#[tokio::test]
async fn a_trailing_slash_redirects_with_307_to_the_route_keeping_the_query() {
    for (uri, location) in [
        ("/hello_world/", "/hello_world"),
        ("/current_time/?name=x", "/current_time?name=x"),
        (
            "/current_time/?name=a+b&other=1",
            "/current_time?name=a+b&other=1",
        ),
        ("/healthcheck/", "/healthcheck"),
        ("/openapi.json/", "/openapi.json"),
        ("/redoc/", "/redoc"),
        ("/hello_world//", "/hello_world"),
    ] {
        let answer = get(uri).await;
        assert_eq!(answer.status(), 307, "{uri}");
        assert_eq!(answer.header("location"), Some(location), "{uri}");
        assert!(answer.body.is_empty(), "{uri}");
    }
}

#[tokio::test]
async fn the_redirect_keeps_the_method() {
    for method in [Method::POST, Method::HEAD, Method::DELETE] {
        let answer = call(test_app(), method.clone(), "/hello_world/").await;
        assert_eq!(answer.status(), 307, "{method}");
        assert_eq!(answer.header("location"), Some("/hello_world"), "{method}");
    }
}

#[tokio::test]
async fn no_redirect_leaves_the_host_or_invents_a_route() {
    for uri in [
        "//evil.example/",
        "//evil.example",
        "//hello_world/",
        r"/\evil.example/",
        "/nope/",
        "//",
    ] {
        let answer = get(uri).await;
        assert_eq!(answer.status(), 404, "{uri}");
        assert_eq!(answer.header("location"), None, "{uri}");
    }
}

#[tokio::test]
async fn percent_encoded_unreserved_characters_route_like_their_plain_form() {
    for uri in [
        "/hello%5Fworld",
        "/%68ello_world",
        "/%68%65%6C%6C%6F%5F%77%6F%72%6C%64",
    ] {
        let answer = get(uri).await;
        assert_eq!(answer.status(), 200, "{uri}");
        assert_eq!(answer.text(), r#"{"message":"Hello World!"}"#, "{uri}");
    }
    let answer = get("/current%5Ftime?name=caf%C3%A9").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json()["message"], "Hello café");
}

#[tokio::test]
async fn an_encoded_slash_stays_data_and_matches_nothing() {
    // FastAPI decodes %2F before routing; RFC 3986 keeps it apart from "/".
    for uri in [
        "/hello_world%2F",
        "/hello%2Fworld",
        "/docs%2Fswagger-ui.css",
    ] {
        assert_eq!(get(uri).await.status(), 404, "{uri}");
    }
}
