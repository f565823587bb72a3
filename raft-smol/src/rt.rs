//! The runtime glue on smol: the channels, tasks, timers and sockets the
//! shared code (`common`) is written against. raft-tokio's `rt` module
//! provides the same names on tokio.

use crate::common::sync::first;
use smol::Timer;
use smol::channel;
use std::time::{Duration, Instant};

pub(crate) use smol::io::{AsyncReadExt, AsyncWriteExt};
pub(crate) use smol::net::{TcpListener, TcpStream};

/// The sending side of a bounded channel.
pub(crate) type Sender<T> = channel::Sender<T>;
/// The receiving side of a bounded channel.
pub(crate) type Receiver<T> = channel::Receiver<T>;
/// The sending side of an unbounded channel.
pub(crate) type UnboundedSender<T> = channel::Sender<T>;
/// The receiving side of an unbounded channel.
pub(crate) type UnboundedReceiver<T> = channel::Receiver<T>;
/// A spawned task; [`join`] waits for it, dropping it cancels it.
pub(crate) type Task = smol::Task<()>;
/// One side of a connection (smol streams are cloned, not split).
pub(crate) type ReadHalf = TcpStream;
/// One side of a connection (smol streams are cloned, not split).
pub(crate) type WriteHalf = TcpStream;

pub(crate) fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    channel::bounded(capacity)
}

pub(crate) fn unbounded<T>() -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    channel::unbounded()
}

/// Sends without waiting (the receiver may be gone).
pub(crate) fn send_now<T>(tx: &UnboundedSender<T>, value: T) {
    let _ = tx.try_send(value);
}

/// The next value, or `None` once every sender is gone.
pub(crate) async fn recv<T>(rx: &mut Receiver<T>) -> Option<T> {
    rx.recv().await.ok()
}

/// The next value, or `None` once every sender is gone.
pub(crate) async fn recv_unbounded<T>(rx: &mut UnboundedReceiver<T>) -> Option<T> {
    rx.recv().await.ok()
}

pub(crate) fn try_recv<T>(rx: &mut Receiver<T>) -> Option<T> {
    rx.try_recv().ok()
}

pub(crate) fn try_recv_unbounded<T>(rx: &mut UnboundedReceiver<T>) -> Option<T> {
    rx.try_recv().ok()
}

/// Refuses further sends; what is queued can still be received.
pub(crate) fn close<T>(rx: &mut Receiver<T>) {
    rx.close();
}

/// A one-shot reply: the sending function, and the future of the value
/// (`None` if the sender was dropped unused).
pub(crate) fn oneshot<T: Send + 'static>() -> (impl FnOnce(T) + Send + 'static, impl Future<Output = Option<T>>) {
    let (tx, rx) = channel::bounded(1);
    let send = move |v| {
        let _ = tx.try_send(v);
    };
    (send, async move { rx.recv().await.ok() })
}

/// Spawns `f` on smol's global executor.
pub(crate) fn spawn(f: impl Future<Output = ()> + Send + 'static) -> Task {
    smol::spawn(f)
}

/// Spawns `f` on smol's global executor, to run on its own.
pub(crate) fn detach(f: impl Future<Output = ()> + Send + 'static) {
    smol::spawn(f).detach();
}

/// Waits for `task` to end.
pub(crate) async fn join(task: Task) {
    task.await;
}

/// Runs `f` on smol's blocking pool (it always finishes: never `None`).
pub(crate) async fn unblock<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    Some(smol::unblock(f).await)
}

pub(crate) async fn sleep(d: Duration) {
    Timer::after(d).await;
}

/// The owning task's timer: one `Timer`, set again only when the deadline
/// moves or it has fired.
pub(crate) struct Alarm {
    timer: Timer,
    armed: Option<Instant>,
}

impl Alarm {
    pub(crate) fn new() -> Alarm {
        Alarm { timer: Timer::never(), armed: None }
    }

    /// Ready at `deadline`; never if there is none.
    pub(crate) async fn wait(&mut self, deadline: Option<Instant>) {
        if deadline != self.armed {
            match deadline {
                Some(d) => self.timer.set_at(d),
                None => self.timer = Timer::never(),
            }
            self.armed = deadline;
        }
        (&mut self.timer).await;
        // A fired timer must be set again even if the deadline is unchanged.
        self.armed = None;
    }
}

/// `f`, or `None` after `d`.
pub(crate) async fn timeout<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    first(async { Some(f.await) }, async {
        sleep(d).await;
        None
    })
    .await
}

/// Reading and writing halves of a connection.
pub(crate) fn split(stream: TcpStream) -> (ReadHalf, WriteHalf) {
    (stream.clone(), stream)
}
