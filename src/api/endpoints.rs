//! Every endpoint of the API, each declared once: the handler, and above
//! it the `#[utoipa::path]` that names its method and path and describes
//! it for /openapi.json. [`all`] lists them; from that list come the
//! routing, HEAD, 405 with `Allow`, trailing-slash redirects, the metrics'
//! route label and /openapi.json, and every endpoint is answered behind the
//! same guards (request timeout, panic guard, request id, access log,
//! metrics). To add one, write its handler here and list it in [`all`]:
//! CONTRIBUTING.md walks through an example.
//!
//! These three are the contract of the FastAPI original, route for route.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::api::docs::ApiDoc;
use crate::api::error::HttpValidationError;
use crate::api::extract::{Json, Query};
use crate::api::routing::Endpoints;
use crate::endpoint;
use crate::shutdown::Stopping;

/// The API's endpoints.
pub fn all() -> Endpoints {
    let endpoints = Endpoints::new(ApiDoc::openapi())
        .with(endpoint!(hello_world))
        .with(endpoint!(current_time))
        .with(endpoint!(healthcheck));
    // For the image tests only (a build with the `panic-route` feature):
    // proves that a panic still answers 500 in the static production image.
    #[cfg(feature = "panic-route")]
    let endpoints = endpoints.hidden(axum::http::Method::GET, "/panic", panic_on_purpose);
    endpoints
}

/// `GET /panic`, in builds with the `panic-route` feature (image tests only).
#[cfg(feature = "panic-route")]
async fn panic_on_purpose() -> &'static str {
    panic!("GET /panic (feature panic-route)")
}

/// `{"message": "..."}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    #[schema(example = "Hello World!")]
    pub message: &'static str,
}

/// Greets the world.
#[utoipa::path(
    get,
    path = "/hello_world",
    responses((status = OK, description = "Always", body = Message)),
)]
pub async fn hello_world() -> Response {
    static BODY: LazyLock<Vec<u8>> = LazyLock::new(|| {
        json_body(&Message {
            message: "Hello World!",
        })
    });
    json_response(StatusCode::OK, &BODY)
}

/// A greeting stamped with the server's clock.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrentTime {
    /// Seconds since the Unix epoch, UTC.
    #[schema(example = 1700000000)]
    pub timestamp: u64,
    /// `Hello ` followed by the `name` query parameter.
    #[schema(example = "Hello some_name")]
    pub message: String,
}

/// The query of `/current_time`, read as FastAPI reads it (see
/// [`Query`]): a repeated `name`, the last wins; an empty one is valid.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CurrentTimeQuery {
    /// Who to greet; may be empty.
    pub name: String,
}

/// Greets `name` and tells the current Unix time.
#[utoipa::path(
    get,
    path = "/current_time",
    params(CurrentTimeQuery),
    responses(
        (status = OK, description = "The greeting and the time", body = CurrentTime),
        (status = UNPROCESSABLE_ENTITY, description = "`name` is missing", body = HttpValidationError),
    ),
)]
pub async fn current_time(Query(query): Query<CurrentTimeQuery>) -> Json<CurrentTime> {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since_epoch| since_epoch.as_secs());
    // Not `format!`: its machinery cost 300 instructions a request here.
    let mut message = String::with_capacity("Hello ".len() + query.name.len());
    message.push_str("Hello ");
    message.push_str(&query.name);
    Json(CurrentTime { timestamp, message })
}

/// The service's health: `{"status": "ok"}`, or `{"status": "stopping"}`
/// once it has been told to shut down.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Tells whether the service takes requests.
///
/// 200 while the process serves; 503 once it has been told to stop
/// (SIGTERM), so that load balancers send it no more.
#[utoipa::path(
    get,
    path = "/healthcheck",
    responses(
        (status = OK, description = "The service is healthy", body = Health),
        (status = SERVICE_UNAVAILABLE, description = "The service is shutting down", body = Health,
            example = json!({"status": "stopping"})),
    ),
)]
pub async fn healthcheck(State(stopping): State<Stopping>) -> Response {
    static OK: LazyLock<Vec<u8>> = LazyLock::new(|| json_body(&Health { status: "ok" }));
    static STOPPING: LazyLock<Vec<u8>> =
        LazyLock::new(|| json_body(&Health { status: "stopping" }));
    if stopping.is_set() {
        json_response(StatusCode::SERVICE_UNAVAILABLE, &STOPPING)
    } else {
        json_response(StatusCode::OK, &OK)
    }
}

/// The JSON of an answer; those that never change are made once, since
/// serialising them on every request was a tenth of their cost.
fn json_body(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("our answers serialise")
}

/// Built directly: through `IntoResponse` for `Bytes`, the content type
/// was written twice (octet-stream, then JSON), each with its hashing.
fn json_response(status: StatusCode, body: &'static [u8]) -> Response {
    let mut response = Response::new(Body::from(Bytes::from_static(body)));
    *response.status_mut() = status;
    let json = HeaderValue::from_static("application/json");
    response.headers_mut().insert(CONTENT_TYPE, json);
    response
}
