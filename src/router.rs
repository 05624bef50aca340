//! The whole HTTP application as one `Router`: the routes, the docs, the
//! FastAPI-shaped 404/405, and the middleware that every request passes.
//! Tests drive it in-process with `tower::ServiceExt::oneshot`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::docs::{self, ApiDoc};
use crate::error::ApiError;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::observe::ObserveLayer;
use crate::routes::{
    __path_current_time, __path_healthcheck, __path_hello_world, current_time, healthcheck,
    hello_world,
};
use crate::timeout::RequestTimeoutLayer;

/// The API: its routes, /openapi.json and /docs, behind [`with_middleware`].
/// `lifecycle` tells /healthcheck and the middleware when the process is
/// shutting down.
pub fn app(
    request_timeout: Duration,
    metrics: Option<Arc<Metrics>>,
    lifecycle: Lifecycle,
) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(hello_world))
        .routes(routes!(current_time))
        .routes(routes!(healthcheck))
        .split_for_parts();
    let api = api.with_state(lifecycle.clone());
    #[cfg(feature = "panic-route")]
    let api = api.route("/panic", axum::routing::get(panic_route));
    with_middleware(
        api.merge(docs::routes(&openapi)),
        request_timeout,
        metrics,
        lifecycle,
    )
}

/// Wraps any routes in what every request of ours gets: FastAPI's 404 and
/// 405 bodies, the request timeout, a panic turned into a 500, and the access
/// log, request id, metrics and shutdown headers. Public so that tests can
/// put a misbehaving route behind the same stack.
pub fn with_middleware(
    routes: Router,
    request_timeout: Duration,
    metrics: Option<Arc<Metrics>>,
    lifecycle: Lifecycle,
) -> Router {
    routes
        .fallback(|| async { ApiError::NotFound })
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
