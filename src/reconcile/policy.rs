//! Restart and retry decisions: pure functions of the policy, the exit and
//! the clock, each in one place. Docker's model: the delay doubles from
//! 100 ms up to 30 s and is reset once a run lasted 10 s.

use crate::manifest::RestartPolicy;

pub const BACKOFF_BASE_MS: i64 = 100;
pub const BACKOFF_MAX_MS: i64 = 30_000;
/// A run this long resets the backoff, as Docker does.
pub const BACKOFF_RESET_MS: i64 = 10_000;

/// Whether `policy` restarts a container that exited with `code`.
pub fn wants_restart(policy: RestartPolicy, code: i32) -> bool {
    match policy {
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure => code != 0,
        RestartPolicy::Never => false,
    }
}

/// The policy in force after `failed_runs` failed runs in a row: Docker's
/// `on-failure:N` restarts N times, so it stops once the failures exceed N.
pub fn in_force(policy: RestartPolicy, max_retries: Option<u32>, failed_runs: u32) -> RestartPolicy {
    match (policy, max_retries) {
        (RestartPolicy::OnFailure, Some(max)) if failed_runs > max => RestartPolicy::Never,
        _ => policy,
    }
}

/// The delay before the attempt after `step` earlier ones (also used for
/// failed actions such as an image import).
pub fn backoff_delay_ms(step: u32) -> i64 {
    (BACKOFF_BASE_MS << step.min(16)).min(BACKOFF_MAX_MS)
}

/// What to do about an exit just observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitDecision {
    /// The backoff step to keep (reset after a long run).
    pub backoff_step: u32,
    /// When to restart, if the policy restarts it.
    pub restart_at: Option<i64>,
    pub delay_ms: i64,
}

/// Decides the restart of a container that ran from `started_at` until
/// `finished_at` (unix ms) and exited with `code`, after `backoff_step`
/// quick restarts, at time `now`.
pub fn decide_exit(
    policy: RestartPolicy,
    code: i32,
    backoff_step: u32,
    started_at: Option<i64>,
    finished_at: i64,
    now: i64,
) -> ExitDecision {
    let ran_for = started_at.map(|s| finished_at - s).unwrap_or(0);
    let backoff_step = if ran_for >= BACKOFF_RESET_MS { 0 } else { backoff_step };
    let delay_ms = backoff_delay_ms(backoff_step);
    ExitDecision {
        backoff_step,
        restart_at: wants_restart(policy, code).then_some(now + delay_ms),
        delay_ms,
    }
}

/// Whether an exited container is to be started again now.
pub fn restart_due(policy: RestartPolicy, code: i32, next_restart_at: Option<i64>, now: i64) -> bool {
    wants_restart(policy, code) && next_restart_at.is_none_or(|at| now >= at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_failure_with_a_maximum_stops_after_that_many_restarts() {
        let p = RestartPolicy::OnFailure;
        assert_eq!(in_force(p, Some(2), 1), p);
        assert_eq!(in_force(p, Some(2), 2), p);
        assert_eq!(in_force(p, Some(2), 3), RestartPolicy::Never);
        assert_eq!(in_force(p, None, 1000), p);
        assert_eq!(in_force(RestartPolicy::Always, Some(0), 5), RestartPolicy::Always);
    }

    #[test]
    fn always_restarts_every_exit_and_on_failure_only_non_zero_ones() {
        assert!(wants_restart(RestartPolicy::Always, 0));
        assert!(wants_restart(RestartPolicy::Always, 1));
        assert!(!wants_restart(RestartPolicy::OnFailure, 0));
        assert!(wants_restart(RestartPolicy::OnFailure, 137));
        assert!(!wants_restart(RestartPolicy::Never, 1));
    }

    #[test]
    fn the_backoff_doubles_from_100_ms_and_stops_at_30_s() {
        let delays: Vec<i64> = (0..10).map(backoff_delay_ms).collect();
        assert_eq!(delays[..5], [100, 200, 400, 800, 1600]);
        assert_eq!(backoff_delay_ms(9), 30_000);
        assert_eq!(backoff_delay_ms(u32::MAX), 30_000);
    }

    #[test]
    fn a_run_of_ten_seconds_resets_the_backoff() {
        let d = decide_exit(RestartPolicy::Always, 1, 7, Some(0), 10_000, 50_000);
        assert_eq!(d.backoff_step, 0);
        assert_eq!(d.restart_at, Some(50_100));
    }

    #[test]
    fn a_quick_crash_keeps_its_backoff_step() {
        let d = decide_exit(RestartPolicy::OnFailure, 1, 3, Some(0), 500, 1_000);
        assert_eq!(d.backoff_step, 3);
        assert_eq!(d.restart_at, Some(1_800));
    }

    #[test]
    fn a_clean_exit_under_on_failure_is_not_restarted() {
        let d = decide_exit(RestartPolicy::OnFailure, 0, 0, Some(0), 5, 10);
        assert_eq!(d.restart_at, None);
        assert!(!restart_due(RestartPolicy::OnFailure, 0, None, 10));
    }

    #[test]
    fn a_restart_is_due_only_once_its_backoff_has_passed() {
        assert!(!restart_due(RestartPolicy::Always, 1, Some(200), 199));
        assert!(restart_due(RestartPolicy::Always, 1, Some(200), 200));
        assert!(restart_due(RestartPolicy::Always, 1, None, 0));
    }
}
