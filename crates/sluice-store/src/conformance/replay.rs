//! Cases for replays through a replay's snapshot: each entry is replayed at
//! most once, whatever the calls that cover it.

use super::admin::{die, kill};
use super::*;
use crate::{NewReplay, ReplaySkip};

/// A replay of `ids` without a rate, key or history.
fn snapshot_of(ids: Vec<JobId>) -> NewReplay {
    NewReplay {
        id: uuid::Uuid::new_v4(),
        request: json!({"queue": "q"}),
        ids,
        rate_per_second: None,
        max_replays: 3,
        idempotency: None,
        actor: "alice".into(),
    }
}

/// A second call over entries already taken (a runner resumed from an
/// older recorded position) replays none of them again, even a job that
/// died again meanwhile; it goes on with the entries after them. A range
/// past the end is short or empty; another replay has its own entries.
/// Each call records its range in the replay's progress, counting only the
/// entries it took.
pub async fn replay_snapshot_entries_are_taken_once(store: Arc<dyn Store>) {
    let store = &*store;
    let a = kill(store, "q", "a died").await;
    let b = kill(store, "q", "b died").await;
    let alive = enqueue(store, vec![new_job("q")]).await[0];
    let (rec, created) = store
        .create_replay(snapshot_of(vec![a, alive, b]))
        .await
        .unwrap();
    assert!(created);
    assert!(store
        .replay_from_snapshot(rec.id, 0, 0, 3)
        .await
        .unwrap()
        .is_empty());

    assert_eq!(
        store.replay_from_snapshot(rec.id, 0, 2, 3).await.unwrap(),
        vec![(a, Ok(())), (alive, Err(ReplaySkip::NotDead))]
    );
    assert_eq!(status_of(store, a).await, JobStatus::Pending);
    assert_eq!(progress(store, rec.id).await, (2, 1, 1));
    die(store, a, "a died again").await;

    assert_eq!(
        store.replay_from_snapshot(rec.id, 0, 10, 3).await.unwrap(),
        vec![
            (a, Err(ReplaySkip::Taken)),
            (alive, Err(ReplaySkip::Taken)),
            (b, Ok(())),
        ]
    );
    let job = store.get_job(a).await.unwrap();
    assert_eq!(
        (job.status, job.replay_count),
        (JobStatus::Dead, 1),
        "one replay of a per replay request"
    );
    assert_eq!(status_of(store, b).await, JobStatus::Pending);
    assert_eq!(
        progress(store, rec.id).await,
        (3, 2, 1),
        "taken entries count once"
    );
    assert!(store
        .replay_from_snapshot(rec.id, 3, 10, 3)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .replay_from_snapshot(uuid::Uuid::new_v4(), 0, 10, 3)
        .await
        .unwrap()
        .is_empty());

    // a new request replays it again, under its limit
    let (other, _) = store.create_replay(snapshot_of(vec![a])).await.unwrap();
    assert_eq!(
        store.replay_from_snapshot(other.id, 0, 5, 1).await.unwrap(),
        vec![(a, Err(ReplaySkip::LimitReached(1)))]
    );
    assert_eq!(progress(store, other.id).await, (1, 0, 1));
    let (third, _) = store.create_replay(snapshot_of(vec![a])).await.unwrap();
    assert_eq!(
        store.replay_from_snapshot(third.id, 0, 5, 3).await.unwrap(),
        vec![(a, Ok(()))]
    );
    assert_eq!(store.get_job(a).await.unwrap().replay_count, 2);
}

/// Two calls over the same entries at once (two runners of one replay):
/// each entry is replayed by exactly one of them, and the other reads it
/// taken.
pub async fn concurrent_snapshot_calls_replay_each_entry_once(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(kill(&*store, "q", &format!("death {i}")).await);
    }
    let (rec, _) = store.create_replay(snapshot_of(ids.clone())).await.unwrap();
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.replay_from_snapshot(rec.id, 0, 12, 3).await })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap().unwrap());
    }
    for (n, &id) in ids.iter().enumerate() {
        let outcomes: Vec<&Result<(), ReplaySkip>> = results
            .iter()
            .map(|r| {
                assert_eq!(r[n].0, id, "entries in snapshot order");
                &r[n].1
            })
            .collect();
        assert_eq!(
            outcomes.iter().filter(|o| o.is_ok()).count(),
            1,
            "entry {n}: {outcomes:?}"
        );
        assert!(outcomes.contains(&&Err(ReplaySkip::Taken)), "entry {n}");
        assert_eq!(store.get_job(id).await.unwrap().replay_count, 1);
    }
    assert_eq!(
        progress(&*store, rec.id).await,
        (12, 12, 0),
        "each entry counted once"
    );
}

/// A replay's recorded (position, replayed, skipped).
async fn progress(store: &dyn Store, id: uuid::Uuid) -> (u64, u64, u64) {
    let r = store.get_replay(id).await.unwrap();
    (r.position, r.replayed, r.skipped)
}
