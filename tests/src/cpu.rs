//! CPU time the machine's processes spent, by program, read from `/proc`
//! (Linux only): where a benchmark phase's CPU went. Processes that exited
//! count through their parent's `cutime` once it has reaped them, as
//! PostgreSQL's postmaster does for its backends; a process that exits
//! during a phase, unreaped, is missed, so sample before stopping one.

use std::collections::BTreeMap;
use std::time::Duration;

/// Programs a phase is measured for, by their `/proc/<pid>/comm`:
/// PostgreSQL, sluice, the benchmark itself (the raw clients), RabbitMQ
/// and tansu.
pub const PROGRAMS: [&str; 5] = ["postgres", "sluice", "sluice-bench", "beam.smp", "tansu"];

/// CPU used so far by each program of [`PROGRAMS`], user and system time,
/// children included.
#[derive(Debug, Clone, Default)]
pub struct CpuSample(BTreeMap<&'static str, u64>);

impl CpuSample {
    /// Reads every process's counters now; empty where `/proc` is missing.
    pub fn now() -> Self {
        let mut ticks = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Self(ticks);
        };
        for entry in dir.flatten() {
            if !entry.file_name().to_str().is_some_and(is_pid) {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some((comm, t)) = parse_stat(&stat) {
                if let Some(p) = PROGRAMS.iter().find(|p| **p == comm) {
                    *ticks.entry(*p).or_insert(0) += t;
                }
            }
        }
        Self(ticks)
    }

    /// CPU per item of each program since `earlier`, for `items` items
    /// (messages, jobs); programs that used none are left out, and so is
    /// everything when `items` is 0.
    pub fn per_item_since(
        &self,
        earlier: &CpuSample,
        items: usize,
    ) -> Vec<(&'static str, Duration)> {
        if items == 0 {
            return Vec::new();
        }
        let hz = f64::from(clock_ticks_per_second());
        PROGRAMS
            .iter()
            .filter_map(|p| {
                let used = self
                    .0
                    .get(p)?
                    .saturating_sub(*earlier.0.get(p).unwrap_or(&0));
                (used > 0).then(|| (*p, Duration::from_secs_f64(used as f64 / hz / items as f64)))
            })
            .collect()
    }

    /// `postgres 41.0 µs, sluice 22.1 µs, …` per item since `earlier`.
    pub fn report_since(&self, earlier: &CpuSample, items: usize) -> String {
        let parts: Vec<String> = self
            .per_item_since(earlier, items)
            .into_iter()
            .map(|(p, d)| format!("{p} {:.1} µs", d.as_secs_f64() * 1e6))
            .collect();
        if parts.is_empty() {
            "none measured (no /proc, no items or no CPU used)".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Whether a `/proc` entry is a process (`/proc/<pid>`). `self` and
/// `thread-self` are the sampling process again, and would count it twice.
fn is_pid(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

/// `(comm, utime + stime + cutime + cstime)` of one `/proc/<pid>/stat`
/// line. The command name is in parentheses and may itself hold spaces
/// or parentheses, so the fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    // after ") ": state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17)
    let fields: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<i64>().ok();
    let total = field(14)? + field(15)? + field(16)?.max(0) + field(17)?.max(0);
    Some((comm, u64::try_from(total).ok()?))
}

/// `getconf CLK_TCK`, asked once; 100 (Linux's value) when it cannot be.
fn clock_ticks_per_second() -> u32 {
    static HZ: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_from_the_last_parenthesis() {
        let line = "42 (a) b) R 1 42 42 0 -1 4194560 100 0 0 0 7 3 11 5 20 0 1 0 99 0 0";
        assert_eq!(parse_stat(line), Some(("a) b", 7 + 3 + 11 + 5)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_seen_using_cpu() {
        let ticks = || {
            parse_stat(&std::fs::read_to_string("/proc/self/stat").unwrap())
                .unwrap()
                .1
        };
        let t0 = ticks();
        // spin until charged a tick (10 ms of CPU), however loaded the machine
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut x = 0u64;
        while ticks() == t0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no CPU charged in 30 s ({x})"
            );
            for _ in 0..100_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
        }
        let (before, after) = (CpuSample::default(), CpuSample::now());
        assert!(after.report_since(&before, 0).starts_with("none measured"));
    }

    #[test]
    fn each_process_is_read_once() {
        assert!(is_pid("1") && is_pid("4242"));
        for other in ["self", "thread-self", "", "12a", "sys"] {
            assert!(!is_pid(other), "{other:?}");
        }
    }

    #[test]
    fn cpu_per_item_divides_the_ticks_used() {
        let hz = clock_ticks_per_second();
        let before = CpuSample(BTreeMap::from([("postgres", 10), ("sluice", 5)]));
        let after = CpuSample(BTreeMap::from([
            ("postgres", 10 + u64::from(hz)),
            ("sluice", 5),
        ]));
        assert_eq!(
            after.per_item_since(&before, 1000),
            vec![("postgres", Duration::from_millis(1))],
            "one second of postgres over 1000 items; sluice used none"
        );
    }
}
