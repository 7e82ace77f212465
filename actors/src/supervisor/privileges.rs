//! Least privilege for the supervisor: once the configuration is read,
//! keep only the capabilities the running daemon still uses and drop every
//! other one from the effective, permitted, inheritable, ambient and (when
//! allowed) bounding sets.
//!
//! Capabilities are per thread in Linux, so this runs before the logging
//! thread and the tokio runtime exist: every thread created later inherits
//! the reduced sets. The bounding set matters because workers are started
//! by exec as root, where the kernel would otherwise hand them the full
//! bounding set again.

use caps::{CapSet, Capability, CapsHashSet};

/// Why each kept capability is still needed; OPERATIONS.md says the same.
pub const KEPT: [(Capability, &str); 6] = [
    (
        Capability::CAP_NET_RAW,
        "AF_PACKET and raw IP sockets for new workers and the protocols",
    ),
    (
        Capability::CAP_NET_ADMIN,
        "socket buffers beyond the sysctl limits, group joins",
    ),
    (
        Capability::CAP_SETUID,
        "workers drop to workers.user after receiving their sockets",
    ),
    (Capability::CAP_SETGID, "as CAP_SETUID, for the group"),
    (
        Capability::CAP_IPC_LOCK,
        "workers set up io_uring rings before dropping root",
    ),
    (
        Capability::CAP_KILL,
        "stopping workers that now run as another user",
    ),
];

/// The capabilities to keep; CAP_CHOWN only to hand the control socket to
/// `control.group` (it is re-created if deleted), CAP_BPF only when the
/// early-drop XDP program is wanted (`workers.early_drop`: loading it and
/// creating its map; attaching it takes CAP_NET_ADMIN, kept anyway).
pub fn keep_set(control_group: bool, bpf: bool) -> CapsHashSet {
    let mut keep: CapsHashSet = KEPT.iter().map(|(c, _)| *c).collect();
    if control_group {
        keep.insert(Capability::CAP_CHOWN);
    }
    if bpf {
        keep.insert(Capability::CAP_BPF);
    }
    keep
}

/// Drop every capability outside `keep_set`. Returns the names dropped
/// from the permitted set (empty for an unprivileged process).
pub fn drop_unneeded(control_group: bool, bpf: bool) -> Result<Vec<String>, String> {
    let e = |what: &str, err: caps::errors::CapsError| format!("{what}: {err}");
    let permitted = caps::read(None, CapSet::Permitted).map_err(|x| e("reading caps", x))?;
    let keep: CapsHashSet = keep_set(control_group, bpf)
        .intersection(&permitted)
        .copied()
        .collect();
    // The bounding set first: shrinking it needs CAP_SETPCAP, which is
    // about to go.
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        let bounding = caps::read(None, CapSet::Bounding).map_err(|x| e("reading bounding", x))?;
        for c in bounding.difference(&keep) {
            caps::drop(None, CapSet::Bounding, *c).map_err(|x| e("bounding set", x))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|x| e("ambient set", x))?;
    caps::clear(None, CapSet::Inheritable).map_err(|x| e("inheritable set", x))?;
    caps::set(None, CapSet::Effective, &keep).map_err(|x| e("effective set", x))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(|x| e("permitted set", x))?;
    let mut dropped: Vec<String> = permitted.difference(&keep).map(|c| c.to_string()).collect();
    dropped.sort();
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_workers_and_sockets_need_and_chown_only_for_a_group() {
        let k = keep_set(false, false);
        assert!(k.contains(&Capability::CAP_NET_RAW));
        assert!(k.contains(&Capability::CAP_IPC_LOCK));
        assert!(!k.contains(&Capability::CAP_SYS_ADMIN));
        assert!(!k.contains(&Capability::CAP_CHOWN));
        assert!(!k.contains(&Capability::CAP_BPF));
        assert!(keep_set(true, false).contains(&Capability::CAP_CHOWN));
        assert!(keep_set(false, true).contains(&Capability::CAP_BPF));
    }
}
