//! The dependency graph of the services, as indices: each service's list of the services it
//! waits for. Pure functions, shared by validation (a cycle is refused, named) and the
//! supervisor (the start order, the stop order).

/// A cycle, if there is one, as the path of indices that closes it (`a, b, a`).
pub fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    // Depth-first with colours, iteratively: a deep chain must not overflow PID 1's stack.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour = vec![Colour::White; deps.len()];
    for root in 0..deps.len() {
        if colour[root] != Colour::White {
            continue;
        }
        // The path from the root, each with the next edge to follow.
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        colour[root] = Colour::Grey;
        while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
            let Some(&next) = deps.get(node).and_then(|d| d.get(*edge)) else {
                colour[node] = Colour::Black;
                stack.pop();
                continue;
            };
            *edge += 1;
            match colour.get(next).copied() {
                Some(Colour::White) => {
                    colour[next] = Colour::Grey;
                    stack.push((next, 0));
                }
                Some(Colour::Grey) => {
                    let from = stack.iter().position(|&(n, _)| n == next).unwrap_or(0);
                    let mut cycle: Vec<usize> = stack[from..].iter().map(|&(n, _)| n).collect();
                    cycle.push(next);
                    return Some(cycle);
                }
                _ => {}
            }
        }
    }
    None
}

/// A start order that puts every service after all it depends on (Kahn's algorithm, lowest
/// index first among the ready, so the order is the config's wherever the graph allows).
/// `None` when there is a cycle.
pub fn start_order(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    let n = deps.len();
    let mut waiting: Vec<usize> = deps.iter().map(|d| d.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (service, targets) in deps.iter().enumerate() {
        for &t in targets {
            dependents.get_mut(t)?.push(service);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|&s| waiting[s] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(s) = ready.pop_first() {
        order.push(s);
        for &d in &dependents[s] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.insert(d);
            }
        }
    }
    (order.len() == n).then_some(order)
}

/// Who depends on each service (the reverse edges).
pub fn dependents(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); deps.len()];
    for (service, targets) in deps.iter().enumerate() {
        for &t in targets {
            if let Some(list) = out.get_mut(t) {
                if !list.contains(&service) {
                    list.push(service);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_cycle_is_found_with_its_path() {
        // 0 -> 1 -> 2 -> 0, and 3 -> 0.
        let deps = vec![vec![1], vec![2], vec![0], vec![0]];
        let cycle = find_cycle(&deps).expect("cycle");
        assert_eq!(cycle.first(), cycle.last());
        assert_eq!(cycle.len(), 4);
        assert!(start_order(&deps).is_none());
        assert_eq!(find_cycle(&[vec![0]]), Some(vec![0, 0]));
    }

    #[test]
    fn a_deep_chain_does_not_overflow_the_stack() {
        let n = 200_000;
        let deps: Vec<Vec<usize>> = (0..n)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        assert!(find_cycle(&deps).is_none());
        assert_eq!(start_order(&deps).map(|o| o.len()), Some(n));
    }

    /// Random DAGs: edges only from a higher to a lower index of a random permutation.
    fn dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
        (1usize..40).prop_flat_map(|n| {
            (
                Just(n),
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
                proptest::collection::vec((0..n, 0..n), 0..n * 3),
            )
                .prop_map(|(n, perm, edges)| {
                    let mut deps = vec![Vec::new(); n];
                    for (a, b) in edges {
                        let (hi, lo) = if a > b {
                            (a, b)
                        } else if b > a {
                            (b, a)
                        } else {
                            continue;
                        };
                        if !deps[perm[hi]].contains(&perm[lo]) {
                            deps[perm[hi]].push(perm[lo]);
                        }
                    }
                    deps
                })
        })
    }

    proptest! {
        #[test]
        fn start_order_respects_every_edge_and_starts_each_once(deps in dag()) {
            prop_assert!(find_cycle(&deps).is_none());
            let order = start_order(&deps).expect("a DAG has an order");
            let mut position = vec![usize::MAX; deps.len()];
            for (i, &s) in order.iter().enumerate() {
                prop_assert_eq!(position[s], usize::MAX, "started twice");
                position[s] = i;
            }
            for (s, targets) in deps.iter().enumerate() {
                for &t in targets {
                    prop_assert!(position[t] < position[s], "{} before its dependency {}", s, t);
                }
            }
        }

        #[test]
        fn adding_a_back_edge_makes_a_cycle_that_is_found(deps in dag()) {
            // Any edge from a service to one of its dependents' dependents closes a cycle.
            let mut deps = deps;
            let Some((s, t)) = deps.iter().enumerate().find_map(|(s, d)| d.first().map(|&t| (s, t))) else {
                return Ok(());
            };
            deps[t].push(s);
            let cycle = find_cycle(&deps).expect("a cycle");
            prop_assert_eq!(cycle.first(), cycle.last());
            for pair in cycle.windows(2) {
                prop_assert!(deps[pair[0]].contains(&pair[1]), "not an edge: {:?}", pair);
            }
        }
    }
}
