//! The capture tap of an account's fabric: what `vpclab capture` streams.
//!
//! [`Tap`] sits in [`super::fabric::LiveFabric::forward`], where every packet of the
//! world passes: a packet an interface sends is copied as it was sent (before the
//! fabric decides, so a packet its own security group drops is still seen, as tcpdump
//! on the instance would see it), a packet delivered to an interface as it arrives
//! (after any translation). Copies go to each subscriber that watches that interface,
//! over a bounded channel; a subscriber that falls behind loses packets (counted),
//! never slows the world.
//!
//! When nobody captures, the cost on the packet path is one atomic load
//! ([`Tap::active`]).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::mpsc;
use vpclab_netstack::Port;

/// Packets a subscriber may have queued before further ones are dropped.
pub const QUEUE: usize = 4096;

/// One captured packet.
#[derive(Clone, Debug)]
pub struct Captured {
    pub at: SystemTime,
    /// The interface the packet crossed.
    pub eni: Arc<str>,
    /// Sent by the interface (true) or delivered to it (false).
    pub sent: bool,
    pub data: Vec<u8>,
}

struct Subscriber {
    id: u64,
    enis: BTreeSet<Arc<str>>,
    tx: mpsc::Sender<Captured>,
    dropped: Arc<AtomicU64>,
}

/// The tap of one fabric.
#[derive(Default)]
pub struct Tap {
    /// The number of subscribers: the one thing the packet path reads when idle.
    active: AtomicUsize,
    next: AtomicU64,
    subs: Mutex<Vec<Subscriber>>,
}

/// A subscription: packets arrive on `rx`; dropping it unsubscribes.
pub struct Subscription {
    pub rx: mpsc::Receiver<Captured>,
    /// Packets lost because the queue was full.
    pub dropped: Arc<AtomicU64>,
    tap: Arc<Tap>,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.tap.unsubscribe(self.id);
    }
}

impl Tap {
    /// Whether anybody captures (one relaxed atomic load).
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed) != 0
    }

    /// Starts capturing what crosses `enis`.
    pub fn subscribe(self: &Arc<Self>, enis: BTreeSet<Arc<str>>) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUE);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.push(Subscriber {
            id,
            enis,
            tx,
            dropped: dropped.clone(),
        });
        self.active.store(subs.len(), Ordering::Relaxed);
        Subscription {
            rx,
            dropped,
            tap: self.clone(),
            id,
        }
    }

    fn unsubscribe(&self, id: u64) {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|s| s.id != id);
        self.active.store(subs.len(), Ordering::Relaxed);
    }

    /// Offers a packet that crossed `port` (sent by it when `sent`) to the subscribers.
    pub fn offer(&self, port: &Port, sent: bool, data: &[u8]) {
        let Port::Eni(eni) = port else { return };
        let subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        let mut copy: Option<Captured> = None;
        for s in subs.iter().filter(|s| s.enis.contains(eni)) {
            let c = copy
                .get_or_insert_with(|| Captured {
                    at: SystemTime::now(),
                    eni: eni.clone(),
                    sent,
                    data: data.to_vec(),
                })
                .clone();
            if s.tx.try_send(c).is_err() {
                s.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_watched_interfaces_are_captured_and_dropping_unsubscribes() {
        let tap = Arc::new(Tap::default());
        assert!(!tap.active());
        let a: Arc<str> = Arc::from("eni-a");
        let mut sub = tap.subscribe([a.clone()].into_iter().collect());
        assert!(tap.active());
        tap.offer(&Port::Eni(Arc::from("eni-b")), true, b"other");
        tap.offer(&Port::Internet, false, b"internet");
        tap.offer(&Port::Eni(a.clone()), false, b"mine");
        let got = sub.rx.recv().await.expect("a packet");
        assert_eq!(got.data, b"mine");
        assert!(!got.sent);
        assert!(sub.rx.try_recv().is_err(), "nothing else was for eni-a");
        drop(sub);
        assert!(!tap.active(), "the last subscriber left");
    }
}
