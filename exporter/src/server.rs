//! The HTTP side: `/metrics`, `/health` and a landing page, served by tiny_http.
//!
//! A few worker threads share one listener so a scrape stuck on a slow edge (bounded by
//! the scrape timeout) does not block `/health` probes or a second Prometheus.

use std::io;
use std::sync::Arc;
use std::thread;

use tiny_http::{Header, Method, Request, Response, Server};

use crate::Exporter;

/// Worker threads answering requests; scrapes spawn their own threads per edge.
const WORKERS: usize = 4;

/// A bound HTTP listener; binding is separate from serving so `main` can report a bad
/// `--listen` address before anything else happens.
pub struct HttpServer {
    server: Arc<Server>,
}

impl HttpServer {
    /// Binds the listener.
    pub fn bind(listen: &str) -> io::Result<Self> {
        let server = Server::http(listen).map_err(io::Error::other)?;
        Ok(HttpServer {
            server: Arc::new(server),
        })
    }

    /// The bound address, useful when listening on port 0.
    pub fn local_addr(&self) -> String {
        self.server.server_addr().to_string()
    }

    /// Serves requests until the process ends.
    pub fn serve(self, exporter: Arc<Exporter>) {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (server, exporter) = (Arc::clone(&self.server), Arc::clone(&exporter));
                thread::spawn(move || {
                    for req in server.incoming_requests() {
                        handle(&exporter, req);
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}

fn text(status: u16, content_type: &str, body: String) -> Response<io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", content_type))
}

fn handle(exporter: &Exporter, req: Request) {
    let path = req.url().split('?').next().unwrap_or("/").to_owned();
    let plain = "text/plain; charset=utf-8";
    let resp = match (req.method(), path.as_str()) {
        (Method::Get | Method::Head, "/metrics") => text(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            exporter.metrics(),
        ),
        (Method::Get | Method::Head, "/health" | "/healthz") => text(200, plain, exporter.health()),
        (Method::Get | Method::Head, "/") => text(
            200,
            "text/html; charset=utf-8",
            "<html><head><title>edgecache exporter</title></head><body>\
             <h1>edgecache exporter</h1><p><a href=\"/metrics\">/metrics</a> \
             <a href=\"/health\">/health</a></p></body></html>\n"
                .to_owned(),
        ),
        (Method::Get | Method::Head, _) => text(404, plain, "not found\n".to_owned()),
        _ => text(405, plain, "method not allowed\n".to_owned()),
    };
    // A client that hung up is not the exporter's problem.
    let _ = req.respond(resp);
}
