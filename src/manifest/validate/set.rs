//! Checks over the whole set: duplicate names, `dependsOn` cycles, published ports.

use super::*;

impl<'a> Validator<'a> {
    /// The same (kind, name) twice.
    pub(super) fn duplicates(&mut self) {
        let mut first: HashMap<(Kind, &str), &Object> = HashMap::new();
        for o in self.objects {
            match first.get(&(o.kind(), o.name())) {
                None => {
                    first.insert((o.kind(), o.name()), o);
                }
                Some(earlier) => {
                    let e = &earlier.origin;
                    self.report(
                        o,
                        "metadata.name",
                        format!(
                            "{} `{}` is defined twice: here and at {}:{}:{}",
                            o.kind(),
                            o.name(),
                            e.file,
                            e.line,
                            e.column
                        ),
                    );
                }
            }
        }
    }

    /// `dependsOn` cycles among the containers of the set, each reported once.
    pub(super) fn cycles(&mut self) {
        let mut graph: DiGraph<&Object, usize> = DiGraph::new();
        let mut index: HashMap<&str, NodeIndex> = HashMap::new();
        for o in self.objects {
            if let Spec::Container(_) = o.spec {
                index.entry(o.name()).or_insert_with(|| graph.add_node(o));
            }
        }
        for &from in index.values() {
            let Spec::Container(spec) = &graph[from].spec else {
                continue;
            };
            for (i, dep) in spec.depends_on.iter().enumerate() {
                if let Some(&to) = index.get(dep.name.as_str()) {
                    graph.update_edge(from, to, i);
                }
            }
        }
        let mut found: Vec<(&Object, String, usize)> = Vec::new();
        for scc in tarjan_scc(&graph) {
            let cyclic = scc.len() > 1 || graph.contains_edge(scc[0], scc[0]);
            if !cyclic {
                continue;
            }
            // Start at the smallest name so the report does not depend on order.
            let Some(&start) = scc.iter().min_by_key(|n| graph[**n].name()) else {
                continue;
            };
            let members: HashSet<NodeIndex> = scc.iter().copied().collect();
            let path = shortest_cycle(&graph, start, &members);
            let names: Vec<&str> = path.iter().map(|n| graph[*n].name()).collect();
            let edge = path
                .get(1)
                .and_then(|next| graph.find_edge(start, *next))
                .map(|e| graph[e])
                .unwrap_or(0);
            found.push((graph[start], names.join(" -> "), edge));
        }
        for (o, cycle, edge) in found {
            self.report(
                o,
                &format!("spec.dependsOn[{edge}].name"),
                format!("dependsOn cycle: {cycle}"),
            );
        }
    }

    /// Two published ports on the same host port and protocol.
    pub(super) fn ports(&mut self) {
        let mut taken: Vec<(&PortMapping, &Object)> = Vec::new();
        let mut clashes = Vec::new();
        for o in self.objects {
            let Spec::Container(spec) = &o.spec else { continue };
            for (i, port) in spec.ports.iter().enumerate() {
                match taken.iter().find(|(p, _)| p.clashes_with(port)) {
                    None => taken.push((port, o)),
                    Some(&(_, first)) => clashes.push((o, i, first, port.host_label())),
                }
            }
        }
        for (o, i, first, label) in clashes {
            let message = if std::ptr::eq(o, first) {
                format!("host port {label} is published twice by Container `{}`", o.name())
            } else {
                format!(
                    "host port {label} is published by both Container `{}` ({}:{}) and Container `{}`",
                    first.name(),
                    first.origin.file,
                    first.origin.line,
                    o.name()
                )
            };
            self.report(o, &format!("spec.ports[{i}].host"), message);
        }
    }
}

/// The shortest path from `start` back to itself inside one strongly connected
/// component, as the list of nodes `start, …, start`.
pub(super) fn shortest_cycle(
    graph: &DiGraph<&Object, usize>,
    start: NodeIndex,
    members: &HashSet<NodeIndex>,
) -> Vec<NodeIndex> {
    let mut previous: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = graph.neighbors(n).filter(|m| members.contains(m)).collect();
        next.sort_by_key(|m| graph[*m].name());
        for m in next {
            if m == start {
                // Walk back from `n` to `start`, then close the loop.
                let mut path = vec![n];
                let mut at = n;
                while at != start {
                    match previous.get(&at) {
                        Some(&p) => at = p,
                        None => break,
                    }
                    path.push(at);
                }
                path.reverse();
                path.push(start);
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = previous.entry(m) {
                e.insert(n);
                queue.push_back(m);
            }
        }
    }
    vec![start, start]
}
