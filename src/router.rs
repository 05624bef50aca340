//! The whole HTTP application as one tower `Service`:
//!
//! - every request is observed (`observe.rs`: request id, access log,
//!   metrics, response headers) and its path decoded (`paths.rs`);
//! - the three routes of the contract are answered at once, found with a
//!   `match` on the path (`routes::Route`);
//! - everything else (/openapi.json, /docs, /redoc, trailing-slash
//!   redirects, FastAPI's 404 and 405) goes through an axum `Router`,
//!   behind a panic guard and the request timeout.
//!
//! Tests drive it in-process with `tower::ServiceExt::oneshot`.

use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::MatchedPath;
use axum::http::header::{ALLOW, CONTENT_LENGTH, LOCATION};
use axum::http::{HeaderValue, Method, Request, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use tower::{Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;

use crate::docs::{self, ApiDoc};
use crate::error::ApiError;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::observe::{Observed, Observer, RouteLabel};
use crate::paths::{self, Routes};
use crate::routes::Route;
use crate::timeout::RequestTimeoutLayer;

/// The API: its routes, /openapi.json, /docs and /redoc.
pub fn app(request_timeout: Duration, metrics: Option<Arc<Metrics>>, lifecycle: Lifecycle) -> App {
    let openapi = ApiDoc::document();
    let templates = openapi
        .paths
        .paths
        .keys()
        .map(String::as_str)
        .chain(docs::PATHS)
        .map(Arc::<str>::from);
    let templates: Vec<Arc<str>> = templates.collect();
    if let Some(metrics) = &metrics {
        metrics.initialize_routes(templates.iter().map(|template| &**template));
    }
    let routes = Arc::new(Routes::new(templates));
    let others = docs::routes(&openapi);
    #[cfg(feature = "panic-route")]
    let others = others.route("/panic", axum::routing::get(panic_route));
    let others =
        others.fallback(move |uri: Uri| async move { redirect_or_not_found(&routes, &uri) });
    App::new(others, request_timeout, metrics, lifecycle)
}

/// A path that matches no route: 307 to the same path without (or with)
/// its trailing slash when that matches one, as FastAPI does, else 404.
fn redirect_or_not_found(routes: &Routes, uri: &Uri) -> Response {
    let Some((path, route)) = routes.trailing_slash_redirect(uri.path()) else {
        return ApiError::NotFound.into_response();
    };
    let location = paths::with_query(path, uri.query());
    let mut response = (
        StatusCode::TEMPORARY_REDIRECT,
        [(LOCATION, location), (CONTENT_LENGTH, "0".to_owned())],
    )
        .into_response();
    // Counted under the route it leads to, never under the raw path.
    response.extensions_mut().insert(RouteLabel(route));
    response
}

/// The application; cheap to clone (once per connection).
#[derive(Clone)]
pub struct App {
    observer: Arc<Observer>,
    others: Router,
}

impl App {
    /// The contract's routes, and `others` for every other path. Give
    /// `others` its fallback first: the panic guard and the timeout wrap
    /// only what is there. Public so that tests can put a misbehaving route
    /// behind the same stack.
    pub fn new(
        others: Router,
        request_timeout: Duration,
        metrics: Option<Arc<Metrics>>,
        lifecycle: Lifecycle,
    ) -> Self {
        let others = others
            .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
            .layer(
                ServiceBuilder::new()
                    .layer(middleware::from_fn(label_with_matched_route))
                    .layer(CatchPanicLayer::custom(|_| {
                        ApiError::Internal.into_response()
                    }))
                    .layer(RequestTimeoutLayer(request_timeout)),
            );
        Self {
            observer: Arc::new(Observer { metrics, lifecycle }),
            others,
        }
    }
}

/// Runs in the router, after routing: tells the observer outside which
/// route answered, since the request that carries it is gone by then.
async fn label_with_matched_route(
    matched: Option<MatchedPath>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Some(matched) = matched {
        let label = RouteLabel(Arc::from(matched.as_str()));
        response.extensions_mut().insert(label);
    }
    response
}

impl<B> Service<Request<B>> for App
where
    B: HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AppFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> AppFuture {
        let observed = Observed::start(&self.observer, &request);
        paths::decode_for_routing(&mut request);
        let answer = match Route::of(request.uri().path()) {
            Some(route) => Answer::Now(Some(self.answer(route, &request)), route),
            None => Answer::Later(self.others.call(request)),
        };
        AppFuture {
            answer,
            observed: Some(observed),
        }
    }
}

impl App {
    /// A contract route's answer: GET and HEAD (without the body, as every
    /// HTTP server must), else 405 with FastAPI's body and `Allow`.
    fn answer<B>(&self, route: Route, request: &Request<B>) -> Response {
        let head = match *request.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let mut response = ApiError::MethodNotAllowed.into_response();
                let allow = HeaderValue::from_static("GET,HEAD");
                response.headers_mut().insert(ALLOW, allow);
                return response;
            }
        };
        // The handlers cannot panic today; if one ever does, the server
        // answers 500 and keeps serving, as for every other route.
        let answer = catch_unwind(AssertUnwindSafe(|| {
            route.answer(request.uri().query(), &self.observer.lifecycle)
        }));
        let response = answer.unwrap_or_else(|_| ApiError::Internal.into_response());
        if head {
            without_body(response)
        } else {
            response
        }
    }
}

/// The response to a HEAD request: the GET's headers, its length, no body.
fn without_body(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    if let Some(length) = body.size_hint().exact() {
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    Response::from_parts(parts, Body::empty())
}

/// A request's answer: ready now (a contract route, named), or the router's.
enum Answer {
    Now(Option<Response>, Route),
    Later(RouteFuture<Infallible>),
}

pub struct AppFuture {
    answer: Answer,
    observed: Option<Observed>,
}

impl Future for AppFuture {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let (mut response, route) = match &mut this.answer {
            Answer::Now(response, route) => (
                response.take().expect("polled after completion"),
                Some(route.path()),
            ),
            Answer::Later(future) => (ready!(Pin::new(future).poll(cx))?, None),
        };
        let observed = this.observed.take().expect("polled after completion");
        observed.finish(&mut response, route);
        Poll::Ready(Ok(response))
    }
}

/// `GET /panic`, in builds with the `panic-route` feature (image tests only).
#[cfg(feature = "panic-route")]
async fn panic_route() -> &'static str {
    panic!("GET /panic (feature panic-route)")
}
