//! Single-thread synchronisation for the tasks of one harness thread: a wake-one
//! notification and a counting gate. Both are `!Send`; cross-thread state lives in atomics
//! (`engine::Shared`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Wakes one waiting task; a notification sent while nobody waits is kept for the next
/// [`Notify::wait`].
#[derive(Default)]
pub struct Notify {
    flag: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    /// Sets the flag and wakes the waiter, if any.
    pub fn notify(&self) {
        self.flag.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Waits until notified (returns at once if a notification is pending).
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.flag.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}

/// At most `capacity` holders at once (connection handshakes in flight per thread).
pub struct Gate {
    free: Cell<usize>,
    waiters: RefCell<VecDeque<Waker>>,
}

/// A place in the [`Gate`], given back on drop.
pub struct Permit<'a> {
    gate: &'a Gate,
}

impl Gate {
    /// A gate with `capacity` places (at least one).
    pub fn new(capacity: usize) -> Gate {
        Gate {
            free: Cell::new(capacity.max(1)),
            waiters: RefCell::new(VecDeque::new()),
        }
    }

    /// Waits for a free place.
    pub async fn enter(&self) -> Permit<'_> {
        poll_fn(|cx| {
            if self.free.get() > 0 {
                self.free.set(self.free.get() - 1);
                Poll::Ready(())
            } else {
                self.waiters.borrow_mut().push_back(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        Permit { gate: self }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.gate.free.set(self.gate.free.get() + 1);
        if let Some(waker) = self.gate.waiters.borrow_mut().pop_front() {
            waker.wake();
        }
    }
}
