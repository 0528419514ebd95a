//! What one subscription holds of its assigned partitions: fetched messages
//! waiting to be handed out, deliveries in flight, released ones waiting for
//! their delay, and per partition the offsets not yet acknowledged, from which
//! the only offset that may be committed follows.
//!
//! The tracker promises that a committed offset never passes a message of
//! this assignment that was fetched but not acknowledged: the committable
//! offset of a partition is its lowest outstanding offset, or the offset after
//! the last fetched one when none is outstanding. A revoked partition's state
//! is dropped whole: nothing is committed for it, and acks or releases of its
//! deliveries (now stale) change nothing.
//!
//! It also checks that each partition's offsets arrive without gaps from the
//! committed offset on. A gap means the broker skipped records (Apache Kafka
//! does so only for compacted records, transaction markers or deleted
//! segments; some Kafka-protocol brokers, tansu 0.6 for one, skip the rest of a
//! record batch when a fetch starts inside it). On a gap the consumer is asked
//! to seek back, ever further, until the expected offset or an earlier one
//! shows up; a gap that persists after that is accepted as real.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use crate::{AckToken, Delivery};

/// A fetched message and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub partition: i32,
    pub offset: i64,
    /// Its token is assigned when it is handed out.
    pub delivery: Delivery,
}

#[derive(Debug)]
struct Held {
    generation: u64,
    fetched: Fetched,
}

/// What to do with a fetched message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetch {
    /// Buffered for delivery.
    Accepted,
    /// Not for delivery (unassigned partition, already fetched, or before
    /// the expected offset while seeking back).
    Ignored,
    /// Records were skipped: seek the partition to this offset and ignore the
    /// message.
    SeekBack(i64),
}

#[derive(Debug)]
struct SeekBack {
    /// The offset that was expected when the gap showed.
    target: i64,
    /// How far before `target` the last seek went.
    step: i64,
    /// Whether an offset at or before `target` arrived since.
    reached: bool,
}

#[derive(Debug)]
struct Partition {
    generation: u64,
    /// The committed offset at assignment (where fetching starts).
    start: Option<i64>,
    seek_back: Option<SeekBack>,
    /// When a message was last accepted (or the partition assigned).
    progress: Instant,
    /// Fetched (buffered, in flight or released) and not acknowledged.
    outstanding: BTreeSet<i64>,
    /// The offset after the last fetched message, once one was fetched.
    next_fetch: Option<i64>,
    /// The offset last committed by this subscription.
    committed: Option<i64>,
    /// Whether fetching is paused (`None`: never set since assignment).
    paused: Option<bool>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    generation: u64,
    next_token: u64,
    partitions: HashMap<i32, Partition>,
    ready: VecDeque<Held>,
    delayed: Vec<(Instant, Held)>,
    in_flight: HashMap<u64, Held>,
}

impl Tracker {
    /// Partitions newly assigned, with their committed offsets where known:
    /// fresh state in a new generation.
    pub fn assign(&mut self, partitions: &[(i32, Option<i64>)]) {
        self.generation += 1;
        for &(p, start) in partitions {
            self.partitions.insert(
                p,
                Partition {
                    generation: self.generation,
                    start,
                    seek_back: None,
                    progress: Instant::now(),
                    outstanding: BTreeSet::new(),
                    next_fetch: None,
                    committed: None,
                    paused: None,
                },
            );
        }
    }

    /// Partitions revoked or lost: their state, buffered, released and
    /// in-flight messages are forgotten.
    pub fn revoke(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.partitions.remove(p);
        }
        let gone = |h: &Held| partitions.contains(&h.fetched.partition);
        self.ready.retain(|h| !gone(h));
        self.delayed.retain(|(_, h)| !gone(h));
        self.in_flight.retain(|_, h| !gone(h));
    }

    /// A message fetched from an assigned partition joins the buffer unless
    /// it is not the next one expected (see the module documentation);
    /// `delivery` is called only for a message that joins it.
    pub fn fetched(
        &mut self,
        partition: i32,
        offset: i64,
        delivery: impl FnOnce() -> Delivery,
    ) -> Fetch {
        let Some(part) = self.partitions.get_mut(&partition) else {
            return Fetch::Ignored;
        };
        if let Some(expected) = part.next_fetch.or(part.start) {
            let current = part.seek_back.as_mut().filter(|s| s.target == expected);
            if offset < expected {
                if let Some(s) = current {
                    s.reached = true;
                }
                return Fetch::Ignored;
            }
            if offset > expected {
                if let Some(to) = seek_back(part, expected, GAP_STEP) {
                    return Fetch::SeekBack(to);
                }
            }
        }
        part.seek_back = None;
        part.progress = Instant::now();
        part.outstanding.insert(offset);
        part.next_fetch = Some(offset + 1);
        self.ready.push_back(Held {
            generation: part.generation,
            fetched: Fetched {
                partition,
                offset,
                delivery: delivery(),
            },
        });
        Fetch::Accepted
    }

    /// Partitions fetching (not paused) that accepted nothing for `idle`,
    /// with the offset they expect next.
    pub fn idle(&self, idle: std::time::Duration) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .filter(|(_, part)| part.paused == Some(false) && part.progress.elapsed() >= idle)
            .filter_map(|(&p, part)| Some((p, part.next_fetch.or(part.start)?)))
            .collect()
    }

    /// Starts the idle clocks of all partitions afresh (after a time when
    /// nothing was fetched on purpose).
    pub fn restart_idle_clocks(&mut self) {
        let now = Instant::now();
        for part in self.partitions.values_mut() {
            part.progress = now;
        }
    }

    /// An idle partition that may be stuck before records the broker skipped:
    /// where to seek back to, as for a gap (`None` once probed).
    pub fn stuck(&mut self, partition: i32, expected: i64) -> Option<i64> {
        let part = self.partitions.get_mut(&partition)?;
        part.progress = Instant::now();
        seek_back(part, expected, IDLE_STEP)
    }

    /// Hands out up to `max` deliveries, never more than `max_in_flight`
    /// un-acknowledged at once; released messages whose delay is over come
    /// first.
    pub fn take(&mut self, max: usize, max_in_flight: usize, now: Instant) -> Vec<Delivery> {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.delayed = later;
        for (_, held) in due.into_iter().rev() {
            self.ready.push_front(held);
        }
        let room = max_in_flight.saturating_sub(self.in_flight.len()).min(max);
        let mut out = Vec::with_capacity(room.min(self.ready.len()));
        while out.len() < room {
            let Some(mut held) = self.ready.pop_front() else {
                break;
            };
            self.next_token += 1;
            held.fetched.delivery.token = AckToken(self.next_token);
            out.push(held.fetched.delivery.clone());
            self.in_flight.insert(self.next_token, held);
        }
        out
    }

    /// Acknowledged deliveries stop holding back their partition's commit.
    /// Unknown or stale tokens are ignored.
    pub fn ack(&mut self, tokens: &[AckToken]) {
        for token in tokens {
            if let Some(held) = self.in_flight.remove(&token.0) {
                if let Some(part) = self.current(&held) {
                    part.outstanding.remove(&held.fetched.offset);
                }
            }
        }
    }

    /// Released deliveries are handed out again once `at` has passed, counted
    /// as redeliveries. Unknown or stale tokens are ignored.
    pub fn release(&mut self, tokens: &[AckToken], at: Instant) {
        for token in tokens {
            if let Some(mut held) = self.in_flight.remove(&token.0) {
                if self.current(&held).is_some() {
                    held.fetched.delivery.redeliveries += 1;
                    self.delayed.push((at, held));
                }
            }
        }
    }

    fn current(&mut self, held: &Held) -> Option<&mut Partition> {
        self.partitions
            .get_mut(&held.fetched.partition)
            .filter(|p| p.generation == held.generation)
    }

    /// Offsets to commit now: per assigned partition whose committable offset
    /// moved since its last commit, `(partition, offset, generation)`.
    pub fn commits(&self) -> Vec<(i32, i64, u64)> {
        let mut out: Vec<_> = self
            .partitions
            .iter()
            .filter_map(|(&p, part)| {
                let committable = part.outstanding.first().copied().or(part.next_fetch)?;
                (part.committed != Some(committable)).then_some((p, committable, part.generation))
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Records commits that succeeded (ignored for partitions revoked since).
    pub fn committed(&mut self, done: &[(i32, i64, u64)]) {
        for &(p, offset, generation) in done {
            if let Some(part) = self.partitions.get_mut(&p) {
                if part.generation == generation {
                    part.committed = Some(offset);
                }
            }
        }
    }

    /// Messages fetched and not yet handed out: those ready, and those
    /// released that wait out their delay (counted so that a subscriber
    /// releasing what it cannot start does not make the consumer fetch
    /// without bound meanwhile).
    pub fn buffered(&self) -> usize {
        self.ready.len() + self.delayed.len()
    }

    /// Deliveries handed out and neither acknowledged nor released.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// When the next released message becomes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.delayed.iter().map(|(at, _)| *at).min()
    }

    /// Partitions whose pause state differs from `pause`, with the offset to
    /// resume fetching from; marks them as set.
    ///
    /// Pausing drops what was prefetched, so a partition resumed after a
    /// pause starts a new fetch: from the offset expected next, or where the
    /// seek back that the pause interrupted went. What an earlier seek back
    /// proved no longer holds (the new fetch may start inside a record batch,
    /// the rest of which a broker may skip), so it is forgotten: a gap or
    /// idleness seeks back afresh.
    pub fn set_paused(&mut self, pause: bool) -> Vec<(i32, Option<i64>)> {
        let mut out: Vec<_> = self
            .partitions
            .iter_mut()
            .filter(|(_, part)| part.paused != Some(pause))
            .map(|(&p, part)| {
                let was = part.paused.replace(pause);
                if pause {
                    return (p, None);
                }
                part.progress = Instant::now();
                if was.is_none() {
                    // Never paused: librdkafka fetches from where it started.
                    return (p, part.next_fetch);
                }
                let expected = part.next_fetch.or(part.start);
                let from = match (expected, part.seek_back.take()) {
                    (Some(e), Some(s)) if s.target == e && !s.reached => {
                        let from = (e - s.step).max(0);
                        part.seek_back = Some(s);
                        Some(from)
                    }
                    _ => expected,
                };
                (p, from)
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Forgets the pause state of a partition (its pause call failed).
    pub fn pause_unknown(&mut self, partition: i32) {
        if let Some(part) = self.partitions.get_mut(&partition) {
            part.paused = None;
        }
    }
}

/// First distance of a seek back after a gap (the broker answers at once, so
/// doubling from small is quick).
const GAP_STEP: i64 = 8;
/// First distance of a seek back probing an idle partition (each round waits
/// for idleness, so start far enough to cover a whole record batch).
const IDLE_STEP: i64 = 1024;

/// Where to seek back to for records missing from `expected` on, ever
/// further back; `None` once the gap proved real.
fn seek_back(part: &mut Partition, expected: i64, first_step: i64) -> Option<i64> {
    let current = part.seek_back.as_ref().filter(|s| s.target == expected);
    if current.is_some_and(|s| s.reached || s.step >= expected) {
        return None;
    }
    let step = current.map_or(first_step, |s| s.step * 2);
    part.seek_back = Some(SeekBack {
        target: expected,
        step,
        reached: false,
    });
    Some((expected - step).max(0))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::IncomingMessage;

    fn msg(partition: i32, offset: i64) -> Fetched {
        Fetched {
            partition,
            offset,
            delivery: Delivery::new(
                AckToken(0),
                0,
                IncomingMessage {
                    topic: "t".into(),
                    key: None,
                    attributes: BTreeMap::new(),
                    content_type: None,
                    body: Vec::new(),
                    position: format!("t/{partition}/{offset}"),
                    stable_position: true,
                },
            ),
        }
    }

    fn fetch(t: &mut Tracker, partition: i32, offset: i64) -> Fetch {
        t.fetched(partition, offset, || msg(partition, offset).delivery)
    }

    fn offsets(ds: &[Delivery]) -> Vec<String> {
        ds.iter().map(|d| d.position.clone()).collect()
    }

    #[test]
    fn commits_only_contiguously_acked_offsets() {
        let mut t = Tracker::default();
        t.assign(&[(0, None), (1, None)]);
        for o in 10..15 {
            assert_eq!(fetch(&mut t, 0, o), Fetch::Accepted);
        }
        assert_eq!(fetch(&mut t, 1, 3), Fetch::Accepted);
        let now = Instant::now();
        let ds = t.take(100, 100, now);
        assert_eq!(ds.len(), 6);
        // Nothing acked: the lowest outstanding offsets.
        assert_eq!(t.commits(), vec![(0, 10, 1), (1, 3, 1)]);
        t.committed(&t.commits());
        assert!(t.commits().is_empty());
        // Acking 12..15 leaves 10 and 11 running: still 10.
        t.ack(&[ds[2].token, ds[3].token, ds[4].token]);
        assert!(t.commits().is_empty());
        t.ack(&[ds[1].token]);
        assert!(t.commits().is_empty(), "10 is still running");
        t.ack(&[ds[0].token]);
        assert_eq!(t.commits(), vec![(0, 15, 1)]);
        t.ack(&[ds[5].token]);
        assert_eq!(t.commits(), vec![(0, 15, 1), (1, 4, 1)]);
    }

    #[test]
    fn revoked_partitions_commit_nothing_and_stale_acks_are_no_ops() {
        let mut t = Tracker::default();
        t.assign(&[(0, None)]);
        fetch(&mut t, 0, 0);
        fetch(&mut t, 0, 1);
        fetch(&mut t, 0, 2);
        let ds = t.take(2, 100, Instant::now());
        t.revoke(&[0]);
        assert!(t.commits().is_empty());
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.buffered(), 0);
        // Assigned again: starts over from the committed offset.
        t.assign(&[(0, None)]);
        fetch(&mut t, 0, 0);
        t.ack(&[ds[0].token, ds[1].token]);
        t.release(&[ds[0].token], Instant::now());
        assert_eq!(t.commits(), vec![(0, 0, 2)], "stale acks moved nothing");
        assert!(t.next_due().is_none());
    }

    #[test]
    fn max_in_flight_bounds_take_and_duplicates_are_ignored() {
        let mut t = Tracker::default();
        t.assign(&[(0, None)]);
        for o in 0..5 {
            fetch(&mut t, 0, o);
        }
        assert_eq!(fetch(&mut t, 0, 3), Fetch::Ignored, "already fetched");
        assert_eq!(fetch(&mut t, 7, 0), Fetch::Ignored, "not assigned");
        let now = Instant::now();
        let first = t.take(10, 3, now);
        assert_eq!(first.len(), 3);
        assert!(t.take(10, 3, now).is_empty());
        t.ack(&[first[0].token]);
        assert_eq!(offsets(&t.take(10, 3, now)), vec!["t/0/3"]);
    }

    #[test]
    fn released_messages_come_back_after_their_delay_and_hold_the_commit() {
        let mut t = Tracker::default();
        t.assign(&[(0, None)]);
        fetch(&mut t, 0, 0);
        fetch(&mut t, 0, 1);
        let now = Instant::now();
        let ds = t.take(10, 10, now);
        t.release(&[ds[0].token], now + Duration::from_secs(1));
        // waiting out its delay, it takes room in the buffer
        assert_eq!((t.buffered(), t.in_flight()), (1, 1));
        t.ack(&[ds[1].token]);
        assert_eq!(t.commits(), vec![(0, 0, 1)]);
        assert!(t.take(10, 10, now).is_empty());
        assert_eq!(t.next_due(), Some(now + Duration::from_secs(1)));
        let back = t.take(10, 10, now + Duration::from_secs(1));
        assert_eq!(offsets(&back), vec!["t/0/0"]);
        assert_eq!(t.buffered(), 0);
        assert_eq!(back[0].redeliveries, 1);
        t.ack(&[back[0].token]);
        assert_eq!(t.commits(), vec![(0, 2, 1)]);
    }

    #[test]
    fn pause_state_is_set_once_per_assignment() {
        let mut t = Tracker::default();
        t.assign(&[(0, None), (1, None)]);
        fetch(&mut t, 1, 4);
        assert_eq!(t.set_paused(false), vec![(0, None), (1, Some(5))]);
        assert!(t.set_paused(false).is_empty());
        assert_eq!(t.set_paused(true).len(), 2);
        t.assign(&[(2, None)]);
        assert_eq!(t.set_paused(true), vec![(2, None)]);
    }

    #[test]
    fn a_gap_seeks_back_until_the_expected_offset_shows() {
        let mut t = Tracker::default();
        t.assign(&[(0, Some(20))]);
        // The broker skipped 20..29 (a fetch inside a record batch).
        assert_eq!(fetch(&mut t, 0, 30), Fetch::SeekBack(12));
        assert_eq!(fetch(&mut t, 0, 30), Fetch::SeekBack(4));
        assert_eq!(fetch(&mut t, 0, 15), Fetch::Ignored);
        assert_eq!(fetch(&mut t, 0, 20), Fetch::Accepted);
        assert_eq!(fetch(&mut t, 0, 21), Fetch::Accepted);
        // Nothing taken yet: the commit stays at 20.
        assert_eq!(t.commits(), vec![(0, 20, 1)]);
    }

    #[test]
    fn a_resume_fetches_again_what_the_pause_may_have_cut_off() {
        let mut t = Tracker::default();
        t.assign(&[(0, Some(2000))]);
        assert_eq!(t.set_paused(false), vec![(0, None)], "fetching as assigned");
        // Idle: the probe reaches an earlier record, then nothing comes.
        assert_eq!(t.stuck(0, 2000), Some(976));
        assert_eq!(fetch(&mut t, 0, 1500), Fetch::Ignored);
        assert_eq!(t.stuck(0, 2000), None, "probed: left alone");
        // A pause dropped the rest of that fetch; the resume fetches from the
        // expected offset, and the partition may be probed again.
        assert_eq!(t.set_paused(true), vec![(0, None)]);
        assert_eq!(t.set_paused(false), vec![(0, Some(2000))]);
        assert_eq!(t.stuck(0, 2000), Some(976));
        // A seek back cut short by a pause resumes where it went.
        assert_eq!(t.set_paused(true), vec![(0, None)]);
        assert_eq!(t.set_paused(false), vec![(0, Some(976))]);
        assert_eq!(fetch(&mut t, 0, 1999), Fetch::Ignored);
        assert_eq!(fetch(&mut t, 0, 2000), Fetch::Accepted);
        assert_eq!(t.set_paused(true), vec![(0, None)]);
        assert_eq!(t.set_paused(false), vec![(0, Some(2001))]);
    }

    #[test]
    fn a_gap_that_persists_after_seeking_back_is_real() {
        let mut t = Tracker::default();
        t.assign(&[(0, Some(10))]);
        assert_eq!(fetch(&mut t, 0, 12), Fetch::SeekBack(2));
        assert_eq!(fetch(&mut t, 0, 2), Fetch::Ignored);
        assert_eq!(fetch(&mut t, 0, 12), Fetch::Accepted, "10 and 11 are gone");
        // Out of range (retention): seeking back to the start changes nothing.
        t.assign(&[(1, Some(3))]);
        assert_eq!(fetch(&mut t, 1, 50), Fetch::SeekBack(0));
        assert_eq!(fetch(&mut t, 1, 50), Fetch::Accepted);
    }
}
