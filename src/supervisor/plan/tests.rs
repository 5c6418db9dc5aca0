use super::*;
use crate::config::parse;
use proptest::prelude::*;

fn plan(containers: &str) -> Plan {
    let doc = format!(r#"{{"Containers": {containers}}}"#);
    let v = parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    Plan::new(&v.services)
}

fn starts(actions: &[Action]) -> Vec<usize> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start(i) => Some(*i),
            _ => None,
        })
        .collect()
}

fn end(actions: &[Action]) -> Option<(i32, Option<usize>)> {
    actions.iter().find_map(|a| match a {
        Action::EndMachine { code, service, .. } => Some((*code, *service)),
        _ => None,
    })
}

#[test]
fn started_gates_on_the_exec_and_runs_in_parallel_where_it_can() {
    let mut p = plan(
        r#"[{"name": "a", "exec": ["x"]}, {"name": "b", "exec": ["x"]},
            {"name": "c", "exec": ["x"], "depends_on": [{"name": "a"}, {"name": "b"}]}]"#,
    );
    assert_eq!(starts(&p.begin()), [0, 1]);
    assert!(starts(&p.started(0, 0)).is_empty());
    assert_eq!(starts(&p.started(1, 0)), [2]);
}

#[test]
fn healthy_waits_through_the_targets_restarts() {
    let mut p = plan(
        r#"[{"name": "db", "exec": ["x"], "healthchecks": [{"tcp": {"port": 5432}}]},
            {"name": "web", "exec": ["x"], "depends_on": [{"name": "db", "condition": "healthy"}]}]"#,
    );
    assert_eq!(starts(&p.begin()), [0]);
    p.started(0, 0);
    // db fails before it is ever ready: restarts, web keeps waiting.
    let a = p.exited(0, 1, 100);
    assert!(
        matches!(a[..], [Action::RestartIn(0, d)] if d == Duration::from_secs(1)),
        "{a:?}"
    );
    assert_eq!(p.state(1).map(|s| s.status), Some(Status::Pending));
    assert_eq!(p.restart_due(0), [Action::Start(0)]);
    p.started(0, 1200);
    assert_eq!(starts(&p.ready_changed(0, true)), [1]);
}

#[test]
fn a_condition_that_can_no_longer_hold_skips_transitively() {
    let mut p = plan(
        r#"[{"name": "setup", "exec": ["x"], "restart": {"policy": "no"}},
            {"name": "app", "exec": ["x"], "on_exit": "ignore", "depends_on": [{"name": "setup", "condition": "exited_successfully"}]},
            {"name": "sidecar", "exec": ["x"], "on_exit": "ignore", "depends_on": [{"name": "app"}]}]"#,
    );
    assert_eq!(starts(&p.begin()), [0]);
    p.started(0, 0);
    let a = p.exited(0, 2, 10);
    // setup failed: its on_exit (stop_machine_on_failure by default, as a one-shot others
    // wait on) ends the machine with its code; app and sidecar are skipped.
    assert_eq!(end(&a), Some((2, Some(0))));
    assert_eq!(p.state(1).map(|s| s.status), Some(Status::Skipped));
    assert_eq!(p.state(2).map(|s| s.status), Some(Status::Skipped));
    assert!(starts(&a).is_empty());
}

/// `stop_machine_on_skip` (process-compose's `exit_on_skipped`): a skip ends the machine with
/// code 1; the service's own failing exit does not.
#[test]
fn stop_machine_on_skip_ends_the_machine_at_a_skip_only() {
    let rules = r#"[{"name": "setup", "exec": ["x"], "restart": {"policy": "no"}, "on_exit": "ignore"},
            {"name": "app", "exec": ["x"], "on_exit": "stop_machine_on_skip", "restart": {"policy": "no"},
             "depends_on": [{"name": "setup", "condition": "exited_successfully"}]},
            {"name": "other", "exec": ["x"], "on_exit": "ignore"}]"#;
    let mut p = plan(rules);
    assert_eq!(starts(&p.begin()), [0, 2]);
    p.started(0, 0);
    let a = p.exited(0, 2, 10);
    assert_eq!(p.state(1).map(|s| s.status), Some(Status::Skipped));
    assert_eq!(end(&a), Some((1, Some(1))));
    // The same service failing by itself is no skip: the machine goes on.
    let mut p = plan(rules);
    p.begin();
    p.started(0, 0);
    assert_eq!(starts(&p.exited(0, 0, 10)), [1]);
    p.started(1, 11);
    assert_eq!(end(&p.exited(1, 3, 20)), None);
}

#[test]
fn a_successful_one_shot_lets_its_dependents_start_and_does_not_end_the_machine() {
    let mut p = plan(
        r#"[{"name": "setup", "exec": ["x"]},
            {"name": "app", "exec": ["x"], "depends_on": [{"name": "setup", "condition": "exited_successfully"}]}]"#,
    );
    p.begin();
    p.started(0, 0);
    let a = p.exited(0, 0, 5);
    assert_eq!(starts(&a), [1]);
    assert_eq!(end(&a), None);
    p.started(1, 6);
    // The app's final exit (on-failure: 0 does not restart) ends the machine with its code.
    assert_eq!(end(&p.exited(1, 0, 10)), Some((0, Some(1))));
}

/// A start that failed for now (75: EAGAIN, no memory, no descriptor) is an exit the restart
/// policy handles; one that cannot execute (126) is final, restarts or not.
#[test]
fn a_transient_start_failure_restarts_and_a_final_one_does_not() {
    let rules = r#"[{"name": "s", "exec": ["x"],
             "restart": {"policy": "on-failure", "max_retries": 1, "backoff_seconds": 0.1}}]"#;
    let mut p = plan(rules);
    p.begin();
    match p.start_failed(0, crate::exit::TEMPORARY, 10)[..] {
        [Action::RestartIn(0, _)] => {}
        ref other => panic!("{other:?}"),
    }
    assert_eq!(p.restart_due(0), [Action::Start(0)]);
    let a = p.start_failed(0, crate::exit::TEMPORARY, 20);
    assert_eq!(end(&a), Some((crate::exit::TEMPORARY, Some(0))));
    let mut p = plan(rules);
    p.begin();
    let a = p.start_failed(0, crate::exit::CANNOT_EXECUTE, 10);
    assert_eq!(end(&a), Some((126, Some(0))));
}

#[test]
fn restarts_back_off_and_give_up_after_max_retries_within_the_window() {
    let mut p = plan(
        r#"[{"name": "flaky", "exec": ["x"],
             "restart": {"policy": "on-failure", "max_retries": 3, "backoff_seconds": 0.5, "max_backoff_seconds": 1.5, "window_seconds": 60}}]"#,
    );
    p.begin();
    let mut now = 0;
    let mut delays = Vec::new();
    for _ in 0..3 {
        p.started(0, now);
        now += 100;
        match p.exited(0, 1, now)[..] {
            [Action::RestartIn(0, d)] => delays.push(d),
            ref other => panic!("{other:?}"),
        }
        assert_eq!(p.restart_due(0), [Action::Start(0)]);
    }
    assert_eq!(
        delays,
        [
            Duration::from_millis(500),
            Duration::from_millis(1000),
            Duration::from_millis(1500)
        ]
    );
    p.started(0, now);
    let a = p.exited(0, 1, now + 100);
    assert_eq!(end(&a), Some((1, Some(0))));
    assert_eq!(
        p.state(0).map(|s| (s.status, s.restarts)),
        Some((Status::Failed, 3))
    );
}

#[test]
fn the_window_forgets_old_restarts_and_a_long_run_resets_the_backoff() {
    let mut p = plan(
        r#"[{"name": "flaky", "exec": ["x"], "restart": {"max_retries": 1, "window_seconds": 10}}]"#,
    );
    p.begin();
    p.started(0, 0);
    assert!(matches!(p.exited(0, 1, 100)[..], [Action::RestartIn(0, _)]));
    p.restart_due(0);
    // 70 s later: the window has forgotten the first restart, and the run was long enough to
    // reset the backoff to its first delay.
    p.started(0, 1_000);
    match p.exited(0, 1, 71_000)[..] {
        [Action::RestartIn(0, d)] => assert_eq!(d, Duration::from_secs(1)),
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn always_restarts_a_success_and_no_restarts_nothing() {
    let mut p = plan(
        r#"[{"name": "a", "exec": ["x"], "restart": {"policy": "always"}},
            {"name": "b", "exec": ["x"], "restart": {"policy": "no"}, "on_exit": "ignore"}]"#,
    );
    p.begin();
    p.started(0, 0);
    p.started(1, 0);
    assert!(matches!(p.exited(0, 0, 10)[..], [Action::RestartIn(0, _)]));
    assert!(p.exited(1, 1, 10).is_empty());
    assert_eq!(p.state(1).map(|s| s.status), Some(Status::Exited));
}

#[test]
fn success_exit_codes_decide_failure() {
    let mut p = plan(
        r#"[{"name": "a", "exec": ["x"], "success_exit_codes": [0, 3], "on_exit": "stop_machine_on_failure", "restart": {"policy": "no"}},
            {"name": "b", "exec": ["x"], "on_exit": "ignore"}]"#,
    );
    p.begin();
    p.started(0, 0);
    assert_eq!(end(&p.exited(0, 3, 10)), None);
}

#[test]
fn every_service_over_and_none_deciding_ends_with_0() {
    let mut p = plan(
        r#"[{"name": "a", "exec": ["x"], "on_exit": "ignore", "restart": {"policy": "no"}},
            {"name": "b", "exec": ["x"], "on_exit": "ignore", "restart": {"policy": "no"}}]"#,
    );
    p.begin();
    p.started(0, 0);
    p.started(1, 0);
    assert_eq!(end(&p.exited(0, 5, 1)), None);
    assert_eq!(end(&p.exited(1, 6, 2)), Some((0, None)));
}

#[test]
fn the_stop_goes_in_reverse_dependency_order() {
    // db <- api <- web; cache alone.
    let mut p = plan(
        r#"[{"name": "db", "exec": ["x"]},
            {"name": "api", "exec": ["x"], "depends_on": [{"name": "db"}]},
            {"name": "web", "exec": ["x"], "depends_on": [{"name": "api"}]},
            {"name": "cache", "exec": ["x"]}]"#,
    );
    p.begin();
    for i in 0..4 {
        p.started(i, 0);
    }
    let first: Vec<_> = p.stop_machine();
    assert_eq!(first, [Action::Stop(2), Action::Stop(3)]);
    assert_eq!(p.exited(3, 143, 1), []);
    assert_eq!(p.exited(2, 143, 1), [Action::Stop(1)]);
    assert_eq!(p.exited(1, 143, 2), [Action::Stop(0)]);
    assert_eq!(p.exited(0, 143, 3), []);
    assert!(p.all_final());
}

#[test]
fn a_stopped_machine_restarts_nothing_and_skips_the_pending() {
    let mut p = plan(
        r#"[{"name": "a", "exec": ["x"], "healthchecks": [{"tcp": {"port": 1}}]},
            {"name": "b", "exec": ["x"], "depends_on": [{"name": "a", "condition": "healthy"}]}]"#,
    );
    p.begin();
    p.started(0, 0);
    assert_eq!(p.stop_machine(), [Action::Stop(0)]);
    assert_eq!(p.state(1).map(|s| s.status), Some(Status::Skipped));
    assert_eq!(p.exited(0, 1, 5), []);
    assert!(p.all_final());
}

#[test]
fn a_service_stopped_on_request_does_not_restart_or_end_the_machine() {
    let mut p = plan(r#"[{"name": "a", "exec": ["x"]}, {"name": "b", "exec": ["x"]}]"#);
    p.begin();
    p.started(0, 0);
    p.started(1, 0);
    p.stop_sent(0, true);
    assert_eq!(p.exited(0, 143, 5), []);
    assert_eq!(p.state(0).map(|s| s.status), Some(Status::Exited));
}

#[test]
fn operators_start_stop_and_restart_a_service() {
    let mut p = plan(r#"[{"name": "a", "exec": ["x"]}, {"name": "b", "exec": ["x"]}]"#);
    p.begin();
    p.started(0, 0);
    p.started(1, 0);
    // A running service cannot be started; a restart stops it and starts it on its exit.
    assert!(p.start_requested(0).is_none());
    assert_eq!(p.restart_requested(0), Some((true, vec![])));
    assert_eq!(p.exited(0, 143, 5), [Action::Start(0)]);
    p.started(0, 6);
    // Stopped on request: over, decides nothing; then started again by hand.
    p.stop_sent(0, true);
    assert_eq!(p.exited(0, 143, 7), []);
    assert_eq!(p.start_requested(0), Some(vec![Action::Start(0)]));
    p.started(0, 8);
    // Nothing starts once the machine stops.
    p.stop_machine();
    assert!(p.start_requested(1).is_none() && p.restart_requested(1).is_none());
}

#[test]
fn backoff_doubles_to_its_cap_without_overflow() {
    let (b, m) = (Duration::from_secs(1), Duration::from_secs(30));
    assert_eq!(backoff(b, m, 0), b);
    assert_eq!(backoff(b, m, 3), Duration::from_secs(8));
    assert_eq!(backoff(b, m, 5), m);
    assert_eq!(backoff(b, m, u32::MAX), m);
    assert_eq!(
        backoff(Duration::from_secs(3600), Duration::from_secs(3600), 40),
        Duration::from_secs(3600)
    );
}

/// A random graph of services (edges to lower indices only, so no cycle), with random
/// conditions and restart policies, run through random event orders: every start respects
/// every edge, nothing starts while it runs, nothing starts during the stop, the stop goes in
/// reverse dependency order, and the machine ends exactly once.
fn graph() -> impl Strategy<Value = String> {
    (2usize..12).prop_flat_map(|n| {
        proptest::collection::vec(
            (
                proptest::collection::vec((0usize..64, 0usize..3), 0..3),
                0usize..3,
                0usize..3,
            ),
            n,
        )
        .prop_map(move |specs| {
            let mut out = Vec::new();
            for (i, (deps, restart, on_exit)) in specs.into_iter().enumerate() {
                let mut seen = Vec::new();
                let deps: Vec<String> = deps
                    .into_iter()
                    .filter(|_| i > 0)
                    .map(|(t, c)| (t % i.max(1), c))
                    .filter(|(t, _)| {
                        let new = !seen.contains(t);
                        seen.push(*t);
                        new
                    })
                    .map(|(t, c)| {
                        let c = ["started", "completed", "log_ready"][c];
                        format!(r#"{{"name": "s{t}", "condition": "{c}"}}"#)
                    })
                    .collect();
                let restart = ["no", "on-failure", "on-failure"][restart];
                let on_exit = ["ignore", "stop_machine", "stop_machine_on_failure"][on_exit];
                out.push(format!(
                    r#"{{"name": "s{i}", "exec": ["x"], "ready_log_line": "up", "restart": {{"policy": "{restart}", "max_retries": 2}},
                        "on_exit": "{on_exit}", "depends_on": [{}]}}"#,
                    deps.join(",")
                ));
            }
            format!("[{}]", out.join(","))
        })
    })
}

/// The simulated supervisor of the property test: carries out actions and checks each.
struct Sim {
    services: Vec<crate::config::typed::Service>,
    plan: Plan,
    running: Vec<bool>,
    pending_restart: Vec<bool>,
    starts: Vec<u32>,
    ended: u32,
    stopping: bool,
    now: u64,
    queue: VecDeque<Action>,
}

impl Sim {
    fn drain(&mut self) -> Result<(), TestCaseError> {
        while let Some(a) = self.queue.pop_front() {
            self.apply(a)?;
        }
        Ok(())
    }

    fn apply(&mut self, a: Action) -> Result<(), TestCaseError> {
        match a {
            Action::Start(i) => {
                prop_assert!(!self.stopping, "a start during the stop");
                prop_assert!(!self.running[i], "{} started while running", i);
                for d in &self.services[i].depends_on {
                    let s = self.plan.state(d.on).expect("state");
                    let ok = match d.condition {
                        Condition::Started => s.started_ever,
                        Condition::Completed => s.status == Status::Exited,
                        Condition::LogReady => s.log_ready,
                        _ => true,
                    };
                    prop_assert!(ok, "{} started before {} was {:?}", i, d.on, d.condition);
                }
                self.starts[i] += 1;
                self.running[i] = true;
                let next = self.plan.started(i, self.now);
                self.queue.extend(next);
            }
            Action::RestartIn(i, _) => self.pending_restart[i] = true,
            Action::Stop(i) => {
                prop_assert!(self.stopping);
                for (j, s) in self.services.iter().enumerate() {
                    if s.depends_on.iter().any(|d| d.on == i) {
                        prop_assert!(!self.running[j], "{} stopped before its dependent {}", i, j);
                    }
                }
            }
            Action::EndMachine { .. } => {
                self.ended += 1;
                self.stopping = true;
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn random_graphs_and_event_orders_keep_every_rule(
        containers in graph(),
        choices in proptest::collection::vec((0usize..64, 0usize..4, 0i32..3), 1..200),
    ) {
        let doc = format!(r#"{{"Containers": {containers}}}"#);
        let v = parse(doc.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        let n = v.services.len();
        let mut plan = Plan::new(&v.services);
        let first = plan.begin();
        let mut sim = Sim {
            services: v.services.clone(),
            plan,
            running: vec![false; n],
            pending_restart: vec![false; n],
            starts: vec![0; n],
            ended: 0,
            stopping: false,
            now: 0,
            queue: first.into(),
        };
        sim.drain()?;
        for (step, (pick, what, code)) in choices.into_iter().enumerate() {
            sim.now += 700;
            let i = pick % n;
            let actions = match what {
                0 if sim.running[i] => {
                    sim.running[i] = false;
                    sim.plan.exited(i, code, sim.now)
                }
                1 if sim.running[i] => sim.plan.log_ready(i),
                2 if sim.pending_restart[i] => {
                    sim.pending_restart[i] = false;
                    sim.plan.restart_due(i)
                }
                3 if step % 50 == 49 && !sim.stopping => {
                    sim.stopping = true;
                    sim.plan.stop_machine()
                }
                _ => continue,
            };
            sim.queue.extend(actions);
            sim.drain()?;
        }
        prop_assert!(sim.ended <= 1, "the machine ended {} times", sim.ended);
        for i in 0..n {
            let max = 1 + sim.plan.state(i).map_or(0, |s| s.restarts);
            prop_assert!(sim.starts[i] <= max, "{} started {} times with {} restarts", i, sim.starts[i], max - 1);
        }
        // Once every process is gone after a stop, everything is over.
        if sim.stopping && sim.running.iter().all(|r| !r) {
            prop_assert!(sim.plan.all_final(), "{:?}", (0..n).map(|i| sim.plan.state(i).map(|s| s.status)).collect::<Vec<_>>());
        }
    }
}

#[test]
fn manual_services_wait_for_a_start_and_do_not_hold_the_end() {
    // With another service, a manual one is not started and the machine ends without it.
    let mut p = plan(
        r#"[{"name": "a", "exec": ["x"], "on_exit": "ignore"},
            {"name": "tool", "exec": ["x"], "start": "manual"}]"#,
    );
    assert_eq!(starts(&p.begin()), [0]);
    assert_eq!(p.state(1).map(|s| s.status), Some(Status::Manual));
    p.started(0, 0);
    assert_eq!(end(&p.exited(0, 0, 10)), Some((0, None)));
    // Only manual services: nothing has run, so nothing is over; a start request runs one.
    let mut p = plan(r#"[{"name": "tool", "exec": ["x"], "start": "manual"}]"#);
    assert!(end(&p.begin()).is_none());
    assert_eq!(p.start_requested(0).map(|a| starts(&a)), Some(vec![0]));
}
