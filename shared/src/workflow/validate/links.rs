//! Whole-graph checks for validation: the start node, unreachable regions, nodes with no way to
//! an `end` or `transfer`, and loops that never wait for the caller.

use super::Checker;
use crate::workflow::compiled::NodeIndex;
use crate::workflow::definition::Node;
use crate::workflow::graph;

impl<'a> Checker<'a> {
    /// Graph checks over the links that resolve; returns the start node if it exists.
    pub(super) fn check_graph(&mut self) -> Option<NodeIndex> {
        let nodes: &'a [Node] = &self.workflow.nodes;
        let links: Vec<(Vec<NodeIndex>, bool)> = nodes.iter().map(|n| self.links(n)).collect();
        let successors: Vec<Vec<NodeIndex>> = links.iter().map(|(s, _)| s.clone()).collect();
        let start_id = self.workflow.start.as_str();
        let start = if start_id.trim().is_empty() {
            self.error(None, "start", "is required");
            None
        } else {
            let found = self.index.get(start_id).copied();
            if found.is_none() {
                self.error(
                    None,
                    "start",
                    format!("`{start_id}` is not the id of any node"),
                );
            }
            found
        };
        // A later node reusing an id is already reported; the graph knows only the first.
        let primary: Vec<bool> = (0..nodes.len())
            .map(|i| self.index.get(nodes[i].id()) == Some(&i))
            .collect();
        let reachable = match start {
            Some(s) => graph::reachable_from(&successors, s),
            None => vec![true; nodes.len()],
        };
        // A broken link is reported already and might lead to an end once fixed.
        let ends_or_broken: Vec<bool> = nodes
            .iter()
            .zip(&links)
            .map(|(n, (_, broken))| *broken || matches!(n, Node::End(_) | Node::Transfer(_)))
            .collect();
        let ends = graph::reaching(&successors, &ends_or_broken);
        let waits: Vec<bool> = nodes
            .iter()
            .map(|n| matches!(n, Node::Gather(_) | Node::Agent(_)))
            .collect();
        let mut problems: Vec<(&'a str, &str, String)> = Vec::new();
        // One report per unreachable region: its first node covers the nodes it leads to.
        let mut covered = reachable.clone();
        for i in 0..nodes.len() {
            if !covered[i] && primary[i] {
                let message = format!("is not reachable from the start node `{start_id}`");
                problems.push((nodes[i].id(), "id", message));
                let region = graph::reachable_from(&successors, i);
                covered.iter_mut().zip(region).for_each(|(c, r)| *c |= r);
            }
        }
        for i in (0..nodes.len()).filter(|&i| primary[i] && reachable[i] && !ends[i]) {
            let message = "no path from here leads to an `end` or `transfer` node".to_owned();
            problems.push((nodes[i].id(), "next", message));
        }
        for cycle in graph::idle_loops(&successors, &waits) {
            let names: Vec<&str> = cycle.iter().map(|&i| nodes[i].id()).collect();
            let message = format!(
                "the loop {} never waits for the caller: put a `gather` or `agent` node in it",
                names.join(" → ")
            );
            problems.push((names.first().copied().unwrap_or_default(), "next", message));
        }
        for (node, field, message) in problems {
            self.error(Some(node), field, message);
        }
        start
    }

    /// The nodes `node` links to, as far as its links resolve, and whether any link is broken
    /// (a required one missing, or one naming no node).
    pub(super) fn links(&self, node: &Node) -> (Vec<NodeIndex>, bool) {
        let (required, optional): (Vec<Option<&str>>, Vec<Option<&str>>) = match node {
            Node::Say(n) => (vec![n.next.as_deref()], vec![]),
            Node::Gather(n) => (vec![n.next.as_deref()], vec![n.no_input.as_deref()]),
            Node::Condition(n) => (
                n.branches
                    .iter()
                    .map(|b| b.next.as_deref())
                    .chain([n.otherwise.as_deref()])
                    .collect(),
                vec![],
            ),
            Node::Agent(n) => (
                n.exits
                    .iter()
                    .map(|e| e.next.as_deref())
                    .chain([n.next.as_deref()])
                    .collect(),
                vec![],
            ),
            Node::Function(n) => (vec![n.next.as_deref()], vec![n.on_error.as_deref()]),
            Node::Set(n) => (vec![n.next.as_deref()], vec![]),
            Node::Transfer(_) | Node::End(_) => (vec![], vec![]),
        };
        let mut broken = required.iter().any(Option::is_none);
        let mut successors = Vec::new();
        for target in required.into_iter().chain(optional).flatten() {
            match self.index.get(target) {
                Some(&i) => successors.push(i),
                None => broken = true,
            }
        }
        (successors, broken)
    }
}
