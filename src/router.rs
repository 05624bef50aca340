//! The whole HTTP application: the routes, the docs, FastAPI's 404/405 and
//! trailing-slash redirects, and the middleware that every request passes.
//! Tests drive it in-process with `tower::ServiceExt::oneshot`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::header::{CONTENT_LENGTH, LOCATION};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tower::{Layer, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::docs::{self, ApiDoc};
use crate::error::ApiError;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::observe::{ObserveLayer, RouteLabel};
use crate::paths::{DecodeUnreserved, DecodeUnreservedLayer, Routes};
use crate::routes::{
    __path_current_time, __path_healthcheck, __path_hello_world, current_time, healthcheck,
    hello_world,
};
use crate::timeout::RequestTimeoutLayer;

/// The application as the server runs it: the router, reached through the
/// decoding of percent-encoded unreserved characters in the path.
pub type App = DecodeUnreserved<Router>;

/// The API: its routes, /openapi.json, /docs and /redoc, behind
/// [`with_middleware`]. `lifecycle` tells /healthcheck and the middleware
/// when the process is shutting down.
pub fn app(request_timeout: Duration, metrics: Option<Arc<Metrics>>, lifecycle: Lifecycle) -> App {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(hello_world))
        .routes(routes!(current_time))
        .routes(routes!(healthcheck))
        .split_for_parts();
    let templates = openapi
        .paths
        .paths
        .keys()
        .map(String::as_str)
        .chain(docs::PATHS)
        .map(Arc::<str>::from);
    let routes = Arc::new(Routes::new(templates));
    let router = api
        .with_state(lifecycle.clone())
        .merge(docs::routes(&openapi));
    #[cfg(feature = "panic-route")]
    let router = router.route("/panic", axum::routing::get(panic_route));
    let router =
        router.fallback(move |uri: Uri| async move { redirect_or_not_found(&routes, &uri) });
    DecodeUnreservedLayer.layer(with_middleware(router, request_timeout, metrics, lifecycle))
}

/// A path that matches no route: 307 to the same path without (or with)
/// its trailing slash when that matches one, as FastAPI does, else 404.
fn redirect_or_not_found(routes: &Routes, uri: &Uri) -> Response {
    let Some((path, route)) = routes.trailing_slash_redirect(uri.path()) else {
        return ApiError::NotFound.into_response();
    };
    let location = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut response = (
        StatusCode::TEMPORARY_REDIRECT,
        [(LOCATION, location), (CONTENT_LENGTH, "0".to_owned())],
    )
        .into_response();
    // Counted under the route it leads to, never under the raw path.
    response.extensions_mut().insert(RouteLabel(route));
    response
}

/// Wraps routes in what every request of ours gets: FastAPI's 405 body, the
/// request timeout, a panic turned into a 500, and the access log, request
/// id, metrics and shutdown headers. Give `routes` their fallback first:
/// the middleware wraps only what is there when it is applied. Public so
/// that tests can put a misbehaving route behind the same stack.
pub fn with_middleware(
    routes: Router,
    request_timeout: Duration,
    metrics: Option<Arc<Metrics>>,
    lifecycle: Lifecycle,
) -> Router {
    routes
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(
            // Outermost first: the access log and metrics see the final status,
            // including the 500 of a panic and the 408 of a timeout.
            ServiceBuilder::new()
                .layer(ObserveLayer::new(metrics, lifecycle))
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::Internal.into_response()
                }))
                .layer(RequestTimeoutLayer(request_timeout)),
        )
}

/// `GET /panic`, in builds with the `panic-route` feature (image tests only).
#[cfg(feature = "panic-route")]
async fn panic_route() -> &'static str {
    panic!("GET /panic (feature panic-route)")
}
