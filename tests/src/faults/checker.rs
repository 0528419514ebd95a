//! The checker: what became of the accepted jobs, from the store and from
//! the downstream's record of deliveries.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::{Connection, Row};

use super::Rig;

/// How long after the last fault the backlog must be drained.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// What a scenario did to the accepted jobs.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: String,
    pub bus: &'static str,
    pub accepted: usize,
    /// Accepted jobs that did not succeed, or never reached the downstream.
    pub lost: usize,
    /// Accepted (healthy) jobs dead-lettered.
    pub wrongly_dead: usize,
    /// Successful deliveries beyond the first, over all accepted jobs: work
    /// the downstream did twice.
    pub duplicates: usize,
    /// The in-flight window at the time of the fault.
    pub duplicate_bound: usize,
    /// Jobs attempted more than once.
    pub retried: usize,
    /// Jobs the relay published again because the broker lost them.
    pub redriven: usize,
    /// From the last fault until every accepted job was final.
    pub drained_after: Duration,
}

impl Report {
    /// Fails the test unless nothing was lost or wrongly dead-lettered,
    /// duplicates stayed within the in-flight window, and the backlog
    /// drained in time.
    pub fn assert_ok(&self) {
        assert_eq!(self.lost, 0, "{}: accepted jobs lost", self.scenario);
        assert_eq!(
            self.wrongly_dead, 0,
            "{}: healthy jobs dead-lettered",
            self.scenario
        );
        assert!(
            self.duplicates <= self.duplicate_bound,
            "{}: {} duplicate deliveries, beyond the in-flight window of {}",
            self.scenario,
            self.duplicates,
            self.duplicate_bound
        );
        assert!(
            self.drained_after <= DRAIN_LIMIT,
            "{}: backlog drained {:?} after the last fault",
            self.scenario,
            self.drained_after
        );
    }
}

/// Status and attempts of every job in the rig's store, by id.
async fn jobs(db_url: &str) -> Option<HashMap<String, (String, i64)>> {
    let mut conn = sqlx::PgConnection::connect(db_url).await.ok()?;
    let rows = sqlx::query("SELECT id::text AS id, status, attempts FROM jobs")
        .fetch_all(&mut conn)
        .await
        .ok()?;
    Some(
        rows.iter()
            .map(|r| (r.get("id"), (r.get("status"), r.get("attempts"))))
            .collect(),
    )
}

pub(super) async fn check(
    rig: &Rig,
    scenario: &str,
    ids: &[String],
    last_fault: Instant,
) -> Report {
    let deadline = last_fault + DRAIN_LIMIT + Duration::from_secs(5);
    let mut store = HashMap::new();
    loop {
        if let Some(j) = jobs(&rig.db_url).await {
            store = j;
        }
        let open = ids
            .iter()
            .filter(|id| {
                !store
                    .get(*id)
                    .is_some_and(|(s, _)| s == "succeeded" || s == "dead")
            })
            .count();
        if open == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained_after = Instant::now().saturating_duration_since(last_fault);
    // successful deliveries per job
    let done: HashMap<String, usize> = rig
        .ds
        .arrivals()
        .into_iter()
        .map(|(id, a)| (id, a.iter().filter(|a| a.status < 300).count()))
        .collect();
    let delivered = |id: &String| done.get(id).copied().unwrap_or(0);
    let status = |id: &String| store.get(id).map(|(s, _)| s.as_str());
    let lost: Vec<&String> = ids
        .iter()
        .filter(|id| status(id) != Some("succeeded") || delivered(id) == 0)
        .filter(|id| status(id) != Some("dead"))
        .collect();
    let report = Report {
        scenario: scenario.to_string(),
        bus: rig.bus.name(),
        accepted: ids.len(),
        lost: lost.len(),
        wrongly_dead: ids.iter().filter(|id| status(id) == Some("dead")).count(),
        duplicates: ids.iter().map(|id| delivered(id).saturating_sub(1)).sum(),
        duplicate_bound: rig.in_flight_window(),
        retried: ids
            .iter()
            .filter(|id| store.get(*id).is_some_and(|(_, a)| *a > 1))
            .count(),
        redriven: redriven(&rig.relay.log_text()),
        drained_after,
    };
    if report.lost > 0 {
        super::diagnose::lost_jobs(rig, &lost, &store).await;
    }
    // one row of the closing note's table, easy to grep from the test log
    eprintln!(
        "FAULTS | {} | {} | accepted {} | lost {} | wrongly dead {} | duplicates {} (window {}) | retried {} | redriven {} | drained {:.1} s after the last fault",
        report.bus,
        report.scenario,
        report.accepted,
        report.lost,
        report.wrongly_dead,
        report.duplicates,
        report.duplicate_bound,
        report.retried,
        report.redriven,
        report.drained_after.as_secs_f64()
    );
    report
}

/// Jobs a relay's log says it published again (its `jobs=` counts).
fn redriven(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("publishing them again"))
        .filter_map(|l| l.split("jobs=").nth(1))
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .filter_map(|n| n.parse::<usize>().ok())
        .sum()
}
