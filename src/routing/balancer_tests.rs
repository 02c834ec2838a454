//! Unit tests of `balancer`, a child module of it.

use super::*;
use crate::routing::policy::ClusterPolicy;

fn addresses(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("127.0.0.1:{}", 9000 + i)).collect()
}

fn pick(state: &ClusterState, policy: &ClusterPolicy, rng: &mut fastrand::Rng) -> usize {
    state
        .pick(
            policy,
            PickInput {
                hash: None,
                avoid: &[],
                attempts: 1,
                rng,
                now: Instant::now(),
            },
        )
        .expect("an endpoint")
        .index
}

#[test]
fn round_robin_goes_round() {
    let policy = ClusterPolicy {
        balancer: Balancer::RoundRobin,
        ..ClusterPolicy::default()
    };
    let state = ClusterState::new(&policy, &addresses(3));
    let mut rng = fastrand::Rng::with_seed(1);
    let picks: Vec<usize> = (0..6).map(|_| pick(&state, &policy, &mut rng)).collect();
    assert_eq!(
        picks[0..3]
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3
    );
    assert_eq!(picks[0..3], picks[3..6]);
}

#[test]
fn least_request_prefers_the_idle_endpoint() {
    let policy = ClusterPolicy::default();
    let state = ClusterState::new(&policy, &addresses(2));
    let _busy: Vec<_> = (0..5).map(|_| state.start(0)).collect();
    let mut rng = fastrand::Rng::with_seed(7);
    let to_idle = (0..200)
        .filter(|_| pick(&state, &policy, &mut rng) == 1)
        .count();
    // Two choices with replacement: the busy one wins only when drawn twice (1/4).
    assert!(to_idle > 120, "{to_idle} of 200 to the idle endpoint");
}

#[test]
fn a_ring_sends_one_key_to_one_endpoint() {
    let policy = ClusterPolicy {
        balancer: Balancer::RingHash(1024),
        ..ClusterPolicy::default()
    };
    let state = ClusterState::new(&policy, &addresses(4));
    let mut rng = fastrand::Rng::with_seed(3);
    let h = hash(b"user-42");
    let first = state
        .pick(
            &policy,
            PickInput {
                hash: Some(h),
                avoid: &[],
                attempts: 1,
                rng: &mut rng,
                now: Instant::now(),
            },
        )
        .expect("pick")
        .index;
    for _ in 0..20 {
        let again = state
            .pick(
                &policy,
                PickInput {
                    hash: Some(h),
                    avoid: &[],
                    attempts: 1,
                    rng: &mut rng,
                    now: Instant::now(),
                },
            )
            .expect("pick")
            .index;
        assert_eq!(again, first);
    }
}

#[test]
fn consecutive_5xx_eject_within_the_max_percent_until_the_sweep() {
    let od = crate::config::model::OutlierDetection {
        consecutive_5xx_errors: Some(2),
        max_ejection_percent: Some(50),
        interval: Some("100ms".into()),
        base_ejection_time: Some("1s".into()),
        ..Default::default()
    };
    let mut policy = ClusterPolicy::default();
    policy.apply_outlier_detection(&od).expect("valid");
    let state = ClusterState::new(&policy, &addresses(2));
    let now = Instant::now();
    assert!(!state.report(0, AttemptResult::Status(503), now));
    assert!(
        state.report(0, AttemptResult::Status(500), now),
        "ejected at the 2nd 5xx"
    );
    assert_eq!(state.ejected_now(now), [0]);
    // 50% of 2 endpoints: the second cannot be ejected too.
    state.report(1, AttemptResult::ConnectFailed, now);
    assert!(!state.report(1, AttemptResult::ConnectFailed, now));
    let later = now + Duration::from_millis(1200);
    assert!(
        state.ejected_now(later).is_empty(),
        "back after the ejection time and a sweep"
    );
}
