//! The API's endpoints: the contract of the FastAPI original, route for route.
//! Each handler's `#[utoipa::path]` is the source of its part of /openapi.json.
//!
//! The handlers are plain functions that answer at once, and [`Route`]
//! finds them with a `match` on the path: going through axum's router cost
//! these three routes about 4,000 instructions a request, a fifth of their
//! cost, in route clones, boxed futures and the extensions map that carries
//! the matched route (docs/benchmarks.md). Everything else goes through
//! axum (`router.rs`).

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, HttpValidationError, ValidationError};
use crate::lifecycle::Lifecycle;

/// `{"message": "..."}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    #[schema(example = "Hello World!")]
    pub message: &'static str,
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

/// The service's health: `{"status": "ok"}`, or `{"status": "stopping"}`
/// once it has been told to shut down.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The routes of the contract, found without a router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    HelloWorld,
    CurrentTime,
    Healthcheck,
}

impl Route {
    pub const ALL: [Route; 3] = [Route::HelloWorld, Route::CurrentTime, Route::Healthcheck];

    /// The route whose path this is, if any.
    pub fn of(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|route| route.path() == path)
    }

    /// Its path, as in /openapi.json, the access log and the metrics.
    pub fn path(self) -> &'static str {
        match self {
            Route::HelloWorld => "/hello_world",
            Route::CurrentTime => "/current_time",
            Route::Healthcheck => "/healthcheck",
        }
    }

    /// Its answer to a GET with this query.
    pub fn answer(self, query: Option<&str>, lifecycle: &Lifecycle) -> Response {
        match self {
            Route::HelloWorld => hello_world(),
            Route::CurrentTime => current_time(query),
            Route::Healthcheck => healthcheck(lifecycle),
        }
    }
}

/// Greets the world.
#[utoipa::path(
    get,
    path = "/hello_world",
    responses((status = OK, description = "Always", body = Message)),
)]
pub fn hello_world() -> Response {
    static BODY: LazyLock<Vec<u8>> = LazyLock::new(|| {
        json_body(&Message {
            message: "Hello World!",
        })
    });
    json_response(StatusCode::OK, &BODY)
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
pub fn current_time(query: Option<&str>) -> Response {
    let CurrentTimeQuery { name } = match CurrentTimeQuery::parse(query) {
        Ok(query) => query,
        Err(error) => return error.into_response(),
    };
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since_epoch| since_epoch.as_secs());
    let body = CurrentTime {
        timestamp,
        message: format!("Hello {name}"),
    };
    let json = [(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    (json, Bytes::from(json_body(&body))).into_response()
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
pub fn healthcheck(lifecycle: &Lifecycle) -> Response {
    static OK: LazyLock<Vec<u8>> = LazyLock::new(|| json_body(&Health { status: "ok" }));
    static STOPPING: LazyLock<Vec<u8>> =
        LazyLock::new(|| json_body(&Health { status: "stopping" }));
    if lifecycle.is_stopping() {
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

fn json_response(status: StatusCode, body: &'static [u8]) -> Response {
    let json = [(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    (status, json, Bytes::from_static(body)).into_response()
}

/// The query of `/current_time`, decoded as FastAPI decodes it: percent-encoded
/// UTF-8 (invalid bytes become U+FFFD), `+` as a space, other parameters
/// ignored, and the last `name` wins when it is repeated. (axum's `Query`
/// would reject a repeated `name` with a plain-text 400.)
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CurrentTimeQuery {
    /// Who to greet; may be empty.
    pub name: String,
}

impl CurrentTimeQuery {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .filter(|(key, _)| key == "name")
            .last()
            .map(|(_, name)| Self {
                name: name.into_owned(),
            })
            .ok_or_else(|| ApiError::Validation(vec![ValidationError::missing_query("name")]))
    }
}
