//! A tiny manual driver for unit tests of single rules: it records outputs
//! and lets the test decide when writes become durable.

use super::RoleState;
use crate::message::*;
use crate::message::{Body, Message};
use crate::output::{Event, Outgoing, Output, PersistToken, Write};
use crate::restore::Restored;
use crate::time::Instant;
use crate::types::{Entry, LogIndex, NodeId, Snapshot, Term};
use crate::{Config, Node, Role};
use alloc::vec::Vec;

pub(crate) fn ids(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

/// One `Output::Forwarded`.
pub(crate) type Forwarded = (crate::ProposalId, Result<(LogIndex, Term), crate::ForwardError>);

#[derive(Debug)]
pub(crate) struct Harness {
    pub(crate) node: Node,
    pub(crate) now: Instant,
    pub(crate) writes: Vec<Write>,
    pub(crate) sent: Vec<Outgoing>,
    pub(crate) applied: Vec<Entry>,
    pub(crate) events: Vec<Event>,
    pub(crate) restored: Vec<Snapshot>,
    pub(crate) reads: Vec<(crate::ReadId, Result<LogIndex, crate::ReadError>)>,
    pub(crate) forwarded: Vec<Forwarded>,
    /// The host's stored snapshot bytes (stored-snapshot mode): chunk
    /// requests read from here, and a received snapshot lands here.
    pub(crate) host_snapshot: Vec<u8>,
    /// The snapshot being received in stored-snapshot mode.
    pub(crate) host_partial: Vec<u8>,
    /// Every `Output::SaveSnapshotChunk`: (offset, length).
    pub(crate) saved_chunks: Vec<(u64, usize)>,
    /// Every `Output::SendSnapshotChunk`: (offset, length asked for).
    pub(crate) chunk_requests: Vec<(u64, u64)>,
    last_token: Option<PersistToken>,
}

impl Harness {
    pub(crate) fn new(id: u64, n: u64) -> Harness {
        Harness::with(Config::new(NodeId(id), ids(n)), Restored::fresh())
    }

    /// A node under the paper's classic rules (no pre-vote, no
    /// check-quorum), which the rule-by-rule tests cite.
    pub(crate) fn with(mut config: Config, restored: Restored) -> Harness {
        config.pre_vote = false;
        config.check_quorum = false;
        Harness::exact(config, restored)
    }

    /// A node with exactly `config`.
    pub(crate) fn exact(config: Config, restored: Restored) -> Harness {
        let node = Node::new(config, restored, Instant::ZERO).unwrap();
        Harness {
            node,
            now: Instant::ZERO,
            writes: Vec::new(),
            sent: Vec::new(),
            applied: Vec::new(),
            events: Vec::new(),
            restored: Vec::new(),
            reads: Vec::new(),
            forwarded: Vec::new(),
            host_snapshot: Vec::new(),
            host_partial: Vec::new(),
            saved_chunks: Vec::new(),
            chunk_requests: Vec::new(),
            last_token: None,
        }
    }

    /// Drains outputs without making anything durable.
    pub(crate) fn drain(&mut self) {
        while let Some(o) = self.node.poll_output() {
            match o {
                Output::Persist(p) => {
                    if p.write.snapshot_digest.is_some() && self.saved_chunks.last().is_some() {
                        // A received stored snapshot: the partial one is it.
                        self.host_snapshot = core::mem::take(&mut self.host_partial);
                    }
                    self.writes.push(p.write);
                    self.last_token = Some(p.token);
                }
                Output::Send(m) => self.sent.push(m),
                Output::SendSnapshotChunk { mut outgoing, len } => {
                    if let Body::InstallSnapshot(c) = &mut outgoing.message.body {
                        assert!(c.data.is_empty());
                        self.chunk_requests.push((c.offset, len));
                        let start = c.offset as usize;
                        c.data = crate::Bytes::from(&self.host_snapshot[start..start + len as usize]);
                    }
                    self.sent.push(outgoing);
                }
                Output::SaveSnapshotChunk { chunk, .. } => {
                    if chunk.offset == 0 {
                        self.host_partial.clear();
                    }
                    assert_eq!(chunk.offset, self.host_partial.len() as u64, "chunks arrive in order");
                    self.saved_chunks.push((chunk.offset, chunk.data.len()));
                    self.host_partial.extend_from_slice(&chunk.data);
                }
                Output::Apply(e) => self.applied.extend(e),
                Output::Event(e) => self.events.push(e),
                Output::Read { id, result } => self.reads.push((id, result)),
                Output::Forwarded { id, result } => self.forwarded.push((id, result)),
                Output::RestoreSnapshot(s) => {
                    assert!(self.applied.last().is_none_or(|e| e.index <= s.meta.index));
                    self.restored.push(s);
                }
            }
        }
    }

    /// Reports every write so far durable, then drains.
    pub(crate) fn persist(&mut self) {
        self.drain();
        if let Some(t) = self.last_token {
            self.node.handle_persisted(self.now, t);
        }
        self.drain();
    }

    pub(crate) fn outputs_forwarded(&self) -> Vec<Forwarded> {
        self.forwarded.clone()
    }

    pub(crate) fn take_sent(&mut self) -> Vec<Outgoing> {
        core::mem::take(&mut self.sent)
    }

    pub(crate) fn fire_timeout(&mut self) {
        self.now = self.node.poll_timeout().unwrap();
        self.node.handle_timeout(self.now);
        self.drain();
    }

    pub(crate) fn recv(&mut self, from: u64, term: u64, body: Body) {
        self.node.handle_message(self.now, NodeId(from), Message { term: Term(term), body });
        self.drain();
    }

    /// Makes this node leader of term 1 in a cluster where nodes 2.. grant.
    pub(crate) fn elect(&mut self) {
        self.fire_timeout();
        self.persist();
        let term = self.node.term().0;
        for peer in 2..=self.node.config().members.len() as u64 {
            if peer != self.node.id().0 {
                self.recv(peer, term, Body::RequestVoteResponse(VoteResponse { granted: true, pre_vote: false }));
            }
        }
        self.persist();
        assert_eq!(self.node.role(), crate::Role::Leader);
    }
}

pub(crate) fn vote_req(last_index: u64, last_term: u64) -> Body {
    Body::RequestVote(RequestVote {
        last_log_index: LogIndex(last_index),
        last_log_term: Term(last_term),
        pre_vote: false,
        transfer: false,
    })
}

pub(crate) fn granted(sent: &[Outgoing], to: u64) -> Option<bool> {
    sent.iter().find_map(|o| match o.message.body {
        Body::RequestVoteResponse(VoteResponse { granted, pre_vote: false }) if o.to == NodeId(to) => Some(granted),
        _ => None,
    })
}

/// Delivers every message between `a` and `b` (others are dropped), making
/// writes durable at once, until both are quiet. Returns messages delivered.
pub(crate) fn exchange(a: &mut Harness, b: &mut Harness, mut filter: impl FnMut(&Outgoing) -> bool) -> usize {
    let mut delivered = 0;
    let (ida, idb) = (a.node.id(), b.node.id());
    loop {
        a.persist();
        b.persist();
        let (from_a, from_b) = (a.take_sent(), b.take_sent());
        if from_a.iter().chain(&from_b).all(|o| o.to != idb && o.to != ida) {
            return delivered;
        }
        for o in from_a.into_iter().filter(|o| o.to == idb) {
            if filter(&o) {
                delivered += 1;
                b.node.handle_message(b.now, ida, o.message);
            }
        }
        for o in from_b.into_iter().filter(|o| o.to == ida) {
            if filter(&o) {
                delivered += 1;
                a.node.handle_message(a.now, idb, o.message);
            }
        }
    }
}

// ---- nodes under the default rules (pre-vote and check-quorum on) ----

pub(crate) fn node(id: u64, n: u64) -> Harness {
    Harness::exact(Config::new(NodeId(id), ids(n)), Restored::fresh())
}

pub(crate) fn pre_grant(granted: bool) -> Body {
    Body::RequestVoteResponse(VoteResponse { granted, pre_vote: true })
}

pub(crate) fn vote_grant() -> Body {
    Body::RequestVoteResponse(VoteResponse { granted: true, pre_vote: false })
}

pub(crate) fn vote_request(last: (u64, u64), pre_vote: bool, transfer: bool) -> Body {
    Body::RequestVote(RequestVote { last_log_index: LogIndex(last.0), last_log_term: Term(last.1), pre_vote, transfer })
}

pub(crate) fn heartbeat(round: u64, commit: u64) -> Body {
    Body::AppendEntries(AppendEntries {
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: Vec::new(),
        leader_commit: LogIndex(commit),
        round,
    })
}

pub(crate) fn ack(round: u64, index: u64) -> Body {
    Body::AppendEntriesResponse(AppendResponse {
        round,
        result: AppendResult::Success { match_index: LogIndex(index) },
    })
}

/// Elects `h` (node 1 of `n`) through a pre-vote and a real election in which
/// every peer grants, and lets the no-op commit (every peer acknowledges it).
pub(crate) fn elect_by_pre_vote(h: &mut Harness) {
    let n = h.node.config().members.len() as u64;
    h.fire_timeout();
    assert_eq!(h.node.role(), Role::PreCandidate);
    let proposed = h.node.term().0 + 1;
    for p in 2..=n {
        h.recv(p, proposed, pre_grant(true));
    }
    assert_eq!(h.node.role(), Role::Candidate);
    h.persist();
    for p in 2..=n {
        h.recv(p, proposed, vote_grant());
    }
    assert_eq!(h.node.role(), Role::Leader);
    h.persist();
    let last = h.node.last_log_index().0;
    for p in 2..=n {
        h.recv(p, proposed, ack(0, last));
    }
    assert_eq!(h.node.commit_index().0, last);
    h.take_sent();
}

pub(crate) fn leader_round(h: &Harness) -> u64 {
    match &h.node.role {
        RoleState::Leader(l) => l.round,
        _ => panic!("not leader"),
    }
}
