//! Cases for listing, filtering, reading and deleting dead letters.

use super::admin::{kill, kill_job};
use super::*;
use crate::{DeadLetter, DeadLetterCursor, DeadLetterFilter, ReplaySkip};

pub(super) fn ids_of(list: &[DeadLetter]) -> Vec<JobId> {
    list.iter().map(|d| d.id).collect()
}

fn cursor_of(d: &DeadLetter) -> DeadLetterCursor {
    DeadLetterCursor {
        died_at: d.died_at,
        id: d.id,
    }
}

pub(super) fn everything() -> DeadLetterFilter {
    DeadLetterFilter::default()
}

/// Pages through every dead letter matching `filter`, `page` at a time.
async fn list_all(store: &dyn Store, filter: &DeadLetterFilter, page: usize) -> Vec<DeadLetter> {
    let mut out: Vec<DeadLetter> = Vec::new();
    loop {
        let after = out.last().map(cursor_of);
        let got = store.list_dead_letters(filter, after, page).await.unwrap();
        assert!(got.len() <= page);
        let done = got.len() < page;
        out.extend(got);
        if done {
            return out;
        }
    }
}

/// Dead letters list in `(died_at, id)` order; paging by cursor neither
/// skips nor repeats, also while new jobs die.
pub async fn dead_letters_list_in_order_and_page_stably(store: Arc<dyn Store>) {
    let store = &*store;
    assert!(store
        .list_dead_letters(&everything(), None, 10)
        .await
        .unwrap()
        .is_empty());
    // A job that is not dead is never listed.
    let alive = enqueue(store, vec![new_job("q")]).await[0];
    let mut killed = Vec::new();
    for n in 0..5 {
        let mut job = new_job("q");
        job.payload = json!({"n": n});
        killed.push(kill_job(store, job, &format!("boom {n}")).await);
    }
    let all = store
        .list_dead_letters(&everything(), None, 100)
        .await
        .unwrap();
    assert_eq!(ids_of(&all), killed, "death order");
    for pair in all.windows(2) {
        assert!((pair[0].died_at, pair[0].id) < (pair[1].died_at, pair[1].id));
    }
    let first = &all[0];
    assert_eq!(first.queue, "q");
    assert_eq!(first.payload, json!({"n": 0}));
    assert_eq!(first.attempts, 1);
    assert_eq!(first.last_error, "boom 0");
    assert_eq!(first.replay_count, 0);
    assert!(first.died_at > 0 && first.died_at <= now_ms());
    assert!(!ids_of(&all).contains(&alive));

    // Page by two; a job dying between pages shows up at the end, once.
    let page1 = store
        .list_dead_letters(&everything(), None, 2)
        .await
        .unwrap();
    assert_eq!(ids_of(&page1), killed[..2].to_vec());
    let late = kill(store, "q", "late").await;
    let page2 = store
        .list_dead_letters(&everything(), Some(cursor_of(&page1[1])), 2)
        .await
        .unwrap();
    assert_eq!(ids_of(&page2), killed[2..4].to_vec());
    let page3 = store
        .list_dead_letters(&everything(), Some(cursor_of(&page2[1])), 2)
        .await
        .unwrap();
    assert_eq!(ids_of(&page3), vec![killed[4], late]);
    let page4 = store
        .list_dead_letters(&everything(), Some(cursor_of(&page3[1])), 2)
        .await
        .unwrap();
    assert!(page4.is_empty());

    let paged = list_all(store, &everything(), 1).await;
    let mut expected = killed.clone();
    expected.push(late);
    assert_eq!(ids_of(&paged), expected);
    assert!(store
        .list_dead_letters(&everything(), None, 0)
        .await
        .unwrap()
        .is_empty());
}

/// Filters by queue, error substring (case-insensitive, `%` and `_`
/// literal) and ids, alone and combined; counts agree with listings.
pub async fn dead_letters_filters_and_count(store: Arc<dyn Store>) {
    let store = &*store;
    let timeout = kill(store, "mail", "SMTP timeout at 50% of body").await;
    let refused = kill(store, "mail", "smtp refused").await;
    let bad_input = kill(store, "sms", "bad_input: number").await;
    let schema = kill(store, "sms", "Schema violation").await;
    enqueue(store, vec![new_job("mail")]).await;

    let check = |filter: DeadLetterFilter, expected: Vec<JobId>| async move {
        let got = list_all(store, &filter, 100).await;
        assert_eq!(ids_of(&got), expected, "{filter:?}");
        assert_eq!(
            store.count_dead_letters(&filter).await.unwrap(),
            expected.len() as u64,
            "count of {filter:?}"
        );
    };
    check(everything(), vec![timeout, refused, bad_input, schema]).await;
    let queue = |q: &str| DeadLetterFilter {
        queue: Some(q.into()),
        ..everything()
    };
    let error = |e: &str| DeadLetterFilter {
        error_contains: Some(e.into()),
        ..everything()
    };
    check(queue("mail"), vec![timeout, refused]).await;
    check(queue("sms"), vec![bad_input, schema]).await;
    check(queue("nope"), vec![]).await;
    check(error("smtp"), vec![timeout, refused]).await;
    check(error("SCHEMA"), vec![schema]).await;
    check(error("50%"), vec![timeout]).await;
    check(error("%"), vec![timeout]).await;
    check(error("_"), vec![bad_input]).await;
    check(error("refused at"), vec![]).await;
    check(
        DeadLetterFilter {
            ids: Some(vec![schema, timeout, JobId::new()]),
            ..everything()
        },
        vec![timeout, schema],
    )
    .await;
    check(
        DeadLetterFilter {
            ids: Some(Vec::new()),
            ..everything()
        },
        vec![],
    )
    .await;
    check(
        DeadLetterFilter {
            queue: Some("mail".into()),
            error_contains: Some("Refused".into()),
            ids: None,
        },
        vec![refused],
    )
    .await;
    check(
        DeadLetterFilter {
            queue: Some("sms".into()),
            error_contains: Some("smtp".into()),
            ids: None,
        },
        vec![],
    )
    .await;
    check(
        DeadLetterFilter {
            queue: Some("mail".into()),
            error_contains: Some("smtp".into()),
            ids: Some(vec![refused, bad_input]),
        },
        vec![refused],
    )
    .await;
}

/// The detail of a dead letter carries every attempt with its outcome.
pub async fn dead_letter_detail_has_full_history(store: Arc<dyn Store>) {
    let store = &*store;
    let mut job = new_job("q");
    job.max_attempts = 3;
    job.key = Some("order-7".into());
    job.payload = json!({"order": 7});
    let id = enqueue(store, vec![job.clone()]).await[0];
    for n in 1..=3u32 {
        let a = deliver(store, id, LONG).await;
        let outcome = if n < 3 {
            Outcome::Retry {
                available_at: now_ms(),
                error: format!("fail {n}"),
            }
        } else {
            Outcome::Dead {
                error: "fail 3".into(),
            }
        };
        finish(store, &a, outcome).await.unwrap();
    }
    let record = store.get_job(id).await.unwrap();
    let detail = store.get_dead_letter(id).await.unwrap();
    assert_eq!(detail.dead_letter.id, id);
    assert_eq!(detail.dead_letter.queue, "q");
    assert_eq!(detail.dead_letter.payload, json!({"order": 7}));
    assert_eq!(detail.dead_letter.attempts, 3);
    assert_eq!(detail.dead_letter.last_error, "fail 3");
    assert_eq!(detail.dead_letter.replay_count, 0);
    assert_eq!(detail.key.as_deref(), Some("order-7"));
    assert_eq!(detail.max_attempts, 3);
    assert_eq!(detail.created_at, record.created_at);
    let listed = store
        .list_dead_letters(&everything(), None, 10)
        .await
        .unwrap();
    assert_eq!(listed, vec![detail.dead_letter.clone()]);

    let got: Vec<(u32, u32, &str, Option<&str>)> = detail
        .history
        .iter()
        .map(|h| {
            (
                h.replay_count,
                h.attempt,
                h.outcome.as_str(),
                h.error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 1, "retry", Some("fail 1")),
            (0, 2, "retry", Some("fail 2")),
            (0, 3, "dead", Some("fail 3")),
        ]
    );
    for h in &detail.history {
        assert!(h.started_at <= h.finished_at, "{h:?}");
        assert!(h.finished_at <= detail.dead_letter.died_at, "{h:?}");
    }

    let alive = enqueue(store, vec![new_job("q")]).await[0];
    assert!(matches!(
        store.get_dead_letter(alive).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.get_dead_letter(JobId::new()).await,
        Err(StoreError::NotFound)
    ));
}

/// Deleting a dead letter removes its job for good; a second delete, or a
/// delete of a job that is not dead, is NotFound.
pub async fn delete_dead_letter_removes_job(store: Arc<dyn Store>) {
    let store = &*store;
    let mut job = new_job("q");
    job.max_attempts = 2;
    let id = enqueue(store, vec![job]).await[0];
    let a = deliver(store, id, LONG).await;
    finish(
        store,
        &a,
        Outcome::Retry {
            available_at: now_ms(),
            error: "first".into(),
        },
    )
    .await
    .unwrap();
    die(store, id, "second").await;
    let kept = kill(store, "q", "kept").await;
    let alive = enqueue(store, vec![new_job("q")]).await[0];

    store.delete_dead_letter(id).await.unwrap();
    assert!(matches!(store.get_job(id).await, Err(StoreError::NotFound)));
    assert!(matches!(
        store.get_dead_letter(id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_dead_letter(id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_dead_letter(alive).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(status_of(store, alive).await, JobStatus::Pending);
    assert!(matches!(
        store.delete_dead_letter(JobId::new()).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        ids_of(
            &store
                .list_dead_letters(&everything(), None, 10)
                .await
                .unwrap()
        ),
        vec![kept]
    );
    assert_eq!(store.count_dead_letters(&everything()).await.unwrap(), 1);
    assert_eq!(
        replay(store, &[id], 5).await.unwrap(),
        vec![Err(ReplaySkip::NotDead)]
    );
    // Only the untouched job's row is due.
    let c = claim(store, 100, LONG).await;
    assert_eq!(
        c.rows.iter().map(|r| r.job_id).collect::<Vec<_>>(),
        vec![alive]
    );
}
