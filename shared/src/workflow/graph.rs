//! Whole-flow checks on the node graph, by index: what the start reaches, what reaches an end,
//! and loops that would spin without ever waiting for the caller. Validation builds the successor
//! lists from whatever links resolve, so these checks run even while other fields are broken.

use std::collections::VecDeque;

use super::compiled::NodeIndex;

/// Which nodes `start` reaches by following links.
pub(crate) fn reachable_from(successors: &[Vec<NodeIndex>], start: NodeIndex) -> Vec<bool> {
    flood(successors, [start])
}

/// Which nodes have some path to a node marked in `terminal`.
pub(crate) fn reaching(successors: &[Vec<NodeIndex>], terminal: &[bool]) -> Vec<bool> {
    let mut predecessors = vec![Vec::new(); successors.len()];
    for (from, targets) in successors.iter().enumerate() {
        for &to in targets {
            if let Some(p) = predecessors.get_mut(to) {
                p.push(from);
            }
        }
    }
    flood(&predecessors, (0..terminal.len()).filter(|&i| terminal[i]))
}

/// Which nodes are `target`s, or pass and lead to one along a path of passing nodes: a backward
/// walk from the targets that enters only passing nodes.
pub(crate) fn reaching_through(
    successors: &[Vec<NodeIndex>],
    target: &[bool],
    pass: &[bool],
) -> Vec<bool> {
    let n = successors.len();
    let mut predecessors = vec![Vec::new(); n];
    for (from, targets) in successors.iter().enumerate() {
        if !pass.get(from).copied().unwrap_or(false) {
            continue;
        }
        for &to in targets {
            if let Some(p) = predecessors.get_mut(to) {
                p.push(from);
            }
        }
    }
    flood(
        &predecessors,
        (0..n).filter(|&i| target.get(i) == Some(&true)),
    )
}

/// Which nodes a breadth-first walk along `links` marks from `starts` (a start out of range
/// marks nothing).
fn flood(links: &[Vec<NodeIndex>], starts: impl IntoIterator<Item = NodeIndex>) -> Vec<bool> {
    let mut seen = vec![false; links.len()];
    let mut queue: VecDeque<NodeIndex> = starts.into_iter().collect();
    while let Some(node) = queue.pop_front() {
        if seen.get(node).copied().unwrap_or(true) {
            continue;
        }
        seen[node] = true;
        queue.extend(links[node].iter().copied());
    }
    seen
}

/// Cycles made only of nodes that do not wait for the caller (`waits[i]` false), each once, as
/// the node path from its first node (in definition order) back to it.
pub(crate) fn idle_loops(successors: &[Vec<NodeIndex>], waits: &[bool]) -> Vec<Vec<NodeIndex>> {
    let n = successors.len();
    let idle = |i: NodeIndex| i < n && !waits[i];
    // Peel off idle nodes with no idle way in, then with no idle way out: what is left lies on,
    // or between, idle cycles.
    let mut alive: Vec<bool> = (0..n).map(idle).collect();
    loop {
        let mut has_in = vec![false; n];
        let mut has_out = vec![false; n];
        for from in (0..n).filter(|&i| alive[i]) {
            for &to in successors[from].iter().filter(|&&to| to < n && alive[to]) {
                has_out[from] = true;
                has_in[to] = true;
            }
        }
        let mut changed = false;
        for i in 0..n {
            if alive[i] && !(has_in[i] && has_out[i]) {
                alive[i] = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut reported = vec![false; n];
    let mut loops = Vec::new();
    for first in 0..n {
        if !alive[first] || reported[first] {
            continue;
        }
        // Walk idle links until a node repeats: the walk's tail from that node is a cycle.
        let mut path = vec![first];
        let mut position = vec![None; n];
        position[first] = Some(0);
        let mut current = first;
        let cycle_start = loop {
            let Some(&next) = successors[current].iter().find(|&&to| to < n && alive[to]) else {
                break None;
            };
            if let Some(at) = position[next] {
                break Some(at);
            }
            position[next] = Some(path.len());
            path.push(next);
            current = next;
        };
        let Some(at) = cycle_start else { continue };
        let cycle = &path[at..];
        if cycle.iter().any(|&i| reported[i]) {
            continue;
        }
        cycle.iter().for_each(|&i| reported[i] = true);
        // Rotate so the report starts at the earliest node of the definition.
        let lowest = cycle
            .iter()
            .enumerate()
            .min_by_key(|(_, &node)| node)
            .map(|(i, _)| i)
            .unwrap_or(0);
        let mut ordered: Vec<NodeIndex> = cycle[lowest..]
            .iter()
            .chain(&cycle[..lowest])
            .copied()
            .collect();
        ordered.push(ordered[0]);
        loops.push(ordered);
    }
    loops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_through_a_waiting_node_is_not_idle() {
        // 0 say -> 1 gather -> 2 condition -> 0
        let succ = vec![vec![1], vec![2], vec![0, 3], vec![]];
        assert!(idle_loops(&succ, &[false, true, false, false]).is_empty());
    }

    #[test]
    fn idle_cycles_are_reported_once_from_their_first_node() {
        // 0 -> 1 -> 2 -> 1 ; 3 -> 3
        let succ = vec![vec![1], vec![2], vec![1], vec![3]];
        let loops = idle_loops(&succ, &[false; 4]);
        assert_eq!(loops, vec![vec![1, 2, 1], vec![3, 3]]);
    }

    #[test]
    fn reaching_through_stops_at_nodes_that_do_not_pass() {
        // 0 -> 1 -> 3 (target) ; 2 -> 0 ; 4 -> 3, but 4 does not pass ; 5 -> 4
        let succ = vec![vec![1], vec![3], vec![0], vec![], vec![3], vec![4]];
        let target = [false, false, false, true, false, false];
        let pass = [true, true, true, false, false, true];
        assert_eq!(
            reaching_through(&succ, &target, &pass),
            [true, true, true, true, false, false]
        );
    }

    #[test]
    fn reachability_runs_both_ways() {
        let succ = vec![vec![1], vec![], vec![1]];
        assert_eq!(reachable_from(&succ, 0), [true, true, false]);
        assert_eq!(reaching(&succ, &[false, true, false]), [true, true, true]);
    }
}
