//! A dedicated thread that performs a node's writes with group commit, so
//! that no async executor ever blocks on `fsync`.

use crate::storage::{DiskLog, StorageError};
use raft_core::{Persist, PersistToken};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the thread waits for more work before it catches the synced
/// watermark up ([`DiskLog::settle_watermark`], an fdatasync when
/// [`Watermark::Deferred`](crate::Watermark::Deferred) left it behind).
/// Settling at the first idle moment put that fdatasync in the way of the
/// next write whenever writes came one at a time (a client waiting for each
/// answer): with this delay, steady writes move the watermark themselves,
/// one sync behind, and it settles once they pause.
const SETTLE_AFTER: Duration = Duration::from_millis(5);

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
                    Err(mpsc::TryRecvError::Empty) => match rx.recv_timeout(SETTLE_AFTER) {
                        Ok(p) => p,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
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
                    },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::{PowerLoss, SimFs};
    use crate::storage::{DiskLogOptions, NodeMeta};
    use crate::{Driver, KvStore};
    use raft_core::{Config, Instant, LogIndex, NodeId, Restored};
    use std::path::Path;
    use std::sync::Arc;

    const ME: NodeMeta = NodeMeta { node_id: NodeId(1), cluster_id: 7 };

    fn open(sim: &SimFs) -> (DiskLog, crate::storage::Recovered) {
        open_with(sim, DiskLogOptions::default()).unwrap()
    }

    fn open_with(sim: &SimFs, options: DiskLogOptions) -> Result<(DiskLog, crate::storage::Recovered), StorageError> {
        DiskLog::open_on(Arc::new(sim.clone()), Path::new("/data"), ME, options)
    }

    /// The writes of a one-node cluster that elects itself and takes
    /// `proposals` commands (each acknowledged at once, without a disk): a
    /// fresh log accepts them in order. Returns them and the last entry's index.
    fn writes(proposals: u64) -> (Vec<Persist>, LogIndex) {
        let now = Instant::ZERO;
        let config = Config::new(NodeId(1), [NodeId(1)]);
        let mut d = Driver::new(config, Restored::default(), KvStore::new(), now).unwrap();
        let mut all = Vec::new();
        let drain = |d: &mut Driver<KvStore>, all: &mut Vec<Persist>| {
            let writes = d.drain(now).unwrap().writes;
            for p in &writes {
                d.handle_persisted(now, p.token);
            }
            all.extend(writes);
        };
        d.handle_timeout(d.poll_timeout().unwrap());
        for _ in 0..4 {
            drain(&mut d, &mut all);
        }
        assert!(d.node().role() == raft_core::Role::Leader, "the single node did not elect itself");
        let mut last = LogIndex(0);
        for i in 0..proposals {
            last = d.propose(now, vec![i as u8; 10], i).unwrap();
            drain(&mut d, &mut all);
        }
        (all, last)
    }

    #[test]
    fn shutdown_returns_once_every_submitted_write_is_durable_and_reported() {
        for shut_by_drop in [false, true] {
            let sim = SimFs::new();
            let (log, _) = open(&sim);
            let (writes, last_index) = writes(20);
            let last_token = writes.last().unwrap().token;
            let (tx, rx) = mpsc::channel();
            let syncs = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let counted = syncs.clone();
            // A slow sync report: the thread is still busy when the last
            // write has been submitted, so only waiting for it passes.
            let disk = DiskThread::spawn_timed(
                log,
                move |r| tx.send(r.map_err(|e| e.to_string())).unwrap(),
                move |_| {
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                },
            )
            .unwrap();
            for p in writes {
                assert!(disk.submit(p), "the running thread refused a write");
            }
            if shut_by_drop {
                drop(disk);
            } else {
                disk.shutdown();
            }
            // The thread has ended: every report is in and `on_durable` is gone.
            let reports: Vec<_> = rx.try_iter().collect();
            assert!(matches!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected)), "the thread still runs");
            assert!(reports.iter().all(|r| r.is_ok()), "{reports:?}");
            assert_eq!(reports.last(), Some(&Ok(last_token)), "drop: {shut_by_drop}");
            assert_eq!(syncs.load(std::sync::atomic::Ordering::Relaxed), reports.len() as u64);
            // Tokens come in order, one per sync (group commit).
            assert!(reports.windows(2).all(|w| w[0].as_ref().unwrap().get() < w[1].as_ref().unwrap().get()));
            // The log is closed (its lock free) and holds every entry after a power loss.
            sim.power_loss(PowerLoss::DropUnsynced);
            let (_, rec) = open(&sim);
            assert_eq!(rec.entries.last().map(|e| e.index), Some(last_index));
        }
    }

    #[test]
    fn an_idle_thread_settles_a_deferred_watermark_by_itself() {
        use crate::Watermark;
        use crate::storage::fs::Fs;
        let open_deferred = |sim: &SimFs| open_with(sim, DiskLogOptions::default().watermark(Watermark::Deferred));
        let sim = SimFs::new();
        let (log, _) = open_deferred(&sim).unwrap();
        let (writes, last_index) = writes(5);
        let last_token = writes.last().unwrap().token;
        let (tx, rx) = mpsc::channel();
        let disk = DiskThread::spawn(log, move |r| {
            let _ = tx.send(r.map_err(|e| e.to_string()));
        })
        .unwrap();
        for p in writes {
            assert!(disk.submit(p));
        }
        while rx.recv().unwrap().unwrap() != last_token {}
        // The last proposal's command (`writes` proposes `[i; 10]`) is in
        // the last sync's records, beyond the watermark until it settles.
        let segment = {
            let names = sim.list(Path::new("/data")).unwrap();
            Path::new("/data").join(names.into_iter().find(|n| n.to_string_lossy().starts_with("log-")).unwrap())
        };
        let damaged_after_power_loss = || {
            let fork = sim.fork();
            fork.power_loss(PowerLoss::DropUnsynced);
            let mut bytes = fork.contents(&segment).unwrap();
            let at = bytes.windows(10).rposition(|w| w == [4u8; 10]).expect("the last command is on disk");
            bytes[at] ^= 0x10;
            fork.set_contents(&segment, &bytes);
            open_deferred(&fork)
        };
        // Settled, damage to that record is corruption; before, it is cut
        // as a torn write. The thread settles while it still runs (no stop,
        // which settles too), once no write has come for a moment.
        let settled = (0..5000).any(|_| match damaged_after_power_loss() {
            Err(StorageError::Corrupt { .. }) => true,
            Ok((_, rec)) => {
                assert!(rec.entries.last().map(|e| e.index) < Some(last_index), "the damaged record was kept");
                std::thread::sleep(Duration::from_millis(1));
                false
            }
            Err(e) => panic!("{e}"),
        });
        assert!(settled, "the idle thread never moved the watermark over the last sync");
        drop(disk);
    }

    #[test]
    fn a_failed_write_is_reported_once_and_the_thread_then_refuses_writes() {
        let sim = SimFs::new();
        let (log, _) = open(&sim);
        let (writes, _) = writes(3);
        // Every later disk operation fails.
        sim.fail_after(0);
        let (tx, rx) = mpsc::channel();
        let disk = DiskThread::spawn(log, move |r| tx.send(r.map_err(|e| e.to_string())).unwrap()).unwrap();
        assert!(disk.submit(writes[0].clone()));
        let first = rx.recv().unwrap();
        assert!(first.is_err(), "a write on a failing disk was reported durable");
        // The thread stops: `submit` says so (the thread drops its queue on
        // its way out, right after the report).
        let refused = (0..1000).any(|_| {
            let refused = !disk.submit(writes[1].clone());
            if !refused {
                std::thread::sleep(Duration::from_millis(1));
            }
            refused
        });
        assert!(refused, "the stopped thread still accepts writes");
        disk.shutdown();
        assert_eq!(rx.try_iter().count(), 0, "more than one report after the error");
    }
}
