//! Application state and the HTTP server.

use std::{net::TcpListener, sync::Arc};

use actix_web::{dev::ServerHandle, middleware, web, App, HttpServer};
use coursegate_core::{Clock, Store};

use crate::{config::Config, error::PageError, routes};

/// Shared by every handler. Holds no per-user state: sessions, nonces and
/// counters live in the database so any instance can serve any request.
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub config: Config,
    /// LTI keys: the tool's signing keys and the platform key cache (a cache
    /// only: losing it costs a refetch, never correctness).
    pub lti: crate::lti_keys::LtiRuntime,
}

impl AppState {
    /// Builds the state; loads (or on first start creates) the tool keys in
    /// `config.keys_dir`.
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: Config) -> Self {
        let lti = crate::lti_keys::LtiRuntime::load(&config.keys_dir, clock.now());
        Self {
            store,
            clock,
            config,
            lti,
        }
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

/// Registers every route. Shared by `serve` and the test kit.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::FormConfig::default()
            .limit(1 << 20)
            .error_handler(|e, _| {
                PageError::bad_request(format!("The form could not be read: {e}.")).into()
            }),
    )
    .app_data(web::QueryConfig::default().error_handler(|e, _| {
        PageError::bad_request(format!("The address has an invalid parameter: {e}.")).into()
    }))
    .app_data(web::PathConfig::default().error_handler(|_, _| PageError::not_found().into()));
    routes::health::configure(cfg);
    // The LMS's launches first: the router tries routes in this order, and
    // each dynamic one it passes costs a regular-expression match.
    routes::lti::configure(cfg);
    routes::assets::configure(cfg);
    routes::learner::configure(cfg);
    routes::links::configure(cfg);
    routes::staff_sso::configure(cfg);
    routes::staff::configure(cfg);
    routes::dev::configure(cfg);
    routes::lti_instructor::configure(cfg);
    routes::lti_picker::configure(cfg);
    routes::lti_registration::configure(cfg);
    crate::api::configure(cfg);
    routes::staff_lms::configure(cfg);
    routes::staff_console::configure(cfg);
    routes::staff_team::configure(cfg);
}

/// A running server.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub handle: ServerHandle,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts the HTTP server on `listener` (tests pass port 0).
pub fn start(state: AppState, listener: TcpListener, workers: usize) -> std::io::Result<Running> {
    start_with_data(web::Data::new(state), listener, workers)
}

/// Like [`start`], for callers that keep a handle on the state (to start
/// background workers on the same state).
pub fn start_with_data(
    data: web::Data<AppState>,
    listener: TcpListener,
    workers: usize,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(middleware::from_fn(crate::telemetry::request_log))
            // Outermost: frame-session paths are rewritten before logging and routing.
            .wrap(middleware::from_fn(crate::frame::frame_paths))
            .configure(configure)
            .default_service(web::to(routes::not_found))
    })
    .shutdown_timeout(10)
    .listen(listener)?;
    if workers > 0 {
        server = server.workers(workers);
    }
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(Running { addr, handle, task })
}
