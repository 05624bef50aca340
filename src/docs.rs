//! The OpenAPI document and its two pages, Swagger UI at /docs and ReDoc at
//! /redoc, as FastAPI serves them. FastAPI loads both pages' JavaScript
//! from CDNs; ours is compiled into the binary, so both work on a machine
//! with no internet access.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_swagger_ui::Config;

use crate::error::ApiError;
use crate::static_files::{Coding, StaticFile};
// Named here without their module: given as `routes::...`, utoipa would
// tag every operation "routes"; FastAPI's have no tag ("default").
use crate::routes::{__path_current_time, __path_healthcheck, __path_hello_world};

pub const OPENAPI_PATH: &str = "/openapi.json";
pub const DOCS_PATH: &str = "/docs";
const DOCS_INDEX_PATH: &str = "/docs/";
const DOCS_FILES_PATH: &str = "/docs/{*file}";
pub const REDOC_PATH: &str = "/redoc";

/// Every route template of [`routes`], for the router's trailing-slash
/// redirects.
pub const PATHS: [&str; 5] = [
    OPENAPI_PATH,
    DOCS_PATH,
    DOCS_INDEX_PATH,
    DOCS_FILES_PATH,
    REDOC_PATH,
];

/// The OpenAPI document: its header, and the paths from the handlers'
/// `#[utoipa::path]` attributes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "api",
        description = "Hello world, the current time and a health check: a Rust rewrite of a FastAPI service."
    ),
    paths(hello_world, current_time, healthcheck)
)]
pub struct ApiDoc;

impl ApiDoc {
    /// The document as served: operations without a tag carry no `tags`
    /// key, as in FastAPI's document (utoipa's derive writes `"tags": []`).
    pub fn document() -> utoipa::openapi::OpenApi {
        let mut document = Self::openapi();
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
}

/// `/openapi.json`, `/docs`, the Swagger UI files under `/docs/`, and
/// `/redoc`. None of them is in the OpenAPI document, as in FastAPI. Each
/// is a [`StaticFile`]: revalidated with its `ETag`, gzipped only for
/// clients that take it, never copied per request.
pub fn routes(openapi: &utoipa::openapi::OpenApi) -> Router {
    let document = Arc::new(StaticFile::plain(
        "application/json",
        openapi.to_json().expect("the OpenAPI document serializes"),
    ));
    let index = Arc::new(StaticFile::plain("text/html; charset=utf-8", INDEX_PAGE));
    let files = Arc::new(swagger_ui_files());
    Router::new()
        .route(OPENAPI_PATH, get(serve(document)))
        .route(DOCS_PATH, get(serve(index.clone())))
        .route(DOCS_INDEX_PATH, get(serve(index)))
        .route(
            REDOC_PATH,
            get(|headers: HeaderMap| async move { redoc_page().respond(&headers) }),
        )
        .route(
            DOCS_FILES_PATH,
            get(
                move |Path(file): Path<String>, headers: HeaderMap| async move {
                    match files.get(file.as_str()) {
                        Some(file) => file.respond(&headers),
                        None => ApiError::NotFound.into_response(),
                    }
                },
            ),
        )
}

/// The handler that answers with `file`.
fn serve(
    file: Arc<StaticFile>,
) -> impl Fn(HeaderMap) -> std::future::Ready<Response> + Clone + Send + 'static {
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
/// ships it (ReDoc 2.0.0), rendering /openapi.json. About 1 MB, so it is
/// built on the first request, and gzipped on the first that takes gzip (a
/// few tens of milliseconds): a browser gets 0.3 MB.
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
