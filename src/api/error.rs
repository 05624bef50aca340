//! Every error the API answers, in FastAPI's shape (`{"detail": ...}`), so
//! that clients written against the Python original keep working.

use std::borrow::Cow;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub enum ApiError {
    /// 404 `{"detail":"Not Found"}`: no route has this path.
    NotFound,
    /// 405 `{"detail":"Method Not Allowed"}`: the path exists, the method
    /// doesn't. axum adds the `Allow` header.
    MethodNotAllowed,
    /// 408 `{"detail":"Request Timeout"}`: the request outlived `--request-timeout`.
    RequestTimeout,
    /// 422 with FastAPI's validation body: a query parameter is missing.
    Validation(Vec<ValidationError>),
    /// 500 `{"detail":"Internal Server Error"}`: a handler panicked.
    Internal,
}

/// The body of every error but 422: `{"detail": "Not Found"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorMessage {
    pub detail: &'static str,
}

/// The 422 body, as FastAPI names it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = HTTPValidationError)]
pub struct HttpValidationError {
    pub detail: Vec<ValidationError>,
}

/// One invalid input: `{"type":"missing","loc":["query","name"],"msg":"Field required","input":null}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationError {
    /// Machine-readable kind of error, e.g. `missing`.
    #[serde(rename = "type")]
    #[schema(example = "missing")]
    pub kind: &'static str,
    /// Where the input was expected: `["query", "<parameter>"]`.
    #[schema(value_type = Vec<String>, example = json!(["query", "name"]))]
    pub loc: (&'static str, String),
    /// Human-readable message.
    #[schema(example = "Field required")]
    pub msg: Cow<'static, str>,
    /// The offending input; `null` when it is missing.
    #[schema(value_type = Option<Object>, example = json!(null))]
    pub input: Option<String>,
}

impl ValidationError {
    /// A required parameter, from `source` (`query`, `path`), that the
    /// request did not send.
    pub fn missing(source: &'static str, parameter: String) -> Self {
        Self {
            kind: "missing",
            loc: (source, parameter),
            msg: Cow::Borrowed("Field required"),
            input: None,
        }
    }

    /// A parameter whose value could not be read: `kind` and `msg` as
    /// pydantic names and says them, `input` the value sent.
    pub fn invalid(
        source: &'static str,
        kind: &'static str,
        parameter: String,
        msg: String,
        input: Option<String>,
    ) -> Self {
        Self {
            kind,
            loc: (source, parameter),
            msg: Cow::Owned(msg),
            input,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail) = match self {
            Self::NotFound => (StatusCode::NOT_FOUND, "Not Found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
            Self::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "Request Timeout"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
            Self::Validation(detail) => {
                let body = HttpValidationError { detail };
                return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
            }
        };
        (status, Json(ErrorMessage { detail })).into_response()
    }
}
