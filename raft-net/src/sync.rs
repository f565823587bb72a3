//! Executor-agnostic synchronization: a versioned cell whose changes can be
//! awaited ([`Watch`]), used for the stop signal, the role watch and the
//! count of running tasks.

use crate::runtime::{Runtime, Sleeper};
use std::future::poll_fn;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A value, a version bumped on every change, a closed flag, and the wakers
/// of the futures waiting for any of them to change.
#[derive(Debug)]
pub(crate) struct Watch<T> {
    state: Mutex<State<T>>,
}

#[derive(Debug)]
struct State<T> {
    value: T,
    version: u64,
    closed: bool,
    /// One entry per waiting [`Waiting`], by its key: a future polled again
    /// replaces its waker (some executors hand a new one on every poll), and
    /// a dropped one removes its entry, so this holds only live waiters.
    wakers: Vec<(u64, Waker)>,
    next_key: u64,
}

impl<T> Watch<T> {
    pub(crate) fn new(value: T) -> Watch<T> {
        Watch { state: Mutex::new(State { value, version: 0, closed: false, wakers: Vec::new(), next_key: 0 }) }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock cannot leave the state half-updated
        // (every update is a single assignment), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the value; if `f` returns true, bumps the version and wakes
    /// every waiter.
    pub(crate) fn update(&self, f: impl FnOnce(&mut T) -> bool) {
        let wakers = {
            let mut s = self.lock();
            if !f(&mut s.value) {
                return;
            }
            s.version += 1;
            std::mem::take(&mut s.wakers)
        };
        wakers.into_iter().for_each(|(_, w)| w.wake());
    }

    /// Marks the watch closed (for good) and wakes every waiter.
    pub(crate) fn close(&self) {
        let wakers = {
            let mut s = self.lock();
            s.closed = true;
            std::mem::take(&mut s.wakers)
        };
        wakers.into_iter().for_each(|(_, w)| w.wake());
    }

    /// Reads the value.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.lock().value)
    }

    /// The current version (0 until the first change).
    pub(crate) fn version(&self) -> u64 {
        self.lock().version
    }

    /// A place among the waiters, for one future to poll.
    pub(crate) fn waiting(&self) -> Waiting<'_, T> {
        Waiting { watch: self, key: None }
    }

    /// True once the watch is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Waits until the watch is closed.
    pub(crate) async fn closed(&self) {
        let mut waiting = self.waiting();
        poll_fn(|cx| waiting.poll_check(cx, |_, _, closed| closed.then_some(()))).await
    }
}

/// One future's registration with a [`Watch`]; its waker is removed when
/// it is dropped.
#[derive(Debug)]
pub(crate) struct Waiting<'a, T> {
    watch: &'a Watch<T>,
    key: Option<u64>,
}

impl<T> Waiting<'_, T> {
    /// Ready once `check(value, version, closed)` returns `Some`; otherwise
    /// the task of `cx` is woken at the next change.
    pub(crate) fn poll_check<R>(
        &mut self,
        cx: &mut Context<'_>,
        check: impl FnOnce(&T, u64, bool) -> Option<R>,
    ) -> Poll<R> {
        let mut s = self.watch.lock();
        if let Some(r) = check(&s.value, s.version, s.closed) {
            return Poll::Ready(r);
        }
        let key = *self.key.get_or_insert_with(|| {
            s.next_key += 1;
            s.next_key
        });
        match s.wakers.iter_mut().find(|(k, _)| *k == key) {
            Some((_, w)) => w.clone_from(cx.waker()),
            None => s.wakers.push((key, cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.watch.lock().wakers.retain(|(k, _)| *k != key);
        }
    }
}

/// A stop signal shared by every task of one node: closed once, never reopened.
pub(crate) type Stop = Arc<Watch<()>>;

/// Counts the running tasks (and the disk thread) of one node.
pub(crate) type TaskCount = Arc<Watch<usize>>;

/// Held by a running task; counts it in a [`TaskCount`] from creation
/// (before the task is spawned, so a shutdown cannot miss it) until drop.
#[derive(Debug)]
pub(crate) struct TaskGuard(TaskCount);

impl TaskGuard {
    pub(crate) fn new(count: &TaskCount) -> TaskGuard {
        count.update(|n| {
            *n += 1;
            true
        });
        TaskGuard(count.clone())
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.update(|n| {
            *n = n.saturating_sub(1);
            true
        });
    }
}

/// Closes the stop signal when dropped: a task that ends for any reason,
/// panics included, takes the rest of the node down with it.
#[derive(Debug)]
pub(crate) struct StopOnDrop(pub(crate) Stop);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Waits until no counted task is left.
pub(crate) async fn all_stopped(count: &TaskCount) {
    let mut waiting = count.waiting();
    poll_fn(|cx| waiting.poll_check(cx, |n, _, _| (*n == 0).then_some(()))).await
}

/// The output of whichever of `a` and `b` finishes first (`a` is polled
/// first, so it wins a tie).
pub(crate) async fn first<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(|cx| match a.as_mut().poll(cx) {
        Poll::Ready(v) => Poll::Ready(v),
        Poll::Pending => b.as_mut().poll(cx),
    })
    .await
}

/// `f`, or `None` after `d` (timed by `sleeper`).
pub(crate) async fn timeout<T>(sleeper: &dyn Sleeper, d: Duration, f: impl Future<Output = T>) -> Option<T> {
    let deadline = Instant::now() + d;
    first(async { Some(f.await) }, async {
        sleeper.sleep_until(deadline).await;
        None
    })
    .await
}

/// A task spawned with [`spawn`], to wait for. Dropping it does not stop the
/// task (on every runtime).
#[derive(Debug)]
pub(crate) struct Joinable(async_channel::Receiver<()>);

/// Spawns `task` on `rt` (detached), returning a way to wait for its end
/// (also after a panic, or when the runtime drops it).
pub(crate) fn spawn<R: Runtime>(rt: &R, task: impl Future<Output = ()> + Send + 'static) -> Joinable {
    let (done, rx) = async_channel::bounded::<()>(1);
    rt.spawn(async move {
        let _done = done; // dropped when the task ends, however it ends
        task.await;
    });
    Joinable(rx)
}

impl Joinable {
    /// True once the task has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.0.sender_count() == 0
    }

    /// Waits for the task to end.
    pub(crate) async fn join(self) {
        let _ = self.0.recv().await;
    }
}

/// `f`, or `None` once `stop` is closed (checked first).
pub(crate) async fn or_stop<T>(stop: &Stop, f: impl Future<Output = T>) -> Option<T> {
    first(
        async {
            stop.closed().await;
            None
        },
        async { Some(f.await) },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Counter(AtomicUsize);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waiters<T>(w: &Watch<T>) -> usize {
        w.lock().wakers.len()
    }

    #[test]
    fn waiters_are_woken_once_per_change_and_deduplicated() {
        let w = Watch::new(1u32);
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut waiting = w.waiting();
        for _ in 0..3 {
            assert!(waiting.poll_check(&mut cx, |v, _, _| (*v == 2).then_some(())).is_pending());
        }
        w.update(|v| {
            *v = 2;
            true
        });
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "one registration despite three polls");
        assert_eq!(waiting.poll_check(&mut cx, |v, ver, _| (*v == 2).then_some(ver)), Poll::Ready(1));
        w.update(|_| false);
        assert_eq!(w.version(), 1, "an update that changes nothing bumps nothing");
        assert!(waiting.poll_check(&mut cx, |_, _, closed| closed.then_some(())).is_pending());
        w.close();
        assert_eq!(waiting.poll_check(&mut cx, |_, _, closed| closed.then_some(())), Poll::Ready(()));
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
    }

    /// A future polled with a new waker every time (as some executors'
    /// `block_on` do), and a new future for every turn of a loop, leave one
    /// waker at most: the list stays as long as the live waiters.
    #[test]
    fn a_new_waker_per_poll_or_a_new_future_per_turn_adds_no_waiter() {
        let w = Watch::new(0u32);
        let counters: Vec<_> = (0..3).map(|_| Arc::new(Counter(AtomicUsize::new(0)))).collect();
        let mut waiting = w.waiting();
        for c in &counters {
            let waker = Waker::from(c.clone());
            assert!(waiting.poll_check(&mut Context::from_waker(&waker), |_, _, _| None::<()>).is_pending());
        }
        assert_eq!(waiters(&w), 1);
        for _ in 0..100 {
            let waker = Waker::from(Arc::new(Counter(AtomicUsize::new(0))));
            let mut turn = w.waiting();
            assert!(turn.poll_check(&mut Context::from_waker(&waker), |_, _, _| None::<()>).is_pending());
        }
        assert_eq!(waiters(&w), 1, "each turn's future removed its waker when dropped");
        w.update(|v| {
            *v = 1;
            true
        });
        let woken: Vec<usize> = counters.iter().map(|c| c.0.load(Ordering::SeqCst)).collect();
        assert_eq!(woken, [0, 0, 1], "only the latest waker is woken");
        drop(waiting);
        assert_eq!(waiters(&w), 0);
    }

    #[test]
    fn task_guards_count() {
        let count: TaskCount = Arc::new(Watch::new(0));
        let a = TaskGuard::new(&count);
        let b = TaskGuard::new(&count);
        assert_eq!(count.with(|n| *n), 2);
        drop(a);
        drop(b);
        assert_eq!(count.with(|n| *n), 0);
    }
}
