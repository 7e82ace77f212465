//! Small helpers every actor uses: poison-tolerant locking and periodic
//! ticks.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ractor::{ActorRef, Message};

/// Lock a mutex, recovering the data if a panicking thread poisoned it:
/// every value we keep under a lock is replaced whole, never left half
/// updated, so the data is still consistent.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Send `msg()` to `me` every `every`, until the actor is gone. The
/// handle is aborted by the actor's state when it stops.
pub fn spawn_ticker<M: Message>(
    me: ActorRef<M>,
    every: Duration,
    msg: fn() -> M,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(every);
        loop {
            iv.tick().await;
            if me.cast(msg()).is_err() {
                return;
            }
        }
    })
}
