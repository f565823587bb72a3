//! Client histories recorded against real nodes, and their check by the
//! linearizability checker of raft-tests.

use raft_host::{ClusterKey, KvOp, KvOutput};
use raft_tests::linearizability::History;
use raft_udp::client::{Client, CommandOutcome};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One command a client ran: when it was called and when it returned
/// (microseconds since the history's start), and how it ended.
#[derive(Debug)]
pub struct Record {
    pub client: u64,
    pub op: KvOp,
    pub call: u64,
    pub outcome: CommandOutcome,
    pub ret: u64,
}

/// What a checked history held, by outcome.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub ok: usize,
    pub unknown: usize,
    pub failed: usize,
    /// Successes called after the `after` given to [`check_linearizable`].
    pub ok_after: usize,
}

/// Checks that `records` form a linearizable history, and panics with the
/// checker's explanation if they do not. A command that timed out may or
/// may not have taken effect; one that failed definitely did not, so it has
/// nothing to explain and is left out.
pub fn check_linearizable(records: Vec<Record>, after: u64) -> Tally {
    let mut history = History::new();
    let mut tally = Tally::default();
    for r in records {
        match r.outcome {
            CommandOutcome::Ok(output) => {
                tally.ok += 1;
                tally.ok_after += usize::from(r.call > after);
                history.record(r.client, r.op, r.call, output, r.ret);
            }
            CommandOutcome::Unknown => {
                tally.unknown += 1;
                let id = history.call(r.client, r.op, r.call);
                history.timed_out(id);
            }
            CommandOutcome::Failed(_) => tally.failed += 1,
        }
    }
    if let Err(e) = history.check() {
        panic!("not linearizable: {e}");
    }
    tally
}

/// Clients writing and reading two keys (puts, cas on what they last saw,
/// gets) until stopped, each on its own session, recording a history.
pub struct Clients {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    log: Arc<Mutex<Vec<Record>>>,
    t0: Instant,
}

impl Clients {
    /// `n` clients of the cluster at `servers`, whose commands each give up
    /// after `timeout`.
    pub fn start(servers: Vec<SocketAddr>, key: ClusterKey, n: u64, timeout: Duration) -> Clients {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let t0 = Instant::now();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (records, stopped) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            rt.block_on(async {
                let mut tasks = Vec::new();
                for c in 0..n {
                    let (servers, key, log, stop) = (servers.clone(), key.clone(), records.clone(), stopped.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut client = Client::connect(servers, key, timeout).await.unwrap();
                        let mut i = 0u64;
                        let mut seen: Option<String> = None;
                        while !stop.load(Ordering::Relaxed) {
                            i += 1;
                            let k = if i.is_multiple_of(3) { "y" } else { "x" };
                            let op = match i % 4 {
                                0 => KvOp::get(k),
                                1 => KvOp::cas(k, seen.as_deref(), format!("c{c}-{i}")),
                                _ => KvOp::put(k, format!("c{c}-{i}")),
                            };
                            let call = t0.elapsed().as_micros() as u64;
                            let outcome = client.execute(op.clone()).await;
                            let ret = t0.elapsed().as_micros() as u64;
                            if let CommandOutcome::Ok(KvOutput::Get(v) | KvOutput::Cas { current: v, .. }) = &outcome {
                                seen = v.clone();
                            }
                            log.lock().unwrap().push(Record { client: c, op, call, outcome, ret });
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            })
        });
        Clients { stop, thread: Some(thread), log, t0 }
    }

    /// Microseconds since the clients started: the clock of the records.
    pub fn now(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    /// Writes (puts and cas) acknowledged so far that were called after
    /// `after` (microseconds since the start).
    pub fn writes_acked_since(&self, after: u64) -> usize {
        let log = self.log.lock().unwrap();
        let write = |r: &Record| !matches!(r.op, KvOp::Get { .. });
        log.iter().filter(|r| r.call > after && write(r) && matches!(r.outcome, CommandOutcome::Ok(_))).count()
    }

    /// Stops the clients once their current commands end; the history.
    pub fn finish(mut self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
