//! Route registration (docs/spec.md §3): every path is one [`Endpoint`] that knows the
//! methods it serves. A `GET` also answers `HEAD` (RFC 9110 §9.3.2: the same status and
//! headers, no body; actix-http writes no body for a `HEAD` request), and any other method
//! is 405 with `Allow` listing the served ones (RFC 9110 §15.5.6), in the answer shape of
//! the endpoint's family ([`Shape`]).

use std::rc::Rc;

use actix_web::dev::HttpServiceFactory;
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::{Condition, from_fn};
use actix_web::{FromRequest, Handler, HttpResponse, Resource, Responder, web};

use super::api::ApiError;

/// How an endpoint family writes its 404 and 405 answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Pages, operations and well-known documents: an empty 405.
    Plain,
    /// `/api/v1`: `{"error": {"type": "invalid_request_error", "message"}}` (docs/spec.md §5).
    Api,
    /// The OAuth endpoints: RFC 6749 §5.2 JSON, `invalid_request`.
    OAuth,
}

/// One path, the methods it serves and the handlers that serve them.
pub struct Endpoint {
    /// The path as a client writes it (`/api/v1/...` in full).
    path: &'static str,
    shape: Shape,
    resource: Resource,
    allow: Vec<Method>,
    /// Answers cross-origin requests (docs/spec.md §3, `http::cors`).
    cors: bool,
}

impl Endpoint {
    /// An endpoint at `path`, mounted at `mount` (the path inside its scope).
    pub fn new(path: &'static str, mount: &'static str, shape: Shape) -> Self {
        Self {
            path,
            shape,
            resource: web::resource(mount),
            allow: Vec::new(),
            cors: false,
        }
    }

    /// Answers CORS preflights and cross-origin requests from any origin, without
    /// credentials (docs/spec.md §3); only the endpoints a browser-based public client
    /// calls (docs/security.md A8).
    pub fn cross_origin(mut self) -> Self {
        self.cors = true;
        self
    }

    /// Request data for this endpoint only (e.g. its body limit).
    pub fn data<U: 'static>(mut self, data: U) -> Self {
        self.resource = self.resource.app_data(data);
        self
    }

    /// `GET`, and `HEAD` with the same handler.
    pub fn get<F, Args>(mut self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let guard = actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head());
        self.resource = self.resource.route(web::route().guard(guard).to(handler));
        self.allow.extend([Method::GET, Method::HEAD]);
        self
    }

    pub fn post<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::POST, handler)
    }

    pub fn put<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::PUT, handler)
    }

    pub fn patch<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::PATCH, handler)
    }

    pub fn delete<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::DELETE, handler)
    }

    /// Every method goes to `handler` (a gateway check answers whatever method the proxy
    /// forwards, docs/spec.md §11); `describe` lists the common ones.
    pub fn any<F, Args>(mut self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.resource = self.resource.route(web::route().to(handler));
        self.allow.extend([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ]);
        self
    }

    fn on<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.resource = self
            .resource
            .route(web::route().method(method.clone()).to(handler));
        self.allow.push(method);
        self
    }

    /// The path as a client writes it, and the methods it serves.
    pub fn describe(&self) -> (&'static str, Vec<Method>) {
        (self.path, self.allow.clone())
    }

    /// The actix resource: the routes, the 405 for every other method, and CORS where
    /// [`Endpoint::cross_origin`] asked for it.
    pub fn into_resource(self) -> impl HttpServiceFactory + 'static {
        let allow = self
            .allow
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let shape = self.shape;
        // HEAD is CORS-safelisted (Fetch §2.2.1): a preflight names only the others.
        let cors_methods: Rc<str> = Rc::from(
            self.allow
                .iter()
                .filter(|m| **m != Method::HEAD)
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        );
        self.resource
            .default_service(web::to(move || {
                let allow = allow.clone();
                async move { method_not_allowed(shape, &allow) }
            }))
            .wrap(Condition::new(
                self.cors,
                from_fn(move |req, next| super::cors::open(cors_methods.clone(), req, next)),
            ))
    }
}

/// 405 with `Allow` (RFC 9110 §15.5.6).
fn method_not_allowed(shape: Shape, allow: &str) -> HttpResponse {
    let mut resp = match shape {
        Shape::Plain => HttpResponse::MethodNotAllowed().finish(),
        Shape::Api => actix_web::ResponseError::error_response(&ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            format!("This endpoint answers {allow} only."),
        )),
        Shape::OAuth => HttpResponse::MethodNotAllowed()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({
                "error": "invalid_request",
                "error_description": format!("Use {allow}."),
            })),
    };
    if let Ok(v) = header::HeaderValue::from_str(allow) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    resp
}

/// 404 for a path under `/api/v1` that names no endpoint (docs/spec.md §5 error shape).
pub async fn api_not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "No such endpoint. The endpoints are listed in /api/v1/openapi.json.",
    ))
}

/// 404 for any other path that names no endpoint. Paths of the OAuth and metadata
/// endpoints (`/oauth/…`, `/.well-known/…`), which programs call, and requests that accept
/// JSON but not HTML get OAuth-style JSON (`{"error": "not_found", "error_description"}`);
/// everyone else, browsers included, a page with a way back to the start page.
pub async fn page_not_found(req: actix_web::HttpRequest) -> HttpResponse {
    let path = req.path();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let wants_json = accept.contains("json") && !accept.contains("html");
    if path.starts_with("/oauth/") || path.starts_with("/.well-known/") || wants_json {
        return HttpResponse::NotFound()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({
                "error": "not_found",
                "error_description": "No such endpoint. The endpoints are listed in \
                    /.well-known/oauth-authorization-server.",
            }));
    }
    super::pages::error_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no page at this address. Check the address, or start again from the \
         start page.",
    )
}
