//! A deterministic single-threaded async runtime on virtual time: openraft's
//! [`AsyncRuntime`] for the simulator.
//!
//! Owns the simulated world's scheduler: the tasks (each tagged with the node it belongs
//! to, so that a crash drops exactly that node's tasks), the ready queue (FIFO), the timers
//! and the virtual clock. The clock only moves when every task is idle: it then jumps to
//! the earliest timer. With one seed-driven random source ([`SimRng`], openraft's election
//! jitter included) and no real time or thread anywhere, a seed gives the same run, step
//! for step, on every machine.
//!
//! Channels, watches and the mutex are runtime-independent, so they are the monoio
//! adapter's (tokio's `sync` and `local-sync`, as the broker runs them).
//!
//! Called by the simulator (`super`): [`run`] drives a whole run, [`spawn_as`] starts a
//! node's tasks, [`kill`] crashes them; openraft calls the rest through [`SimRuntime`].

use openraft::rt::AsyncRuntime;
use openraft_rt_monoio::MonoioRuntime;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// Whose task it is: `0` is the world (the driver, clients, observers); a node's id
/// otherwise.
pub type Tag = u64;

/// The world's tag.
pub const WORLD: Tag = 0;

/// Where virtual time starts (openraft subtracts durations from instants).
const EPOCH: Duration = Duration::from_secs(86_400);

/// Polls at one virtual instant beyond which the run is declared livelocked.
const POLLS_PER_INSTANT_MAX: u64 = 200_000;

type TaskId = u64;

/// The id of the future passed to [`run`].
const MAIN: TaskId = u64::MAX;

struct Slot {
    future: Option<Pin<Box<dyn Future<Output = ()>>>>,
    tag: Tag,
    queued: bool,
    waker: Waker,
}

/// The scheduler's state; one per run, in a thread-local.
struct World {
    generation: u64,
    now: Cell<Duration>,
    ready: RefCell<VecDeque<TaskId>>,
    main_woken: Cell<bool>,
    tasks: RefCell<BTreeMap<TaskId, Slot>>,
    timers: RefCell<BTreeMap<(Duration, u64), Waker>>,
    next_task: Cell<TaskId>,
    next_timer: Cell<u64>,
    current_tag: Cell<Tag>,
    rng: Cell<u64>,
    polls: Cell<u64>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<World>>> = const { RefCell::new(None) };
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

fn world() -> Option<Rc<World>> {
    CURRENT.try_with(|w| w.borrow().clone()).ok().flatten()
}

/// Wakes one task of one run (a waker that outlives its run does nothing).
struct TaskWaker {
    generation: u64,
    id: TaskId,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(world) = world() {
            if world.generation == self.generation {
                world.wake(self.id);
            }
        }
    }
}

impl World {
    fn wake(&self, id: TaskId) {
        if id == MAIN {
            self.main_woken.set(true);
            return;
        }
        let mut tasks = self.tasks.borrow_mut();
        if let Some(slot) = tasks.get_mut(&id) {
            if !slot.queued {
                slot.queued = true;
                self.ready.borrow_mut().push_back(id);
            }
        }
    }

    fn waker(&self, id: TaskId) -> Waker {
        Waker::from(Arc::new(TaskWaker {
            generation: self.generation,
            id,
        }))
    }

    fn spawn(&self, tag: Tag, future: Pin<Box<dyn Future<Output = ()>>>) {
        let id = self.next_task.get();
        self.next_task.set(id + 1);
        let slot = Slot {
            future: Some(future),
            tag,
            queued: true,
            waker: self.waker(id),
        };
        self.tasks.borrow_mut().insert(id, slot);
        self.ready.borrow_mut().push_back(id);
    }

    /// Polls task `id` once, if it still exists.
    fn poll_task(&self, id: TaskId) {
        let taken = {
            let mut tasks = self.tasks.borrow_mut();
            tasks.get_mut(&id).and_then(|slot| {
                slot.queued = false;
                slot.future
                    .take()
                    .map(|future| (future, slot.tag, slot.waker.clone()))
            })
        };
        let Some((mut future, tag, waker)) = taken else {
            return;
        };
        let outer = self.current_tag.replace(tag);
        let mut cx = Context::from_waker(&waker);
        let done = future.as_mut().poll(&mut cx).is_ready();
        self.current_tag.set(outer);
        if done {
            let slot = self.tasks.borrow_mut().remove(&id);
            drop(slot);
            drop(future);
            return;
        }
        let mut tasks = self.tasks.borrow_mut();
        match tasks.get_mut(&id) {
            Some(slot) => slot.future = Some(future),
            None => {
                drop(tasks);
                drop(future);
            }
        }
    }

    /// Moves the clock to the earliest timer and wakes every timer due then; false when
    /// there is none.
    fn advance(&self) -> bool {
        let due = {
            let mut timers = self.timers.borrow_mut();
            let Some((&(deadline, _), _)) = timers.iter().next() else {
                return false;
            };
            if deadline > self.now.get() {
                self.now.set(deadline);
                self.polls.set(0);
            }
            let later = timers.split_off(&(deadline, u64::MAX));
            std::mem::replace(&mut *timers, later)
        };
        for (_, waker) in due {
            waker.wake();
        }
        true
    }
}

/// Runs `main` on a fresh world seeded with `seed` until it completes; every task still
/// running then is dropped. Panics if the world stalls (no task can run and no timer is
/// set) or livelocks (too many polls without time moving).
pub fn run<T>(seed: u64, main: impl Future<Output = T>) -> T {
    let generation = GENERATION.with(|g| {
        g.set(g.get() + 1);
        g.get()
    });
    let world = Rc::new(World {
        generation,
        now: Cell::new(Duration::ZERO),
        ready: RefCell::new(VecDeque::new()),
        main_woken: Cell::new(true),
        tasks: RefCell::new(BTreeMap::new()),
        timers: RefCell::new(BTreeMap::new()),
        next_task: Cell::new(0),
        next_timer: Cell::new(0),
        current_tag: Cell::new(WORLD),
        rng: Cell::new(seed ^ 0x0A5F_1D0C_C0FF_EE00),
        polls: Cell::new(0),
    });
    let outer = CURRENT.with(|c| c.replace(Some(world.clone())));
    let mut current = Current {
        world: world.clone(),
        outer,
        finished: false,
    };
    let main_waker = world.waker(MAIN);
    let mut main = std::pin::pin!(main);
    let output = loop {
        world.polls.set(world.polls.get() + 1);
        assert!(
            world.polls.get() < POLLS_PER_INSTANT_MAX,
            "the simulated world livelocked at {:?}",
            world.now.get()
        );
        if world.main_woken.replace(false) {
            let mut cx = Context::from_waker(&main_waker);
            if let Poll::Ready(output) = main.as_mut().poll(&mut cx) {
                break output;
            }
            continue;
        }
        let next = world.ready.borrow_mut().pop_front();
        if let Some(id) = next {
            world.poll_task(id);
            continue;
        }
        assert!(
            world.advance(),
            "the simulated world stalled: no task can run"
        );
    };
    // Drop what is left while the world is still current (drops may wake or spawn).
    loop {
        let tasks = std::mem::take(&mut *world.tasks.borrow_mut());
        if tasks.is_empty() {
            break;
        }
        drop(tasks);
    }
    world.timers.borrow_mut().clear();
    current.finished = true;
    output
}

/// Makes the previous world current again when a run ends, even by a panic (a task's
/// assertion): the tasks of a run that panicked are leaked, not dropped half-way.
struct Current {
    world: Rc<World>,
    outer: Option<Rc<World>>,
    finished: bool,
}

impl Drop for Current {
    fn drop(&mut self) {
        if !self.finished {
            if let Ok(mut tasks) = self.world.tasks.try_borrow_mut() {
                std::mem::forget(std::mem::take(&mut *tasks));
            }
            if let Ok(mut timers) = self.world.timers.try_borrow_mut() {
                std::mem::forget(std::mem::take(&mut *timers));
            }
        }
        let outer = self.outer.take();
        let _ = CURRENT.try_with(|c| c.replace(outer));
    }
}

/// Spawns `future` as a task of `tag` (its own spawns inherit the tag).
pub fn spawn_as<F>(tag: Tag, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let state = Rc::new(RefCell::new(Join {
        result: None,
        cancelled: false,
        waker: None,
    }));
    let guard = Completion(state.clone());
    let body = async move {
        let output = future.await;
        guard.complete(output);
    };
    match world() {
        Some(world) => world.spawn(tag, Box::pin(body)),
        None => unreachable!("a simulated task spawned outside the simulator"),
    }
    JoinHandle(state)
}

/// Drops every task of `tag` now, as a crash does.
pub fn kill(tag: Tag) {
    let Some(world) = world() else { return };
    let victims: Vec<Slot> = {
        let mut tasks = world.tasks.borrow_mut();
        let ids: Vec<TaskId> = tasks
            .iter()
            .filter(|(_, slot)| slot.tag == tag)
            .map(|(id, _)| *id)
            .collect();
        ids.iter().filter_map(|id| tasks.remove(id)).collect()
    };
    drop(victims);
}

/// Virtual time since the run started.
pub fn elapsed() -> Duration {
    world().map_or(Duration::ZERO, |w| w.now.get())
}

/// The next number of the world's random stream (openraft's jitter).
fn next_random() -> u64 {
    let Some(world) = world() else {
        return 0x9E37_79B9_7F4A_7C15;
    };
    let state = world.rng.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
    world.rng.set(state);
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Join<T> {
    result: Option<T>,
    cancelled: bool,
    waker: Option<Waker>,
}

/// Completes a task's [`JoinHandle`], or cancels it when the task is dropped unfinished.
struct Completion<T>(Rc<RefCell<Join<T>>>);

impl<T> Completion<T> {
    fn complete(self, output: T) {
        let waker = {
            let mut join = self.0.borrow_mut();
            join.result = Some(output);
            join.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Completion<T> {
    fn drop(&mut self) {
        let waker = {
            let Ok(mut join) = self.0.try_borrow_mut() else {
                return;
            };
            if join.result.is_some() {
                return;
            }
            join.cancelled = true;
            join.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A spawned task's result.
pub struct JoinHandle<T>(Rc<RefCell<Join<T>>>);

/// A task that was dropped (its node crashed) before it finished.
#[derive(Debug)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the task was dropped (its node crashed)")
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, Cancelled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut join = self.0.borrow_mut();
        if let Some(output) = join.result.take() {
            return Poll::Ready(Ok(output));
        }
        if join.cancelled {
            return Poll::Ready(Err(Cancelled));
        }
        join.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A point in virtual time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SimInstant(Duration);

impl Add<Duration> for SimInstant {
    type Output = SimInstant;
    fn add(self, rhs: Duration) -> SimInstant {
        SimInstant(self.0 + rhs)
    }
}

impl AddAssign<Duration> for SimInstant {
    fn add_assign(&mut self, rhs: Duration) {
        self.0 += rhs;
    }
}

impl Sub<Duration> for SimInstant {
    type Output = SimInstant;
    fn sub(self, rhs: Duration) -> SimInstant {
        SimInstant(self.0.saturating_sub(rhs))
    }
}

impl Sub<SimInstant> for SimInstant {
    type Output = Duration;
    fn sub(self, rhs: SimInstant) -> Duration {
        self.0.saturating_sub(rhs.0)
    }
}

impl SubAssign<Duration> for SimInstant {
    fn sub_assign(&mut self, rhs: Duration) {
        self.0 = self.0.saturating_sub(rhs);
    }
}

impl openraft::Instant for SimInstant {
    fn now() -> SimInstant {
        SimInstant(EPOCH + elapsed())
    }
}

/// A timer on virtual time.
pub struct Sleep {
    deadline: Duration,
    key: Option<(Duration, u64)>,
}

impl Sleep {
    fn until(deadline: SimInstant) -> Sleep {
        Sleep {
            deadline: deadline.0.saturating_sub(EPOCH),
            key: None,
        }
    }

    fn poll_at(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(world) = world() else {
            return Poll::Ready(());
        };
        if world.now.get() >= self.deadline {
            if let Some(key) = self.key.take() {
                world.timers.borrow_mut().remove(&key);
            }
            return Poll::Ready(());
        }
        let key = *self.key.get_or_insert_with(|| {
            let seq = world.next_timer.get();
            world.next_timer.set(seq + 1);
            (self.deadline, seq)
        });
        world.timers.borrow_mut().insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_at(cx)
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let (Some(key), Some(world)) = (self.key.take(), world()) {
            if let Ok(mut timers) = world.timers.try_borrow_mut() {
                timers.remove(&key);
            }
        }
    }
}

/// Sleeps `duration` of virtual time.
pub fn sleep(duration: Duration) -> Sleep {
    Sleep::until(<SimInstant as openraft::Instant>::now() + duration)
}

/// `future`, given `duration` of virtual time.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future: Box::pin(future),
        sleep: sleep(duration),
    }
}

/// A future with a deadline.
pub struct Timeout<F> {
    future: Pin<Box<F>>,
    sleep: Sleep,
}

/// The deadline of a [`Timeout`] passed.
#[derive(Debug)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(output) = this.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match this.sleep.poll_at(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// openraft's random source in the simulator: the world's seeded stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimRng;

impl rand_core::TryRng for SimRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((next_random() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(next_random())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let bytes = next_random().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// The simulator's [`AsyncRuntime`].
#[derive(Debug, Default)]
pub struct SimRuntime;

impl AsyncRuntime for SimRuntime {
    type JoinError = Cancelled;
    type JoinHandle<T: 'static> = JoinHandle<T>;
    type Sleep = Sleep;
    type Instant = SimInstant;
    type TimeoutError = Elapsed;
    type Timeout<R, T: Future<Output = R>> = Timeout<T>;
    type ThreadLocalRng = SimRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + 'static,
        T::Output: 'static,
    {
        let tag = world().map_or(WORLD, |w| w.current_tag.get());
        spawn_as(tag, future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        Sleep::until(deadline)
    }

    fn timeout<R, F: Future<Output = R>>(duration: Duration, future: F) -> Self::Timeout<R, F> {
        Timeout {
            future: Box::pin(future),
            sleep: sleep(duration),
        }
    }

    fn timeout_at<R, F: Future<Output = R>>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        Timeout {
            future: Box::pin(future),
            sleep: Sleep::until(deadline),
        }
    }

    fn is_panic(_: &Self::JoinError) -> bool {
        false
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        SimRng
    }

    type Mpsc = <MonoioRuntime as AsyncRuntime>::Mpsc;
    type Watch = <MonoioRuntime as AsyncRuntime>::Watch;
    type Oneshot = <MonoioRuntime as AsyncRuntime>::Oneshot;
    type Mutex<T: 'static> = <MonoioRuntime as AsyncRuntime>::Mutex<T>;

    fn new(_threads: usize) -> Self {
        SimRuntime
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        run(0, future)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn time_moves_only_when_every_task_waits_and_timers_fire_in_order() {
        let order = run(1, async {
            let log = Rc::new(RefCell::new(Vec::new()));
            let mut handles = Vec::new();
            for (name, ms) in [("c", 30u64), ("a", 10), ("b", 20), ("a2", 10)] {
                let log = log.clone();
                handles.push(spawn_as(WORLD, async move {
                    sleep(Duration::from_millis(ms)).await;
                    log.borrow_mut().push((name, elapsed()));
                }));
            }
            for handle in handles {
                assert!(handle.await.is_ok());
            }
            let order = log.borrow().clone();
            order
        });
        let names: Vec<&str> = order.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["a", "a2", "b", "c"]);
        assert_eq!(order[3].1, Duration::from_millis(30));
    }

    #[test]
    fn a_killed_node_loses_its_tasks_and_its_joiners_learn_it() {
        run(2, async {
            let done = Rc::new(Cell::new(false));
            let flag = done.clone();
            let handle = spawn_as(7, async move {
                sleep(Duration::from_millis(5)).await;
                flag.set(true);
            });
            kill(7);
            sleep(Duration::from_millis(10)).await;
            assert!(!done.get());
            assert!(handle.await.is_err());
        });
    }

    #[test]
    fn a_timeout_fires_on_virtual_time() {
        run(3, async {
            let slow = SimRuntime::timeout(Duration::from_secs(5), sleep(Duration::from_secs(60)));
            assert!(slow.await.is_err());
            assert_eq!(elapsed(), Duration::from_secs(5));
        });
    }
}
