//! A blocking control client, as `mcrctl` and tests use it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{encode_request, Request, Response, TimedEvent};

/// Longest response line the client accepts. The largest real ones (the
/// rule list, stats or running config of a daemon with the most rules a
/// 16 MiB config holds) are a few tens of MiB.
pub const MAX_RESPONSE: usize = 256 << 20;

/// Why a request did not get a result.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {path}: {err} (is mcrd running? set --socket or MCR_SOCKET)")]
    Connect { path: String, err: io::Error },
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the daemon closed the connection without answering")]
    Closed,
    #[error("unreadable response from the daemon: {0}")]
    BadResponse(String),
    /// The daemon refused the request; its message.
    #[error("{0}")]
    Daemon(String),
}

pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    pub fn connect(path: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let s = UnixStream::connect(path).map_err(|err| ClientError::Connect {
            path: path.display().to_string(),
            err,
        })?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let writer = s.try_clone()?;
        Ok(Client {
            reader: BufReader::new(s),
            writer,
        })
    }

    /// Send a request; the raw response.
    pub fn call(&mut self, req: &Request) -> Result<Response, ClientError> {
        self.writer.write_all(&encode_request(req))?;
        let line = self.read_line()?;
        serde_json::from_str(&line).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// Send a request; its result, or the daemon's error as `Daemon`.
    pub fn request<T: DeserializeOwned>(&mut self, req: &Request) -> Result<T, ClientError> {
        let r = self.call(req)?;
        if !r.ok {
            return Err(ClientError::Daemon(
                r.error.unwrap_or_else(|| "request failed".into()),
            ));
        }
        let v = r.result.unwrap_or(serde_json::Value::Null);
        serde_json::from_value(v).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// One response or event line, refused once it passes `MAX_RESPONSE`
    /// instead of growing without end when whatever is at the socket never
    /// sends a newline.
    fn read_line(&mut self) -> Result<String, ClientError> {
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_RESPONSE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        if line.len() > MAX_RESPONSE {
            return Err(ClientError::BadResponse(format!(
                "longer than {} MiB",
                MAX_RESPONSE >> 20
            )));
        }
        String::from_utf8(line).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// After a successful `subscribe`: the next event. Blocks up to the
    /// read timeout; `Ok(None)` on timeout.
    pub fn next_event(&mut self) -> Result<Option<TimedEvent>, ClientError> {
        match self.read_line() {
            Ok(l) => serde_json::from_str(&l)
                .map(Some)
                .map_err(|e| ClientError::BadResponse(e.to_string())),
            Err(ClientError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Change the read timeout (e.g. none while streaming events).
    pub fn set_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(t)
    }
}
