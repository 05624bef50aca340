//! Every error the API answers, in FastAPI's shape (`{"detail": ...}`), so
//! that clients written against the Python original keep working.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug)]
pub enum ApiError {
    /// 404 `{"detail":"Not Found"}`: no route has this path.
    NotFound,
    /// 405 `{"detail":"Method Not Allowed"}`: the path exists, the method
    /// doesn't. The app adds the `Allow` header (`api::App`), which knows
    /// the route's methods.
    MethodNotAllowed,
    /// 408 `{"detail":"Request Timeout"}`: the request outlived `--request-timeout`.
    RequestTimeout,
    /// 422 with FastAPI's validation body: a parameter or the body is
    /// missing or not valid (`api::extract`).
    Validation(Vec<ValidationError>),
    /// 500 `{"detail":"Internal Server Error"}`: a handler panicked.
    Internal,
    /// Any status with `{"detail": detail}`: what a handler answers where
    /// FastAPI's would `raise HTTPException(404, "Item not found")`.
    Http {
        status: StatusCode,
        detail: Cow<'static, str>,
    },
}

/// The body of every error but 422: `{"detail": "Not Found"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorMessage {
    #[schema(value_type = String, example = "Not Found")]
    pub detail: Cow<'static, str>,
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
    /// Where the input was expected: `["query", "<parameter>"]`,
    /// `["body", "<field>", 0, ...]`, or `["body", <offset>]` for JSON
    /// that does not parse.
    #[schema(example = json!(["query", "name"]))]
    pub loc: Vec<Location>,
    /// Human-readable message.
    #[schema(example = "Field required")]
    pub msg: Cow<'static, str>,
    /// The offending input; `null` when it is missing.
    #[schema(value_type = Option<Object>, example = json!(null))]
    pub input: Value,
    /// More about the error, where FastAPI gives it:
    /// `{"error": "Expecting value"}` for JSON that does not parse.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub ctx: Option<Value>,
}

/// One step of a [`ValidationError`]'s `loc`: a name, or an index into a
/// list (or into the body's text).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Location {
    Name(Cow<'static, str>),
    Index(usize),
}

impl ValidationError {
    /// A required parameter, from `source` (`query`, `path`), that the
    /// request did not send.
    pub fn missing(source: &'static str, parameter: String) -> Self {
        Self::at(
            vec![Location::Name(Cow::Borrowed(source)), parameter.into()],
            "missing",
            Cow::Borrowed("Field required"),
            Value::Null,
        )
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
        Self::at(
            vec![Location::Name(Cow::Borrowed(source)), parameter.into()],
            kind,
            Cow::Owned(msg),
            input.map_or(Value::Null, Value::String),
        )
    }

    /// Any error, at any location: `kind` and `msg` as pydantic names and
    /// says them.
    pub fn at(
        loc: Vec<Location>,
        kind: &'static str,
        msg: Cow<'static, str>,
        input: Value,
    ) -> Self {
        Self {
            kind,
            loc,
            msg,
            input,
            ctx: None,
        }
    }
}

impl From<String> for Location {
    fn from(name: String) -> Self {
        Self::Name(Cow::Owned(name))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail) = match self {
            Self::NotFound => (StatusCode::NOT_FOUND, Cow::Borrowed("Not Found")),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                Cow::Borrowed("Method Not Allowed"),
            ),
            Self::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                Cow::Borrowed("Request Timeout"),
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Cow::Borrowed("Internal Server Error"),
            ),
            Self::Http { status, detail } => (status, detail),
            Self::Validation(detail) => {
                let body = HttpValidationError { detail };
                return json_response(StatusCode::UNPROCESSABLE_ENTITY, &body);
            }
        };
        json_response(status, &ErrorMessage { detail })
    }
}

/// Written out here rather than through a JSON extractor's `IntoResponse`:
/// `api::extract::Json` builds on this module, not the other way round.
fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).expect("error bodies serialise");
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}
