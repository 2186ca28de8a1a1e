//! The driver: the one tokio task per world that moves packets.
//!
//! It sleeps until a socket operation marks a host dirty (a [`Notify`]) or
//! the earliest smoltcp timer (`poll_at`: retransmission, delayed ACK,
//! keep-alive) is due; then it polls the hosts that need it and carries what
//! they send through the forwarder ([`World::run`]). An idle world therefore
//! costs no CPU: no busy polling, no periodic tick.
//!
//! Time is tokio's: smoltcp instants are microseconds since the world was
//! created, so a paused tokio clock (`start_paused`) makes whole-world tests
//! deterministic and lets a 30-second connect timeout pass at once.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::host::Shared;
#[cfg(doc)]
use crate::host::world::World;

/// Pump the world behind `shared` until it is dropped.
pub(crate) async fn run(shared: Weak<Shared>, notify: Arc<Notify>) {
    loop {
        let (result, start) = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let now = shared.now();
            let result = shared.lock().run(now);
            // Wake the tasks whose sockets changed, now that they can lock.
            shared.deferred.wake_all();
            (result, shared.start)
        };
        if result.more {
            // The round budget ran out: give application tasks a turn.
            tokio::task::yield_now().await;
            continue;
        }
        let deadline = result
            .next_timer
            .map(|us| start + Duration::from_micros(us.max(0) as u64));
        let now = tokio::time::Instant::now();
        let deadline = match deadline {
            // A timer due now that moved nothing: smoltcp time has
            // millisecond-granular timers; wait a little instead of spinning.
            Some(d) if d <= now && !result.progressed => Some(now + Duration::from_millis(1)),
            Some(d) if d <= now => {
                tokio::task::yield_now().await;
                continue;
            }
            d => d,
        };
        match deadline {
            Some(d) => {
                tokio::select! {
                    _ = notify.notified() => {}
                    _ = tokio::time::sleep_until(d) => {}
                }
            }
            None => notify.notified().await,
        }
    }
}
