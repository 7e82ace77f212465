//! The smallest HTTP/1.1 server that Prometheus can scrape: `GET
//! /metrics` (and `HEAD`), one request per connection, bounded in size,
//! time and concurrency, so that a slow or hostile client costs a few
//! kilobytes and one task for a few seconds, never an actor's time.
//!
//! Owns: request parsing (RFC 9112 section 3, the request line, and the
//! `Accept` header for format negotiation) and the responses.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::render::Format;

/// Largest request head read; a scrape request is a few hundred bytes.
pub const MAX_REQUEST: usize = 8 * 1024;
/// A client must have sent its whole request within this.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Everything about one connection, the response included, ends within this.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);
/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;

/// Builds the body of a scrape; `None` when it could not (answered 500,
/// which Prometheus records as a failed scrape rather than an empty one).
pub type Scrape =
    Arc<dyn Fn(Format) -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync>;

/// Called for every request refused (for the endpoint's own counter).
pub type OnRefuse = Arc<dyn Fn() + Send + Sync>;

/// What a request asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Metrics {
        format: Format,
        head: bool,
    },
    /// An answer without a body: status line and reason.
    Refuse(u16, &'static str),
}

/// Parse a complete request head (up to and including the empty line).
pub fn parse(head: &[u8]) -> Request {
    let Ok(text) = std::str::from_utf8(head) else {
        return Request::Refuse(400, "Bad Request");
    };
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Refuse(400, "Bad Request");
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Refuse(505, "HTTP Version Not Supported");
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Request::Refuse(404, "Not Found");
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Request::Refuse(405, "Method Not Allowed"),
    };
    let mut format = Format::Classic;
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("accept")
            && value
                .to_ascii_lowercase()
                .contains("application/openmetrics-text")
        {
            format = Format::OpenMetrics;
        }
    }
    Request::Metrics {
        format,
        head: head_only,
    }
}

/// Where the request head ends, if it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some(i + 4);
    }
    buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2)
}

/// Read a request head: `Err` with the status to answer when the client
/// sent too much, too slowly, or closed early (`None`: just close).
async fn read_head(sock: &mut TcpStream) -> Result<Vec<u8>, Option<Request>> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = sock.read(&mut chunk).await.map_err(|_| None)?;
            if n == 0 {
                return Err(None);
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
            let end = head_end(&buf);
            if end.unwrap_or(buf.len()) > MAX_REQUEST {
                return Err(Some(Request::Refuse(
                    431,
                    "Request Header Fields Too Large",
                )));
            }
            if let Some(end) = end {
                buf.truncate(end);
                return Ok(());
            }
        }
    };
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(())) => Ok(buf),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Some(Request::Refuse(408, "Request Timeout"))),
    }
}

async fn respond(sock: &mut TcpStream, req: Request, scrape: &Scrape) -> std::io::Result<()> {
    let (status, reason, ctype, body, head) = match req {
        Request::Metrics { format, head } => match scrape(format).await {
            Some(body) => (200, "OK", format.content_type(), body, head),
            None => (
                500,
                "Internal Server Error",
                "text/plain; charset=utf-8",
                "the metrics could not be gathered; see the mcrd log\n".to_string(),
                head,
            ),
        },
        Request::Refuse(code, reason) => (
            code,
            reason,
            "text/plain; charset=utf-8",
            format!("{reason}: this server answers GET /metrics only\n"),
            false,
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    sock.write_all(out.as_bytes()).await?;
    if !head {
        sock.write_all(body.as_bytes()).await?;
    }
    sock.shutdown().await
}

async fn connection(mut sock: TcpStream, scrape: Scrape, on_refuse: OnRefuse) {
    let req = match read_head(&mut sock).await {
        Ok(head) => parse(&head),
        Err(Some(refusal)) => refusal,
        Err(None) => return,
    };
    if matches!(req, Request::Refuse(..)) {
        on_refuse();
    }
    if let Err(e) = respond(&mut sock, req, &scrape).await {
        debug!(target: "Supervisor", "metrics: a client left before its answer: {e}");
    }
}

/// Accept connections until the task is aborted.
pub async fn serve(listener: TcpListener, scrape: Scrape, on_refuse: OnRefuse) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let sock = match listener.accept().await {
            Ok((sock, _)) => sock,
            Err(e) => {
                // Out of descriptors, typically: wait rather than spin.
                warn!(target: "Supervisor", "metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!(target: "Supervisor", "metrics: {MAX_CONNECTIONS} connections open; closing a new one");
            continue;
        };
        let (scrape, on_refuse) = (scrape.clone(), on_refuse.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ =
                tokio::time::timeout(CONNECTION_TIMEOUT, connection(sock, scrape, on_refuse)).await;
        });
    }
}
