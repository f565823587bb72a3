//! What the core asks its host to do. Drain with `Node::poll_output` after every input.

use crate::error::{ForwardError, ReadError};
use crate::message::InstallSnapshot;
use crate::message::Message;
use crate::types::{Entry, HardState, LogIndex, NodeId, Snapshot, SnapshotDigest, Term};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// Identifies one [`Persist`] request. Tokens increase with every request.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistToken(pub(crate) u64);

impl PersistToken {
    /// The token's sequence number (for logs).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// One output. Exhaustive on purpose: every variant but [`Output::Event`]
/// carries a duty, so a new one must break every host's build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Make a write durable, then report it with `Node::handle_persisted`.
    Persist(Persist),
    /// Transmit a message now. See [`Outgoing`] for why no send ever waits.
    Send(Outgoing),
    /// Apply committed entries to the state machine, in order.
    ///
    /// Every committed index is delivered exactly once per node lifetime, in
    /// increasing order without gaps, starting after the `last_applied` index
    /// given at start-up, and only once the entries are durable locally.
    /// `Payload::Noop` entries are included so that index accounting stays
    /// simple; the host skips them.
    Apply(Vec<Entry>),
    /// Replace the state machine's state with this snapshot. Emitted once the
    /// snapshot is durable, before any [`Output::Apply`] of a later index; the
    /// next `Apply` continues at `snapshot.meta.index + 1`. If the host holds
    /// the snapshot's bytes (a stored snapshot, see [`SnapshotDigest`]),
    /// `data` is empty: restore from the host's stored snapshot of this `meta`.
    RestoreSnapshot(Snapshot),
    /// Send a chunk of a stored snapshot (one whose bytes the host holds, see
    /// `Node::compact_stored`): fill the message's `InstallSnapshot::data`
    /// with the `len` bytes of the stored snapshot at its `index` starting at
    /// its `offset`, then send it like an [`Output::Send`]. If the host no
    /// longer holds that snapshot (a newer one replaced it), drop it: the
    /// leader sends again from the newer one.
    SendSnapshotChunk {
        /// The message, `data` empty.
        outgoing: Outgoing,
        /// How many bytes to put in it.
        len: u64,
    },
    /// With `Config::host_stores_snapshots`: write this chunk of a snapshot
    /// being received at `chunk.offset` of the host's partial snapshot. A
    /// chunk at offset 0 starts a new partial snapshot (of `chunk.index`,
    /// `chunk.snapshot_term` and `chunk.membership`) and discards any other.
    /// Chunks come in order without gaps; nothing needs to be durable yet.
    /// When the last one has arrived and the whole snapshot's checksum
    /// matched, a [`Persist`] carries the snapshot with
    /// [`Write::snapshot_digest`] set: the partial snapshot is the one to store.
    /// The [`Output::RestoreSnapshot`] of that snapshot may come before the
    /// `Persist` (when the local log already held every entry it covers), so
    /// the received bytes must be restorable from then on.
    SaveSnapshotChunk {
        /// The leader that sent it.
        from: NodeId,
        /// The chunk, as received.
        chunk: InstallSnapshot,
    },
    /// The outcome of one accepted [`Node::read_index`](crate::Node::read_index)
    /// call (exactly one per call). On `Ok(index)`, serve the read once the
    /// state machine has applied `index` (or more): the read then reflects
    /// every write acknowledged before `read_index` was called, so it is
    /// linearizable. On `Err`, nothing was read; the caller may retry.
    Read {
        /// The id given to `read_index`.
        id: ReadId,
        /// The read index, or why there is none.
        result: Result<LogIndex, ReadError>,
    },
    /// The outcome of one accepted [`Node::forward`](crate::Node::forward)
    /// call (exactly one per call). On `Ok((index, term))` the command was
    /// appended at `index` in `term`: it is applied if an entry of that term
    /// is applied at that index, and was lost otherwise, exactly as for a
    /// local [`Node::propose`](crate::Node::propose).
    Forwarded {
        /// The id given to `forward`.
        id: ProposalId,
        /// Where the leader appended it, or why not (or that it is unknown).
        result: Result<(LogIndex, Term), ForwardError>,
    },
    /// Something a host may want to show or react to.
    Event(Event),
}

/// The host's name for one forwarded proposal, echoed in
/// [`Output::Forwarded`]. Ids of forwards in progress on one node must differ.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId(pub u64);

/// The host's name for one read, echoed in [`Output::Read`]. Ids of reads
/// in progress on one node must differ.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReadId(pub u64);

/// A durable write. **The ordering rule lives here:**
///
/// 1. Perform writes in the order they are emitted (they may be batched: one
///    fsync for several is fine). Within one write: store `hard_state`; store
///    `snapshot` (atomically; with `snapshot_digest` set, the snapshot's bytes
///    are the host's own: the one it gave `Node::compact_stored`, or the one
///    it received through [`Output::SaveSnapshotChunk`]) and discard every
///    stored entry it covers; remove
///    every entry at index `>= truncate_from`; append `entries`.
/// 2. When a write and all earlier ones are durable, call
///    `Node::handle_persisted(now, token)` (once for the newest is enough).
/// 3. The core withholds every message whose correctness depends on a write
///    (vote grants, vote requests, acknowledgements of entries) until that
///    write is reported durable. So a host never delays a [`Output::Send`];
///    it may send in parallel with writing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Persist {
    /// Report this token once the write is durable.
    pub token: PersistToken,
    /// What to write.
    pub write: Write,
}

/// The contents of a [`Persist`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Write {
    /// Replace the stored term and vote, if set.
    pub hard_state: Option<HardState>,
    /// Store this snapshot, replacing any older one, and discard every stored
    /// entry at or below its index. (Boxed: snapshots are rare, and every
    /// [`Output`] is as large as a `Persist`.)
    pub snapshot: Option<Box<Snapshot>>,
    /// Set if the host holds `snapshot`'s bytes (its `data` is then empty):
    /// store the host's copy of the snapshot of that `meta`, which has this
    /// length and checksum.
    pub snapshot_digest: Option<SnapshotDigest>,
    /// Delete every stored entry at this index or later, if set.
    pub truncate_from: Option<LogIndex>,
    /// Then append these, contiguous, starting at the end of the stored log.
    pub entries: Vec<Entry>,
}

impl Write {
    /// True if there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none() && self.snapshot.is_none() && self.truncate_from.is_none() && self.entries.is_empty()
    }
}

/// A message to transmit to `to`.
///
/// Safe to send the moment it is polled: the core emits it only after every
/// write it depends on has been reported durable. Messages may be dropped,
/// duplicated or reordered by the network; Raft tolerates all three.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The recipient.
    pub to: NodeId,
    /// The message.
    pub message: Message,
}

/// A node's role (paper §5.1).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Follows a leader and votes.
    Follower,
    /// Asking whether it would win an election (pre-vote), without
    /// changing its term.
    PreCandidate,
    /// Asking for votes in its term.
    Candidate,
    /// Elected for its term.
    Leader,
}

/// Notable changes, for hosts and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The node's role, term or known leader changed. Emitted once per change,
    /// after the step that caused it.
    RoleChanged {
        /// The new role.
        role: Role,
        /// The current term.
        term: Term,
        /// The leader of `term`, if known.
        leader: Option<NodeId>,
    },
    /// The snapshot policy in the config says the log has grown enough: take
    /// a snapshot of the state machine at `applied` (or any later applied
    /// index) and hand it to `Node::compact`. Emitted once per policy
    /// threshold crossing; ignoring it only costs memory.
    SnapshotWanted {
        /// The last index delivered to the state machine.
        applied: LogIndex,
    },
    /// A follower refused this leader's snapshot as larger than its
    /// `Config::max_snapshot_bytes`; it is not resent until a newer snapshot
    /// exists. The follower cannot catch up until the limits agree.
    SnapshotRefused {
        /// The follower.
        peer: NodeId,
        /// The snapshot's index.
        index: LogIndex,
        /// Its size in bytes.
        size: u64,
    },
    /// The configuration in effect changed (a configuration entry was
    /// appended, truncated, or arrived with a snapshot): update the peers'
    /// addresses from it.
    MembershipChanged {
        /// The configuration now in effect (boxed, as in [`Snapshot`]).
        membership: alloc::boxed::Box<crate::Membership>,
    },
    /// A leadership transfer started by `Node::transfer_leadership` ended.
    TransferFinished {
        /// The node leadership was to go to.
        to: NodeId,
        /// How it ended.
        outcome: TransferOutcome,
    },
}

/// How a leadership transfer ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransferOutcome {
    /// The target campaigned (a higher term reached this node, which
    /// stepped down). Watch `RoleChanged` for the new leader.
    HandedOver,
    /// The target did not take over within an election timeout; this node
    /// leads on and accepts proposals again.
    TimedOut,
    /// This node stopped leading for another reason first.
    LeadershipLost,
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// Every message is moved into an output and every output through the
    /// node's queue and out of `poll_output`, several times per proposal.
    /// A configuration held inline (four sets) in `InstallSnapshot`,
    /// `Snapshot` and `Event::MembershipChanged` once made a `Message` 168
    /// and an `Output` 224 bytes, each move a `memcpy` call, and cost a
    /// quarter of core-bench's one-at-a-time throughput. Box such parts:
    /// above 128 bytes, x86-64 moves a value with a call, not inline.
    #[test]
    fn messages_and_outputs_stay_small() {
        let message = core::mem::size_of::<Message>();
        assert!(message <= 80, "Message is {message} bytes");
        let output = core::mem::size_of::<Output>();
        assert!(output <= 112, "Output is {output} bytes");
    }
}
