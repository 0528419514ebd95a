//! A pool's handler slots, as many as its concurrency limit. Waiting jobs
//! get slots in the order they asked. When the limit drops below the slots
//! in use, slots coming back are retired instead of handed on, so the
//! running handlers fall to the new limit even while jobs wait.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The slots of one pool; see the module docs.
#[derive(Debug)]
pub(crate) struct Slots {
    sem: Arc<Semaphore>,
    count: Mutex<Count>,
}

#[derive(Debug)]
struct Count {
    /// Slots in existence: free plus in use.
    total: usize,
    /// The limit `total` moves towards.
    target: usize,
}

/// A place in line for a slot; resolves to the slot.
pub(crate) type SlotWait = Pin<Box<dyn Future<Output = Slot> + Send>>;

/// One slot, given back (or retired) on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    slots: Arc<Slots>,
}

impl Slots {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            sem: Arc::new(Semaphore::new(limit)),
            count: Mutex::new(Count {
                total: limit,
                target: limit,
            }),
        })
    }

    /// Moves the number of slots to `limit`: new slots are free at once,
    /// free ones beyond it go at once, ones in use go when given back.
    pub(crate) fn set_limit(&self, limit: usize) {
        let mut c = self.count.lock().expect("slots lock");
        c.target = limit;
        if c.total < limit {
            self.sem.add_permits(limit - c.total);
            c.total = limit;
        } else if c.total > limit {
            c.total -= self.sem.forget_permits(c.total - limit);
        }
    }

    /// Free slots now.
    pub(crate) fn available(&self) -> usize {
        self.sem.available_permits()
    }

    /// A free slot now, if there is one and nobody waits for one.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        let permit = self.sem.clone().try_acquire_owned().ok()?;
        Some(self.slot(permit))
    }

    /// The next slot, after those who asked earlier.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Slot {
        let permit = self
            .sem
            .clone()
            .acquire_owned()
            .await
            .expect("the slots' semaphore is never closed");
        self.slot(permit)
    }

    /// Takes the caller's place in line now: a free slot at once if there
    /// is one and nobody waits, else a wait for the next slot after those
    /// who asked earlier. The place is held from this call, wherever and
    /// however late the wait is awaited, so jobs handed to tasks in order
    /// get slots in that order.
    pub(crate) async fn line_up(self: &Arc<Self>) -> Result<Slot, SlotWait> {
        // a free permit means nobody waits (one given back goes to the
        // first in line): no place to hold, nothing to allocate
        if let Some(slot) = self.try_acquire() {
            return Ok(slot);
        }
        let slots = self.clone();
        let mut wait: SlotWait = Box::pin(async move { slots.acquire().await });
        // one poll joins the semaphore's queue (or takes a permit freed
        // since)
        match std::future::poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx))).await {
            Poll::Ready(slot) => Ok(slot),
            Poll::Pending => Err(wait),
        }
    }

    fn slot(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            permit: Some(permit),
            slots: self.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let mut c = self.slots.count.lock().expect("slots lock");
        if c.total > c.target {
            c.total -= 1;
            permit.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_lower_limit_holds_even_while_jobs_wait() {
        let slots = Slots::new(4);
        let running: Vec<Slot> = (0..4).map(|_| slots.try_acquire().unwrap()).collect();
        // jobs queue up for slots
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        slots.set_limit(2);
        let mut running = running.into_iter();
        // two slots coming back are retired, not handed to the waiter
        drop(running.next());
        drop(running.next());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "a retired slot went to a waiter");
        // the third one back goes to it
        drop(running.next());
        let slot = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the waiter gets the next slot")
            .unwrap();
        assert_eq!(slots.available(), 0);
        drop(slot);
        drop(running);
        assert_eq!(slots.available(), 2);
    }

    #[tokio::test]
    async fn places_in_line_are_served_in_the_order_taken_not_awaited() {
        let slots = Slots::new(1);
        let Ok(first) = slots.line_up().await else {
            panic!("a slot is free")
        };
        let Err(second) = slots.line_up().await else {
            panic!("no slot is free")
        };
        let Err(third) = slots.line_up().await else {
            panic!("no slot is free")
        };
        // the later place is awaited first, as a task spawned later but
        // scheduled sooner would
        let third = tokio::spawn(third);
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(1), second)
            .await
            .expect("the second place gets the slot given back");
        assert!(!third.is_finished(), "the third place overtook the second");
        drop(second);
        let third = tokio::time::timeout(Duration::from_secs(1), third)
            .await
            .expect("the third place gets the next slot")
            .unwrap();
        drop(third);
        assert_eq!(slots.available(), 1);
    }

    #[tokio::test]
    async fn a_higher_limit_frees_slots_at_once() {
        let slots = Slots::new(1);
        let _a = slots.try_acquire().unwrap();
        assert!(slots.try_acquire().is_none());
        slots.set_limit(3);
        assert_eq!(slots.available(), 2);
        slots.set_limit(2);
        assert_eq!(slots.available(), 1);
    }
}
