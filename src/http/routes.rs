//! The request handlers: the web config's rate limit (429), basic auth (401) and response headers when it
//! asks for them, then `/metrics`, `/`, `/-/healthy`
//! and `/-/ready` (docs/http.md); anything else is a 404, any method but GET and HEAD a 405.

use std::sync::Arc;
use std::time::Duration;

use log::{debug, error};
use tiny_http::{Header, Method, Request, Response, Server};

use super::request::PEER_HEADER;
use super::respond::{header, respond_metrics, Buffers};
use crate::http::webconfig::{AuthOutcome, Login, Throttle, WebState};
use crate::metrics::Metrics;
use crate::runtime::shutdown::Lifecycle;

/// The request side: tiny_http and the web config (basic auth users) the handlers check.
pub struct Backend {
    pub server: Server,
    pub web: Option<Arc<WebState>>,
}

impl std::ops::Deref for Backend {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Answers requests until a stop is requested.
pub fn serve(server: &Backend, metrics: &Metrics, life: &Lifecycle) {
    crate::runtime::sched::prefer_latency_for("http");
    let mut buf = Buffers { body: Vec::with_capacity(64 * 1024), ..Buffers::default() };
    while !life.http_stop_requested() {
        match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(req)) => handle(req, server.web.as_deref(), metrics, life, &mut buf),
            Ok(None) => {}
            Err(e) => {
                error!("http server: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn landing_page() -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><title>DashFlow Prometheus Exporter</title></head><body>\n\
<h1>DashFlow Prometheus Exporter</h1>\n<p>Version {}</p>\n<ul>\n\
<li><a href=\"/metrics\">/metrics</a>: metrics (text format, or OpenMetrics and protobuf by Accept header)</li>\n\
<li><a href=\"/-/healthy\">/-/healthy</a>: 200 while every thread is running</li>\n\
<li><a href=\"/-/ready\">/-/ready</a>: 200 while the Kafka consumer is connected</li>\n\
</ul>\n</body></html>\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn handle(req: Request, web: Option<&WebState>, metrics: &Metrics, life: &Lifecycle, buf: &mut Buffers) {
    let current = web.map(WebState::current);
    // `http_server_config.headers`: on every answer, refusals included.
    let extra: &[Header] = current.as_ref().map_or(&[], |c| &c.headers);
    let send = |req: Request, mut resp: Response<std::io::Cursor<Vec<u8>>>| {
        for h in extra {
            resp = resp.with_header(h.clone());
        }
        if let Err(e) = req.respond(resp) {
            debug!("http response not sent: {e}");
        }
    };
    if let (Some(web), Some(current)) = (web, &current) {
        // `rate_limit` first, as the toolkit: a refused request costs no bcrypt run.
        if current.limiter.as_ref().is_some_and(|l| !l.allow()) {
            web.rate_limited.inc();
            let text = header("Content-Type", "text/plain; charset=utf-8");
            return send(req, Response::from_string("Too Many Requests\n").with_status_code(429).with_header(text));
        }
        let auth = req.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.as_str());
        let login = Login {
            users: &current.config.users,
            dummy: &current.dummy_hash,
            cache: &web.cache,
            limits: &web.auth_limits,
        };
        match login.check(auth, peer(&req)) {
            AuthOutcome::Allowed => {}
            AuthOutcome::Denied => {
                web.auth_failures.inc();
                let basic = header("WWW-Authenticate", "Basic");
                return send(req, Response::from_string("Unauthorized\n").with_status_code(401).with_header(basic));
            }
            AuthOutcome::Throttled(scope) => {
                web.auth_throttled[scope].inc();
                let retry = header("Retry-After", if scope == Throttle::Client { "2" } else { "1" });
                let text = "Too Many Requests: too many failed logins\n";
                return send(req, Response::from_string(text).with_status_code(429).with_header(retry));
            }
        }
    }
    let path = req.url().split('?').next().unwrap_or("").to_string();
    let known = matches!(path.as_str(), "/" | "/metrics" | "/-/healthy" | "/-/ready");
    let resp = if !known {
        Response::from_string("404 page not found\n").with_status_code(404)
    } else if !matches!(req.method(), Method::Get | Method::Head) {
        Response::from_string("405 method not allowed\n")
            .with_status_code(405)
            .with_header(header("Allow", "GET, HEAD"))
    } else {
        match path.as_str() {
            "/metrics" => return respond_metrics(req, metrics, buf, extra),
            "/-/healthy" => status_page(life.healthy(), "Healthy", "Unhealthy"),
            "/-/ready" => status_page(life.ready(), "Ready", "Not ready: no connection to the Kafka cluster"),
            _ => Response::from_string(landing_page()).with_header(header("Content-Type", "text/html; charset=utf-8")),
        }
    };
    send(req, resp)
}

/// The client's address, as the relay passed it on (a client's own header of that name never gets here).
fn peer(req: &Request) -> Option<std::net::IpAddr> {
    req.headers().iter().find(|h| h.field.equiv(PEER_HEADER)).and_then(|h| h.value.as_str().parse().ok())
}

fn status_page(ok: bool, yes: &str, no: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let (code, text) = if ok { (200, yes) } else { (503, no) };
    Response::from_string(format!("{text}\n")).with_status_code(code)
}
