//! Small helpers every actor uses: poison-tolerant locking, periodic
//! ticks, and reading a child's failure from a supervision event.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ractor::{ActorCell, ActorRef, Message, SupervisionEvent};

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

/// The child that went down and why, if `evt` says one failed or stopped
/// on its own; other events (started, state changes) give `None`.
pub fn child_down(evt: SupervisionEvent) -> Option<(ActorCell, String)> {
    match evt {
        SupervisionEvent::ActorFailed(cell, err) => Some((cell, err.to_string())),
        SupervisionEvent::ActorTerminated(cell, _, reason) => Some((
            cell,
            format!("stopped unexpectedly ({})", reason.unwrap_or_default()),
        )),
        _ => None,
    }
}
