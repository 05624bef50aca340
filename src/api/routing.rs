//! The route table: every path the app answers, and what answers it.
//!
//! Endpoints are axum handlers (async functions taking extractors), each
//! declared once with its `#[utoipa::path]`, which names its method and
//! path and describes it; [`endpoint!`] turns the two into an [`Endpoint`]
//! and [`Endpoints`] collects them into the table and the OpenAPI document.
//! The app (`api::App`) looks a request up here once: the same match gives
//! the handler, the route template the metrics and access log name, the
//! path's parameters, and for a path that matches nothing, the
//! trailing-slash redirect.
//!
//! Why not axum's `Router`: measured with callgrind, answering through it
//! cost 17,980 instructions per `GET /hello_world` against 13,600 for the
//! rest of the service (a route clone, two boxed futures and an extensions
//! map per request, on top of a second lookup; docs/benchmarks.md). This
//! table calls the handler directly: one boxed future per request.
//! axum's `Path` extractor needs axum's router: use `api::extract::Path`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::handler::Handler as AxumHandler;
use axum::http::{HeaderValue, Method, Request};
use axum::response::Response;
use utoipa::openapi::path::PathItem;
use utoipa::openapi::{Components, OpenApi};
use utoipa_axum::router::UtoipaMethodRouter;

use crate::api::AppState;
use crate::api::observe::RouteLabel;
use crate::api::paths;
use crate::metrics::Metrics;

/// What a handler returns: the answer, later.
pub type Answer = Pin<Box<dyn Future<Output = Response> + Send>>;

/// Any axum handler, as the table keeps it. axum boxes every handler's
/// future already; this adds no second box.
#[derive(Clone)]
pub struct Handler(Arc<dyn Fn(Request<Body>, AppState) -> Answer + Send + Sync>);

impl Handler {
    pub fn new<H, T>(handler: H) -> Self
    where
        H: AxumHandler<T, AppState, Future = Answer>,
        T: 'static,
    {
        Self(Arc::new(move |request, state| {
            handler.clone().call(request, state)
        }))
    }

    pub fn call(&self, request: Request<Body>, state: AppState) -> Answer {
        (self.0)(request, state)
    }
}

/// One endpoint: what its `#[utoipa::path]` says (method, path, OpenAPI
/// description) and its handler. Made with [`endpoint!`].
pub struct Endpoint {
    method: Method,
    path: String,
    item: PathItem,
    schemas: Vec<(
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    )>,
    handler: Handler,
}

/// `endpoint!(handler)`: the endpoint that `handler`'s `#[utoipa::path]`
/// declares, answered by `handler`.
#[macro_export]
macro_rules! endpoint {
    ($handler:path) => {
        $crate::api::routing::Endpoint::new(::utoipa_axum::routes!($handler), $handler)
    };
}

impl Endpoint {
    /// From what `utoipa_axum::routes!` reads of the handler's
    /// `#[utoipa::path]` (its axum `MethodRouter` is not used), and the
    /// handler itself.
    pub fn new<H, T>(declared: UtoipaMethodRouter<AppState>, handler: H) -> Self
    where
        H: AxumHandler<T, AppState, Future = Answer>,
        T: 'static,
    {
        let (schemas, paths, _method_router) = declared;
        let mut paths = paths.paths.into_iter();
        let (path, item) = paths.next().expect("#[utoipa::path] names a path");
        assert!(paths.next().is_none(), "one path per endpoint");
        let method = only_method(&item).unwrap_or_else(|| {
            panic!("{path}: give each method its own handler and #[utoipa::path]")
        });
        Self {
            method,
            path,
            item,
            schemas,
            handler: Handler::new(handler),
        }
    }
}

/// The one method a path item describes, if it describes exactly one.
fn only_method(item: &PathItem) -> Option<Method> {
    let described = [
        (Method::GET, &item.get),
        (Method::POST, &item.post),
        (Method::PUT, &item.put),
        (Method::DELETE, &item.delete),
        (Method::PATCH, &item.patch),
        (Method::OPTIONS, &item.options),
        (Method::HEAD, &item.head),
        (Method::TRACE, &item.trace),
    ];
    let mut methods = described
        .into_iter()
        .filter(|(_, operation)| operation.is_some());
    let (method, _) = methods.next()?;
    methods.next().is_none().then_some(method)
}

/// The endpoints of an app, and the OpenAPI document that describes them.
pub struct Endpoints {
    openapi: OpenApi,
    routes: Vec<(Method, String, Handler)>,
}

impl Endpoints {
    /// No endpoint yet, and the document's header.
    pub fn new(openapi: OpenApi) -> Self {
        Self {
            openapi,
            routes: Vec::new(),
        }
    }

    /// An endpoint, described in /openapi.json: `.with(endpoint!(handler))`.
    pub fn with(mut self, endpoint: Endpoint) -> Self {
        let Endpoint {
            method,
            path,
            item,
            schemas,
            handler,
        } = endpoint;
        match self.openapi.paths.paths.get_mut(&path) {
            Some(existing) => existing.merge_operations(item),
            None => {
                self.openapi.paths.paths.insert(path.clone(), item);
            }
        }
        self.openapi
            .components
            .get_or_insert_with(Components::new)
            .schemas
            .extend(schemas);
        self.routes.push((method, path, handler));
        self
    }

    /// A route left out of /openapi.json, as FastAPI leaves out its docs
    /// pages: `.hidden(Method::GET, "/docs", handler)`.
    pub fn hidden<H, T>(mut self, method: Method, path: &str, handler: H) -> Self
    where
        H: AxumHandler<T, AppState, Future = Answer>,
        T: 'static,
    {
        self.routes
            .push((method, path.to_owned(), Handler::new(handler)));
        self
    }

    /// The document describing the endpoints so far.
    pub fn openapi(&self) -> &OpenApi {
        &self.openapi
    }
}

/// A route template, and what answers each of its methods.
pub struct Route {
    /// What its requests are counted and logged under.
    pub label: Arc<RouteLabel>,
    /// GET answers HEAD too, as every HTTP server must.
    handlers: Vec<(Method, Handler)>,
    /// The `Allow` header of its 405s: `GET,HEAD`.
    pub allow: HeaderValue,
    /// Whether the template has parameters (`{id}`), which then go to the
    /// handler as `api::extract::Path`.
    pub has_parameters: bool,
}

impl Route {
    /// What answers `method`, and whether that is a GET answering a HEAD.
    pub fn handler(&self, method: &Method) -> Option<(&Handler, bool)> {
        let found = |wanted: &Method| {
            self.handlers
                .iter()
                .find(|(method, _)| method == wanted)
                .map(|(_, handler)| handler)
        };
        match found(method) {
            Some(handler) => Some((handler, false)),
            None if method == Method::HEAD => Some((found(&Method::GET)?, true)),
            None => None,
        }
    }
}

/// Every route, found by path.
pub struct RouteTable {
    by_path: matchit::Router<usize>,
    routes: Vec<Route>,
    /// The templates without parameters, compared first: for a handful of
    /// routes, comparing strings costs a third of matchit's tree walk.
    static_paths: Vec<(String, usize)>,
}

/// What the table says of a path.
pub enum Found {
    /// The route at `index` matches it; its parameters, if it has any.
    Route {
        index: usize,
        parameters: Option<Vec<(String, String)>>,
    },
    /// No route, but the same path without (or with) its trailing slash
    /// has the one at `index`: redirect there.
    Redirect {
        location: String,
        index: usize,
    },
    Nothing,
}

impl RouteTable {
    /// The table of `endpoints`, with each route's series in `metrics`;
    /// an error for a route declared twice, or two templates that would
    /// match the same paths (`/items/{id}`, `/items/{name}`).
    pub fn new(endpoints: Endpoints, metrics: Option<&Metrics>) -> Result<Self, String> {
        let mut by_path = matchit::Router::new();
        let mut routes: Vec<Route> = Vec::new();
        for (method, path, handler) in endpoints.routes {
            let index = match routes.iter().position(|route| route.label.template == path) {
                Some(index) => index,
                None => {
                    by_path
                        .insert(path.as_str(), routes.len())
                        .map_err(|error| format!("route {path}: {error}"))?;
                    routes.push(Route {
                        has_parameters: path.contains('{'),
                        label: Arc::new(RouteLabel {
                            // Once its methods are known, below.
                            series: None,
                            template: path.clone(),
                        }),
                        handlers: Vec::new(),
                        allow: HeaderValue::from_static(""),
                    });
                    routes.len() - 1
                }
            };
            let route = &mut routes[index];
            if route.handler(&method).is_some_and(|(_, head)| !head) {
                return Err(format!("{method} {path} is declared twice"));
            }
            route.handlers.push((method, handler));
            route.allow = allow_header(&route.handlers);
        }
        if let Some(metrics) = metrics {
            for route in &mut routes {
                let methods: Vec<&Method> =
                    route.handlers.iter().map(|(method, _)| method).collect();
                let label = Arc::get_mut(&mut route.label).expect("no request has the label yet");
                label.series = Some(metrics.route_series(&label.template, &methods));
            }
        }
        let static_paths = routes
            .iter()
            .enumerate()
            .filter(|(_, route)| !route.has_parameters)
            .map(|(index, route)| (route.label.template.clone(), index))
            .collect();
        Ok(Self {
            by_path,
            routes,
            static_paths,
        })
    }

    /// Every route template, in the order the endpoints were given.
    pub fn templates(&self) -> impl Iterator<Item = &str> {
        self.routes
            .iter()
            .map(|route| route.label.template.as_str())
    }

    pub fn find(&self, path: &str) -> Found {
        if let Some((_, index)) = self
            .static_paths
            .iter()
            .find(|(template, _)| template == path)
        {
            return Found::Route {
                index: *index,
                parameters: None,
            };
        }
        if let Ok(found) = self.by_path.at(path) {
            let index = *found.value;
            let parameters = self.routes[index].has_parameters.then(|| {
                found
                    .params
                    .iter()
                    .map(|(name, value)| (name.to_owned(), value.to_owned()))
                    .collect()
            });
            return Found::Route { index, parameters };
        }
        let Some(location) = paths::other_trailing_slash(path) else {
            return Found::Nothing;
        };
        match self.by_path.at(&location) {
            Ok(found) => Found::Redirect {
                index: *found.value,
                location,
            },
            Err(_) => Found::Nothing,
        }
    }

    pub fn route(&self, index: usize) -> &Route {
        &self.routes[index]
    }
}

/// `GET,HEAD,POST`: the methods answered, HEAD wherever GET is.
fn allow_header(handlers: &[(Method, Handler)]) -> HeaderValue {
    let mut methods: Vec<&str> = Vec::new();
    for (method, _) in handlers {
        methods.push(method.as_str());
        if method == Method::GET && !handlers.iter().any(|(other, _)| other == Method::HEAD) {
            methods.push("HEAD");
        }
    }
    HeaderValue::from_str(&methods.join(",")).expect("method names are valid header text")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ok() -> &'static str {
        "ok"
    }

    fn table(routes: &[(Method, &str)]) -> RouteTable {
        let endpoints = routes.iter().fold(
            Endpoints::new(OpenApi::default()),
            |endpoints, (method, path)| endpoints.hidden(method.clone(), path, ok),
        );
        RouteTable::new(endpoints, None).expect("a valid table")
    }

    /// The template `path` is found under, and the redirect's location.
    fn found(table: &RouteTable, path: &str) -> Option<(String, Option<String>)> {
        match table.find(path) {
            Found::Route { index, .. } => Some((table.route(index).label.template.clone(), None)),
            Found::Redirect { location, index } => {
                Some((table.route(index).label.template.clone(), Some(location)))
            }
            Found::Nothing => None,
        }
    }

    #[test]
    fn paths_find_their_route_or_their_trailing_slash_redirect() {
        let table = table(&[
            (Method::GET, "/hello_world"),
            (Method::GET, "/slashed/"),
            (Method::GET, "/docs/{*file}"),
        ]);
        let route = |template: &str| Some((template.to_owned(), None));
        let redirect = |template: &str, to: &str| Some((template.to_owned(), Some(to.to_owned())));
        assert_eq!(found(&table, "/hello_world"), route("/hello_world"));
        assert_eq!(found(&table, "/docs/a.js"), route("/docs/{*file}"));
        assert_eq!(
            found(&table, "/hello_world/"),
            redirect("/hello_world", "/hello_world")
        );
        assert_eq!(
            found(&table, "/slashed"),
            redirect("/slashed/", "/slashed/")
        );
        for nowhere in ["/nope/", "/", "//evil.example/", "//hello_world/"] {
            assert_eq!(found(&table, nowhere), None, "{nowhere}");
        }
        let Found::Route { parameters, .. } = table.find("/docs/a%20b.js") else {
            panic!("a route");
        };
        assert_eq!(
            parameters,
            Some(vec![("file".to_owned(), "a%20b.js".to_owned())])
        );
    }

    #[test]
    fn each_route_has_zero_series_for_the_methods_it_answers_only() {
        let metrics = Metrics::new();
        let endpoints = [
            (Method::GET, "/items"),
            (Method::POST, "/items"),
            (Method::DELETE, "/orders"),
        ]
        .into_iter()
        .fold(
            Endpoints::new(OpenApi::default()),
            |endpoints, (method, path)| endpoints.hidden(method, path, ok),
        );
        RouteTable::new(endpoints, Some(&metrics)).expect("a valid table");
        let text = metrics.render();
        for series in [
            r#"method="GET",route="/items",status="500""#,
            r#"method="POST",route="/items",status="200""#,
            r#"method="POST",route="/items",status="408""#,
            r#"method="DELETE",route="/orders",status="500""#,
        ] {
            assert!(
                text.contains(&format!("http_requests_total{{{series}}} 0")),
                "{series} in\n{text}"
            );
        }
        assert!(!text.contains(r#"method="GET",route="/orders""#), "{text}");
    }

    #[test]
    fn a_route_declared_twice_or_two_that_overlap_are_refused() {
        let refused = |routes: &[(Method, &str)]| {
            let endpoints = routes.iter().fold(
                Endpoints::new(OpenApi::default()),
                |endpoints, (method, path)| endpoints.hidden(method.clone(), path, ok),
            );
            RouteTable::new(endpoints, None).err()
        };
        assert_eq!(
            refused(&[(Method::GET, "/a"), (Method::GET, "/a")]).as_deref(),
            Some("GET /a is declared twice")
        );
        let overlap = refused(&[(Method::GET, "/a/{id}"), (Method::GET, "/a/{name}")]);
        assert!(overlap.expect("refused").starts_with("route /a/{name}: "));
        assert!(refused(&[(Method::GET, "/a"), (Method::POST, "/a")]).is_none());
    }

    #[test]
    fn get_answers_head_and_allow_lists_every_method() {
        let table = table(&[(Method::GET, "/items"), (Method::POST, "/items")]);
        let route = table.route(0);
        assert_eq!(route.allow, "GET,HEAD,POST");
        assert!(matches!(route.handler(&Method::HEAD), Some((_, true))));
        assert!(matches!(route.handler(&Method::POST), Some((_, false))));
        assert!(route.handler(&Method::DELETE).is_none());
    }
}
