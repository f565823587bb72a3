//! A dedicated thread that performs a node's writes with group commit, so
//! that no async executor ever blocks on `fsync`.

use crate::storage::{DiskLog, StorageError};
use raft_core::{Persist, PersistToken};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Owns a [`DiskLog`] on its own thread. Writes are performed in submission
/// order; every batch that is waiting when the thread wakes is written and
/// made durable with one `sync`, then `on_durable` is told the newest token.
#[derive(Debug)]
pub struct DiskThread {
    tx: Option<mpsc::Sender<Persist>>,
    handle: Option<JoinHandle<()>>,
}

impl DiskThread {
    /// Starts the thread. `on_durable` runs on it: keep it short (send the
    /// token to the task that owns the node). After an error it is called
    /// once with the error and the thread stops accepting writes.
    ///
    /// Fails only if the operating system refuses to start a thread (then
    /// `log` and `on_durable` are dropped and nothing was written).
    pub fn spawn(
        log: DiskLog,
        on_durable: impl FnMut(Result<PersistToken, StorageError>) + Send + 'static,
    ) -> std::io::Result<DiskThread> {
        DiskThread::spawn_timed(log, on_durable, |_| {})
    }

    /// [`DiskThread::spawn`], and `on_sync` is told how long each
    /// successful `sync` took (the batch's fdatasync and, with
    /// [`Watermark::BeforeAck`](crate::Watermark::BeforeAck), the watermark's).
    pub fn spawn_timed(
        mut log: DiskLog,
        mut on_durable: impl FnMut(Result<PersistToken, StorageError>) + Send + 'static,
        mut on_sync: impl FnMut(Duration) + Send + 'static,
    ) -> std::io::Result<DiskThread> {
        let (tx, rx) = mpsc::channel::<Persist>();
        let handle = std::thread::Builder::new().name("raft-disk".into()).spawn(move || {
            loop {
                let first = match rx.try_recv() {
                    Ok(p) => p,
                    Err(mpsc::TryRecvError::Disconnected) => break,
                    Err(mpsc::TryRecvError::Empty) => {
                        // Out of work: catch the synced watermark up (a
                        // no-op unless `Watermark::Deferred` left it behind).
                        if let Err(e) = log.settle_watermark() {
                            on_durable(Err(e));
                            return;
                        }
                        match rx.recv() {
                            Ok(p) => p,
                            Err(_) => break,
                        }
                    }
                };
                let mut last = first.token;
                let mut result = log.write(&first.write);
                while result.is_ok() {
                    match rx.try_recv() {
                        Ok(p) => {
                            last = p.token;
                            result = log.write(&p.write);
                        }
                        Err(_) => break,
                    }
                }
                let started = Instant::now();
                match result.and_then(|()| log.sync()) {
                    Ok(()) => {
                        on_sync(started.elapsed());
                        on_durable(Ok(last));
                    }
                    Err(e) => {
                        on_durable(Err(e));
                        return;
                    }
                }
            }
            // Stopping: leave the watermark at the end (an error here loses
            // nothing: every write was acknowledged durable already).
            let _ = log.settle_watermark();
        })?;
        Ok(DiskThread { tx: Some(tx), handle: Some(handle) })
    }

    /// Queues a write. Returns false if the thread has stopped (after an error).
    pub fn submit(&self, persist: Persist) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.send(persist).is_ok())
    }

    /// Finishes every queued write and stops the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for DiskThread {
    fn drop(&mut self) {
        self.stop();
    }
}
