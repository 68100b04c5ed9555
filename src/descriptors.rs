//! File descriptors and the connection cap: the soft `RLIMIT_NOFILE` raised to the hard limit
//! at startup, and as many connections as fit below it with headroom, so that accepting never
//! fails for want of a descriptor.
//!
//! actix's cap is per worker; an exact total (`--max-connections 5` with 2 workers, or 1 with
//! 2) is kept by a process-wide gate in `crate::http` that connections wait at before being
//! served. Each worker's actix cap is the total divided by the workers, rounded up, so at most
//! `workers - 1` accepted connections wait at the gate (a descriptor each).

use crate::logging::count;

/// Descriptors kept for everything but client connections: the listener, the services file and
/// its watcher, stdio and logs, each worker's runtime (epoll, eventfds) and the blocking pool.
const FD_HEADROOM_MIN: u64 = 64;

/// Below this many allowed connections, startup warns.
const FEW_CONNECTIONS: u64 = 1024;

/// How many connections the server takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionBudget {
    /// actix's per-worker cap (the total over the workers, rounded up).
    pub per_worker: usize,
    /// Connections served at once, exactly.
    pub total: u64,
    /// Lingering closes at once (each holds a descriptor): half the headroom.
    pub lingering: usize,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (as nginx's `worker_rlimit_nofile` and Go's
/// runtime do), then sizes the connection cap below it with headroom, so that accepting never
/// fails for want of a descriptor (actix's accept loop would log an error every 500 ms). Warns
/// when the limits are low; returns them as words for the startup line.
pub fn connection_budget(requested: usize, workers: usize) -> (ConnectionBudget, String) {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE).ok();
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => soft,
        Err(e) => {
            tracing::warn!("cannot raise the file-descriptor limit: {e}");
            before.map_or(1024, |(soft, _)| soft)
        }
    };
    let hard = before.map_or(soft, |(_, hard)| hard);
    let budget = budget_for(soft, requested, workers);
    let note = format!(
        "{} at most ({} per worker at most; descriptors: soft limit {soft} (was {}, hard limit {hard}))",
        count(usize::try_from(budget.total).unwrap_or(usize::MAX), "connection"),
        budget.per_worker,
        before.map_or(soft, |(s, _)| s),
    );
    if requested as u64 > budget.total {
        tracing::warn!(
            "--max-connections {requested} does not fit the file-descriptor limit {soft}: capped at {}",
            budget.total
        );
    }
    // Only a cap the descriptors impose is worth a warning; one the operator asked for is not.
    if budget.total < FEW_CONNECTIONS && (requested == 0 || requested as u64 > budget.total) {
        tracing::warn!(
            "only {} client connections fit the file-descriptor limit {soft}; raise it (ulimit -n, LimitNOFILE=)",
            budget.total
        );
    }
    (budget, note)
}

/// Descriptors kept for everything but connections: a tenth, at least [`FD_HEADROOM_MIN`].
fn headroom(fd_limit: u64) -> u64 {
    (fd_limit / 10).max(FD_HEADROOM_MIN)
}

/// The connection cap for a descriptor limit: the limit less a tenth (at least
/// `FD_HEADROOM_MIN`), or `requested` if smaller. actix's `max_connections` is per worker: each
/// worker gets the total over the workers, rounded up (the gate keeps the total exact).
pub fn budget_for(fd_limit: u64, requested: usize, workers: usize) -> ConnectionBudget {
    let workers = workers.max(1) as u64;
    let fit = fd_limit.saturating_sub(headroom(fd_limit) + workers).max(1);
    let total = match requested as u64 {
        0 => fit,
        n => n.min(fit),
    };
    let per_worker = total.div_ceil(workers);
    ConnectionBudget {
        per_worker: usize::try_from(per_worker).unwrap_or(usize::MAX),
        total,
        lingering: usize::try_from(headroom(fd_limit) / 2).unwrap_or(usize::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_below_the_descriptor_limit() {
        assert_eq!(budget_for(1024, 0, 2), ConnectionBudget { per_worker: 460, total: 920, lingering: 51 });
        assert_eq!(budget_for(1_048_576, 0, 4).total, 943_715);
        assert_eq!(budget_for(1_048_576, 100, 4), ConnectionBudget { per_worker: 25, total: 100, lingering: 52_428 });
        assert_eq!(budget_for(1024, 5000, 2).total, 920);
        // Absurdly low limits still allow a connection.
        assert_eq!(budget_for(10, 0, 2), ConnectionBudget { per_worker: 1, total: 1, lingering: 32 });
    }

    #[test]
    fn max_connections_is_exact_whatever_the_worker_count() {
        // The total is what was asked; each worker may take its rounded-up share.
        assert_eq!(budget_for(1024, 1, 2), ConnectionBudget { per_worker: 1, total: 1, lingering: 51 });
        assert_eq!(budget_for(1024, 5, 2), ConnectionBudget { per_worker: 3, total: 5, lingering: 51 });
        assert_eq!(budget_for(1024, 3, 8), ConnectionBudget { per_worker: 1, total: 3, lingering: 51 });
    }
}
