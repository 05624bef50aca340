//! The OpenAPI document and Swagger UI. FastAPI serves the same two pages but
//! loads Swagger UI from a CDN; ours is compiled into the binary, so /docs
//! works on a machine with no internet access.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_swagger_ui::{Config, SwaggerFile};

use crate::error::ApiError;

pub const OPENAPI_PATH: &str = "/openapi.json";
pub const DOCS_PATH: &str = "/docs";

/// The document's header; the paths come from the routes themselves.
#[derive(OpenApi)]
#[openapi(info(
    title = "api",
    description = "Hello world, the current time and a health check: a Rust rewrite of a FastAPI service."
))]
pub struct ApiDoc;

/// `/openapi.json`, `/docs` and the Swagger UI files under `/docs/`.
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
        .route(&format!("{DOCS_PATH}/"), get(Html(INDEX_PAGE)))
        .route(
            &format!("{DOCS_PATH}/{{*file}}"),
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
