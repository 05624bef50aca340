//! Extractors that read requests as FastAPI does, so that endpoints
//! written here answer bad input the way clients of the original expect:
//! [`Query`] and [`Path`], into a struct of the parameters (or, for
//! `Path`, a scalar or a tuple), and [`Json`] for the body, 422 with
//! FastAPI's body when one is missing or does not parse.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::error::{ApiError, Location, ValidationError};
use crate::logging::request_id;

/// The query string, deserialized into `T` (a struct with a field per
/// parameter, `#[derive(Deserialize, IntoParams)]`), as FastAPI reads it:
///
/// - percent-encoded UTF-8, `+` for a space, invalid bytes as U+FFFD;
/// - parameters `T` does not name are ignored; a repeated one, the last
///   value wins (axum's `Query` refuses it with a plain-text 400);
/// - a missing or unparsable parameter answers 422 with FastAPI's body,
///   with an entry for the first error (FastAPI lists every one): `{"detail":[{"type":"missing","loc":["query","name"],
///   "msg":"Field required","input":null}]}`, or `int_parsing`,
///   `float_parsing`, `bool_parsing` with the value sent.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        deserialize("query", query).map(Query)
    }
}

/// The request's id, as the `X-Request-Id` of its response and its log
/// lines carry it: the client's, if usable, else one the app made.
/// `RequestId(id): RequestId`, for a handler to pass to what it calls.
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        // Not a request extension: inserting one cost every request an
        // allocation; the id is current while the handler runs anyway.
        request_id::with_current(|id| id.and_then(|id| id.to_str().ok()).map(str::to_owned))
            .map(RequestId)
            // Only a handler called outside the app (`api::App`) has none.
            .ok_or(ApiError::Internal)
    }
}

/// The path's parameters (`/items/{id}`), percent-decoded, as axum's
/// `Path` reads them: one parameter into a scalar (`Path(id): Path<u32>`),
/// several into a tuple, in the template's order (`Path((id, slug)):
/// Path<(u32, String)>`), or into a struct with a field per parameter
/// (`#[derive(Deserialize, IntoParams)]` with
/// `#[into_params(parameter_in = Path)]`). A parameter that does not parse
/// answers 422 as for [`Query`], with `loc: ["path", <name>]`. (axum's own
/// `Path` extractor needs axum's router, which the app does not use: see
/// `api::routing`.)
pub struct Path<T>(pub T);

/// The matched route's parameters, for [`Path`]: the app puts them in the
/// request's extensions, for routes that have any.
#[derive(Clone)]
pub struct PathParameters(pub Vec<(String, String)>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let parameters = parts
            .extensions
            .get::<PathParameters>()
            .map(|parameters| parameters.0.as_slice())
            .unwrap_or_default();
        let decoded: Vec<(String, String)> = parameters
            .iter()
            .map(|(name, value)| {
                let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
                (name.clone(), value)
            })
            .collect();
        let mut encoded = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &decoded {
            encoded.append_pair(name, value);
        }
        let encoded = encoded.finish();
        let deserializer = || path_parameters::Parameters {
            decoded: &decoded,
            encoded: &encoded,
        };
        T::deserialize(deserializer()).map(Path).map_err(|_| {
            let error = serde_path_to_error::deserialize::<_, T>(deserializer())
                .err()
                .expect("the same input fails the same way");
            ApiError::Validation(vec![path_error(&decoded, &encoded, &error)])
        })
    }
}

/// A path parameter's error, named after the parameter: a scalar or a
/// tuple's element has no field name of its own.
fn path_error(
    decoded: &[(String, String)],
    encoded: &str,
    error: &serde_path_to_error::Error<serde::de::value::Error>,
) -> ValidationError {
    let position = match error.path().iter().next() {
        None => Some(0),
        Some(serde_path_to_error::Segment::Seq { index }) => Some(*index),
        Some(_) => None,
    };
    match position.and_then(|index| decoded.get(index)) {
        Some((name, value)) => {
            let mut entry = validation_error("path", encoded, error);
            entry.loc = vec![Location::Name(Cow::Borrowed("path")), name.clone().into()];
            entry.input = serde_json::Value::String(value.clone());
            entry
        }
        None => validation_error("path", encoded, error),
    }
}

/// The deserializer behind [`Path`]: a struct or map reads the parameters
/// by name (as [`Query`] reads the query), a tuple or sequence reads them in
/// order, and anything else is the one parameter.
mod path_parameters {
    use serde::de::value::Error;
    use serde::de::{self, DeserializeSeed, Error as _, IntoDeserializer, SeqAccess, Visitor};
    use serde::forward_to_deserialize_any;

    /// `deserialize_u32` and the like, of the one parameter.
    macro_rules! forward_one {
        ($($method:ident)*) => {$(
            fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
                self.only()?.$method(visitor)
            }
        )*};
    }

    /// The parameters, decoded, in the template's order, and as a form
    /// (`id=7&slug=a+b`) for reading by name.
    pub struct Parameters<'a> {
        pub decoded: &'a [(String, String)],
        pub encoded: &'a str,
    }

    impl<'a> Parameters<'a> {
        fn by_name(self) -> serde_urlencoded::Deserializer<'a> {
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(self.encoded.as_bytes()))
        }

        fn in_order<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.visit_seq(InOrder(self.decoded.iter()))
        }

        fn only(&self) -> Result<Value<'a>, Error> {
            match self.decoded {
                [(_, value)] => Ok(Value(value)),
                _ => Err(Error::custom(format!(
                    "a single value needs one path parameter; the route has {}: use a tuple or a struct",
                    self.decoded.len()
                ))),
            }
        }
    }

    impl<'a> de::Deserializer<'a> for Parameters<'a> {
        type Error = Error;

        fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
            self.only()?.deserialize_any(visitor)
        }

        fn deserialize_struct<V: Visitor<'a>>(
            self,
            name: &'static str,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            self.by_name().deserialize_struct(name, fields, visitor)
        }

        fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
            self.by_name().deserialize_map(visitor)
        }

        fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
            self.in_order(visitor)
        }

        fn deserialize_tuple<V: Visitor<'a>>(
            self,
            _len: usize,
            visitor: V,
        ) -> Result<V::Value, Error> {
            self.in_order(visitor)
        }

        fn deserialize_tuple_struct<V: Visitor<'a>>(
            self,
            _name: &'static str,
            _len: usize,
            visitor: V,
        ) -> Result<V::Value, Error> {
            self.in_order(visitor)
        }

        forward_one! {
            deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
            deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f32
            deserialize_f64 deserialize_char deserialize_str deserialize_string
            deserialize_option deserialize_identifier
        }

        fn deserialize_newtype_struct<V: Visitor<'a>>(
            self,
            name: &'static str,
            visitor: V,
        ) -> Result<V::Value, Error> {
            self.only()?.deserialize_newtype_struct(name, visitor)
        }

        fn deserialize_enum<V: Visitor<'a>>(
            self,
            name: &'static str,
            variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            self.only()?.deserialize_enum(name, variants, visitor)
        }

        forward_to_deserialize_any! { <W: Visitor<'a>> i128 u128 bytes byte_buf unit unit_struct ignored_any }
    }

    struct InOrder<'a>(std::slice::Iter<'a, (String, String)>);

    impl<'a, 'de> SeqAccess<'de> for InOrder<'a> {
        type Error = Error;

        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>, Error> {
            self.0
                .next()
                .map(|(_, value)| seed.deserialize(Value(value)))
                .transpose()
        }
    }

    /// One parameter's text, read as the type asks: parsed for a number or
    /// a bool, with the standard library's messages, which
    /// `validation_error` turns into pydantic's.
    pub struct Value<'a>(&'a str);

    macro_rules! parse {
        ($($method:ident => $visit:ident),* $(,)?) => {$(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                visitor.$visit(self.0.parse().map_err(Error::custom)?)
            }
        )*};
    }

    impl<'a, 'de> de::Deserializer<'de> for Value<'a> {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.visit_str(self.0)
        }

        parse! {
            deserialize_bool => visit_bool,
            deserialize_i8 => visit_i8, deserialize_i16 => visit_i16,
            deserialize_i32 => visit_i32, deserialize_i64 => visit_i64,
            deserialize_u8 => visit_u8, deserialize_u16 => visit_u16,
            deserialize_u32 => visit_u32, deserialize_u64 => visit_u64,
            deserialize_f32 => visit_f32, deserialize_f64 => visit_f64,
        }

        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.visit_some(self)
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            visitor: V,
        ) -> Result<V::Value, Error> {
            visitor.visit_newtype_struct(self)
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            name: &'static str,
            variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            let text: de::value::StrDeserializer<'_, Error> = self.0.into_deserializer();
            text.deserialize_enum(name, variants, visitor)
        }

        forward_to_deserialize_any! {
            i128 u128 char str string bytes byte_buf unit unit_struct seq tuple
            tuple_struct map struct identifier ignored_any
        }
    }
}

/// The request's body, as JSON, deserialized into `T` (a struct,
/// `#[derive(Deserialize, ToSchema)]`), as FastAPI reads a body parameter;
/// answering with it serializes `T` as `application/json`, so a handler
/// takes and returns this one `Json`. Bad input answers 422 with FastAPI's
/// body, an entry for the first error:
///
/// - an empty body: `missing`, `loc: ["body"]`;
/// - a body that is not JSON: `json_invalid`, `loc: ["body", <offset>]`,
///   `ctx: {"error": ...}` (the offset where serde_json stopped, in
///   characters, and CPython's message for the common mistakes; they can
///   differ from FastAPI's by a character);
/// - a `Content-Type` other than `application/json` or `application/*+json`
///   (FastAPI reads a body without one as JSON): the body is not read as
///   JSON, `model_attributes_type` with the body's text as `input`;
/// - JSON that is not an object: `model_attributes_type`;
/// - a missing field: `missing`, `loc: ["body", "price"]`, `input` the
///   object it is missing from;
/// - a field of the wrong type: `int_type`, `float_type`, `string_type`,
///   `bool_type`, else `value_error` with serde's message. (pydantic also
///   reads `"5"` as the number 5; serde does not.)
///
/// A body that cannot be read answers FastAPI's 400 `{"detail":"There was
/// an error parsing the body"}`; past axum's body limit (2 MB), 413
/// `{"detail":"Payload Too Large"}`.
pub struct Json<T>(pub T);

/// pydantic's error for a body that is not an object.
const NOT_AN_OBJECT: &str = "Input should be a valid dictionary or object to extract fields from";

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let read_as_json = is_json(request.headers().get(CONTENT_TYPE));
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                // Starlette has no body limit: the 413 is ours.
                let (status, detail) = match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => {
                        (StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large")
                    }
                    _ => (
                        StatusCode::BAD_REQUEST,
                        "There was an error parsing the body",
                    ),
                };
                ApiError::Http {
                    status,
                    detail: Cow::Borrowed(detail),
                }
            })?;
        let body_error = |kind, msg, input| {
            let loc = vec![Location::Name(Cow::Borrowed("body"))];
            ApiError::Validation(vec![ValidationError::at(loc, kind, msg, input)])
        };
        if body.is_empty() {
            return Err(body_error(
                "missing",
                Cow::Borrowed("Field required"),
                serde_json::Value::Null,
            ));
        }
        if !read_as_json {
            let text = String::from_utf8_lossy(&body).into_owned();
            return Err(body_error(
                "model_attributes_type",
                Cow::Borrowed(NOT_AN_OBJECT),
                serde_json::Value::String(text),
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|error| ApiError::Validation(vec![json_invalid(&body, &error)]))?;
        // As for `Query`: the path to the failing field only when one fails.
        T::deserialize(&value).map(Json).map_err(|_| {
            // serde reads a struct from a list too, field by field, and
            // would report the list's first element; pydantic refuses it.
            if !value.is_object() {
                return body_error(
                    "model_attributes_type",
                    Cow::Borrowed(NOT_AN_OBJECT),
                    value.clone(),
                );
            }
            let error = serde_path_to_error::deserialize::<_, T>(&value)
                .err()
                .expect("the same input fails the same way");
            ApiError::Validation(vec![body_field_error(&value, &error)])
        })
    }
}

/// Answering with `Json(value)`: `value` as `application/json`, through
/// axum's `Json`, which this one stands in for.
impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// FastAPI's test of the `Content-Type`: none, `application/json` or
/// `application/<anything>+json`, any parameters, any case.
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(content_type) = content_type else {
        return true;
    };
    let Ok(content_type) = content_type.to_str() else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let Some((main, sub)) = essence.split_once('/') else {
        return false;
    };
    main.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json") || sub.to_ascii_lowercase().ends_with("+json"))
}

/// FastAPI's entry for a body that does not parse as JSON: the offset, in
/// characters as Python counts them, and the message of CPython's decoder
/// for serde_json's error where the two say the same thing.
fn json_invalid(body: &[u8], error: &serde_json::Error) -> ValidationError {
    let text = String::from_utf8_lossy(body);
    let line_start: usize = text
        .split_inclusive('\n')
        .take(error.line().saturating_sub(1))
        .map(str::len)
        .sum();
    let byte_offset = (line_start + error.column().saturating_sub(1)).min(text.len());
    let offset = text
        .char_indices()
        .take_while(|(at, _)| *at < byte_offset)
        .count();
    let serde_message = error.to_string();
    let serde_message = serde_message.split(" at line ").next().unwrap_or_default();
    let message = match serde_message {
        "expected value" | "EOF while parsing a value" | "expected ident" => "Expecting value",
        "key must be a string" | "EOF while parsing an object" => {
            "Expecting property name enclosed in double quotes"
        }
        "expected `:`" => "Expecting ':' delimiter",
        "expected `,` or `}`" | "expected `,` or `]`" | "EOF while parsing a list" => {
            "Expecting ',' delimiter"
        }
        "trailing characters" => "Extra data",
        "EOF while parsing a string" => "Unterminated string starting at",
        other => other,
    };
    let mut entry = ValidationError::at(
        vec![
            Location::Name(Cow::Borrowed("body")),
            Location::Index(offset),
        ],
        "json_invalid",
        Cow::Borrowed("JSON decode error"),
        serde_json::Value::Object(serde_json::Map::new()),
    );
    entry.ctx = Some(serde_json::json!({ "error": message }));
    entry
}

/// FastAPI's entry for a body that parsed but does not fit `T`.
fn body_field_error(
    body: &serde_json::Value,
    error: &serde_path_to_error::Error<serde_json::Error>,
) -> ValidationError {
    let mut loc = vec![Location::Name(Cow::Borrowed("body"))];
    let mut input = body;
    for segment in error.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => {
                loc.push(Location::Index(*index));
                input = input.get(index).unwrap_or(&serde_json::Value::Null);
            }
            serde_path_to_error::Segment::Map { key } => {
                loc.push(key.clone().into());
                input = input.get(key).unwrap_or(&serde_json::Value::Null);
            }
            serde_path_to_error::Segment::Enum { variant } => loc.push(variant.clone().into()),
            serde_path_to_error::Segment::Unknown => loc.push("?".to_owned().into()),
        }
    }
    let message = error.inner().to_string();
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        loc.push(field.to_owned().into());
        return ValidationError::at(
            loc,
            "missing",
            Cow::Borrowed("Field required"),
            input.clone(),
        );
    }
    let expected = message.rsplit(", expected ").next().unwrap_or_default();
    // pydantic tries to parse a string where a number or a bool belongs
    // (`*_parsing`); anything else of the wrong type is `*_type`.
    let sent_a_string = message.starts_with("invalid type: string");
    let (kind, msg) = if !message.starts_with("invalid type:") {
        ("value_error", message.as_str())
    } else if expected.starts_with("struct ") || expected.starts_with("a map") {
        ("model_attributes_type", NOT_AN_OBJECT)
    } else if expected.starts_with('u') || expected.starts_with('i') {
        if sent_a_string {
            (
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
            )
        } else {
            ("int_type", "Input should be a valid integer")
        }
    } else if expected.starts_with('f') {
        if sent_a_string {
            (
                "float_parsing",
                "Input should be a valid number, unable to parse string as a number",
            )
        } else {
            ("float_type", "Input should be a valid number")
        }
    } else if expected == "a string" {
        ("string_type", "Input should be a valid string")
    } else if expected == "a boolean" {
        if sent_a_string {
            (
                "bool_parsing",
                "Input should be a valid boolean, unable to interpret input",
            )
        } else {
            ("bool_type", "Input should be a valid boolean")
        }
    } else {
        ("value_error", message.as_str())
    };
    ValidationError::at(loc, kind, Cow::Owned(msg.to_owned()), input.clone())
}

/// `encoded` (`a=1&b=x`) into `T`, errors as FastAPI reports input from
/// `source` (`query`, `path`).
fn deserialize<T: DeserializeOwned>(source: &'static str, encoded: &str) -> Result<T, ApiError> {
    let last_of_each;
    let encoded = if has_repeated_parameters(encoded) {
        last_of_each = last_value_of_each(encoded);
        &last_of_each
    } else {
        encoded
    };
    let parameters =
        || serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
    // Tracking the path to the field that failed costs on every request;
    // it is needed only to report one, so only then is it done, again.
    T::deserialize(parameters()).map_err(|_| {
        let error = serde_path_to_error::deserialize::<_, T>(parameters())
            .err()
            .expect("the same input fails the same way");
        ApiError::Validation(vec![validation_error(source, encoded, &error)])
    })
}

/// Whether a parameter comes twice. This runs on every request, so it is
/// one pass over the names, as sent (a query of one parameter costs a
/// search for `&`); they are decoded only if one is encoded (`%`, `+`),
/// which could make two spellings one name. One pass, not a comparison of
/// each name with the ones before it: a query of 2,000 parameters (15 kB,
/// within the header limit) took 630 ms of CPU that way.
fn has_repeated_parameters(query: &str) -> bool {
    if !query.contains('&') {
        return false;
    }
    let mut seen = HashSet::new();
    if query.bytes().any(|byte| byte == b'%' || byte == b'+') {
        return !form_urlencoded::parse(query.as_bytes()).all(|(name, _)| seen.insert(name));
    }
    !query
        .split('&')
        .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
        .filter(|name| !name.is_empty())
        .all(|name| seen.insert(Cow::Borrowed(name)))
}

/// The query with each parameter once, at its last value, in the order of
/// those last values.
fn last_value_of_each(query: &str) -> String {
    let pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> =
        form_urlencoded::parse(query.as_bytes()).collect();
    let mut last = HashMap::new();
    for (i, (name, _)) in pairs.iter().enumerate() {
        last.insert(name, i);
    }
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (i, (name, value)) in pairs.iter().enumerate() {
        if last[name] == i {
            kept.append_pair(name, value);
        }
    }
    kept.finish()
}

/// FastAPI's entry for what went wrong: pydantic's error types where the
/// cause is one of theirs, else `value_error` with serde's message.
fn validation_error(
    source: &'static str,
    encoded: &str,
    error: &serde_path_to_error::Error<serde_urlencoded::de::Error>,
) -> ValidationError {
    let message = error.inner().to_string();
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        return ValidationError::missing(source, name.to_owned());
    }
    let name = error.path().to_string();
    let input = form_urlencoded::parse(encoded.as_bytes())
        .find(|(parameter, _)| *parameter == name)
        .map(|(_, value)| value.into_owned());
    let (kind, msg) = match message.as_str() {
        "invalid digit found in string"
        | "cannot parse integer from empty string"
        | "number too large to fit in target type"
        | "number too small to fit in target type" => (
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        "invalid float literal" | "cannot parse float from empty string" => (
            "float_parsing",
            "Input should be a valid number, unable to parse string as a number",
        ),
        "provided string was not `true` or `false`" => (
            "bool_parsing",
            "Input should be a valid boolean, unable to interpret input",
        ),
        _ => ("value_error", message.as_str()),
    };
    ValidationError::invalid(source, kind, name, msg.to_owned(), input)
}

#[cfg(test)]
mod tests {
    use axum::http::Request;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Params {
        name: String,
        count: Option<u32>,
        ratio: Option<f64>,
        loud: Option<bool>,
    }

    async fn extract(uri: &str) -> Result<Params, serde_json::Value> {
        let (mut parts, ()) = Request::get(uri).body(()).expect("a request").into_parts();
        match Query::<Params>::from_request_parts(&mut parts, &()).await {
            Ok(Query(params)) => Ok(params),
            Err(ApiError::Validation(errors)) => {
                Err(serde_json::to_value(&errors[0]).expect("JSON"))
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn parameters_are_decoded_like_fastapi_and_the_last_repeated_one_wins() {
        let params = extract("/?name=a+b%20c&count=3&name=%C3%A9t%C3%A9&other=x&loud=true")
            .await
            .expect("valid");
        assert_eq!(
            params,
            Params {
                name: "été".to_owned(),
                count: Some(3),
                ratio: None,
                loud: Some(true)
            }
        );
        let encoded_twice = extract("/?name=first&na%6De=second").await.expect("valid");
        assert_eq!(
            encoded_twice.name, "second",
            "the same name, spelled two ways"
        );
        let lossy = extract("/?name=%FF").await.expect("valid");
        assert_eq!(lossy.name, "\u{FFFD}");
        assert_eq!(extract("/?name=").await.expect("valid").name, "");
    }

    #[tokio::test]
    async fn thousands_of_parameters_some_repeated_keep_the_last_of_each() {
        let mut uri = String::from("/?");
        for i in 0..2_000 {
            uri.push_str(&format!("%6Eame{i}=x&"));
        }
        uri.push_str("name=first&count=1&na%6De=last");
        let params = extract(&uri).await.expect("valid");
        assert_eq!(params.name, "last");
        assert_eq!(params.count, Some(1));
    }

    #[tokio::test]
    async fn a_missing_or_unparsable_parameter_is_fastapis_422_entry() {
        assert_eq!(
            extract("/?count=1").await.expect_err("missing"),
            serde_json::json!({"type": "missing", "loc": ["query", "name"], "msg": "Field required", "input": null})
        );
        assert_eq!(
            extract("/?name=x&count=many")
                .await
                .expect_err("not a number"),
            serde_json::json!({
                "type": "int_parsing",
                "loc": ["query", "count"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "many"
            })
        );
        assert_eq!(
            extract("/?name=x&ratio=half").await.expect_err("float")["type"],
            "float_parsing"
        );
        assert_eq!(
            extract("/?name=x&count=-1").await.expect_err("unsigned")["type"],
            "int_parsing"
        );
        assert_eq!(
            extract("/?name=x&loud=maybe").await.expect_err("bool")["type"],
            "bool_parsing"
        );
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Item {
        id: u32,
        slug: String,
    }

    async fn path(parameters: &[(&str, &str)]) -> Result<Item, serde_json::Value> {
        let (mut parts, ()) = Request::get("/").body(()).expect("a request").into_parts();
        let owned = parameters
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()));
        parts.extensions.insert(PathParameters(owned.collect()));
        match Path::<Item>::from_request_parts(&mut parts, &()).await {
            Ok(Path(item)) => Ok(item),
            Err(ApiError::Validation(errors)) => {
                Err(serde_json::to_value(&errors[0]).expect("JSON"))
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn path_parameters_are_percent_decoded_and_a_plus_stays_a_plus() {
        let item = path(&[("id", "7"), ("slug", "a%20b+c%2Fd")])
            .await
            .expect("valid");
        assert_eq!(
            item,
            Item {
                id: 7,
                slug: "a b+c/d".to_owned()
            }
        );
        assert_eq!(
            path(&[("id", "seven"), ("slug", "x")])
                .await
                .expect_err("not a number"),
            serde_json::json!({
                "type": "int_parsing",
                "loc": ["path", "id"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "seven"
            })
        );
    }

    async fn path_as<T: DeserializeOwned>(
        parameters: &[(&str, &str)],
    ) -> Result<T, serde_json::Value> {
        let (mut parts, ()) = Request::get("/").body(()).expect("a request").into_parts();
        let owned = parameters
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()));
        parts.extensions.insert(PathParameters(owned.collect()));
        match Path::<T>::from_request_parts(&mut parts, &()).await {
            Ok(Path(value)) => Ok(value),
            Err(ApiError::Validation(errors)) => {
                Err(serde_json::to_value(&errors[0]).expect("JSON"))
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn one_path_parameter_reads_as_a_scalar_and_several_as_a_tuple_in_order() {
        assert_eq!(path_as::<u32>(&[("id", "7")]).await, Ok(7));
        assert_eq!(
            path_as::<String>(&[("name", "a%20b")]).await,
            Ok("a b".to_owned())
        );
        assert_eq!(
            path_as::<(u32, String)>(&[("id", "7"), ("slug", "x")]).await,
            Ok((7, "x".to_owned()))
        );
        assert_eq!(
            path_as::<(u32, u32)>(&[("id", "7"), ("page", "two")])
                .await
                .expect_err("not a number"),
            serde_json::json!({
                "type": "int_parsing",
                "loc": ["path", "page"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "two"
            })
        );
        assert_eq!(
            path_as::<u32>(&[("id", "x")]).await.expect_err("scalar")["loc"],
            serde_json::json!(["path", "id"])
        );
        assert!(path_as::<u32>(&[("id", "7"), ("page", "2")]).await.is_err());
    }
}
