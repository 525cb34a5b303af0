//! Graph algorithms over node indices, shared by the validator (which runs them on a graph
//! that may still be broken) and by [`super::Definition`] (whose graph is a DAG).
//!
//! Every algorithm is iterative, so a long chain of nodes cannot overflow the stack, and
//! visits nodes in index order, so results (and the problems built from them) are
//! deterministic.

use std::collections::VecDeque;

/// A directed multigraph on nodes `0..node_count`. Edges keep their index in the list they
/// were built from, so callers can map back to their own edge data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Graph {
    endpoints: Vec<(usize, usize)>,
    outgoing: Vec<Vec<usize>>,
    incoming: Vec<Vec<usize>>,
}

impl Graph {
    /// Edges whose endpoints are out of range are kept in the edge numbering but left out
    /// of the adjacency, so a caller's dangling edge cannot make an algorithm panic.
    pub(crate) fn new(node_count: usize, endpoints: Vec<(usize, usize)>) -> Self {
        let mut outgoing = vec![Vec::new(); node_count];
        let mut incoming = vec![Vec::new(); node_count];
        for (edge, &(from, to)) in endpoints.iter().enumerate() {
            if from < node_count && to < node_count {
                outgoing[from].push(edge);
                incoming[to].push(edge);
            }
        }
        Self {
            endpoints,
            outgoing,
            incoming,
        }
    }

    pub(crate) fn node_count(&self) -> usize {
        self.outgoing.len()
    }

    /// Indices of the edges leaving `node`, in edge order.
    pub(crate) fn outgoing_edges(&self, node: usize) -> &[usize] {
        self.outgoing.get(node).map_or(&[], Vec::as_slice)
    }

    /// Indices of the edges entering `node`, in edge order.
    pub(crate) fn incoming_edges(&self, node: usize) -> &[usize] {
        self.incoming.get(node).map_or(&[], Vec::as_slice)
    }

    fn successors(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        self.outgoing_edges(node)
            .iter()
            .map(|&edge| self.endpoints[edge].1)
    }

    fn predecessors(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        self.incoming_edges(node)
            .iter()
            .map(|&edge| self.endpoints[edge].0)
    }

    /// `reached[n]` is true when `n` is `start` or can be reached from it.
    pub(crate) fn reachable_from(&self, start: usize) -> Vec<bool> {
        let mut reached = vec![false; self.node_count()];
        if let Some(slot) = reached.get_mut(start) {
            *slot = true;
        }
        let mut queue: VecDeque<usize> = self.successors(start).collect();
        while let Some(current) = queue.pop_front() {
            if !std::mem::replace(&mut reached[current], true) {
                queue.extend(self.successors(current));
            }
        }
        reached
    }

    /// `upstream[n]` is true when `node` can be reached from `n`; `node` itself only
    /// counts when it lies on a cycle.
    pub(crate) fn upstream_of(&self, node: usize) -> Vec<bool> {
        let mut upstream = vec![false; self.node_count()];
        let mut queue: VecDeque<usize> = self.predecessors(node).collect();
        while let Some(current) = queue.pop_front() {
            if !std::mem::replace(&mut upstream[current], true) {
                queue.extend(self.predecessors(current));
            }
        }
        upstream
    }

    /// A topological order (Kahn's algorithm, smallest ready index first), or `None` when
    /// the graph has a cycle.
    pub(crate) fn topological_order(&self) -> Option<Vec<usize>> {
        let (order, _) = self.kahn();
        (order.len() == self.node_count()).then_some(order)
    }

    /// For every node that lies on a cycle, in index order, a shortest cycle through it:
    /// the node, the nodes along the cycle, and the node again.
    pub(crate) fn cycles(&self) -> Vec<Vec<usize>> {
        // Kahn's algorithm peels off every node that is not on a cycle and not downstream
        // of one, so only the remainder needs the costlier per-node search.
        let (_, remaining_in_degree) = self.kahn();
        (0..self.node_count())
            .filter(|&node| remaining_in_degree[node] > 0)
            .filter_map(|node| self.shortest_cycle_through(node))
            .collect()
    }

    fn kahn(&self) -> (Vec<usize>, Vec<usize>) {
        let mut in_degree: Vec<usize> = self.incoming.iter().map(Vec::len).collect();
        let mut ready: std::collections::BTreeSet<usize> = (0..self.node_count())
            .filter(|&node| in_degree[node] == 0)
            .collect();
        let mut order = Vec::with_capacity(self.node_count());
        while let Some(node) = ready.pop_first() {
            order.push(node);
            for successor in self.successors(node) {
                in_degree[successor] -= 1;
                if in_degree[successor] == 0 {
                    ready.insert(successor);
                }
            }
        }
        (order, in_degree)
    }

    fn shortest_cycle_through(&self, node: usize) -> Option<Vec<usize>> {
        let mut parent: Vec<Option<usize>> = vec![None; self.node_count()];
        let mut queue = VecDeque::from([node]);
        while let Some(current) = queue.pop_front() {
            for successor in self.successors(current) {
                if successor == node {
                    let mut cycle = vec![node, current];
                    let mut step = current;
                    while let Some(previous) = parent[step] {
                        cycle.push(previous);
                        step = previous;
                    }
                    // `cycle` is node <- current <- ... <- node; reverse it into walking order.
                    cycle.reverse();
                    return Some(cycle);
                }
                if parent[successor].is_none() {
                    parent[successor] = Some(current);
                    queue.push_back(successor);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_a_dag_with_the_smallest_ready_index_first() {
        let graph = Graph::new(4, vec![(0, 2), (0, 1), (1, 3), (2, 3)]);
        assert_eq!(graph.topological_order(), Some(vec![0, 1, 2, 3]));
        assert!(graph.cycles().is_empty());
    }

    #[test]
    fn finds_a_shortest_cycle_through_each_node_on_one() {
        // 0 -> 1 -> 2 -> 1 and 2 -> 3: only 1 and 2 are on a cycle.
        let graph = Graph::new(4, vec![(0, 1), (1, 2), (2, 1), (2, 3)]);
        assert_eq!(graph.topological_order(), None);
        assert_eq!(graph.cycles(), vec![vec![1, 2, 1], vec![2, 1, 2]]);
    }

    #[test]
    fn a_self_loop_is_a_cycle_of_one() {
        let graph = Graph::new(1, vec![(0, 0)]);
        assert_eq!(graph.cycles(), vec![vec![0, 0]]);
    }

    #[test]
    fn reachability_and_upstream_follow_edge_direction() {
        let graph = Graph::new(4, vec![(0, 1), (1, 2)]);
        assert_eq!(graph.reachable_from(1), vec![false, true, true, false]);
        assert_eq!(graph.upstream_of(2), vec![true, true, false, false]);
    }

    #[test]
    fn out_of_range_edges_are_ignored() {
        let graph = Graph::new(2, vec![(0, 7), (0, 1)]);
        assert_eq!(graph.outgoing_edges(0), &[1]);
        assert_eq!(graph.reachable_from(9), vec![false, false]);
    }
}
