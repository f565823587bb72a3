//! A state machine wrapper that times each `apply` for the node's metrics.

use crate::metrics::Metrics;
use raft_core::codec::DecodeError;
use raft_core::{Entry, LogIndex};
use raft_host::{RestoreError, StateMachine};
use std::sync::Arc;
use std::time::Instant;

/// The application's state machine, with every `apply` timed into
/// `raft_apply_latency_seconds`. Everything else passes straight through.
pub(crate) struct Timed<S> {
    pub(crate) inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Timed<S> {
    pub(crate) fn new(inner: S, metrics: Arc<Metrics>) -> Timed<S> {
        Timed { inner, metrics }
    }
}

impl<S: StateMachine> StateMachine for Timed<S> {
    type Command = S::Command;
    type Output = S::Output;

    fn apply(&mut self, index: LogIndex, command: S::Command) -> S::Output {
        self.inner.apply(index, command)
    }

    fn skip(&mut self, index: LogIndex) {
        self.inner.skip(index)
    }

    fn undecodable(&mut self, index: LogIndex, error: DecodeError) -> Option<S::Output> {
        self.inner.undecodable(index, error)
    }

    /// What the host calls: timed, and the application's own version (typed
    /// or raw) does the work.
    fn apply_entry(&mut self, entry: &Entry) -> Option<S::Output> {
        let started = Instant::now();
        let out = self.inner.apply_entry(entry);
        self.metrics.applied(started.elapsed());
        out
    }

    fn snapshot(&self) -> Vec<u8> {
        self.inner.snapshot()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), DecodeError> {
        self.inner.restore(snapshot)
    }

    fn write_snapshot(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.inner.write_snapshot(out)
    }

    fn snapshot_writer(&self) -> Option<raft_host::SnapshotWriter> {
        self.inner.snapshot_writer()
    }

    fn restore_from(&mut self, input: &mut dyn std::io::Read) -> Result<(), RestoreError> {
        self.inner.restore_from(input)
    }

    fn last_applied(&self) -> LogIndex {
        self.inner.last_applied()
    }
}
