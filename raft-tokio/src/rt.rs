//! The runtime glue on tokio: the channels, tasks, timers and sockets the
//! shared code (`common`) is written against. raft-smol's `rt` module
//! provides the same names on smol.

use std::future::pending;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub(crate) use tokio::io::{AsyncReadExt, AsyncWriteExt};
pub(crate) use tokio::net::tcp::{OwnedReadHalf as ReadHalf, OwnedWriteHalf as WriteHalf};
pub(crate) use tokio::net::{TcpListener, TcpStream};

/// The sending side of a bounded channel.
pub(crate) type Sender<T> = mpsc::Sender<T>;
/// The receiving side of a bounded channel.
pub(crate) type Receiver<T> = mpsc::Receiver<T>;
/// The sending side of an unbounded channel.
pub(crate) type UnboundedSender<T> = mpsc::UnboundedSender<T>;
/// The receiving side of an unbounded channel.
pub(crate) type UnboundedReceiver<T> = mpsc::UnboundedReceiver<T>;
/// A spawned task; [`join`] waits for it, dropping it detaches it.
pub(crate) type Task = tokio::task::JoinHandle<()>;

pub(crate) fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    mpsc::channel(capacity)
}

pub(crate) fn unbounded<T>() -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    mpsc::unbounded_channel()
}

/// Sends without waiting (the receiver may be gone).
pub(crate) fn send_now<T>(tx: &UnboundedSender<T>, value: T) {
    let _ = tx.send(value);
}

/// The next value, or `None` once every sender is gone.
pub(crate) async fn recv<T>(rx: &mut Receiver<T>) -> Option<T> {
    rx.recv().await
}

/// The next value, or `None` once every sender is gone.
pub(crate) async fn recv_unbounded<T>(rx: &mut UnboundedReceiver<T>) -> Option<T> {
    rx.recv().await
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
    let (tx, rx) = tokio::sync::oneshot::channel();
    let send = move |v| {
        let _ = tx.send(v);
    };
    (send, async move { rx.await.ok() })
}

/// Spawns `f` on the current runtime.
pub(crate) fn spawn(f: impl Future<Output = ()> + Send + 'static) -> Task {
    tokio::spawn(f)
}

/// Spawns `f` on the current runtime, to run on its own.
pub(crate) fn detach(f: impl Future<Output = ()> + Send + 'static) {
    drop(tokio::spawn(f));
}

/// Waits for `task` to end.
pub(crate) async fn join(task: Task) {
    let _ = task.await;
}

/// Runs `f` on the blocking pool; `None` if it could not finish (the
/// runtime shut down, or `f` panicked).
pub(crate) async fn unblock<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

pub(crate) async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

/// The owning task's timer: one `Sleep`, reset only when the deadline moves.
pub(crate) struct Alarm(Pin<Box<tokio::time::Sleep>>);

impl Alarm {
    pub(crate) fn new() -> Alarm {
        Alarm(Box::pin(tokio::time::sleep(Duration::from_secs(3600))))
    }

    /// Ready at `deadline`; never if there is none.
    pub(crate) async fn wait(&mut self, deadline: Option<Instant>) {
        let Some(deadline) = deadline.map(tokio::time::Instant::from_std) else { return pending().await };
        if self.0.deadline() != deadline {
            self.0.as_mut().reset(deadline);
        }
        self.0.as_mut().await;
    }
}

/// `f`, or `None` after `d`.
pub(crate) async fn timeout<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(d, f).await.ok()
}

/// Reading and writing halves of a connection.
pub(crate) fn split(stream: TcpStream) -> (ReadHalf, WriteHalf) {
    stream.into_split()
}
