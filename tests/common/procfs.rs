//! What /proc says about a process, as an operator would read it: open
//! descriptors, resident memory, threads, and whether it still runs. Tests
//! that bound resource use (churn, soak) measure with these, so their
//! figures mean the same thing.
//!
//! Each reader answers 0 (or false) for a process that is gone: the caller
//! decides whether that is a failure, and a vanished process must not turn
//! into a panic inside a sampler thread.

use std::path::Path;

/// Open file descriptors.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Socket descriptors only: the kind a rule leak is made of.
pub fn socket_count(pid: u32) -> usize {
    let Ok(d) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    d.flatten()
        .filter(|e| {
            std::fs::read_link(e.path())
                .map(|l| l.to_string_lossy().starts_with("socket:"))
                .unwrap_or(false)
        })
        .count()
}

/// A numeric field of /proc/PID/status (`VmRSS`, `Threads`, ...), without
/// its unit.
fn status_field(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident set size in kB.
pub fn rss_kb(pid: u32) -> u64 {
    status_field(pid, "VmRSS")
}

/// Threads of the process.
pub fn threads(pid: u32) -> u64 {
    status_field(pid, "Threads")
}

/// Whether the process exists and has not exited: a child that died but
/// was not reaped yet is a zombie, still listed in /proc.
pub fn alive(pid: u32) -> bool {
    if pid == 0 || !Path::new(&format!("/proc/{pid}")).exists() {
        return false;
    }
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("State:"))
        .is_some_and(|st| !st.trim_start().starts_with('Z'))
}
