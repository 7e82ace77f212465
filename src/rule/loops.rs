//! Forwarding loops across rules: rule A sends to where rule B listens,
//! B sends back to where A listens (or through any number of rules).
//!
//! Owns: the graph "an output of R reaches the input of R2" and its
//! cycles. A loop is a warning, not an error: bridging two segments both
//! ways is a real use, made safe by a source filter on an input that the
//! relay's own packets do not pass. So:
//!
//! - a republished packet leaves from this host, so a rule whose input has
//!   a source filter does not take it (the filter names a remote sender);
//! - a routed packet keeps its source, so the filter stops it only when
//!   the sending rule's input has another source.
//!
//! Ports: an output port of 0 keeps the packet's port; an input port of 0
//! takes any port.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{OutputMode, Rule, RuleOutput, RuleSet};

/// Whether a packet that `from` sends on `out` is taken by `to`.
fn reaches(from: &Rule, out: &RuleOutput, to: &Rule) -> bool {
    if out.interface != to.input.interface || out.group != to.input.group {
        return false;
    }
    let port = if out.port == 0 {
        from.input.port
    } else {
        out.port
    };
    if port != 0 && to.input.port != 0 && port != to.input.port {
        return false;
    }
    match (out.mode, to.input.source) {
        (_, None) => true,
        (OutputMode::Republish, Some(_)) => false,
        (OutputMode::Route, Some(s)) => from.input.source.is_none_or(|f| f == s),
    }
}

/// The graph over rules in id order: `edges[i]` are the rules that rule
/// `i`'s packets reach.
fn graph(rules: &[&Rule]) -> Vec<Vec<usize>> {
    let mut by_input: BTreeMap<(&str, std::net::Ipv4Addr), Vec<usize>> = BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        by_input
            .entry((r.input.interface.as_str(), r.input.group))
            .or_default()
            .push(i);
    }
    rules
        .iter()
        .map(|r| {
            let mut to = BTreeSet::new();
            for o in &r.outputs {
                for &j in by_input
                    .get(&(o.interface.as_str(), o.group))
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    if reaches(r, o, rules[j]) {
                        to.insert(j);
                    }
                }
            }
            to.into_iter().collect()
        })
        .collect()
}

/// Strongly connected components (Kosaraju, iterative so that a long
/// chain of rules cannot overflow the stack). Each component's members
/// are in ascending order.
fn components(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let mut order = Vec::with_capacity(n);
    let mut seen = vec![false; n];
    for start in 0..n {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let mut stack = vec![(start, 0usize)];
        while let Some((v, next)) = stack.pop() {
            if let Some(&w) = edges[v].get(next) {
                stack.push((v, next + 1));
                if !seen[w] {
                    seen[w] = true;
                    stack.push((w, 0));
                }
            } else {
                order.push(v);
            }
        }
    }
    let mut reverse = vec![Vec::new(); n];
    for (v, ws) in edges.iter().enumerate() {
        for &w in ws {
            reverse[w].push(v);
        }
    }
    let mut comp = vec![usize::MAX; n];
    let mut out = Vec::new();
    for &root in order.iter().rev() {
        if comp[root] != usize::MAX {
            continue;
        }
        let id = out.len();
        let mut members = vec![root];
        comp[root] = id;
        let mut stack = vec![root];
        while let Some(v) = stack.pop() {
            for &w in &reverse[v] {
                if comp[w] == usize::MAX {
                    comp[w] = id;
                    members.push(w);
                    stack.push(w);
                }
            }
        }
        members.sort_unstable();
        out.push(members);
    }
    out
}

/// A shortest cycle through `start` inside `component` (BFS), as rule
/// indices beginning with `start`.
fn cycle_through(edges: &[Vec<usize>], component: &[usize], start: usize) -> Vec<usize> {
    let inside: BTreeSet<usize> = component.iter().copied().collect();
    let mut parent: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in &edges[v] {
            if w == start {
                let mut path = vec![v];
                let mut at = v;
                while at != start {
                    at = parent[&at];
                    path.push(at);
                }
                path.reverse();
                return path;
            }
            if inside.contains(&w) && !parent.contains_key(&w) && w != start {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    vec![start]
}

/// Every loop among `rules`, one per group of rules that reach each
/// other, as the rule ids of one cycle starting at the lowest id.
pub fn forwarding_loops(rules: &RuleSet) -> Vec<Vec<String>> {
    loops(rules.iter().collect(), |_| true)
}

/// The touched rules and every rule their packets may reach through any
/// number of rules, in id order. Every cycle through a touched rule lies
/// among them, and so does its whole group of rules that reach each other,
/// so looking for loops here finds the same ones as in the whole set, at
/// the cost of what one `add` can reach rather than of every rule.
fn reachable<'a>(rules: &'a RuleSet, touched: &[&str]) -> Vec<&'a Rule> {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut queue: VecDeque<&Rule> = touched.iter().filter_map(|id| rules.get(id)).collect();
    for r in &queue {
        seen.insert(r.id.as_str());
    }
    while let Some(r) = queue.pop_front() {
        for o in &r.outputs {
            for to in rules.taking(&o.interface, o.group) {
                if seen.insert(to.id.as_str()) {
                    queue.push_back(to);
                }
            }
        }
    }
    seen.iter().filter_map(|id| rules.get(id)).collect()
}

fn loops(list: Vec<&Rule>, wanted: impl Fn(&Rule) -> bool) -> Vec<Vec<String>> {
    let edges = graph(&list);
    let mut out = Vec::new();
    for c in components(&edges) {
        let looped = c.len() > 1 || edges[c[0]].contains(&c[0]);
        if !looped || !c.iter().any(|&i| wanted(list[i])) {
            continue;
        }
        let cycle = cycle_through(&edges, &c, c[0]);
        out.push(cycle.into_iter().map(|i| list[i].id.clone()).collect());
    }
    out
}

/// One warning per loop that involves a rule of `touched` (the rules just
/// added or loaded), worded for the operator.
pub fn loop_warnings(rules: &RuleSet, touched: &[&str]) -> Vec<String> {
    loops(reachable(rules, touched), |r| {
        touched.contains(&r.id.as_str())
    })
        .into_iter()
        .map(|cycle| {
            let hops: Vec<String> = cycle
                .iter()
                .filter_map(|id| rules.get(id))
                .map(|r| {
                    format!(
                        "{} ({} {}:{})",
                        r.id, r.input.interface, r.input.group, r.input.port
                    )
                })
                .collect();
            let first = cycle.first().map(String::as_str).unwrap_or("");
            format!(
                "forwarding loop: rule {} -> back to {first}; packets will circulate between these interfaces unless an input has a source filter that the relayed packets do not pass",
                hops.join(" -> rule ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::testutil;

    /// `rule("a", "eth0 239.1.1.1:5000", &["eth1 239.1.1.1:5000"])`.
    fn rule(id: &str, input: &str, outs: &[&str]) -> Rule {
        Rule {
            id: id.into(),
            name: None,
            input: testutil::input(input),
            outputs: testutil::outputs(outs),
        }
    }

    fn set(rules: Vec<Rule>) -> RuleSet {
        RuleSet::from_rules(rules).unwrap()
    }

    #[test]
    fn two_rules_both_ways_loop() {
        let rules = set(vec![
            rule("a", "eth0 239.1.1.1:5000", &["eth1 239.1.1.1:5000"]),
            rule("b", "eth1 239.1.1.1:5000", &["eth0 239.1.1.1:5000"]),
        ]);
        assert_eq!(forwarding_loops(&rules), vec![vec!["a", "b"]]);
        let w = loop_warnings(&rules, &["b"]);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("rule a (eth0 239.1.1.1:5000) -> rule b"),
            "{}",
            w[0]
        );
        // A rule outside the loop was touched: nothing to say about it.
        assert!(loop_warnings(&rules, &["c"]).is_empty());
    }

    #[test]
    fn a_three_rule_loop_through_translation_is_found() {
        let rules = set(vec![
            rule("a", "eth0 239.1.1.1:5000", &["eth1 239.2.2.2:6000"]),
            rule("b", "eth1 239.2.2.2:0", &["eth2 239.3.3.3:0"]),
            // Output port 0 keeps b's port... which is any: still reaches.
            rule("c", "eth2 239.3.3.3:6000", &["eth0 239.1.1.1:5000"]),
            rule("d", "eth2 239.9.9.9:1", &["eth0 239.1.1.1:5000"]),
        ]);
        assert_eq!(forwarding_loops(&rules), vec![vec!["a", "b", "c"]]);
    }

    #[test]
    fn a_chain_without_a_way_back_is_no_loop() {
        let rules = set(vec![
            rule("a", "eth0 239.1.1.1:5000", &["eth1 239.1.1.1:5000"]),
            // Back to eth0 but on another group, another port.
            rule("b", "eth1 239.1.1.1:5000", &["eth0 239.1.1.2:5000"]),
            rule("c", "eth1 239.1.1.3:5000", &["eth0 239.1.1.1:5001"]),
        ]);
        assert!(forwarding_loops(&rules).is_empty());
    }

    #[test]
    fn a_source_filter_breaks_a_republish_loop_but_not_a_routed_one() {
        let mut b = rule("b", "eth1 239.1.1.1:5000", &["eth0 239.1.1.1:5000"]);
        b.input.source = Some("10.0.0.9".parse().unwrap());
        let a = rule("a", "eth0 239.1.1.1:5000", &["eth1 239.1.1.1:5000"]);
        assert!(forwarding_loops(&set(vec![a.clone(), b.clone()])).is_empty());

        // Routed packets keep their source: a's input takes any source,
        // so some of them pass b's filter.
        let mut routed = a.clone();
        routed.outputs[0].mode = OutputMode::Route;
        assert_eq!(
            forwarding_loops(&set(vec![routed.clone(), b.clone()])).len(),
            1
        );
        // Unless a only takes another source.
        routed.input.source = Some("10.0.0.1".parse().unwrap());
        assert!(forwarding_loops(&set(vec![routed, b])).is_empty());
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 20_000u32;
        let g = |i: u32| std::net::Ipv4Addr::from(0xef00_0000 + i).to_string();
        let rules: Vec<Rule> = (0..n)
            .map(|i| {
                let next = (i + 1) % n;
                rule(
                    &format!("r{i}"),
                    &format!("eth0 {}:1", g(i)),
                    &[&format!("eth1 {}:1", g(next))],
                )
            })
            .chain((0..n).map(|i| {
                rule(
                    &format!("s{i}"),
                    &format!("eth1 {}:1", g(i)),
                    &[&format!("eth0 {}:1", g(i))],
                )
            }))
            .collect();
        let loops = forwarding_loops(&set(rules));
        assert_eq!(loops.len(), 1);
        assert!(loops[0].len() >= 2);
    }

    /// The loops one added rule is warned about are those that a search of
    /// the whole set finds for it: looking only at what it reaches misses
    /// none and adds none, wherever the rule sits (in a loop, feeding one,
    /// fed by one, beside one).
    #[test]
    fn warnings_for_a_touched_rule_match_a_search_of_the_whole_set() {
        let rules = set(vec![
            // A three-rule loop (a, b, c) with a tail d feeding it and e fed by it.
            rule("a", "eth0 239.1.1.1:5000", &["eth1 239.1.1.2:5000"]),
            rule(
                "b",
                "eth1 239.1.1.2:5000",
                &["eth2 239.1.1.3:5000", "eth3 239.1.1.9:1"],
            ),
            rule("c", "eth2 239.1.1.3:5000", &["eth0 239.1.1.1:5000"]),
            rule("d", "eth4 239.1.1.4:5000", &["eth0 239.1.1.1:5000"]),
            rule("e", "eth3 239.1.1.9:1", &["eth5 239.1.1.5:5000"]),
            // A separate two-rule loop, and one with a port that breaks it.
            rule("f", "eth6 239.1.1.6:7", &["eth7 239.1.1.7:7"]),
            rule("g", "eth7 239.1.1.7:7", &["eth6 239.1.1.6:7"]),
            rule("h", "eth7 239.1.1.7:8", &["eth6 239.1.1.6:8"]),
            // A loop through a rule that takes any port.
            rule("i", "eth8 239.1.1.8:0", &["eth9 239.1.1.8:1"]),
            rule("j", "eth9 239.1.1.8:1", &["eth8 239.1.1.8:2"]),
        ]);
        let mut warned = 0;
        for r in rules.iter() {
            let id = r.id.as_str();
            let whole = loops(rules.iter().collect(), |x| x.id == id);
            let near = loops(reachable(&rules, &[id]), |x| x.id == id);
            assert_eq!(near, whole, "rule {id}");
            assert_eq!(loop_warnings(&rules, &[id]).len(), whole.len(), "rule {id}");
            warned += usize::from(!whole.is_empty());
        }
        assert_eq!(warned, 7, "a, b, c, f, g, i and j are in loops");
    }
}
