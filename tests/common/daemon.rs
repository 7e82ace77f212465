//! Running `mcrd supervisor` and `mcrctl` in a namespace (filled in with the daemon).
