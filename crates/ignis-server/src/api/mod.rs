//! The REST management API of the standalone server.
//!
//! Everything lives under a base path (`/api` by default):
//!
//! - `{base}/socket/*`: the nine endpoints of the original example (info, clients, broadcast,
//!   send to a room or a client, join/leave/rooms of a client, health), protected by an API key
//!   when one is configured (health excepted), plus `{base}/socket/drain` (behind the key) and
//!   `{base}/socket/ready` (open, the load balancer's probe) for rolling restarts;
//! - `{base}/health-check` and `{base}/health-check/ping`;
//! - `{base}/doc/openapi.json` (OpenAPI 3.1) and `{base}/doc/explorer` (a page to try it out).
//!
//! Every response carries `X-Request-Id`; errors use the original's envelope
//! `{"error": {"message", "statusCode", "requestId", "details": {"url", "path"}}}`; unknown
//! routes answer the original's 404 shape, a known path with another method 405 with `Allow`.
//! Bodies are limited to 10 MB.

pub(crate) mod auth;
mod body;
mod context;
mod cors;
mod error;
mod explorer;
mod health;
mod openapi;
mod socket;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{delete, get, post};

/// How the API is served.
#[derive(Debug, Clone)]
pub(crate) struct ApiConfig {
    /// Where the API lives, `/api` by default; `""` or `/` serves it at the root.
    pub base_path: String,
    /// When set, `{base}/socket/*` (except `/health`) requires `X-API-Key: <key>` or
    /// `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Origins allowed by CORS, with credentials; `["*"]` allows any origin without
    /// credentials; `None` (the default) allows no cross-origin access.
    pub cors_origins: Option<Vec<String>>,
    /// Shown as the title of the OpenAPI document.
    pub app_name: String,
    /// What `POST {base}/socket/drain` asks to drain the node (the process runs the drain).
    pub drain: crate::drain::DrainSwitch,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            base_path: "/api".into(),
            api_key: None,
            cors_origins: None,
            app_name: "ignis".into(),
            drain: crate::drain::DrainSwitch::default(),
        }
    }
}

/// What the handlers share.
pub(crate) struct ApiState {
    pub app: ignis::AppHandle,
    pub openapi: String,
    pub drain: crate::drain::DrainSwitch,
}

/// The API's routes, the 404 fallback for every other path, and the layers every response goes
/// through (request id, logging, error envelope, CORS, body limit).
pub(crate) fn router(config: ApiConfig, app: ignis::AppHandle) -> Router {
    let base = normalize_base_path(&config.base_path);
    let state = Arc::new(ApiState {
        app,
        openapi: openapi::document(&base, &config.app_name, config.api_key.is_some()).to_string(),
        drain: config.drain.clone(),
    });
    let at = |path: &str| format!("{base}{path}");

    let mut protected = Router::new()
        .route(&at("/socket/info"), get(socket::info))
        .route(&at("/socket/clients"), get(socket::clients))
        .route(&at("/socket/broadcast"), post(socket::broadcast))
        .route(
            &at("/socket/room/{roomId}/send"),
            post(socket::send_to_room),
        )
        .route(
            &at("/socket/client/{clientId}/send"),
            post(socket::send_to_client),
        )
        .route(&at("/socket/client/{clientId}/join"), post(socket::join))
        .route(&at("/socket/client/{clientId}/leave"), post(socket::leave))
        .route(&at("/socket/client/{clientId}/rooms"), get(socket::rooms))
        .route(&at("/socket/client/{clientId}"), delete(socket::disconnect))
        .route(&at("/socket/rooms"), get(socket::cluster_rooms))
        .route(
            &at("/socket/room/{roomId}/clients"),
            get(socket::room_clients),
        )
        .route(&at("/socket/drain"), post(socket::drain));
    if let Some(key) = config.api_key.filter(|k| !k.is_empty()) {
        protected = protected.route_layer(from_fn_with_state(
            Arc::new(auth::ApiKey::new(key)),
            auth::require_api_key,
        ));
    }

    let router = Router::new()
        .merge(protected)
        .route(&at("/socket/health"), get(socket::health))
        .route(&at("/socket/ready"), get(socket::ready))
        .route(&at("/health-check"), get(health::status))
        .route(&at("/health-check/ping"), post(health::ping))
        .route(&at("/doc/openapi.json"), get(openapi::serve))
        .route(&at("/doc/explorer"), get(explorer::serve))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
        .layer(from_fn(body::enforce_declared_limit));
    let router = match config.cors_origins.as_deref().and_then(cors::layer) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.layer(from_fn(context::request_context))
}

/// `/api/` → `/api`, `api` → `/api`, `/` and `` → `` (the root).
fn normalize_base_path(base: &str) -> String {
    let trimmed = base.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}
