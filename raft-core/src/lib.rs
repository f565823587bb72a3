//! The Raft consensus protocol as a deterministic state machine, with no I/O.
//!
//! `raft-core` decides what a Raft member does; it never does it. It reads no
//! clock, opens no socket or file, spawns no thread and uses no global RNG: time
//! comes in as an [`Instant`] with every input, randomness from
//! [`Config::seed`]. Inputs are the `handle_*` methods and [`Node::propose`];
//! outputs ([`Output`]: persist, send, apply, event) are drained with
//! [`Node::poll_output`], and [`Node::poll_timeout`] says when to call
//! [`Node::handle_timeout`]. The crate is `#![no_std]` with `alloc`; the wire
//! format ([`codec`]) is pure functions over bytes. Runtime adapters
//! (raft-tokio, raft-smol, raft-udp) do the I/O.
//!
//! # The host's loop
//!
//! After every input, drain `poll_output` until `None`. Start each
//! [`Output::Persist`] in order and report it with [`Node::handle_persisted`]
//! once durable; send each [`Output::Send`] at once (the core already held
//! back whatever must wait for a write); apply each [`Output::Apply`]; replace
//! the state machine's state on [`Output::RestoreSnapshot`]; answer
//! [`Event::SnapshotWanted`] with [`Node::compact`]. A host that keeps
//! snapshots on disk rather than in the core answers with
//! [`Node::compact_stored`] instead, fills each [`Output::SendSnapshotChunk`]
//! from its stored snapshot and, with [`Config::host_stores_snapshots`],
//! writes each [`Output::SaveSnapshotChunk`] into the snapshot it receives:
//! the core then never holds a whole snapshot. Then sleep until the
//! earliest of `poll_timeout`, a message, or a finished write. (`raft-host`'s
//! `Driver` does all of this for std hosts.)
//!
//! ```
//! use raft_core::{Config, Instant, Node, NodeId, Output, Restored, Role};
//!
//! // A one-node cluster with an in-memory "disk" that is durable at once.
//! let config = Config::new(NodeId(1), [NodeId(1)]);
//! let mut now = Instant::ZERO;
//! let mut node = Node::new(config, Restored::fresh(), now).unwrap();
//! let mut disk = Vec::new(); // what survives a crash
//! let mut applied = Vec::new();
//!
//! let mut drain = |node: &mut Node, now: Instant| {
//!     while let Some(out) = node.poll_output() {
//!         match out {
//!             Output::Persist(p) => {
//!                 disk.push(p.write); // write + fsync here
//!                 node.handle_persisted(now, p.token);
//!             }
//!             Output::Send(m) => unreachable!("no peers, nothing to send to {:?}", m.to),
//!             Output::SendSnapshotChunk { outgoing, .. } => unreachable!("no peers: {:?}", outgoing.to),
//!             Output::SaveSnapshotChunk { from, .. } => unreachable!("no leader but us: {from:?}"),
//!             Output::Apply(entries) => applied.extend(entries),
//!             Output::RestoreSnapshot(_) | Output::Read { .. } | Output::Forwarded { .. } | Output::Event(_) => {}
//!         }
//!     }
//! };
//!
//! // Sleep until the deadline; the election timeout fires and we win.
//! now = node.poll_timeout().unwrap();
//! node.handle_timeout(now);
//! drain(&mut node, now);
//! assert_eq!(node.role(), Role::Leader);
//!
//! let index = node.propose(now, b"set x 1").unwrap();
//! drain(&mut node, now);
//! assert_eq!(node.commit_index(), index);
//! drop(drain);
//! assert_eq!(applied.last().map(|e| e.index), Some(index));
//! assert!(!disk.is_empty());
//! ```

#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod codec;
mod config;
mod error;
mod log;
pub mod membership;
mod message;
mod node;
mod output;
mod progress;
pub mod quorum;
mod restore;
pub mod rng;
mod time;
mod types;

pub use config::{APPEND_OVERHEAD_BYTES, Config, ConfigError, ReadMode};
pub use error::{CompactError, ForwardError, ProposeError, ReadError, TransferError};
pub use membership::{ChangeError, Membership, MembershipChange};
pub use message::{
    AppendEntries, AppendResponse, AppendResult, Body, ForwardOutcome, ForwardProposal, ForwardResponse,
    InstallSnapshot, Message, ReadIndexRequest, ReadIndexResponse, RequestVote, SnapshotResponse, VoteResponse,
};
pub use node::Node;
pub use output::{Event, Outgoing, Output, Persist, PersistToken, ProposalId, ReadId, Role, TransferOutcome, Write};
pub use restore::{NewNodeError, RestoreError, Restored};
pub use time::{Duration, Instant};
pub use types::{
    Bytes, ENTRY_OVERHEAD_BYTES, Entry, HardState, LogIndex, NodeId, Payload, Snapshot, SnapshotDigest, SnapshotMeta,
    Term,
};
