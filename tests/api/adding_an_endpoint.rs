//! The worked example of CONTRIBUTING.md, "Adding an endpoint", as code
//! that runs: an async endpoint with a query parameter, added to the
//! service's endpoints the way `src/api/endpoints.rs` lists its own, gets
//! the guarantees every endpoint gets. The code between the `example`
//! markers is the code CONTRIBUTING.md shows (a test below checks it).

use std::time::Duration;

use api::api::docs::ApiDoc;
use api::api::endpoints;
use api::api::routing::Endpoints;
use axum::http::Method;
use utoipa::OpenApi;

use crate::helpers::{app_with_routes, call};

// example: start
use api::api::error::HttpValidationError;
use api::api::extract::Query;
use api::endpoint;
use axum::Json;
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
// example: end

/// The service's endpoints and the example, as `endpoints::all` would list
/// it with one more line: `.with(endpoint!(greeting))`.
fn with_the_example() -> Endpoints {
    endpoints::all().with(endpoint!(greeting))
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

#[tokio::test]
async fn the_example_is_timed_out_like_every_endpoint() {
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
