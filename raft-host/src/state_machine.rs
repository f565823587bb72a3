//! The interface between committed log entries and the application.

use raft_core::codec::DecodeError;
use raft_core::{Entry, LogIndex, Payload};
use std::fmt;
use std::io;

/// A deterministic replicated state machine, fed committed entries in log order.
///
/// # Contract
///
/// * **Determinism.** Given the same sequence of entries (and the same
///   snapshot to start from), every replica reaches the same state and
///   returns the same outputs. No clock, randomness or I/O may influence
///   `apply`.
/// * **Total.** Applying never panics on entry contents: bytes that are not
///   a valid command are applied as a no-op (see
///   [`undecodable`](StateMachine::undecodable)), the same on every replica.
/// * **Order.** Entries are given in increasing index order. An entry at or
///   below [`last_applied`](StateMachine::last_applied) is ignored (returns
///   `None`), which makes replaying entries after a restore harmless.
pub trait StateMachine {
    /// The commands applications propose. Hosts encode them with
    /// [`raft_core::codec::encode_value`] (raft-net's `Handle::propose`), and
    /// [`apply_entry`](StateMachine::apply_entry) decodes each committed
    /// command with [`raft_core::codec::decode_value`] before handing it to
    /// [`apply`](StateMachine::apply).
    type Command: serde::Serialize + serde::de::DeserializeOwned;

    /// What applying one command yields (returned to the proposing client).
    type Output;

    /// Applies the command of the committed entry at `index` and advances
    /// `last_applied` to `index`. Called only for `index > last_applied`.
    fn apply(&mut self, index: LogIndex, command: Self::Command) -> Self::Output;

    /// Advances `last_applied` to `index` for a committed entry that carries
    /// no command for the application (a no-op, a configuration change).
    /// Called only for `index > last_applied`.
    fn skip(&mut self, index: LogIndex);

    /// The committed entry at `index` holds bytes that do not decode as a
    /// [`Command`](StateMachine::Command) (`error` says why). It must be
    /// applied as a no-op, the same on every replica: the default skips it
    /// and gives its proposer no output; override it to return an error
    /// output. Called only for `index > last_applied`.
    fn undecodable(&mut self, index: LogIndex, error: DecodeError) -> Option<Self::Output> {
        let _ = error;
        self.skip(index);
        None
    }

    /// Applies one committed entry: what the host calls. Entries at or
    /// below [`last_applied`](StateMachine::last_applied) are ignored
    /// (`None`); a command is decoded and [`apply`](StateMachine::apply)'d,
    /// undecodable bytes go to [`undecodable`](StateMachine::undecodable),
    /// and any other payload is [`skip`](StateMachine::skip)ped.
    ///
    /// The provided version is the typed path. A state machine that wants
    /// raw bytes overrides this method (and keeps the contract above).
    fn apply_entry(&mut self, entry: &Entry) -> Option<Self::Output> {
        if entry.index <= self.last_applied() {
            return None;
        }
        match &entry.payload {
            Payload::Command(bytes) => match raft_core::codec::decode_value::<Self::Command>(bytes) {
                Ok(command) => Some(self.apply(entry.index, command)),
                Err(e) => self.undecodable(entry.index, e),
            },
            _ => {
                self.skip(entry.index);
                None
            }
        }
    }

    /// Serializes the whole state, including `last_applied` and anything that
    /// influences future outputs. Equal states give equal bytes.
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the whole state with one produced by [`snapshot`](StateMachine::snapshot).
    /// On error the state is unchanged.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), DecodeError>;

    /// Streams the same bytes as [`snapshot`](StateMachine::snapshot) into
    /// `out`, so that a host can write a snapshot to disk without holding it
    /// whole in memory. The provided version writes `snapshot()` in one
    /// piece; a state machine with a large state overrides it to write piece
    /// by piece (as [`KvStore`](crate::KvStore) does).
    fn write_snapshot(&self, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(&self.snapshot())
    }

    /// A copy of the state as it is now that writes the same bytes as
    /// [`write_snapshot`](StateMachine::write_snapshot) later, on another
    /// thread, while this state moves on: a host that keeps snapshots on
    /// disk then stops the node only for the copy, not for the write and
    /// its fsync. The provided version returns `None`: the snapshot is
    /// written in place. Override it when a copy is much cheaper than the
    /// write (as [`KvStore`](crate::KvStore) does: a clone in memory).
    fn snapshot_writer(&self) -> Option<SnapshotWriter> {
        None
    }

    /// Replaces the whole state with the snapshot read from `input` to its
    /// end, the bytes [`write_snapshot`](StateMachine::write_snapshot) wrote.
    /// On error the state is unchanged. The provided version reads
    /// everything, then calls [`restore`](StateMachine::restore); override it
    /// to decode piece by piece.
    fn restore_from(&mut self, input: &mut dyn io::Read) -> Result<(), RestoreError> {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).map_err(RestoreError::Io)?;
        self.restore(&bytes).map_err(RestoreError::Decode)
    }

    /// The index of the last entry reflected in the state (0: none).
    fn last_applied(&self) -> LogIndex;
}

/// Writes a snapshot taken earlier (see [`StateMachine::snapshot_writer`]).
pub type SnapshotWriter = Box<dyn FnOnce(&mut dyn io::Write) -> io::Result<()> + Send>;

/// Why [`StateMachine::restore_from`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RestoreError {
    /// Reading the snapshot failed.
    Io(io::Error),
    /// The bytes are not a snapshot of this state machine.
    Decode(DecodeError),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::Io(e) => write!(f, "reading the snapshot failed: {e}"),
            RestoreError::Decode(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RestoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RestoreError::Io(e) => Some(e),
            RestoreError::Decode(e) => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Bytes, Term};

    /// Sums the numbers it is given; keeps the provided methods.
    #[derive(Debug, Default)]
    struct Sum {
        total: u64,
        last_applied: LogIndex,
    }

    impl StateMachine for Sum {
        type Command = u64;
        type Output = u64;

        fn apply(&mut self, index: LogIndex, command: u64) -> u64 {
            self.total += command;
            self.last_applied = index;
            self.total
        }

        fn skip(&mut self, index: LogIndex) {
            self.last_applied = index;
        }

        fn snapshot(&self) -> Vec<u8> {
            [self.total, self.last_applied.0].iter().flat_map(|n| n.to_le_bytes()).collect()
        }

        fn restore(&mut self, snapshot: &[u8]) -> Result<(), DecodeError> {
            let word = |at: usize| snapshot.get(at..at + 8).and_then(|w| w.try_into().ok()).map(u64::from_le_bytes);
            match (word(0), word(8), snapshot.len()) {
                (Some(total), Some(last), 16) => {
                    *self = Sum { total, last_applied: LogIndex(last) };
                    Ok(())
                }
                _ => Err(DecodeError::Malformed("not a Sum".into())),
            }
        }

        fn last_applied(&self) -> LogIndex {
            self.last_applied
        }
    }

    #[test]
    fn the_provided_streaming_methods_carry_the_byte_form() {
        let sm = Sum { total: 12, last_applied: LogIndex(4) };
        let mut out = Vec::new();
        sm.write_snapshot(&mut out).unwrap();
        assert_eq!(out, sm.snapshot());
        let mut back = Sum::default();
        back.restore_from(&mut &out[..]).unwrap();
        assert_eq!((back.total, back.last_applied), (12, LogIndex(4)));
        let err = back.restore_from(&mut &out[..15]).unwrap_err();
        assert!(matches!(err, RestoreError::Decode(_)), "{err}");
        assert_eq!((back.total, back.last_applied), (12, LogIndex(4)));
    }

    fn entry(index: u64, payload: Payload) -> Entry {
        Entry { term: Term(1), index: LogIndex(index), payload }
    }

    fn command(n: u64) -> Payload {
        Payload::Command(Bytes::from(raft_core::codec::encode_value(&n).unwrap()))
    }

    #[test]
    fn the_typed_path_decodes_skips_and_ignores_replays() {
        let mut sm = Sum::default();
        assert_eq!(sm.apply_entry(&entry(1, command(5))), Some(5));
        assert_eq!(sm.apply_entry(&entry(2, Payload::Noop)), None);
        assert_eq!(sm.last_applied(), LogIndex(2));
        // Bytes that are no u64 (trailing data): a no-op without output by default.
        assert_eq!(sm.apply_entry(&entry(3, Payload::Command(Bytes::from(vec![1, 2, 3, 4, 5, 6, 7, 8, 9])))), None);
        assert_eq!(sm.last_applied(), LogIndex(3));
        assert_eq!(sm.apply_entry(&entry(4, command(7))), Some(12));
        // A replay at or below last_applied changes nothing.
        assert_eq!(sm.apply_entry(&entry(4, command(7))), None);
        assert_eq!(sm.apply_entry(&entry(1, command(100))), None);
        assert_eq!(sm.total, 12);
    }
}
