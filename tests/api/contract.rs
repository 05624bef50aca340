//! The contract, row by row, through the in-process app (`oneshot`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::api::endpoints;
use axum::body::Body;
use axum::http::{Method, Request};

use crate::helpers::{
    GET_ROUTES, REQUEST_TIMEOUT, app_with_routes, call, get, get_with, panics, send, test_app,
};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

#[tokio::test]
async fn hello_world_answers_200_with_the_exact_json_body() {
    let answer = get("/hello_world").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.text(), r#"{"message":"Hello World!"}"#);
}

#[tokio::test]
async fn current_time_greets_the_name_with_an_integer_unix_timestamp() {
    let before = now();
    let answer = get("/current_time?name=some_name").await;
    let after = now();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    assert_eq!(body["message"], "Hello some_name");
    let timestamp = body["timestamp"]
        .as_u64()
        .expect("timestamp is a JSON integer");
    assert!(
        (before..=after).contains(&timestamp),
        "{timestamp} not in {before}..={after}"
    );
    assert_eq!(
        body.as_object().expect("object").len(),
        2,
        "only timestamp and message: {body}"
    );
}

#[tokio::test]
async fn current_time_decodes_the_query_like_fastapi() {
    for (query, expected) in [
        ("name=a+b", "Hello a b"),
        ("name=caf%C3%A9%20au%20lait", "Hello café au lait"),
        ("name=%2B%26%3D", "Hello +&="),
        ("other=1&name=x&more=2", "Hello x"),
        ("name=", "Hello "),
        ("name", "Hello "),
    ] {
        let answer = get(&format!("/current_time?{query}")).await;
        assert_eq!(answer.status(), 200, "{query}");
        assert_eq!(answer.json()["message"], expected, "{query}");
    }
}

#[tokio::test]
async fn current_time_with_a_repeated_name_answers_with_the_last_like_fastapi() {
    let answer = get("/current_time?name=first&name=last").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json()["message"], "Hello last");
}

#[tokio::test]
async fn current_time_replaces_invalid_utf8_with_u_fffd_like_fastapi() {
    let answer = get("/current_time?name=ok%FF%FE").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json()["message"], "Hello ok\u{FFFD}\u{FFFD}");
}

#[tokio::test]
async fn current_time_answers_valid_json_whatever_the_name_holds() {
    let hostile = r#"<script>alert("x")</script> \ " ' {} \n"#;
    let encoded: String =
        form_urlencoded::byte_serialize(format!("{hostile}\n\r\t\u{0}").as_bytes()).collect();
    let answer = get(&format!("/current_time?name={encoded}")).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(
        answer.header("x-content-type-options"),
        Some("nosniff"),
        "browsers never render it as HTML"
    );
    assert_eq!(
        answer.json()["message"],
        format!("Hello {hostile}\n\r\t\u{0}")
    );
}

#[tokio::test]
async fn current_time_without_name_answers_422_with_fastapis_body() {
    for uri in ["/current_time", "/current_time?nom=x"] {
        let answer = get(uri).await;
        assert_eq!(answer.status(), 422, "{uri}");
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(
            answer.text(),
            r#"{"detail":[{"type":"missing","loc":["query","name"],"msg":"Field required","input":null}]}"#
        );
    }
}

#[tokio::test]
async fn healthcheck_answers_200() {
    let answer = get("/healthcheck").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json()["status"], "ok");
}

#[tokio::test]
async fn every_get_route_also_answers_head_without_a_body() {
    for uri in GET_ROUTES {
        let answer = call(test_app(), Method::HEAD, uri).await;
        assert_eq!(answer.status(), 200, "HEAD {uri}");
        assert!(answer.body.is_empty(), "HEAD {uri} has no body");
    }
}

#[tokio::test]
async fn unknown_path_answers_404_with_fastapis_body() {
    for uri in ["/nope", "/", "/nope/", "/HELLO_WORLD", "/docs/nope.js"] {
        let answer = get(uri).await;
        assert_eq!(answer.status(), 404, "{uri}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "{uri}"
        );
        assert_eq!(answer.text(), r#"{"detail":"Not Found"}"#, "{uri}");
    }
}

#[tokio::test]
async fn wrong_method_answers_405_with_fastapis_body_and_an_allow_header() {
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let answer = call(test_app(), method.clone(), "/hello_world").await;
        assert_eq!(answer.status(), 405, "{method}");
        assert_eq!(answer.text(), r#"{"detail":"Method Not Allowed"}"#);
        assert_eq!(answer.header("allow"), Some("GET,HEAD"));
    }
}

#[tokio::test]
async fn a_panicking_handler_answers_500_with_a_json_body() {
    let router = app_with_routes(
        endpoints::all().hidden(Method::GET, "/boom", panics),
        REQUEST_TIMEOUT,
    );
    let answer = call(router, Method::GET, "/boom").await;
    assert_eq!(answer.status(), 500);
    assert_eq!(answer.text(), r#"{"detail":"Internal Server Error"}"#);
}

#[tokio::test]
async fn a_request_slower_than_the_request_timeout_answers_408() {
    let slow = endpoints::all().hidden(Method::GET, "/slow", || async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "too late"
    });
    let answer = call(
        app_with_routes(slow, Duration::from_millis(50)),
        Method::GET,
        "/slow",
    )
    .await;
    assert_eq!(answer.status(), 408);
    assert_eq!(answer.text(), r#"{"detail":"Request Timeout"}"#);
}

#[tokio::test]
async fn openapi_json_is_an_openapi_3_1_document_of_every_route() {
    let answer = get("/openapi.json").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let document = answer.json();
    assert!(
        document["openapi"]
            .as_str()
            .expect("version")
            .starts_with("3.1")
    );

    // The contract's routes, each as the original describes it; a fork's
    // own routes may come beside them.
    const CONTRACT: [(&str, &[&str]); 3] = [
        ("/current_time", &["200", "422"]),
        ("/healthcheck", &["200", "503"]),
        ("/hello_world", &["200"]),
    ];
    let paths = document["paths"].as_object().expect("paths");
    for (path, statuses) in CONTRACT {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is documented"));
        let methods: Vec<_> = item.as_object().expect("a path item").keys().collect();
        assert_eq!(methods, ["get"], "{path}'s methods");
        let responses = item["get"]["responses"].as_object().expect("responses");
        let mut answered: Vec<_> = responses.keys().map(String::as_str).collect();
        answered.sort_unstable();
        assert_eq!(answered, statuses, "{path}'s statuses");
        // Untagged, as in FastAPI: Swagger UI lists them under "default".
        assert!(item["get"].get("tags").is_none(), "{path} is tagged");
    }

    let name = &document["paths"]["/current_time"]["get"]["parameters"][0];
    assert_eq!(name["name"], "name");
    assert_eq!(name["in"], "query");
    assert_eq!(name["required"], true);

    let responses = &document["paths"]["/current_time"]["get"]["responses"];
    assert_eq!(
        responses["422"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/HTTPValidationError"
    );
    let schemas = &document["components"]["schemas"];
    for schema in [
        "Message",
        "CurrentTime",
        "Health",
        "HTTPValidationError",
        "ValidationError",
    ] {
        assert!(schemas[schema].is_object(), "schema {schema} is described");
    }
    assert_eq!(
        schemas["CurrentTime"]["properties"]["timestamp"]["type"],
        "integer"
    );
}

#[tokio::test]
async fn docs_serves_swagger_ui_and_its_assets_from_the_binary() {
    let page = get("/docs").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.header("content-type")
            .expect("type")
            .starts_with("text/html")
    );
    assert!(
        !page.text().contains("//"),
        "no asset comes from another host"
    );

    // Every script and stylesheet the page names is served by us, compressed
    // as stored to a browser (which accepts gzip).
    for asset in [
        "/docs/swagger-ui.css",
        "/docs/index.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-ui-standalone-preset.js",
    ] {
        assert!(page.text().contains(asset), "{asset} is on the page");
        let answer = get_with(asset, &[("accept-encoding", "gzip, deflate, br")]).await;
        assert_eq!(answer.status(), 200, "{asset}");
        assert_eq!(answer.header("content-encoding"), Some("gzip"), "{asset}");
        assert!(
            answer.body.starts_with(&[0x1f, 0x8b]),
            "{asset} is gzip data"
        );
    }

    let initializer = get("/docs/swagger-initializer.js").await;
    assert_eq!(initializer.status(), 200);
    assert!(
        initializer.text().contains(r#""url": "/openapi.json""#),
        "{}",
        initializer.text()
    );
    assert!(
        initializer.text().contains(r#""validatorUrl": "none""#),
        "validator.swagger.io is never called"
    );
}

#[tokio::test]
async fn request_id_is_generated_when_absent_and_returned() {
    let first = get("/hello_world").await;
    let second = get("/hello_world").await;
    let (first, second) = (first.header("x-request-id"), second.header("x-request-id"));
    assert!(first.is_some_and(|id| !id.is_empty()));
    assert_ne!(first, second, "each request gets its own id");
}

#[tokio::test]
async fn request_id_from_the_client_is_kept_unless_unusable() {
    let with_id = |id: &str| {
        Request::get("/healthcheck")
            .header("x-request-id", id)
            .body(Body::empty())
            .expect("valid request")
    };
    let kept = send(test_app(), with_id("client-id-42")).await;
    assert_eq!(kept.header("x-request-id"), Some("client-id-42"));

    let too_long = "x".repeat(129);
    let replaced = send(test_app(), with_id(&too_long)).await;
    let id = replaced.header("x-request-id").expect("an id");
    assert_ne!(id, too_long);
    assert!(!id.is_empty());
}
