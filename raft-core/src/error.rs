//! Why an operation on a [`Node`](crate::Node) was refused. One type per
//! operation; each says whether anything happened.

use crate::types::{LogIndex, NodeId};
use core::fmt;

/// Why `Node::propose` refused a command. Nothing was appended: the command
/// was not applied and never will be. Exhaustive: a host answers each case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// Only the leader accepts proposals. `leader_hint` is the leader this
    /// node knows of for its current term, if any.
    NotLeader {
        /// Where to retry.
        leader_hint: Option<NodeId>,
    },
    /// The leader is handing its leadership to `to` and accepts no
    /// proposals until the transfer ends (at most an election timeout).
    TransferInProgress {
        /// The transfer's target: likely the next leader.
        to: NodeId,
    },
    /// The command exceeds `Config::max_entry_bytes`.
    TooLarge {
        /// The command's size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposeError::NotLeader { leader_hint: Some(l) } => write!(f, "not the leader; try node {l}"),
            ProposeError::NotLeader { leader_hint: None } => write!(f, "not the leader; leader unknown"),
            ProposeError::TooLarge { size, max } => write!(f, "command of {size} bytes exceeds the {max}-byte limit"),
            ProposeError::TransferInProgress { to } => {
                write!(f, "leadership is being transferred to node {to}; retry there")
            }
        }
    }
}

impl core::error::Error for ProposeError {}

/// Why `Node::compact` refused a snapshot. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompactError {
    /// The index was never delivered to the state machine.
    NotApplied {
        /// The requested index.
        index: LogIndex,
        /// The last delivered index.
        applied: LogIndex,
    },
    /// A snapshot at or past this index already exists.
    NotNewer {
        /// The requested index.
        index: LogIndex,
        /// The current snapshot's index.
        snapshot_index: LogIndex,
    },
}

impl fmt::Display for CompactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompactError::NotApplied { index, applied } => {
                write!(f, "cannot snapshot at {index}: only {applied} has been applied")
            }
            CompactError::NotNewer { index, snapshot_index } => {
                write!(f, "cannot snapshot at {index}: a snapshot at {snapshot_index} exists")
            }
        }
    }
}

impl core::error::Error for CompactError {}

/// Why a read got no read index. Nothing was read; the read may be retried.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// This node neither leads nor knows a leader to ask; `leader_hint` is
    /// the leader it knows of, if any.
    NotLeader {
        /// Where to retry.
        leader_hint: Option<NodeId>,
    },
    /// Leadership changed (or the leader could not confirm it) before the
    /// read index was known.
    LeaderChanged,
    /// The leader did not answer a follower's request within an election timeout.
    Timeout,
    /// A read with this id is already in progress on this node.
    DuplicateId,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotLeader { leader_hint: Some(l) } => write!(f, "not the leader; try node {l}"),
            ReadError::NotLeader { leader_hint: None } => write!(f, "not the leader; leader unknown"),
            ReadError::LeaderChanged => write!(f, "leadership changed before the read was confirmed"),
            ReadError::Timeout => write!(f, "the leader did not answer the read in time"),
            ReadError::DuplicateId => write!(f, "a read with this id is already in progress"),
        }
    }
}

impl core::error::Error for ReadError {}

/// Why `Node::transfer_leadership` refused. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferError {
    /// Only the leader can hand over its leadership.
    NotLeader {
        /// The leader this node knows of, if any.
        leader_hint: Option<NodeId>,
    },
    /// The target is not a voting member (or is this node).
    NotAVoter(NodeId),
    /// A transfer is already in progress.
    InProgress {
        /// Its target.
        to: NodeId,
    },
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::NotLeader { leader_hint: Some(l) } => write!(f, "not the leader; node {l} leads"),
            TransferError::NotLeader { leader_hint: None } => write!(f, "not the leader; leader unknown"),
            TransferError::NotAVoter(id) => write!(f, "node {id} is not another voting member"),
            TransferError::InProgress { to } => write!(f, "a transfer to node {to} is already in progress"),
        }
    }
}

impl core::error::Error for TransferError {}

/// Why a forwarded proposal has no index.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardError {
    /// The leader refused it: definitely not appended, never applied.
    Refused(ProposeError),
    /// No answer came within an election timeout, or leadership changed
    /// first: the leader may or may not have appended it.
    Unknown,
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardError::Refused(e) => write!(f, "the leader refused the command: {e}"),
            ForwardError::Unknown => write!(f, "the leader did not answer; the command may or may not be appended"),
        }
    }
}

impl core::error::Error for ForwardError {}
