//! The queue a command's output takes toward a terminal (the SSH channel, the console).
//!
//! The shell writes synchronously ([`super::shell::Sink::write`]); the consumer sends
//! each chunk to the SSH channel, and that send waits for the client's window. The
//! consumer polls the queue before the shell (`biased` select), so while the client is
//! not reading, the command is not polled either: that is the backpressure, and it
//! bounds what a command streams over time (`ping`, `nc -l`, the `ssh` relay). What a
//! command writes between two of its own pauses (say `cat` of many files) is bounded
//! here: once [`OUTPUT_QUEUE_LIMIT`] bytes wait, further chunks are dropped and
//! counted, and the consumer says so once the command ends. A chunk is always accepted
//! into an empty queue, so one large write (a file read whole) still goes out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::shell::Chunk;

/// Output a command may have waiting toward a terminal, in bytes.
pub const OUTPUT_QUEUE_LIMIT: usize = 1024 * 1024;

/// The most input a command reads whole from the SSH channel (`cat > file`), in bytes:
/// as much as a root volume holds. Input past it is read and dropped.
pub const INPUT_LIMIT: usize = super::EMULATED_ROOT_VOLUME_LIMIT as usize;

/// Chunks of input waiting for a command; while they wait, the channel is not read.
pub const INPUT_QUEUE_CHUNKS: usize = 64;

struct Shared {
    queued: AtomicUsize,
    dropped: AtomicU64,
    limit: usize,
}

/// The writing end, held by the shell's sinks.
#[derive(Clone)]
pub struct OutTx {
    tx: mpsc::UnboundedSender<Chunk>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for OutTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutTx")
            .field("queued", &self.shared.queued.load(Ordering::Relaxed))
            .finish()
    }
}

/// The reading end, held by whoever relays output to the terminal.
pub struct OutRx {
    rx: mpsc::UnboundedReceiver<Chunk>,
    shared: Arc<Shared>,
}

/// A queue holding at most about `limit` bytes.
pub fn out_queue(limit: usize) -> (OutTx, OutRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        dropped: AtomicU64::new(0),
        limit,
    });
    (
        OutTx {
            tx,
            shared: shared.clone(),
        },
        OutRx { rx, shared },
    )
}

impl OutTx {
    /// Queues a chunk; `false` when it was dropped (queue full, or nobody reads).
    pub fn send(&self, chunk: Chunk) -> bool {
        let len = chunk.data.len();
        let s = &self.shared;
        let queued = s.queued.load(Ordering::Acquire);
        if queued > 0 && queued.saturating_add(len) > s.limit {
            s.dropped.fetch_add(len as u64, Ordering::Relaxed);
            return false;
        }
        s.queued.fetch_add(len, Ordering::AcqRel);
        if self.tx.send(chunk).is_err() {
            s.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }
}

impl OutRx {
    /// The next chunk; `None` once every writer is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Chunk> {
        let chunk = self.rx.recv().await?;
        self.shared
            .queued
            .fetch_sub(chunk.data.len(), Ordering::AcqRel);
        Some(chunk)
    }

    /// The next chunk if one is waiting.
    pub fn try_recv(&mut self) -> Option<Chunk> {
        let chunk = self.rx.try_recv().ok()?;
        self.shared
            .queued
            .fetch_sub(chunk.data.len(), Ordering::AcqRel);
        Some(chunk)
    }

    /// Bytes waiting now.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Bytes dropped since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.shared.dropped.swap(0, Ordering::AcqRel)
    }
}

/// The line a consumer prints after a command whose output overflowed the queue.
pub fn dropped_notice(bytes: u64) -> String {
    format!(
        "vpclab: {bytes} bytes of output dropped: the command wrote more than {} KiB faster than the terminal read it\n",
        OUTPUT_QUEUE_LIMIT / 1024
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: usize) -> Chunk {
        Chunk {
            stderr: false,
            data: vec![b'y'; n],
        }
    }

    #[test]
    fn issue10_shell_output_queue_is_bounded() {
        let (tx, mut rx) = out_queue(OUTPUT_QUEUE_LIMIT);
        // 64 MiB written without the consumer running: only the limit is held.
        for _ in 0..1024 {
            tx.send(chunk(64 * 1024));
        }
        assert!(rx.queued() <= OUTPUT_QUEUE_LIMIT, "{}", rx.queued());
        let dropped = rx.take_dropped();
        assert_eq!(dropped as usize + rx.queued(), 64 * 1024 * 1024);
        // Draining makes room again; nothing is dropped while the consumer keeps up.
        while rx.try_recv().is_some() {}
        assert_eq!(rx.queued(), 0);
        assert!(tx.send(chunk(10)));
        assert_eq!(rx.take_dropped(), 0);
    }

    #[test]
    fn one_large_write_into_an_empty_queue_goes_through() {
        let (tx, mut rx) = out_queue(1024);
        assert!(tx.send(chunk(4096)));
        assert!(!tx.send(chunk(1)));
        assert_eq!(rx.try_recv().map(|c| c.data.len()), Some(4096));
    }
}
