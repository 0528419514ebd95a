//! Cases for the circuit breaker's shared record.

use super::*;
use crate::CircuitState;

/// Opening, the one probe, a failed probe, and closing.
pub async fn circuit_open_probe_close(store: Arc<dyn Store>) {
    assert!(
        store.circuits().await.unwrap().is_empty(),
        "a new store has no open circuit"
    );
    let until = now_ms() + 300;
    assert!(store.open_circuit("c", until).await.unwrap());
    assert!(
        !store.open_circuit("c", until + 10_000).await.unwrap(),
        "a second opening must not extend the first"
    );
    let open = store.circuits().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].queue, "c");
    assert_eq!(open[0].state, CircuitState::Open);
    assert_eq!(open[0].until, Some(until));
    assert!(
        !store.claim_probe("c", now_ms() + 60_000).await.unwrap(),
        "no probe before the cooldown is over"
    );
    assert!(!store.claim_probe("other", now_ms() + 60_000).await.unwrap());
    tokio::time::sleep(Duration::from_millis(350)).await;
    let claim_until = now_ms() + 60_000;
    assert!(store.claim_probe("c", claim_until).await.unwrap());
    assert!(
        !store.claim_probe("c", claim_until).await.unwrap(),
        "a probe is claimed once"
    );
    let half = store.circuits().await.unwrap();
    assert_eq!(half[0].state, CircuitState::HalfOpen);
    assert_eq!(half[0].until, Some(claim_until));
    // the probe failed: open again
    assert!(store.open_circuit("c", now_ms() + 60_000).await.unwrap());
    assert_eq!(store.circuits().await.unwrap()[0].state, CircuitState::Open);
    store.close_circuit("c").await.unwrap();
    assert!(store.circuits().await.unwrap().is_empty());
    store.close_circuit("c").await.unwrap();
    store.close_circuit("never-opened").await.unwrap();
    // the breaker's record and the pause state live side by side
    store.set_paused("c", true).await.unwrap();
    assert!(store.open_circuit("c", now_ms() + 60_000).await.unwrap());
    assert_eq!(store.paused_queues().await.unwrap(), vec!["c".to_string()]);
    store.set_paused("c", false).await.unwrap();
    assert_eq!(store.circuits().await.unwrap()[0].state, CircuitState::Open);
}

/// A probe whose worker died (its claim lapsed) can be claimed again, and
/// of many concurrent claimers exactly one wins.
pub async fn circuit_probe_claims_are_exclusive_and_lapse(store: Arc<dyn Store>) {
    assert!(store.open_circuit("c", now_ms()).await.unwrap());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.claim_probe("c", now_ms() + 200).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one concurrent claimer gets the probe");
    assert!(!store.claim_probe("c", now_ms() + 200).await.unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        store.claim_probe("c", now_ms() + 60_000).await.unwrap(),
        "a lapsed probe claim is claimable again"
    );
}

/// Workers' concurrency reports: replaced per worker, summed per queue,
/// lapsing at their expiry, withdrawn with an expiry in the past.
pub async fn concurrency_reports_sum_replace_and_lapse(store: Arc<dyn Store>) {
    let now = now_ms();
    assert!(store.concurrency(now).await.unwrap().is_empty());
    store
        .report_concurrency("c", "w1", 4, now + 60_000)
        .await
        .unwrap();
    store
        .report_concurrency("c", "w2", 8, now + 300)
        .await
        .unwrap();
    store
        .report_concurrency("c", "w1", 6, now + 60_000)
        .await
        .unwrap();
    store
        .report_concurrency("b", "w1", 1, now + 60_000)
        .await
        .unwrap();
    let got = store.concurrency(now_ms()).await.unwrap();
    let summary: Vec<(&str, u64, u64)> = got
        .iter()
        .map(|q| (q.queue.as_str(), q.limit, q.workers))
        .collect();
    assert_eq!(summary, [("b", 1, 1), ("c", 14, 2)]);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let got = store.concurrency(now_ms()).await.unwrap();
    assert_eq!(got[1].limit, 6, "w2's report lapsed");
    // withdrawn at shutdown
    store
        .report_concurrency("b", "w1", 1, now_ms() - 1)
        .await
        .unwrap();
    let got = store.concurrency(now_ms()).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].queue.as_str(), got[0].workers), ("c", 1));
}
