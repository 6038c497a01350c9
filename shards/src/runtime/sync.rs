//! Small single-thread synchronisation helpers for tasks of one shard.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes every task waiting on it; waiting tasks re-check their condition.
#[derive(Default)]
pub struct Notify {
    waiters: RefCell<Vec<Waker>>,
}

impl Notify {
    /// Wakes all waiters.
    pub fn notify_all(&self) {
        for waker in self.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Waits until `ready()` holds, re-checking after each notification.
    pub async fn wait_until(&self, ready: impl Fn() -> bool) {
        std::future::poll_fn(|cx| {
            if ready() {
                Poll::Ready(())
            } else {
                self.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}

/// Returns `Pending` once, so other tasks of the shard run before the caller continues.
pub struct YieldNow {
    yielded: Cell<bool>,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded.get() {
            return Poll::Ready(());
        }
        self.yielded.set(true);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Lets the shard's other tasks run.
pub fn yield_now() -> YieldNow {
    YieldNow {
        yielded: Cell::new(false),
    }
}
