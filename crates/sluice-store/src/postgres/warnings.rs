//! Server settings that work against sluice, logged at start-up.

use sqlx::postgres::PgPool;

/// A server setting that works against sluice's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerWarning {
    /// The setting's name, as `SHOW` takes it.
    pub setting: &'static str,
    /// What goes wrong, and what to do.
    pub message: &'static str,
}

/// Settings of the server behind `pool` that work against sluice (logged
/// by [`PgStore::open`](super::PgStore::open)); see [`warnings_for`]. A failed check reports
/// nothing.
pub(super) async fn server_warnings(pool: &PgPool) -> Vec<ServerWarning> {
    let autovacuum: Option<String> = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(pool)
        .await
        .ok();
    warnings_for(autovacuum.as_deref())
}

/// The warnings for a server whose `autovacuum` setting reads `autovacuum`
/// (`None`: unknown). With autovacuum off, the rows relays delete from the
/// outbox are never vacuumed, and claims read past ever more dead index
/// entries.
fn warnings_for(autovacuum: Option<&str>) -> Vec<ServerWarning> {
    match autovacuum {
        Some("off") => vec![ServerWarning {
            setting: "autovacuum",
            message: "autovacuum is off on this postgres server: the outbox's deleted rows \
                      pile up and relay claims slow down; turn it on, or VACUUM outbox often",
        }],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autovacuum_off_and_only_off_is_warned_about() {
        let settings = |a| -> Vec<&str> { warnings_for(a).iter().map(|w| w.setting).collect() };
        assert_eq!(settings(Some("off")), vec!["autovacuum"]);
        assert!(settings(Some("on")).is_empty());
        assert!(
            settings(None).is_empty(),
            "an unknown setting is no warning"
        );
    }
}
