//! The supervisor's descriptor limit. It holds descriptors for every
//! worker it runs (the IPC socket pair, each worker's ingress and egress
//! sockets while it hands them over, the per-interface IGMP report
//! sockets), about five per input interface: 256 input interfaces need
//! some 1,300, past the soft limit of 1,024 that a login shell and a
//! systemd service get by default. Past it, workers fail to start with
//! `EMFILE` and restart in a loop. The hard limit (524,288 under systemd)
//! is what the administrator allows, so the supervisor raises its soft
//! limit to it at start.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raise the soft `RLIMIT_NOFILE` to the hard limit. Returns the soft
/// limit before and after; an error leaves the limit as it was.
pub fn raise_fd_limit() -> nix::Result<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok((soft, getrlimit(Resource::RLIMIT_NOFILE)?.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_descriptor_limit_reaches_the_hard_one() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        // Start below the hard limit, as a service does, so that the raise
        // has something to do (lowering the soft limit needs no privilege).
        let low = hard.min(1024) / 2;
        setrlimit(Resource::RLIMIT_NOFILE, low, hard).unwrap();
        let (before, after) = raise_fd_limit().unwrap();
        assert_eq!(before, low);
        assert_eq!(after, hard);
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap(), (hard, hard));
    }
}
