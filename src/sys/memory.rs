//! Giving freed heap memory back to the kernel. glibc's malloc keeps what
//! a process frees in its arenas for reuse and returns only the top of the
//! main heap on its own, so a supervisor that briefly held thousands of
//! rules would keep that memory for the rest of its life (issue 12, item
//! 4). After a large shrink the supervisor asks for it back explicitly.

/// Return free heap pages of every malloc arena to the kernel. Costs a
/// walk over the free lists (milliseconds for a heap of tens of MB), so
/// call it after large shrinks, not after every change. A no-op where the
/// C library is not glibc.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases malloc's own free lists;
    // it takes no pointers and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
