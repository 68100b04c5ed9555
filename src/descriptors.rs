//! File descriptors and the connection cap: the soft `RLIMIT_NOFILE` raised to the hard limit
//! at startup, and as many connections as fit below it with headroom, so that accepting never
//! fails for want of a descriptor.

use crate::logging::count;

/// Descriptors kept for everything but client connections: the listener, the services file and
/// its watcher, stdio and logs, each worker's runtime (epoll, eventfds) and the blocking pool.
const FD_HEADROOM_MIN: u64 = 64;

/// Below this many allowed connections, startup warns.
const FEW_CONNECTIONS: u64 = 1024;

/// How many connections the server takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionBudget {
    pub per_worker: usize,
    pub total: u64,
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
    // Lingering closes after a refused body hold a descriptor each: half the headroom.
    crate::http::body::set_max_lingering(usize::try_from(headroom(soft) / 2).unwrap_or(usize::MAX));
    let note = format!(
        "{} at most ({} per worker; descriptors: soft limit {soft} (was {}, hard limit {hard}))",
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
    if budget.total < FEW_CONNECTIONS {
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
/// `FD_HEADROOM_MIN`), or `requested` if smaller, split evenly between the workers (actix's
/// `max_connections` is per worker).
pub fn budget_for(fd_limit: u64, requested: usize, workers: usize) -> ConnectionBudget {
    let workers = workers.max(1) as u64;
    let fit = fd_limit.saturating_sub(headroom(fd_limit)).max(workers);
    let total = match requested as u64 {
        0 => fit,
        n => n.min(fit).max(workers),
    };
    let per_worker = (total / workers).max(1);
    ConnectionBudget { per_worker: usize::try_from(per_worker).unwrap_or(usize::MAX), total: per_worker * workers }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_below_the_descriptor_limit() {
        assert_eq!(budget_for(1024, 0, 2), ConnectionBudget { per_worker: 461, total: 922 });
        assert_eq!(budget_for(1_048_576, 0, 4).total, 943_716);
        assert_eq!(budget_for(1_048_576, 100, 4), ConnectionBudget { per_worker: 25, total: 100 });
        assert_eq!(budget_for(1024, 5000, 2).total, 922);
        // Absurdly low limits still give each worker a connection.
        assert_eq!(budget_for(10, 0, 2), ConnectionBudget { per_worker: 1, total: 2 });
    }
}
