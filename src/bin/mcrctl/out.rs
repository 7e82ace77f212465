//! Writing to stdout and stderr without `println!`, which panics when the
//! reader has gone: `mcrctl list | head -1` must end quietly, and with
//! success, once `head` stops reading.

use std::io::{self, Write};

use crate::Fail;

/// Write `s` as it is to stdout.
pub fn text(s: &str) -> Result<(), Fail> {
    let mut o = io::stdout().lock();
    o.write_all(s.as_bytes())
        .and_then(|()| o.flush())
        .map_err(write_failed)
}

/// `v` as pretty-printed JSON and a newline.
pub fn json(v: &impl serde::Serialize) -> Result<(), Fail> {
    match serde_json::to_string_pretty(v) {
        Ok(mut s) => {
            s.push('\n');
            text(&s)
        }
        Err(e) => {
            error(&format!("mcrctl: cannot encode JSON: {e}"));
            Ok(())
        }
    }
}

/// A line on stderr; if even stderr is gone there is no one left to tell.
pub fn error(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// A reader that went away is no failure of ours; anything else is.
pub fn write_failed(e: io::Error) -> Fail {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Fail(0, String::new())
    } else {
        Fail(1, format!("writing to stdout: {e}"))
    }
}
