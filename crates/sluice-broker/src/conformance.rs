//! The broker conformance suite: what every backend promises through the
//! [`Broker`], [`Publisher`](crate::Publisher) and [`Subscription`] traits.
//!
//! A backend's tests run it with [`broker_conformance!`](crate::broker_conformance),
//! giving an async expression that yields a fresh broker (an
//! `Arc<dyn Broker>`, a [`Fixture`] keeping a temp dir alive, or `None` to
//! skip) and optionally the backend's [`Settings`]:
//!
//! ```ignore
//! mod conformance {
//!     sluice_broker::broker_conformance!(super::fresh_broker(), super::settings());
//! }
//! ```
//!
//! Each case uses its own topics and groups, subscribes before publishing and
//! bounds every wait, so cases can share one broker and run in parallel.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use sluice_core::JobId;
use tokio::time::Instant;

use crate::{AckToken, Broker, Delivery, OutgoingMessage, SubscribeOptions, Subscription};

mod lag;
mod send;
pub use lag::{consumer_lag_counts_unconsumed, consumer_mark_is_passed_once_consumed};
pub use send::send_ahead_of_confirms;

/// Upper bound of one case, a safety net over the bounded waits inside.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the suite may expect of a backend beyond the traits' wording.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The backend hands an un-acked delivery to another subscriber of the
    /// group after this long even while its holder is still subscribed
    /// (embedded: the visibility timeout). `None`: only once the holder's
    /// subscription is gone (Kafka rebalance, AMQP channel close); cases that
    /// need lease expiry then check only what they can.
    pub visibility_timeout: Option<Duration>,
    /// `Delivery::redeliveries` counts earlier deliveries.
    pub counts_redeliveries: bool,
    /// How long an expected delivery may take to show up (beyond any
    /// visibility timeout or release delay).
    pub patience: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            visibility_timeout: None,
            counts_redeliveries: false,
            patience: Duration::from_secs(5),
        }
    }
}

impl Settings {
    fn redelivery_bound(&self) -> Duration {
        self.visibility_timeout.unwrap_or_default() + self.patience
    }
}

/// A broker under test and whatever must outlive it (a temp dir, a server).
pub struct Fixture {
    pub broker: Arc<dyn Broker>,
    _keep: Vec<Box<dyn Any + Send + Sync>>,
}

impl Fixture {
    pub fn new(broker: Arc<dyn Broker>) -> Self {
        Self {
            broker,
            _keep: Vec::new(),
        }
    }

    /// Keeps `guard` alive as long as the fixture (dropped after the case).
    pub fn keeping<T: Send + Sync + 'static>(mut self, guard: T) -> Self {
        self._keep.push(Box::new(guard));
        self
    }
}

/// What a conformance broker expression may yield; `None` skips the case
/// (backend not configured).
pub trait IntoFixture {
    fn into_fixture(self) -> Option<Fixture>;
}

impl IntoFixture for Fixture {
    fn into_fixture(self) -> Option<Fixture> {
        Some(self)
    }
}

impl IntoFixture for Arc<dyn Broker> {
    fn into_fixture(self) -> Option<Fixture> {
        Some(Fixture::new(self))
    }
}

impl<T: IntoFixture> IntoFixture for Option<T> {
    fn into_fixture(self) -> Option<Fixture> {
        self.and_then(IntoFixture::into_fixture)
    }
}

/// Expands to one `#[tokio::test]` per conformance case. Arguments: an async
/// expression yielding something [`IntoFixture`] (evaluated once per case),
/// and optionally a [`Settings`] expression. Invoke it inside its own module.
#[macro_export]
macro_rules! broker_conformance {
    ($fixture:expr $(,)?) => {
        $crate::broker_conformance!($fixture, $crate::conformance::Settings::default());
    };
    ($fixture:expr, $settings:expr $(,)?) => {
        $crate::broker_conformance!(@cases ($fixture) ($settings)
            publish_then_receive_intact
            publish_results_in_order
            send_ahead_of_confirms
            declare_is_idempotent_and_ping_works
            ack_prevents_redelivery
            unacked_is_redelivered
            release_with_delay_comes_back_after_delay
            group_members_share_messages
            every_group_gets_every_message
            max_in_flight_is_respected
            recv_waits_when_empty
            recv_returns_early_on_publish
            stale_ack_after_redelivery_is_a_no_op
            consumer_lag_counts_unconsumed
            consumer_mark_is_passed_once_consumed
        );
    };
    (@cases ($fixture:expr) ($settings:expr) $($case:ident)*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let settings: $crate::conformance::Settings = $settings;
                let Some(fixture) = $crate::conformance::IntoFixture::into_fixture($fixture.await) else {
                    eprintln!("skipped: broker backend not configured");
                    return;
                };
                let case = $crate::conformance::$case(fixture.broker.clone(), &settings);
                if ::tokio::time::timeout($crate::conformance::CASE_TIMEOUT, case).await.is_err() {
                    panic!("conformance case {} timed out", stringify!($case));
                }
                drop(fixture);
            }
        )*
    };
}

// ---------------------------------------------------------------- helpers
// Public for backends' own tests.

/// The value of environment variable `var`, naming a test service; `None`
/// (the test skips) when unset, a panic when `SLUICE_TEST_REQUIRE_BACKENDS=1`.
pub fn service_from_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("SLUICE_TEST_REQUIRE_BACKENDS").as_deref() == Ok("1") => {
            panic!("{var} is not set and SLUICE_TEST_REQUIRE_BACKENDS=1")
        }
        _ => {
            eprintln!("skipping: {var} is not set");
            None
        }
    }
}

/// A topic or group name no other case uses.
pub fn unique(what: &str) -> String {
    format!("conformance.{what}.{}", uuid::Uuid::new_v4().simple())
}

/// A message with an `id` attribute (the job id), a key and a JSON body
/// naming `i`.
pub fn message(topic: &str, i: usize) -> OutgoingMessage {
    let job_id = JobId::new();
    let attributes = BTreeMap::from([
        ("specversion".to_string(), "1.0".to_string()),
        ("id".to_string(), job_id.to_string()),
        ("source".to_string(), "sluice.conformance".to_string()),
        ("type".to_string(), "sluice.test".to_string()),
    ]);
    OutgoingMessage {
        topic: topic.to_string(),
        job_id,
        key: Some(format!("key-{i}")),
        attributes,
        content_type: Some("application/json".into()),
        body: format!("{{\"i\":{i}}}").into_bytes(),
    }
}

pub fn id_of(d: &Delivery) -> String {
    d.attributes
        .get("id")
        .cloned()
        .expect("delivery lost its \"id\" attribute")
}

pub async fn declared(broker: &Arc<dyn Broker>, what: &str) -> String {
    let topic = unique(what);
    broker
        .declare(std::slice::from_ref(&topic))
        .await
        .expect("declare");
    topic
}

pub async fn subscribe(
    broker: &Arc<dyn Broker>,
    topic: &str,
    group: &str,
    max_in_flight: usize,
) -> Box<dyn Subscription> {
    let options = SubscribeOptions {
        group: group.to_string(),
        max_in_flight,
    };
    broker.subscribe(topic, options).await.expect("subscribe")
}

/// Publishes and asserts every message was confirmed; returns their ids.
pub async fn publish_ok(broker: &Arc<dyn Broker>, messages: Vec<OutgoingMessage>) -> Vec<String> {
    let ids = messages.iter().map(|m| m.job_id.to_string()).collect();
    let n = messages.len();
    let results = broker.publisher().publish(messages).await;
    assert_eq!(results.len(), n, "one result per message");
    for (i, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "message {i} not confirmed: {r:?}");
    }
    ids
}

/// Receives until `want` deliveries arrived or `within` passed.
pub async fn collect(
    sub: &mut Box<dyn Subscription>,
    want: usize,
    within: Duration,
) -> Vec<Delivery> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let batch = sub
            .recv(want - got.len(), left.min(Duration::from_millis(500)))
            .await
            .expect("recv");
        got.extend(batch);
    }
    got
}

/// Everything received during `period` (expected: nothing).
pub async fn quiet(sub: &mut Box<dyn Subscription>, period: Duration) -> Vec<Delivery> {
    let deadline = Instant::now() + period;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return got;
        }
        got.extend(sub.recv(100, left).await.expect("recv"));
    }
}

pub async fn ack_all(sub: &mut Box<dyn Subscription>, deliveries: &[Delivery]) {
    let tokens: Vec<AckToken> = deliveries.iter().map(|d| d.token).collect();
    sub.ack(&tokens).await.expect("ack");
}

// ------------------------------------------------------------------ cases

/// Published messages arrive with topic, key, attributes, content type and
/// body intact, each with a distinct position.
pub async fn publish_then_receive_intact(broker: Arc<dyn Broker>, settings: &Settings) {
    let topic = declared(&broker, "intact").await;
    let mut sub = subscribe(&broker, &topic, &unique("g"), 100).await;
    let mut plain = message(&topic, 0);
    plain.attributes.insert(
        "traceparent".into(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
    );
    let mut binary = message(&topic, 1);
    binary.key = None;
    binary.content_type = None;
    binary.body = vec![0, 255, 1, 2, 128, 0];
    let mut empty = message(&topic, 2);
    empty.attributes.clear();
    empty.content_type = Some("text/plain; charset=utf-8".into());
    empty.body = Vec::new();
    let mut unicode = message(&topic, 3);
    unicode.key = Some("clé ✓".into());
    unicode
        .attributes
        .insert("subject".into(), "héllo ✓".into());
    let sent = vec![plain, binary, empty, unicode];
    publish_ok(&broker, sent.clone()).await;

    let got = collect(&mut sub, sent.len(), settings.patience).await;
    assert_eq!(
        got.len(),
        sent.len(),
        "every published message is delivered"
    );
    let by_body: HashMap<&[u8], &Delivery> = got.iter().map(|d| (d.body.as_slice(), d)).collect();
    for m in &sent {
        let d = by_body
            .get(m.body.as_slice())
            .unwrap_or_else(|| panic!("body {:?} not delivered", m.body));
        assert_eq!(d.topic, topic);
        assert_eq!(d.attributes, m.attributes);
        assert_eq!(d.content_type, m.content_type);
        match &m.key {
            Some(k) => assert_eq!(d.key.as_ref(), Some(k)),
            None => assert!(
                d.key.is_none() || d.key == Some(m.job_id.to_string()),
                "key {:?}",
                d.key
            ),
        }
        if settings.counts_redeliveries {
            assert_eq!(d.redeliveries, 0, "first delivery");
        }
    }
    let positions: BTreeSet<&str> = got.iter().map(|d| d.position.as_str()).collect();
    assert_eq!(positions.len(), got.len(), "positions are distinct");
    assert!(positions.iter().all(|p| !p.is_empty()));
    ack_all(&mut sub, &got).await;
}

/// One result per message, in input order, across topics; messages go to
/// their own topic only. An empty batch yields no results.
pub async fn publish_results_in_order(broker: Arc<dyn Broker>, settings: &Settings) {
    let a = declared(&broker, "order-a").await;
    let b = declared(&broker, "order-b").await;
    let group = unique("g");
    let mut sub_a = subscribe(&broker, &a, &group, 100).await;
    let mut sub_b = subscribe(&broker, &b, &group, 100).await;
    assert!(broker.publisher().publish(Vec::new()).await.is_empty());
    let batch: Vec<_> = (0..30)
        .map(|i| message(if i % 2 == 0 { &a } else { &b }, i))
        .collect();
    let ids = publish_ok(&broker, batch).await;

    let got_a = collect(&mut sub_a, 15, settings.patience).await;
    let got_b = collect(&mut sub_b, 15, settings.patience).await;
    let want_a: BTreeSet<String> = ids.iter().step_by(2).cloned().collect();
    let want_b: BTreeSet<String> = ids.iter().skip(1).step_by(2).cloned().collect();
    assert_eq!(got_a.iter().map(id_of).collect::<BTreeSet<_>>(), want_a);
    assert_eq!(got_b.iter().map(id_of).collect::<BTreeSet<_>>(), want_b);
    assert!(got_a.iter().all(|d| d.topic == a) && got_b.iter().all(|d| d.topic == b));
    ack_all(&mut sub_a, &got_a).await;
    ack_all(&mut sub_b, &got_b).await;
}

/// Declaring twice is fine; ping succeeds; the backend has a name.
pub async fn declare_is_idempotent_and_ping_works(broker: Arc<dyn Broker>, _settings: &Settings) {
    let topic = declared(&broker, "declare").await;
    broker
        .declare(&[topic.clone(), topic.clone()])
        .await
        .expect("declare again");
    broker.ping().await.expect("ping");
    assert!(!broker.backend().is_empty());
}

/// Acked deliveries never come back, even after the visibility timeout and
/// to another member of the group.
pub async fn ack_prevents_redelivery(broker: Arc<dyn Broker>, settings: &Settings) {
    let topic = declared(&broker, "ack").await;
    let group = unique("g");
    let mut sub = subscribe(&broker, &topic, &group, 100).await;
    publish_ok(&broker, (0..3).map(|i| message(&topic, i)).collect()).await;
    let got = collect(&mut sub, 3, settings.patience).await;
    assert_eq!(got.len(), 3);
    ack_all(&mut sub, &got).await;
    let settle = settings.visibility_timeout.unwrap_or_default() + Duration::from_millis(700);
    let again = quiet(&mut sub, settle).await;
    assert!(again.is_empty(), "acked messages came back: {again:?}");
    drop(sub);
    let mut other = subscribe(&broker, &topic, &group, 100).await;
    let again = quiet(&mut other, Duration::from_millis(700)).await;
    assert!(
        again.is_empty(),
        "acked messages came back to another member: {again:?}"
    );
}

/// A delivery never acked (its holder gone) is delivered again to another
/// member of the group, counted as a redelivery where the backend counts.
pub async fn unacked_is_redelivered(broker: Arc<dyn Broker>, settings: &Settings) {
    let topic = declared(&broker, "unacked").await;
    let group = unique("g");
    let mut first = subscribe(&broker, &topic, &group, 100).await;
    let ids = publish_ok(&broker, vec![message(&topic, 0)]).await;
    let got = collect(&mut first, 1, settings.patience).await;
    assert_eq!(got.iter().map(id_of).collect::<Vec<_>>(), ids);
    drop(first);

    let mut second = subscribe(&broker, &topic, &group, 100).await;
    let again = collect(&mut second, 1, settings.redelivery_bound()).await;
    assert_eq!(
        again.iter().map(id_of).collect::<Vec<_>>(),
        ids,
        "un-acked message was not redelivered"
    );
    if settings.counts_redeliveries {
        assert!(
            again[0].redeliveries >= 1,
            "redeliveries = {}",
            again[0].redeliveries
        );
    }
    assert_eq!(
        again[0].position, got[0].position,
        "same message, same position"
    );
    ack_all(&mut second, &again).await;
}

/// A released delivery comes back after about the delay, not before; a
/// release without delay comes back promptly.
pub async fn release_with_delay_comes_back_after_delay(
    broker: Arc<dyn Broker>,
    settings: &Settings,
) {
    let topic = declared(&broker, "release").await;
    let mut sub = subscribe(&broker, &topic, &unique("g"), 100).await;
    let ids = publish_ok(&broker, vec![message(&topic, 0)]).await;
    let got = collect(&mut sub, 1, settings.patience).await;
    assert_eq!(got.len(), 1);

    let delay = Duration::from_millis(1500);
    let released_at = Instant::now();
    sub.release(&[got[0].token], delay).await.expect("release");
    let early = quiet(&mut sub, Duration::from_millis(1000)).await;
    assert!(
        early.is_empty(),
        "released message came back before its delay: {early:?}"
    );
    let back = collect(&mut sub, 1, delay + settings.patience).await;
    assert_eq!(
        back.iter().map(id_of).collect::<Vec<_>>(),
        ids,
        "released message did not come back"
    );
    assert!(released_at.elapsed() >= Duration::from_millis(1000));
    if settings.counts_redeliveries {
        assert!(back[0].redeliveries >= 1);
    }

    sub.release(&[back[0].token], Duration::ZERO)
        .await
        .expect("release now");
    let started = Instant::now();
    let again = collect(&mut sub, 1, settings.patience).await;
    assert_eq!(
        again.iter().map(id_of).collect::<Vec<_>>(),
        ids,
        "released message did not come back"
    );
    assert!(started.elapsed() < settings.patience);
    ack_all(&mut sub, &again).await;
}

/// Two members of one group split the messages: all arrive, and no message
/// is handed to both while leased (a second delivery comes only after the
/// visibility timeout, where the backend has one).
pub async fn group_members_share_messages(broker: Arc<dyn Broker>, settings: &Settings) {
    let topic = declared(&broker, "share").await;
    let group = unique("g");
    let mut a = subscribe(&broker, &topic, &group, 100).await;
    let mut b = subscribe(&broker, &topic, &group, 100).await;
    let ids = publish_ok(&broker, (0..20).map(|i| message(&topic, i)).collect()).await;
    let want: BTreeSet<String> = ids.into_iter().collect();

    // When each delivery was received, by message id.
    let mut seen: BTreeMap<String, Vec<Instant>> = BTreeMap::new();
    let deadline = Instant::now() + settings.patience;
    while seen.len() < want.len() && Instant::now() < deadline {
        // Both hold their batch at once, then ack.
        let got_a = a.recv(4, Duration::from_millis(200)).await.expect("recv a");
        let at_a = Instant::now();
        let got_b = b.recv(4, Duration::from_millis(200)).await.expect("recv b");
        let at_b = Instant::now();
        for (d, at) in got_a
            .iter()
            .map(|d| (d, at_a))
            .chain(got_b.iter().map(|d| (d, at_b)))
        {
            seen.entry(id_of(d)).or_default().push(at);
        }
        ack_all(&mut a, &got_a).await;
        ack_all(&mut b, &got_b).await;
    }
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "every message reaches the group"
    );
    for (id, times) in &seen {
        match settings.visibility_timeout {
            None => assert_eq!(times.len(), 1, "message {id} was handed to two members"),
            Some(visibility) => {
                for pair in times.windows(2) {
                    let gap = pair[1] - pair[0];
                    assert!(
                        gap >= visibility.mul_f32(0.8),
                        "message {id} was handed out again {gap:?} after its first delivery, within its lease"
                    );
                }
            }
        }
    }
}

/// Each consumer group gets every message.
pub async fn every_group_gets_every_message(broker: Arc<dyn Broker>, settings: &Settings) {
    let topic = declared(&broker, "groups").await;
    let mut g1 = subscribe(&broker, &topic, &unique("g1"), 100).await;
    let mut g2 = subscribe(&broker, &topic, &unique("g2"), 100).await;
    let ids: BTreeSet<String> = publish_ok(&broker, (0..10).map(|i| message(&topic, i)).collect())
        .await
        .into_iter()
        .collect();
    for sub in [&mut g1, &mut g2] {
        let got = collect(sub, ids.len(), settings.patience).await;
        ack_all(sub, &got).await;
        assert_eq!(
            got.iter().map(id_of).collect::<BTreeSet<_>>(),
            ids,
            "a group missed messages"
        );
    }
}

/// No more than `max_in_flight` deliveries stay un-acked; acking makes room.
pub async fn max_in_flight_is_respected(broker: Arc<dyn Broker>, settings: &Settings) {
    let topic = declared(&broker, "inflight").await;
    let mut sub = subscribe(&broker, &topic, &unique("g"), 3).await;
    publish_ok(&broker, (0..10).map(|i| message(&topic, i)).collect()).await;

    let mut held = Vec::new();
    let deadline = Instant::now() + settings.patience;
    while held.len() < 3 && Instant::now() < deadline {
        let got = sub
            .recv(10, Duration::from_millis(300))
            .await
            .expect("recv");
        assert!(
            held.len() + got.len() <= 3,
            "{} deliveries un-acked, max_in_flight 3",
            held.len() + got.len()
        );
        held.extend(got);
    }
    assert_eq!(held.len(), 3, "fills up to max_in_flight");
    let more = sub
        .recv(10, Duration::from_millis(500))
        .await
        .expect("recv");
    assert!(more.is_empty(), "delivered beyond max_in_flight: {more:?}");

    sub.ack(&[held[0].token]).await.expect("ack");
    let next = collect(&mut sub, 1, settings.patience).await;
    assert_eq!(next.len(), 1, "acking made room for one more");
    let more = sub
        .recv(10, Duration::from_millis(300))
        .await
        .expect("recv");
    assert!(
        more.is_empty(),
        "delivered beyond max_in_flight after ack: {more:?}"
    );
    ack_all(&mut sub, &held[1..]).await;
    ack_all(&mut sub, &next).await;
}

/// `recv` on an empty topic waits about `wait` and returns nothing.
pub async fn recv_waits_when_empty(broker: Arc<dyn Broker>, settings: &Settings) {
    let topic = declared(&broker, "empty").await;
    let mut sub = subscribe(&broker, &topic, &unique("g"), 10).await;
    let wait = Duration::from_millis(1000);
    let started = Instant::now();
    let got = sub.recv(10, wait).await.expect("recv");
    let took = started.elapsed();
    assert!(got.is_empty());
    assert!(
        took >= wait.mul_f32(0.8),
        "returned after {took:?}, wait {wait:?}"
    );
    assert!(
        took <= wait + settings.patience,
        "returned after {took:?}, wait {wait:?}"
    );
}

/// A waiting `recv` returns once a message is published, before `wait` ends.
pub async fn recv_returns_early_on_publish(broker: Arc<dyn Broker>, _settings: &Settings) {
    let topic = declared(&broker, "wake").await;
    let mut sub = subscribe(&broker, &topic, &unique("g"), 10).await;
    let publisher = broker.publisher();
    let msg = message(&topic, 0);
    let id = msg.job_id.to_string();
    let publishing = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        publisher.publish(vec![msg]).await
    });
    let wait = Duration::from_secs(8);
    let started = Instant::now();
    let got = sub.recv(10, wait).await.expect("recv");
    let took = started.elapsed();
    let results = publishing.await.expect("publish task");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(got.iter().map(id_of).collect::<Vec<_>>(), vec![id]);
    assert!(
        took < Duration::from_secs(5),
        "recv returned after {took:?}"
    );
    ack_all(&mut sub, &got).await;
}

/// After a lease expired and the message went to another member, the first
/// holder's ack (and release) changes nothing: the message stays with the new
/// holder and comes back again if that one does not ack. Needs lease expiry.
pub async fn stale_ack_after_redelivery_is_a_no_op(broker: Arc<dyn Broker>, settings: &Settings) {
    let Some(visibility) = settings.visibility_timeout else {
        eprintln!("skipped: backend has no lease expiry");
        return;
    };
    let topic = declared(&broker, "stale").await;
    let group = unique("g");
    let mut a = subscribe(&broker, &topic, &group, 100).await;
    let mut b = subscribe(&broker, &topic, &group, 100).await;
    let ids = publish_ok(&broker, vec![message(&topic, 0)]).await;
    let first = collect(&mut a, 1, settings.patience).await;
    assert_eq!(first.len(), 1);

    let second = collect(&mut b, 1, settings.redelivery_bound()).await;
    assert_eq!(
        second.iter().map(id_of).collect::<Vec<_>>(),
        ids,
        "expired lease was not redelivered"
    );
    a.ack(&[first[0].token])
        .await
        .expect("stale ack is not an error");
    a.release(&[first[0].token], Duration::ZERO)
        .await
        .expect("stale release is not an error");

    // b never acks: the message must come back once more.
    let third = collect(&mut b, 1, settings.redelivery_bound()).await;
    assert_eq!(
        third.iter().map(id_of).collect::<Vec<_>>(),
        ids,
        "stale ack removed the redelivered message"
    );
    if settings.counts_redeliveries {
        assert!(
            third[0].redeliveries >= 2,
            "redeliveries = {}",
            third[0].redeliveries
        );
    }
    ack_all(&mut b, &third).await;
    let after = quiet(&mut b, visibility + Duration::from_millis(500)).await;
    assert!(after.is_empty(), "acked message came back: {after:?}");
}
