//! The HTTP stage: `/metrics`, `/`, `/-/healthy` and `/-/ready` over tiny_http, behind a connection gate.
//!
//! tiny_http gives every connection a thread and enforces no limits, so it listens only on a private
//! abstract Unix socket. The public listener belongs to the gate (`gate`), which admits a bounded number of
//! connections and relays each one (`relay`) with idle, header and size limits, terminating TLS when the web
//! config asks for it. The request handlers (`routes`, `respond`) check basic auth and answer.
//! docs/http.md says what clients see.

mod client;
mod conn;
mod gate;
mod listen;
pub mod negotiate;
mod relay;
pub mod request;
mod respond;
mod routes;
pub mod webconfig;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};
use std::sync::Arc;

use log::info;
use tiny_http::Server;

use crate::config::{HttpConfig, Listen};
use crate::http::webconfig::WebState;
use crate::metrics::Metrics;
use crate::runtime::shutdown::Lifecycle;
use gate::Gate;
use relay::Timeouts;

pub use request::{MAX_HEADER_BYTES, PEER_HEADER};
pub use respond::{accepts_gzip, CONTENT_TYPE_METRICS};
pub use routes::{serve, Backend};

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    /// The address, or "systemd sockets".
    pub addr: String,
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// The bound HTTP side: the public listener (gate) and tiny_http behind it.
pub struct HttpServer {
    /// Never dropped: tiny_http's `Drop` unwraps a filesystem path and panics on an abstract socket address.
    /// Its accept thread ends with the process.
    pub server: std::mem::ManuallyDrop<Backend>,
    gate: Gate,
    /// The first listener's address (each is logged when bound).
    pub addr: SocketAddr,
}

impl HttpServer {
    /// Connections currently admitted.
    pub fn active_connections(&self) -> usize {
        self.gate.active_connections()
    }

    /// Accepts connections until a stop is requested (the admission policy: docs/http.md).
    pub fn run_gate(&self, metrics: &Metrics, life: &Lifecycle) {
        self.gate.run(metrics, life)
    }
}

/// A longer accept queue than std's 128: under a connection flood a scraper's SYN that finds the queue full
/// is dropped and retried only a second later. (The kernel caps it at net.core.somaxconn.)
const ACCEPT_BACKLOG: i32 = 1024;

/// Binds the public listeners and starts tiny_http on a private abstract Unix socket. The web config, if
/// any, is the one the settings stage read (`cfg.web_config`): it is not read again here.
pub fn bind(cfg: &HttpConfig) -> Result<HttpServer, BindError> {
    let web = cfg.web_config.as_ref().map(|file| {
        info!("web config {}: {}", file.path().display(), file.summary());
        Arc::new(WebState::new(file.clone()))
    });
    let listeners = match &cfg.listen {
        Listen::Systemd => listen::systemd_listeners()
            .map_err(|e| BindError { addr: "systemd sockets (--web.systemd-socket)".into(), source: e.into() })?,
        Listen::Addresses(addrs) => addrs.iter().map(listen::bind_one).collect::<Result<Vec<_>, _>>()?,
    };
    let mut bound = Vec::with_capacity(listeners.len());
    for l in listeners {
        let addr = l.local_addr().map_err(|e| BindError { addr: "a listener".into(), source: Box::new(e) })?;
        let err = |e: std::io::Error| BindError { addr: addr.to_string(), source: Box::new(e) };
        // SAFETY: listen(2) on the listener's own socket, which is already listening; only the backlog changes.
        unsafe { libc::listen(l.as_raw_fd(), ACCEPT_BACKLOG) };
        l.set_nonblocking(true).map_err(err)?;
        info!("listening on {addr}");
        bound.push((l, addr));
    }
    let Some(&(_, addr)) = bound.first() else {
        return Err(BindError { addr: "no address".into(), source: "no listener to serve on".into() });
    };
    let err = |e: Box<dyn std::error::Error + Send + Sync>| BindError { addr: addr.to_string(), source: e };
    let name = format!("dashflow-prometheus-exporter/{}/{}", std::process::id(), addr.port());
    let handler = UnixAddr::from_abstract_name(name.as_bytes()).map_err(|e| err(Box::new(e)))?;
    let unix = UnixListener::bind_addr(&handler).map_err(|e| err(Box::new(e)))?;
    // tiny_http's accept thread, and the connection threads it starts, inherit the short scheduler slice of
    // the thread that creates the server (see `crate::runtime::sched`).
    let server = crate::runtime::sched::on_thread_with(
        || {
            crate::runtime::sched::prefer_latency();
        },
        || Server::from_listener(unix, None),
    )
    .map_err(|_| err("tiny_http panicked while starting".into()))?
    .map_err(err)?;
    let timeouts = Timeouts { idle: cfg.timeout, header: cfg.header_timeout };
    let listeners = bound.into_iter().map(|(l, _)| l).collect();
    let gate = Gate::new(listeners, handler, web.clone(), cfg.max_connections, timeouts);
    Ok(HttpServer { server: std::mem::ManuallyDrop::new(Backend { server, web }), gate, addr })
}
