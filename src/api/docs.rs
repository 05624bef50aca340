//! The OpenAPI document and its two pages, Swagger UI at /docs and ReDoc at
//! /redoc, as FastAPI serves them. FastAPI loads both pages' JavaScript
//! from CDNs; ours is compiled into the binary, so both work on a machine
//! with no internet access.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::OpenApi;
use utoipa_swagger_ui::Config;

use crate::api::error::ApiError;
use crate::api::extract::Path;
use crate::api::routing::Endpoints;
use crate::api::static_files::{Coding, StaticFile};

pub const OPENAPI_PATH: &str = "/openapi.json";
pub const DOCS_PATH: &str = "/docs";
const DOCS_INDEX_PATH: &str = "/docs/";
const DOCS_FILES_PATH: &str = "/docs/{*file}";
pub const REDOC_PATH: &str = "/redoc";

/// The OpenAPI document's header; the paths come from the endpoints'
/// `#[utoipa::path]` attributes (`endpoints::all`).
#[derive(OpenApi)]
#[openapi(info(
    title = "api",
    description = "Hello world, the current time and a health check: a Rust rewrite of a FastAPI service."
))]
pub struct ApiDoc;

/// The document as served: operations without a tag carry no `tags` key,
/// as in FastAPI's document (utoipa writes `"tags": []`).
pub fn as_served(mut document: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for operation in document
        .paths
        .paths
        .values_mut()
        .filter_map(|item| item.get.as_mut())
    {
        if operation.tags.as_ref().is_some_and(Vec::is_empty) {
            operation.tags = None;
        }
    }
    document
}

/// `endpoints` with `/openapi.json` (describing them), `/docs`, the
/// Swagger UI files under `/docs/`, and `/redoc`. None of these is in the
/// OpenAPI document, as in FastAPI. Each is a [`StaticFile`]: revalidated
/// with its `ETag`, gzipped only for clients that take it, never copied
/// per request.
pub fn add_routes(endpoints: Endpoints, openapi: &utoipa::openapi::OpenApi) -> Endpoints {
    let document = Arc::new(StaticFile::plain(
        "application/json",
        openapi.to_json().expect("the OpenAPI document serializes"),
    ));
    let index = Arc::new(StaticFile::plain("text/html; charset=utf-8", INDEX_PAGE));
    let files = Arc::new(swagger_ui_files());
    endpoints
        .hidden(Method::GET, OPENAPI_PATH, serve(document))
        .hidden(Method::GET, DOCS_PATH, serve(index.clone()))
        .hidden(Method::GET, DOCS_INDEX_PATH, serve(index))
        .hidden(Method::GET, REDOC_PATH, |headers: HeaderMap| async move {
            redoc_page().respond(&headers)
        })
        .hidden(
            Method::GET,
            DOCS_FILES_PATH,
            move |Path(DocsFile { file }): Path<DocsFile>, headers: HeaderMap| async move {
                match files.get(file.as_str()) {
                    Some(file) => file.respond(&headers),
                    None => ApiError::NotFound.into_response(),
                }
            },
        )
}

/// The `{*file}` of `/docs/{*file}`.
#[derive(Deserialize)]
struct DocsFile {
    file: String,
}

/// The handler that answers with `file`.
fn serve(
    file: Arc<StaticFile>,
) -> impl Fn(HeaderMap) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move |headers| std::future::ready(file.respond(&headers))
}

/// Swagger UI's own index.html names its files relatively (`./swagger-ui.css`),
/// which breaks at `/docs` (no trailing slash), where FastAPI serves the page.
/// Ours names them from the root.
const INDEX_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>api - Swagger UI</title>
    <link rel="stylesheet" type="text/css" href="/docs/swagger-ui.css">
    <link rel="stylesheet" type="text/css" href="/docs/index.css">
    <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="/docs/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="/docs/swagger-initializer.js" charset="UTF-8"></script>
  </body>
</html>
"#;

/// Every file of the Swagger UI bundle that utoipa-swagger-ui embeds
/// (`index.html` aside: ours is [`INDEX_PAGE`]). A test checks that each
/// is in the bundle and that the page names nothing else.
const SWAGGER_UI_FILES: [&str; 12] = [
    "favicon-16x16.png",
    "favicon-32x32.png",
    "index.css",
    "oauth2-redirect.html",
    "oauth2-redirect.js",
    "swagger-initializer.js",
    "swagger-ui-bundle.js",
    "swagger-ui-es-bundle-core.js",
    "swagger-ui-es-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-ui.css",
    "swagger-ui.js",
];

/// The bundle's files by name, as served: the compiled-in bytes (gzipped,
/// but for the initializer, which carries our configuration), never copied.
fn swagger_ui_files() -> HashMap<&'static str, StaticFile> {
    // "none" keeps Swagger UI from sending the document to validator.swagger.io.
    let config = Arc::new(Config::new([OPENAPI_PATH]).validator_url("none"));
    SWAGGER_UI_FILES
        .into_iter()
        .filter_map(|name| {
            // `serve` fails only when the configuration cannot be
            // serialized, which would be a bug in the constant above.
            let file = utoipa_swagger_ui::serve(name, config.clone())
                .expect("the Swagger UI configuration serializes")?;
            let body = match file.bytes {
                Cow::Borrowed(bytes) => Bytes::from_static(bytes),
                Cow::Owned(bytes) => Bytes::from(bytes),
            };
            let file = if file.gzpipped {
                StaticFile::negotiated(&file.content_type, body, Coding::Gzip)
            } else {
                StaticFile::plain(&file.content_type, body)
            };
            Some((name, file))
        })
        .collect()
}

/// ReDoc's page: the HTML with the ReDoc bundle inline, as the `aide` crate
/// ships it (ReDoc 2.0.0), rendering /openapi.json. About 1 MB, built on the
/// first request and gzipped on the first that takes gzip, once each: an
/// instance that never serves /redoc (most, in production) never holds it.
/// The first gzipped request waits for the compression (docs/benchmarks.md
/// has the time); a browser gets 0.3 MB.
///
/// The bundle shows a small "Redocly" logo that it loads from Redocly's
/// CDN (and hides when that fails). That would be the page's one request
/// to the internet; it gets an empty `data:` image instead, and hides it.
/// The "API docs by Redocly" attribution text stays.
fn redoc_page() -> &'static StaticFile {
    const REDOC_CDN_LOGO: &str = "https://cdn.redoc.ly/redoc/logo-mini.svg";
    static PAGE: OnceLock<StaticFile> = OnceLock::new();
    PAGE.get_or_init(|| {
        let html = aide::redoc::Redoc::new(OPENAPI_PATH)
            .with_title("api - ReDoc")
            .html()
            .replace(REDOC_CDN_LOGO, "data:,");
        StaticFile::negotiated("text/html; charset=utf-8", html, Coding::Identity)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_file_is_in_the_bundle_and_the_page_names_only_listed_ones() {
        let files = swagger_ui_files();
        for name in SWAGGER_UI_FILES {
            assert!(files.contains_key(name), "{name} is not in the bundle");
        }
        for link in INDEX_PAGE
            .split('"')
            .filter_map(|part| part.strip_prefix("/docs/"))
        {
            assert!(SWAGGER_UI_FILES.contains(&link), "the page names {link}");
        }
    }
}
