//! The OpenAPI document and its two pages, Swagger UI at /docs and ReDoc at
//! /redoc, as FastAPI serves them. FastAPI loads both pages' JavaScript
//! from CDNs; ours is compiled into the binary, so both work on a machine
//! with no internet access.

use std::io::Write;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_swagger_ui::{Config, SwaggerFile};

use crate::error::ApiError;
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
/// `/redoc`. None of them is in the OpenAPI document, as in FastAPI.
pub fn routes(openapi: &utoipa::openapi::OpenApi) -> Router {
    let document = Bytes::from(openapi.to_json().expect("the OpenAPI document serializes"));
    // "none" keeps Swagger UI from sending the document to validator.swagger.io.
    let config = Arc::new(Config::new([OPENAPI_PATH]).validator_url("none"));
    Router::new()
        .route(
            OPENAPI_PATH,
            get(|| async move { ([(CONTENT_TYPE, "application/json")], document) }),
        )
        .route(DOCS_PATH, get(Html(INDEX_PAGE)))
        .route(DOCS_INDEX_PATH, get(Html(INDEX_PAGE)))
        .route(REDOC_PATH, get(redoc))
        .route(
            DOCS_FILES_PATH,
            get(move |Path(file): Path<String>| async move {
                embedded_file(&file, config)
                    .map_or_else(|| ApiError::NotFound.into_response(), file_response)
            }),
        )
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

/// A file of the bundled Swagger UI, with our configuration filled into its
/// `swagger-initializer.js`; `None` for names that are not in the bundle.
fn embedded_file(name: &str, config: Arc<Config<'static>>) -> Option<SwaggerFile<'static>> {
    // `serve` fails only when the configuration cannot be serialized, which
    // would be a bug in the constant configuration above.
    utoipa_swagger_ui::serve(name, config).expect("the Swagger UI configuration serializes")
}

/// Files are stored gzipped (but for the initializer): every browser accepts
/// that, and RFC 9110 lets a server use any coding when the request has no
/// Accept-Encoding.
fn file_response(file: SwaggerFile<'static>) -> Response {
    let body = Bytes::from(file.bytes.into_owned());
    let content_type = (CONTENT_TYPE, file.content_type);
    if file.gzpipped {
        ([content_type, (CONTENT_ENCODING, "gzip".to_owned())], body).into_response()
    } else {
        ([content_type], body).into_response()
    }
}

/// ReDoc's page: the HTML with the ReDoc bundle inline, as the `aide` crate
/// ships it (ReDoc 2.0.0), rendering /openapi.json. About 1 MB, so it is
/// built and gzipped once, on the first request (a few tens of
/// milliseconds), and sent gzipped to every client that accepts it: a
/// browser gets 0.3 MB.
///
/// The bundle shows a small "Redocly" logo that it loads from Redocly's
/// CDN (and hides when that fails). That would be the page's one request
/// to the internet; it gets an empty `data:` image instead, and hides it.
/// The "API docs by Redocly" attribution text stays.
struct RedocPage {
    html: Bytes,
    gzipped: Bytes,
}

const REDOC_CDN_LOGO: &str = "https://cdn.redoc.ly/redoc/logo-mini.svg";

fn redoc_page() -> &'static RedocPage {
    static PAGE: OnceLock<RedocPage> = OnceLock::new();
    PAGE.get_or_init(|| {
        let html = aide::redoc::Redoc::new(OPENAPI_PATH)
            .with_title("api - ReDoc")
            .html()
            .replace(REDOC_CDN_LOGO, "data:,");
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(html.as_bytes())
            .expect("writing to memory cannot fail");
        let gzipped = gzip.finish().expect("writing to memory cannot fail");
        RedocPage {
            html: Bytes::from(html),
            gzipped: Bytes::from(gzipped),
        }
    })
}

async fn redoc(headers: HeaderMap) -> Response {
    let page = redoc_page();
    let html = [
        (CONTENT_TYPE, "text/html; charset=utf-8"),
        (VARY, "accept-encoding"),
    ];
    if accepts_gzip(&headers) {
        (html, [(CONTENT_ENCODING, "gzip")], page.gzipped.clone()).into_response()
    } else {
        (html, page.html.clone()).into_response()
    }
}

/// Whether `Accept-Encoding` lists gzip (or `*`) without `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|parameter| {
                parameter
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    == Some(0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn accept(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn gzip_is_sent_only_where_accepted() {
        assert!(accepts_gzip(&accept("gzip, deflate, br")));
        assert!(accepts_gzip(&accept("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&accept("*")));
        assert!(!accepts_gzip(&accept("gzip;q=0")));
        assert!(!accepts_gzip(&accept("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
