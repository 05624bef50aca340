//! The worked example of CONTRIBUTING.md, "Adding an endpoint", as code
//! that runs: an async endpoint with a query parameter, added to the
//! service's endpoints the way `src/api/endpoints.rs` lists its own, gets
//! the guarantees every endpoint gets. The code between the `example`
//! markers is the code CONTRIBUTING.md shows (a test below checks it).

use std::time::Duration;

use api::api::docs::ApiDoc;
use api::api::endpoints;
use api::api::extract::RequestId;
use api::api::routing::Endpoints;
use axum::body::Body;
use axum::http::{Method, Request};
use utoipa::OpenApi;

use crate::helpers::{Answer, app_with_routes, call, send};

// example: start
use api::api::error::{ApiError, ErrorMessage, HttpValidationError};
use api::api::extract::{Json, Path, Query};
use api::endpoint;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The query of `/greeting`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GreetingQuery {
    /// Who to greet.
    name: String,
    /// How many times.
    times: u8,
}

/// `{"greeting": "Hello Ada! Hello Ada!"}`.
#[derive(Serialize, ToSchema)]
pub struct Greeting {
    greeting: String,
}

/// Greets `name`, `times` times.
#[utoipa::path(
    get,
    path = "/greeting",
    params(GreetingQuery),
    responses(
        (status = OK, description = "The greeting", body = Greeting),
        (status = UNPROCESSABLE_ENTITY, description = "`name` or `times` is missing or not valid",
            body = HttpValidationError),
    ),
)]
pub async fn greeting(Query(query): Query<GreetingQuery>) -> Json<Greeting> {
    // Where a real endpoint awaits its database or another service.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let once = format!("Hello {}!", query.name);
    Json(Greeting {
        greeting: vec![once; query.times.into()].join(" "),
    })
}

/// An item for sale, as `POST /items` takes it and `GET /items/{id}` gives it.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct Item {
    /// What it is called.
    name: String,
    /// Its price, in euros.
    price: f64,
}

/// Adds an item.
#[utoipa::path(
    post,
    path = "/items",
    request_body = Item,
    responses(
        (status = OK, description = "The item added", body = Item),
        (status = UNPROCESSABLE_ENTITY, description = "The body is not an item",
            body = HttpValidationError),
    ),
)]
pub async fn add_item(Json(item): Json<Item>) -> Json<Item> {
    // Where a real endpoint stores it.
    Json(item)
}

/// The item with this id.
#[utoipa::path(
    get,
    path = "/items/{id}",
    params(("id" = u32, Path, description = "The item's id")),
    responses(
        (status = OK, description = "The item", body = Item),
        (status = NOT_FOUND, description = "No item has this id", body = ErrorMessage),
        (status = UNPROCESSABLE_ENTITY, description = "`id` is not a number",
            body = HttpValidationError),
    ),
)]
pub async fn item(Path(id): Path<u32>) -> Result<Json<Item>, ApiError> {
    // Where a real endpoint looks it up; FastAPI's
    // `raise HTTPException(404, "Item not found")`.
    if id != 1 {
        return Err(ApiError::Http {
            status: StatusCode::NOT_FOUND,
            detail: "Item not found".into(),
        });
    }
    Ok(Json(Item {
        name: "Pen".to_owned(),
        price: 1.5,
    }))
}
// example: end

/// The service's endpoints and the example, as `endpoints::all` would list
/// it with one more line each: `.with(endpoint!(greeting))`.
fn with_the_example() -> Endpoints {
    endpoints::all()
        .with(endpoint!(greeting))
        .with(endpoint!(add_item))
        .with(endpoint!(item))
}

/// `POST /items` with `body`, sent as `content_type` (none if `None`).
async fn post_item(content_type: Option<&str>, body: &'static str) -> Answer {
    let mut request = Request::post("/items");
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let request = request.body(Body::from(body)).expect("a request");
    let app = app_with_routes(with_the_example(), Duration::from_secs(10));
    send(app, request).await
}

#[tokio::test]
async fn a_json_body_is_read_and_refused_like_fastapi() {
    const JSON: Option<&str> = Some("application/json");
    let added = post_item(JSON, r#"{"name": "Pen", "price": 1.5}"#).await;
    assert_eq!(added.status(), 200);
    assert_eq!(added.header("content-type"), Some("application/json"));
    assert_eq!(added.text(), r#"{"name":"Pen","price":1.5}"#);
    // FastAPI reads a body without a Content-Type as JSON, and `+json` too.
    assert_eq!(
        post_item(None, r#"{"name":"Pen","price":1}"#)
            .await
            .status(),
        200
    );
    let problem_json = Some("application/problem+json; charset=utf-8");
    assert_eq!(
        post_item(problem_json, r#"{"name":"Pen","price":1}"#)
            .await
            .status(),
        200
    );

    let missing = post_item(JSON, r#"{"name": "Pen"}"#).await;
    assert_eq!(missing.status(), 422);
    assert_eq!(
        missing.text(),
        r#"{"detail":[{"type":"missing","loc":["body","price"],"msg":"Field required","input":{"name":"Pen"}}]}"#
    );
    // FastAPI's own test of a body that is not JSON (tests/test_json_body_decode_error.py).
    let malformed = post_item(JSON, r#"{"name": "Test", "price": None}"#).await;
    assert_eq!(malformed.status(), 422);
    assert_eq!(
        malformed.json(),
        serde_json::json!({"detail": [{"type": "json_invalid", "loc": ["body", 26],
            "msg": "JSON decode error", "input": {}, "ctx": {"error": "Expecting value"}}]})
    );
    // FastAPI's test_wrong_headers: another Content-Type is not read as JSON.
    let text = post_item(Some("text/plain"), r#"{"name": "Foo", "price": 50.5}"#).await;
    assert_eq!(text.status(), 422);
    assert_eq!(
        text.json(),
        serde_json::json!({"detail": [{"type": "model_attributes_type", "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": r#"{"name": "Foo", "price": 50.5}"#}]})
    );
    let empty = post_item(JSON, "").await;
    assert_eq!(
        empty.text(),
        r#"{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}"#
    );
    let not_a_number = post_item(JSON, r#"{"name": "Pen", "price": "cheap"}"#).await;
    assert_eq!(
        not_a_number.json()["detail"][0],
        serde_json::json!({"type": "float_parsing", "loc": ["body", "price"],
            "msg": "Input should be a valid number, unable to parse string as a number",
            "input": "cheap"})
    );
    let a_list = post_item(JSON, "[1]").await;
    assert_eq!(a_list.json()["detail"][0]["type"], "model_attributes_type");
    assert_eq!(a_list.json()["detail"][0]["input"], serde_json::json!([1]));
}

#[tokio::test]
async fn a_path_parameter_reads_into_a_scalar_and_an_http_error_is_fastapis() {
    let app = || app_with_routes(with_the_example(), Duration::from_secs(10));
    let found = call(app(), Method::GET, "/items/1").await;
    assert_eq!(found.status(), 200);
    assert_eq!(found.text(), r#"{"name":"Pen","price":1.5}"#);
    let not_found = call(app(), Method::GET, "/items/2").await;
    assert_eq!(not_found.status(), 404);
    assert_eq!(not_found.header("content-type"), Some("application/json"));
    assert_eq!(not_found.text(), r#"{"detail":"Item not found"}"#);
    let not_a_number = call(app(), Method::GET, "/items/x").await;
    assert_eq!(not_a_number.status(), 422);
    assert_eq!(
        not_a_number.text(),
        r#"{"detail":[{"type":"int_parsing","loc":["path","id"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"x"}]}"#
    );
}

#[tokio::test]
async fn the_example_answers_and_refuses_bad_input_like_fastapi() {
    let app = || app_with_routes(with_the_example(), Duration::from_secs(10));
    let answer = call(app(), Method::GET, "/greeting?name=Ada&times=2").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text(), r#"{"greeting":"Hello Ada! Hello Ada!"}"#);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert!(answer.header("x-request-id").is_some());

    let missing = call(app(), Method::GET, "/greeting?name=Ada").await;
    assert_eq!(missing.status(), 422);
    assert_eq!(
        missing.text(),
        r#"{"detail":[{"type":"missing","loc":["query","times"],"msg":"Field required","input":null}]}"#
    );
    let not_a_number = call(app(), Method::GET, "/greeting?name=Ada&times=lots").await;
    assert_eq!(not_a_number.status(), 422);
    assert_eq!(not_a_number.json()["detail"][0]["type"], "int_parsing");

    // What every endpoint gets without a line of its own.
    assert_eq!(
        call(app(), Method::HEAD, "/greeting?name=A&times=1")
            .await
            .status(),
        200
    );
    let post = call(app(), Method::POST, "/greeting").await;
    assert_eq!(
        (post.status(), post.header("allow")),
        (405, Some("GET,HEAD"))
    );
    let slash = call(app(), Method::GET, "/greeting/?name=A&times=1").await;
    assert_eq!(slash.status(), 307);
    assert_eq!(slash.header("location"), Some("/greeting?name=A&times=1"));
}

// Tokio's timers fire on whole milliseconds: on a real clock the 1 µs
// timeout and the handler's 1 ms sleep can expire on the same tick (a
// loaded machine oversleeps), and the handler, polled first, wins (200).
// A paused clock half a millisecond past a tick puts them on two ticks.
#[tokio::test(start_paused = true)]
async fn the_example_is_timed_out_like_every_endpoint() {
    tokio::time::advance(Duration::from_micros(500)).await;
    let app = app_with_routes(with_the_example(), Duration::from_micros(1));
    let answer = call(app, Method::GET, "/greeting?name=Ada&times=1").await;
    assert_eq!(
        answer.status(),
        408,
        "its 1 ms await outlives a 1 µs timeout"
    );
}

#[tokio::test]
async fn the_example_is_described_in_openapi_json() {
    let app = app_with_routes(with_the_example(), Duration::from_secs(10));
    let document = call(app, Method::GET, "/openapi.json").await.json();
    let operation = &document["paths"]["/greeting"]["get"];
    assert_eq!(operation["parameters"][1]["name"], "times");
    assert_eq!(operation["parameters"][1]["in"], "query");
    assert!(document["components"]["schemas"]["Greeting"].is_object());
    let add_item = &document["paths"]["/items"]["post"];
    assert_eq!(
        add_item["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Item"
    );
    assert!(add_item["responses"]["422"].is_object());
    let item = &document["paths"]["/items/{id}"]["get"];
    assert_eq!(item["parameters"][0]["in"], "path");
    assert!(item["responses"]["404"].is_object());
    // What the 422s hold: `loc` of names and offsets, any `input`.
    let validation_error = &document["components"]["schemas"]["ValidationError"];
    assert!(validation_error["properties"]["loc"]["items"].is_object());
    assert!(validation_error["properties"]["ctx"].is_object());
}

#[test]
fn contributing_md_shows_the_example_as_it_is_here() {
    let contributing = include_str!("../../CONTRIBUTING.md");
    let here = include_str!("adding_an_endpoint.rs");
    let example = here
        .split("// example: start\n")
        .nth(1)
        .and_then(|rest| rest.split("// example: end").next())
        .expect("the markers");
    assert!(
        contributing.contains(example),
        "CONTRIBUTING.md's example differs from tests/api/adding_an_endpoint.rs"
    );
    assert!(contributing.contains(".with(endpoint!(greeting))"));
}

#[tokio::test]
async fn the_route_table_the_routing_and_openapi_json_agree_for_every_route() {
    // What FastAPI, too, leaves out of its document: the docs themselves.
    const DOCS: [&str; 5] = [
        "/openapi.json",
        "/docs",
        "/docs/",
        "/docs/{*file}",
        "/redoc",
    ];
    let app = crate::helpers::test_app();
    let document = ApiDoc::openapi();
    let served = call(app.clone(), Method::GET, "/openapi.json").await.json();
    let documented: Vec<String> = served["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    let mut routes: Vec<String> = app.routes().map(str::to_owned).collect();
    routes.sort();
    let mut expected: Vec<String> = documented
        .iter()
        .cloned()
        .chain(DOCS.map(String::from))
        .collect();
    expected.sort();
    assert_eq!(
        routes, expected,
        "every route documented, or one of the docs' own"
    );
    for path in &documented {
        let answer = call(app.clone(), Method::GET, path).await;
        assert_ne!(answer.status(), 404, "{path} is documented and answers");
    }
    assert_eq!(document.info.title, "api");
}

/// Answers with the id `RequestId` gives it.
async fn own_request_id(RequestId(id): RequestId) -> String {
    id
}

#[tokio::test]
async fn a_handler_sees_the_request_id_its_response_and_access_line_carry() {
    let app = || {
        let endpoints = endpoints::all().hidden(Method::GET, "/own_id", own_request_id);
        app_with_routes(endpoints, Duration::from_secs(10))
    };
    let generated = call(app(), Method::GET, "/own_id").await;
    assert_eq!(generated.status(), 200);
    assert_eq!(Some(generated.text()), generated.header("x-request-id"));
    let request = Request::get("/own_id")
        .header("x-request-id", "client-42")
        .body(Body::empty())
        .expect("a request");
    let from_the_client = send(app(), request).await;
    assert_eq!(from_the_client.text(), "client-42");
    assert_eq!(from_the_client.header("x-request-id"), Some("client-42"));
}

#[tokio::test]
async fn a_body_past_the_limit_is_refused_with_413_in_fastapis_shape() {
    let name = "x".repeat(3 * 1024 * 1024);
    let request = Request::post("/items")
        .header("content-type", "application/json")
        .body(Body::from(format!(r#"{{"name":"{name}","price":1}}"#)))
        .expect("a request");
    let app = app_with_routes(with_the_example(), Duration::from_secs(10));
    let answer = send(app, request).await;
    assert_eq!(answer.status(), 413);
    assert_eq!(answer.text(), r#"{"detail":"Payload Too Large"}"#);
}
