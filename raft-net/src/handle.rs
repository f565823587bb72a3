//! The public [`Handle`] to a running node. It does not name the runtime:
//! its channels are runtime-neutral and its timeouts use the node's timers.

use crate::api::{MembershipError, ProposeError, RoleInfo, RoleWatch, Status, TaskMonitor, TransferError};
use crate::engine::{ChangeReply, Command, ReadFn, Reply, Shared};
use crate::metrics::{AppGauge, AppGaugeError};
use crate::sync::{all_stopped, timeout};
use raft_core::{Bytes, Membership, MembershipChange, NodeId};
use raft_host::StateMachine;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// A running node. Cheap to clone; every clone reaches the same node. When
/// the last clone is dropped the node shuts down in the background.
pub struct Handle<S: StateMachine> {
    cmds: async_channel::Sender<Command<S>>,
    shared: Arc<Shared>,
}

impl<S: StateMachine> Handle<S> {
    pub(crate) fn new(cmds: async_channel::Sender<Command<S>>, shared: Arc<Shared>) -> Self {
        Handle { cmds, shared }
    }
}

impl<S: StateMachine> Clone for Handle<S> {
    fn clone(&self) -> Self {
        Handle { cmds: self.cmds.clone(), shared: self.shared.clone() }
    }
}

impl<S: StateMachine> fmt::Debug for Handle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("id", &self.shared.id()).field("listen", &self.shared.listen).finish()
    }
}

impl<S> Handle<S>
where
    S: StateMachine + Send + 'static,
    S::Output: Send + 'static,
{
    /// Proposes `command` (encoded with `raft_core::codec`, as the state
    /// machine's `apply` decodes it) and waits until it is committed and
    /// applied on this node, returning the state machine's output.
    ///
    /// Only the leader accepts proposals: elsewhere the answer is
    /// [`ProposeError::NotLeader`] with the leader this node knows of,
    /// unless `Config::forward_proposals` is set: then a follower that knows
    /// the leader forwards the command to it and answers when it has applied
    /// the leader's entry (a command the leader refused is
    /// [`ProposeError::Superseded`]: not applied). See [`ProposeError`] for
    /// which errors promise the command was not applied.
    pub async fn propose(&self, command: &S::Command) -> Result<S::Output, ProposeError> {
        // Encoding fails only for values serde cannot describe with a known
        // length, or beyond the codec's size limit: too large either way.
        let bytes = raft_core::codec::encode_value(command)
            .map_err(|_| ProposeError::TooLarge { size: usize::MAX, max: self.shared.config.raft.max_entry_bytes })?;
        self.propose_bytes(bytes).await
    }

    /// [`propose`](Handle::propose) for a command already encoded: `apply`
    /// gets these bytes as they are.
    pub async fn propose_bytes(&self, command: impl Into<Bytes>) -> Result<S::Output, ProposeError> {
        self.submit(command.into(), |command, reply| Command::Propose { command, reply }).await
    }

    /// [`propose_bytes`](Handle::propose_bytes), unless `check` answers
    /// the command first: `check` runs on this node's state machine as it is
    /// when the command reaches the node (what
    /// [`local_read`](Handle::local_read) would see), and if it returns
    /// `Some(output)`, that is the answer and nothing is proposed. One trip
    /// to the node's task instead of a local read and then a proposal: for
    /// a state machine that can tell from its own state that a command was
    /// applied already (a client session's retry).
    pub async fn propose_unless(
        &self,
        check: impl FnOnce(&S) -> Option<S::Output> + Send + 'static,
        command: impl Into<Bytes>,
    ) -> Result<S::Output, ProposeError> {
        let check = Box::new(check);
        self.submit(command.into(), |command, reply| Command::ProposeUnless { check, command, reply }).await
    }

    /// Sends the command that `make` builds around `command` and a reply,
    /// and waits for its answer up to `NodeConfig::propose_timeout`.
    async fn submit(
        &self,
        command: Bytes,
        make: impl FnOnce(Bytes, Reply<S::Output>) -> Command<S>,
    ) -> Result<S::Output, ProposeError> {
        let max = self.shared.config.raft.max_entry_bytes;
        if command.len() > max {
            return Err(ProposeError::TooLarge { size: command.len(), max });
        }
        let (tx, rx) = async_channel::bounded(1);
        let reply = Reply::new(move |r| {
            let _ = tx.try_send(r);
        });
        let work = async {
            self.cmds.send(make(command, reply)).await.map_err(|_| ProposeError::Shutdown)?;
            // A reply dropped unanswered means the command was still queued
            // when the node stopped: it never reached the log.
            rx.recv().await.unwrap_or(Err(ProposeError::Shutdown))
        };
        timeout(&*self.shared.sleeper, self.shared.config.propose_timeout, work)
            .await
            .unwrap_or(Err(ProposeError::OutcomeUnknown))
    }

    /// A linearizable read: runs `f` on this node's state machine once it
    /// reflects every write acknowledged before the call (the core's
    /// ReadIndex: the leader confirms its leadership with a heartbeat round,
    /// or a follower asks the leader; nothing is written to the log).
    ///
    /// Fails with [`ProposeError::NotLeader`] when no leader is known or
    /// leadership changed, [`ProposeError::OutcomeUnknown`] on a timeout
    /// (nothing was read; retry), [`ProposeError::Shutdown`].
    pub async fn read<R: Send + 'static>(&self, f: impl FnOnce(&S) -> R + Send + 'static) -> Result<R, ProposeError> {
        let (tx, rx) = async_channel::bounded(1);
        let read: ReadFn<S> = Box::new(move |sm: Result<&S, ProposeError>| {
            let _ = tx.try_send(sm.map(f));
        });
        let work = async {
            self.cmds.send(Command::Read(read)).await.map_err(|_| ProposeError::Shutdown)?;
            rx.recv().await.unwrap_or(Err(ProposeError::Shutdown))
        };
        timeout(&*self.shared.sleeper, self.shared.config.propose_timeout, work)
            .await
            .unwrap_or(Err(ProposeError::OutcomeUnknown))
    }

    /// Hands leadership to member `to` (for maintenance of this node, say):
    /// this leader stops accepting proposals, brings `to` up to date and
    /// tells it to campaign at once. Resolves when the transfer has ended:
    /// `Ok` once `to` has started its election in a higher term (watch
    /// [`role_watch`](Handle::role_watch) for it to lead), or why not. A
    /// transfer that does not finish within an election timeout is
    /// abandoned ([`TransferError::TimedOut`]) and this node leads on.
    pub async fn transfer_leadership(&self, to: NodeId) -> Result<(), TransferError> {
        let (tx, rx) = async_channel::bounded(1);
        let reply = Box::new(move |r| {
            let _ = tx.try_send(r);
        });
        let work = async {
            self.cmds.send(Command::Transfer { to, reply }).await.map_err(|_| TransferError::Shutdown)?;
            rx.recv().await.unwrap_or(Err(TransferError::Shutdown))
        };
        // The core ends every transfer within an election timeout; this
        // bound only guards against a node that stopped answering.
        timeout(&*self.shared.sleeper, self.shared.config.propose_timeout, work)
            .await
            .unwrap_or(Err(TransferError::TimedOut))
    }

    /// Runs `f` on this node's state machine as it is now, without going
    /// through the log: fast but possibly stale (a follower, or a deposed
    /// leader). Fails only with [`ProposeError::Shutdown`].
    pub async fn local_read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&S) -> R + Send + 'static,
    ) -> Result<R, ProposeError> {
        let (tx, rx) = async_channel::bounded(1);
        let read = Box::new(move |s: &S| {
            let _ = tx.try_send(f(s));
        });
        self.cmds.send(Command::LocalRead(read)).await.map_err(|_| ProposeError::Shutdown)?;
        rx.recv().await.map_err(|_| ProposeError::Shutdown)
    }

    /// Changes the cluster's configuration (this node must lead) and waits
    /// until the change has committed and been applied here — for a voter
    /// change, until the final configuration after the joint one has —
    /// returning the configuration then in effect. Waits at most
    /// `NodeConfig::propose_timeout` ([`MembershipError::OutcomeUnknown`]).
    pub async fn change_membership(&self, change: MembershipChange) -> Result<Membership, MembershipError> {
        let (tx, rx) = async_channel::bounded(1);
        let reply = ChangeReply::new(move |r| {
            let _ = tx.try_send(r);
        });
        let work = async {
            self.cmds.send(Command::Change { change, reply }).await.map_err(|_| MembershipError::Shutdown)?;
            rx.recv().await.unwrap_or(Err(MembershipError::Shutdown))
        };
        timeout(&*self.shared.sleeper, self.shared.config.propose_timeout, work)
            .await
            .unwrap_or(Err(MembershipError::OutcomeUnknown))
    }

    /// Adds `id`, reachable at `addr`, as a learner (it receives the log
    /// but does not vote). Every member learns the address from the configuration.
    pub async fn add_learner(&self, id: NodeId, addr: SocketAddr) -> Result<Membership, MembershipError> {
        let addr = Bytes::from(addr.to_string().as_str());
        self.change_membership(MembershipChange::AddLearner { id, addr }).await
    }

    /// Makes learner `id` a voter; refused with `ChangeError::LearnerBehind`
    /// until it has caught up.
    pub async fn promote(&self, id: NodeId) -> Result<Membership, MembershipError> {
        self.change_membership(MembershipChange::Promote { id }).await
    }

    /// Removes member `id` (this leader itself too: it steps down once the
    /// change has committed).
    pub async fn remove(&self, id: NodeId) -> Result<Membership, MembershipError> {
        self.change_membership(MembershipChange::Remove { id }).await
    }

    /// Stops the node: waiting proposers are told their outcome is unknown,
    /// queued writes are made durable, connections are closed, and every
    /// task and thread the node started has ended when this returns. Other
    /// clones of the handle then get [`ProposeError::Shutdown`].
    pub async fn shutdown(self) {
        self.shared.stop.close();
        all_stopped(&self.shared.tasks).await;
    }
}

impl<S: StateMachine> Handle<S> {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.shared.id()
    }

    /// The address the node accepts peers on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.listen
    }

    /// A snapshot of the node's role, indexes and links. Never waits.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// The node's metrics in the Prometheus text format (OpenMetrics), as
    /// served at `/metrics` when `NodeConfig::metrics_listen` is set.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics_text()
    }

    /// A gauge of the application's, served with the node's metrics as
    /// `raft_<name>` (for instance the size of a table its state machine
    /// keeps, set from a periodic task). Asking again for a registered name
    /// returns the same gauge (the first `help` stays).
    ///
    /// # Errors
    /// A name that is not `[a-z_][a-z0-9_]*` of at most 64 characters, or
    /// one of the node's own metrics.
    pub fn app_gauge(&self, name: &'static str, help: &'static str) -> Result<AppGauge, AppGaugeError> {
        self.shared.metrics.app_gauge(name, help)
    }

    /// Where the node serves its metrics over HTTP, if it does.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.shared.metrics_addr
    }

    /// The node's role, term and leader now: what [`Handle::status`]
    /// reports in `role`, without copying the rest of the status (cheap
    /// enough to ask on every request).
    pub fn role(&self) -> RoleInfo {
        self.shared.role.with(|r| *r)
    }

    /// Follows role, term and leader changes.
    pub fn role_watch(&self) -> RoleWatch {
        RoleWatch::new(self.shared.role.clone())
    }

    /// Counts the node's running tasks; still usable after `shutdown`.
    pub fn task_monitor(&self) -> TaskMonitor {
        TaskMonitor(self.shared.tasks.clone())
    }
}
