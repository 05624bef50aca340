//! Extractors that read requests as FastAPI does, so that endpoints
//! written here answer bad input the way clients of the original expect:
//! [`Query`] and [`Path`], into a struct of the parameters, 422 with
//! FastAPI's body when one is missing or does not parse.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;

use crate::api::error::{ApiError, ValidationError};

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

/// The path's parameters (`/items/{id}`), deserialized into `T`, a struct
/// with a field per parameter (`#[derive(Deserialize, IntoParams)]` with
/// `#[into_params(parameter_in = Path)]`), percent-decoded; a parameter that
/// does not parse answers 422 as for [`Query`], with `loc: ["path", ...]`.
/// (axum's own `Path` extractor needs axum's router, which the app does
/// not use: see `api::routing`.)
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
        let mut encoded = form_urlencoded::Serializer::new(String::new());
        for (name, value) in parameters {
            encoded.append_pair(name, &percent_decode_str(value).decode_utf8_lossy());
        }
        deserialize("path", &encoded.finish()).map(Path)
    }
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
}
