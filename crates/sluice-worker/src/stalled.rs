//! Deliveries whose attempts the store could not start (it was unreachable),
//! or received just before their queue was paused or its circuit opened,
//! held by the pool and started again after a pause, rather than handed back
//! to the broker: a broker may count every return against a delivery limit
//! (RabbitMQ quorum queues: 20 by default from 4.0) and then drop the
//! message, so an outage of the store must not cost a message its returns.
//! A held delivery whose start went unanswered (the store may have committed
//! it) is started again under the same lease token, so that the store hands
//! back the attempt it started instead of counting another.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sluice_broker::{AckToken, Delivery};
use sluice_store::LeaseToken;

/// How long held deliveries wait before their starts are tried again.
pub(crate) const STALL_PAUSE: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct Stalled {
    deliveries: Vec<Delivery>,
    /// When the held deliveries may be started again.
    due: Option<Instant>,
    /// The lease tokens of held deliveries' unanswered starts.
    unheard: HashMap<AckToken, LeaseToken>,
}

impl Stalled {
    /// Holds `d`, to be started again [`STALL_PAUSE`] after the first
    /// delivery held since the last take.
    pub fn hold(&mut self, d: Delivery, now: Instant) {
        self.due.get_or_insert(now + STALL_PAUSE);
        self.deliveries.push(d);
    }

    /// Holds `d`, whose start under `lease` went unanswered: it is started
    /// again under the same token (see [`Stalled::lease_for`]).
    pub fn hold_unheard(&mut self, d: Delivery, lease: Option<LeaseToken>, now: Instant) {
        if let Some(lease) = lease {
            self.unheard.insert(d.token, lease);
        }
        self.hold(d, now);
    }

    /// The lease token to start the delivery of `token` under: that of its
    /// last unanswered start, or a new one.
    pub fn lease_for(&mut self, token: AckToken) -> LeaseToken {
        self.unheard.remove(&token).unwrap_or_default()
    }

    /// The held deliveries whose last start went unanswered, taken out; their
    /// tokens stay for [`Stalled::lease_for`].
    pub fn take_unheard(&mut self) -> Vec<Delivery> {
        let (unheard, rest) = std::mem::take(&mut self.deliveries)
            .into_iter()
            .partition(|d| self.unheard.contains_key(&d.token));
        self.deliveries = rest;
        unheard
    }

    pub fn len(&self) -> usize {
        self.deliveries.len()
    }

    /// Up to `max` held deliveries, oldest first, once their pause is over
    /// (none before); the rest wait another pause.
    pub fn take_due(&mut self, now: Instant, max: usize) -> Vec<Delivery> {
        if self.due.is_none_or(|due| now < due) {
            return Vec::new();
        }
        let n = max.min(self.deliveries.len());
        let taken: Vec<Delivery> = self.deliveries.drain(..n).collect();
        self.due = (!self.deliveries.is_empty()).then(|| now + STALL_PAUSE);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_broker::{AckToken, IncomingMessage};

    fn delivery(n: u64) -> Delivery {
        Delivery::new(
            AckToken(n),
            0,
            IncomingMessage {
                topic: "t".into(),
                key: None,
                attributes: Default::default(),
                content_type: None,
                body: Vec::new(),
                position: format!("t/0/{n}"),
                stable_position: true,
            },
        )
    }

    fn tokens(ds: &[Delivery]) -> Vec<u64> {
        ds.iter().map(|d| d.token.0).collect()
    }

    #[test]
    fn held_deliveries_come_back_after_the_pause_in_order_at_most_max() {
        let t0 = Instant::now();
        let mut s = Stalled::default();
        assert!(s.take_due(t0, 10).is_empty());
        s.hold(delivery(1), t0);
        s.hold(delivery(2), t0 + Duration::from_millis(500));
        s.hold(delivery(3), t0 + Duration::from_millis(600));
        assert_eq!(s.len(), 3);
        assert!(s.take_due(t0 + STALL_PAUSE / 2, 10).is_empty());
        let now = t0 + STALL_PAUSE;
        assert_eq!(tokens(&s.take_due(now, 2)), vec![1, 2]);
        // the rest wait another pause
        assert!(s.take_due(now, 2).is_empty());
        assert_eq!(tokens(&s.take_due(now + STALL_PAUSE, 2)), vec![3]);
        assert_eq!(s.len(), 0);
        assert!(s.take_due(now + STALL_PAUSE * 5, 2).is_empty());
    }

    #[test]
    fn a_delivery_whose_start_went_unanswered_keeps_its_lease_token_once() {
        let t0 = Instant::now();
        let mut s = Stalled::default();
        let lease = LeaseToken::new();
        s.hold_unheard(delivery(1), Some(lease.clone()), t0);
        s.hold_unheard(delivery(2), None, t0);
        assert_eq!(s.len(), 2);
        assert_eq!(s.lease_for(AckToken(1)), lease);
        // taken: a later start of it gets a new token, as does any other
        assert_ne!(s.lease_for(AckToken(1)), lease);
        assert_ne!(s.lease_for(AckToken(2)), lease);
    }

    #[test]
    fn the_deliveries_whose_start_went_unanswered_are_taken_out_with_their_tokens() {
        let t0 = Instant::now();
        let mut s = Stalled::default();
        let lease = LeaseToken::new();
        s.hold(delivery(1), t0);
        s.hold_unheard(delivery(2), Some(lease.clone()), t0);
        assert_eq!(tokens(&s.take_unheard()), vec![2]);
        assert_eq!(s.len(), 1);
        assert_eq!(s.lease_for(AckToken(2)), lease);
    }
}
