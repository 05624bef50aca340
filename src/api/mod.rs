//! What the service answers, as one tower `Service` ([`App`]), which the
//! HTTP server (`http::serve`) runs and tests drive in-process with
//! `tower::ServiceExt::oneshot`. For every request, whatever its endpoint:
//!
//! 1. it is observed (`observe.rs`: request id, access line, metrics under
//!    its route, the headers every response carries);
//! 2. its path is decoded for routing (`paths.rs`) and looked up once in the
//!    route table (`routing.rs`), built from the endpoints (`endpoints.rs`,
//!    each declared once) and the docs (`docs.rs`);
//! 3. its handler answers, behind the request timeout and a panic guard
//!    (`guard.rs`); HEAD is answered by GET without the body; a wrong
//!    method is 405 with `Allow`; a path that matches nothing is redirected
//!    to the one with (or without) a trailing slash when that exists, as
//!    FastAPI does, else 404. Errors have FastAPI's shape (`error.rs`).

pub mod docs;
pub mod endpoints;
pub mod error;
pub mod extract;
mod guard;
mod observe;
pub mod paths;
pub mod routing;
mod static_files;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::FromRef;
use axum::http::header::{ALLOW, CONTENT_LENGTH, LOCATION};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::Service;

use crate::api::error::ApiError;
use crate::api::extract::PathParameters;
use crate::api::guard::Guarded;
use crate::api::observe::{Observed, Observer};
use crate::api::routing::{Answer, Endpoints, Found, RouteTable};
use crate::metrics::Metrics;
use crate::shutdown::Stopping;

pub use crate::api::observe::REQUEST_ID;

/// What handlers can take with `State<...>`. To give handlers something
/// of their own (a database pool, an HTTP client), add a field here, build
/// it in `startup.rs`, and add a `FromRef` impl like the one below.
#[derive(Clone)]
pub struct AppState {
    /// Set once the process has been told to stop (`/healthcheck` reads it).
    pub stopping: Stopping,
}

impl FromRef<AppState> for Stopping {
    fn from_ref(state: &AppState) -> Self {
        state.stopping.clone()
    }
}

/// Everything the app is built from besides its endpoints.
pub struct Settings {
    /// Past this, a request answers 408 (`--request-timeout`).
    pub request_timeout: Duration,
    /// Where requests are counted; `None` with `--disable-metrics`.
    pub metrics: Option<Arc<Metrics>>,
    /// The handlers' state.
    pub state: AppState,
}

/// The API: `endpoints` (the service's are `endpoints::all()`),
/// /openapi.json describing them, /docs and /redoc.
pub fn app(endpoints: Endpoints, settings: Settings) -> App {
    let openapi = docs::as_served(endpoints.openapi().clone());
    let endpoints = docs::add_routes(endpoints, &openapi);
    let table = RouteTable::new(endpoints, settings.metrics.as_deref());
    App(Arc::new(Parts {
        observer: Arc::new(Observer {
            metrics: settings.metrics,
            stopping: settings.state.stopping.clone(),
        }),
        table,
        state: settings.state,
        request_timeout: settings.request_timeout,
    }))
}

/// The application. Cheap to clone (once per connection): one `Arc`.
#[derive(Clone)]
pub struct App(Arc<Parts>);

struct Parts {
    observer: Arc<Observer>,
    table: RouteTable,
    state: AppState,
    request_timeout: Duration,
}

/// How tests drive the app in-process (`oneshot`).
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

    fn call(&mut self, request: Request<B>) -> AppFuture {
        self.answer(request)
    }
}

/// How the server runs it: by reference, so that hyper does not clone the
/// app for every request, as it does through a tower `Service`.
impl hyper::service::Service<Request<hyper::body::Incoming>> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = AppFuture;

    fn call(&self, request: Request<hyper::body::Incoming>) -> AppFuture {
        self.answer(request)
    }
}

impl App {
    /// Every route template the app answers (its endpoints' and the docs').
    pub fn routes(&self) -> impl Iterator<Item = &str> {
        self.0.table.templates()
    }

    fn answer<B>(&self, mut request: Request<B>) -> AppFuture
    where
        B: HttpBody<Data = axum::body::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let app = &*self.0;
        let mut observed = Observed::start(&app.observer, &request);
        paths::decode_for_routing(&mut request);
        let mut head = false;
        let answer = match app.table.find(request.uri().path()) {
            Found::Route { index, parameters } => {
                let route = app.table.route(index);
                observed.counts_under(route.label.clone());
                match route.handler(request.method()) {
                    Some((handler, answers_head)) => {
                        head = answers_head;
                        let mut request = request.map(request_body);
                        if let Some(parameters) = parameters {
                            request.extensions_mut().insert(PathParameters(parameters));
                        }
                        Pending::Handler(handler.call(request, app.state.clone()))
                    }
                    None => Pending::Ready(Some(method_not_allowed(&route.allow))),
                }
            }
            Found::Redirect { location, index } => {
                observed.counts_under(app.table.route(index).label.clone());
                let location = paths::with_query(location, request.uri().query());
                Pending::Ready(Some(temporary_redirect(location)))
            }
            Found::Nothing => Pending::Ready(Some(ApiError::NotFound.into_response())),
        };
        AppFuture {
            answer: Guarded::new(answer, app.request_timeout),
            head,
            observed: Some(observed),
        }
    }
}

/// The request's body for the handler: an empty one, which costs no
/// allocation, when it has none (almost always: the API takes GETs).
fn request_body<B>(body: B) -> Body
where
    B: HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    if body.is_end_stream() {
        Body::empty()
    } else {
        Body::new(body)
    }
}

fn method_not_allowed(allow: &HeaderValue) -> Response {
    let mut response = ApiError::MethodNotAllowed.into_response();
    response.headers_mut().insert(ALLOW, allow.clone());
    response
}

/// 307 keeps the method; the `Location` is relative (`paths.rs` says why).
fn temporary_redirect(location: String) -> Response {
    let location = HeaderValue::try_from(location).expect("a path that routed is a valid header");
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    response.headers_mut().insert(LOCATION, location);
    response
}

/// An answer: a handler's, or one the app made itself (404, 405, 307).
enum Pending {
    Handler(Answer),
    Ready(Option<Response>),
}

impl Future for Pending {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut *self {
            Pending::Handler(answer) => answer.as_mut().poll(cx).map(Ok),
            Pending::Ready(response) => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}

pub struct AppFuture {
    answer: Guarded<Pending>,
    /// A HEAD answered by GET: the body goes.
    head: bool,
    observed: Option<Observed>,
}

impl Future for AppFuture {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut response = ready!(Pin::new(&mut this.answer).poll(cx))?;
        if this.head {
            response = without_body(response);
        }
        let observed = this.observed.take().expect("polled after completion");
        observed.finish(&mut response);
        Poll::Ready(Ok(response))
    }
}

/// The answer to a HEAD: the GET's headers, and the length of the body it
/// would have had where it could have one (not a 304's: RFC 9110 §8.6).
fn without_body(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let may_have_body = !(parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED);
    if let Some(length) = body.size_hint().exact().filter(|_| may_have_body) {
        parts
            .headers
            .entry(CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(length));
    }
    Response::from_parts(parts, Body::empty())
}
