//! Pipeline graphs as SVG: a layered (Sugiyama-style) layout small enough to keep here.
//!
//! 1. Layers: each step sits one layer right of its furthest input (longest path from the
//!    sources), so data flows left to right.
//! 2. Edges spanning several layers get a dummy point in each layer between, so they bend
//!    around the steps instead of crossing them.
//! 3. Order within a layer: start in input order, then sweep right and left a few times,
//!    placing each node at the mean position of its neighbours in the layer before
//!    (barycenter), which removes most crossings.
//! 4. Coordinates: layers are columns, nodes are rows centred in their column; edges are
//!    cubic curves through their dummy points.

use std::collections::HashMap;
use std::fmt::Write;

use crate::chart::escape;

/// A step to draw.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub label: String,
    /// Second line (status, or "reused").
    pub detail: String,
    /// A CSS class for the status (`ok`, `bad`, `live`, `off`, `reused`, `waiting`).
    pub class: String,
    pub href: Option<String>,
}

const NODE_W: f64 = 170.0;
const NODE_H: f64 = 46.0;
const GAP_X: f64 = 70.0;
const GAP_Y: f64 = 22.0;
const PAD: f64 = 12.0;

/// Lays out and draws `nodes` with `edges` (from, to). Edges naming unknown nodes, and
/// edges that would close a cycle, are left out.
pub fn svg(nodes: &[Node], edges: &[(String, String)]) -> String {
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    let n = nodes.len();
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (a, b) in edges {
        if let (Some(&i), Some(&j)) = (index.get(a.as_str()), index.get(b.as_str()))
            && i != j
        {
            preds[j].push(i);
        }
    }
    // Layers by longest path, in topological order (Kahn); nodes on a cycle keep layer 0.
    let mut indegree: Vec<usize> = preds.iter().map(Vec::len).collect();
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (j, ps) in preds.iter().enumerate() {
        for &i in ps {
            succs[i].push(j);
        }
    }
    let mut layer = vec![0usize; n];
    let mut queue: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut seen = vec![false; n];
    while let Some(i) = queue.pop() {
        seen[i] = true;
        for &j in &succs[i] {
            layer[j] = layer[j].max(layer[i] + 1);
            indegree[j] -= 1;
            if indegree[j] == 0 {
                queue.push(j);
            }
        }
    }
    let kept: Vec<(usize, usize)> = preds
        .iter()
        .enumerate()
        .flat_map(|(j, ps)| ps.iter().map(move |&i| (i, j)))
        .filter(|&(i, j)| seen[i] && seen[j] && layer[i] < layer[j])
        .collect();
    // Points: real nodes, then dummies; each edge becomes a chain of points.
    let depth = layer.iter().copied().max().unwrap_or(0) + 1;
    let mut point_layer: Vec<usize> = layer.clone();
    let mut chains: Vec<Vec<usize>> = Vec::new();
    for &(i, j) in &kept {
        let mut chain = vec![i];
        for l in layer[i] + 1..layer[j] {
            point_layer.push(l);
            chain.push(point_layer.len() - 1);
        }
        chain.push(j);
        chains.push(chain);
    }
    let points = point_layer.len();
    let mut up: Vec<Vec<usize>> = vec![Vec::new(); points];
    let mut down: Vec<Vec<usize>> = vec![Vec::new(); points];
    for chain in &chains {
        for w in chain.windows(2) {
            up[w[1]].push(w[0]);
            down[w[0]].push(w[1]);
        }
    }
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for p in 0..points {
        layers[point_layer[p]].push(p);
    }
    let mut pos = vec![0.0f64; points];
    let reindex = |layers: &Vec<Vec<usize>>, pos: &mut Vec<f64>| {
        for l in layers {
            for (k, &p) in l.iter().enumerate() {
                pos[p] = k as f64;
            }
        }
    };
    reindex(&layers, &mut pos);
    for sweep in 0..6 {
        let forward = sweep % 2 == 0;
        let order: Vec<usize> =
            if forward { (1..depth).collect() } else { (0..depth.saturating_sub(1)).rev().collect() };
        for l in order {
            let neighbours = if forward { &up } else { &down };
            let key: HashMap<usize, f64> = layers[l]
                .iter()
                .map(|&p| {
                    let ns = &neighbours[p];
                    let k =
                        if ns.is_empty() { pos[p] } else { ns.iter().map(|&q| pos[q]).sum::<f64>() / ns.len() as f64 };
                    (p, k)
                })
                .collect();
            layers[l].sort_by(|a, b| key[a].total_cmp(&key[b]));
            reindex(&layers, &mut pos);
        }
    }
    let tallest = layers.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let height = PAD * 2.0 + tallest as f64 * (NODE_H + GAP_Y) - GAP_Y;
    let width = PAD * 2.0 + depth as f64 * (NODE_W + GAP_X) - GAP_X;
    let mut xy = vec![(0.0, 0.0); points];
    for (l, members) in layers.iter().enumerate() {
        let offset = (tallest - members.len()) as f64 * (NODE_H + GAP_Y) / 2.0;
        for (k, &p) in members.iter().enumerate() {
            xy[p] = (PAD + l as f64 * (NODE_W + GAP_X), PAD + offset + k as f64 * (NODE_H + GAP_Y));
        }
    }
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="dag" role="group" aria-label="pipeline graph" viewBox="0 0 {width} {height}" width="{width}" height="{height}"><title>pipeline graph</title><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>"#
    );
    for chain in &chains {
        let mut d = String::new();
        for (k, w) in chain.windows(2).enumerate() {
            let (a, b) = (w[0], w[1]);
            // Leave a real node from its right side; pass through dummies at their middle.
            let (ax, ay) = if a < n {
                (xy[a].0 + NODE_W, xy[a].1 + NODE_H / 2.0)
            } else {
                (xy[a].0 + NODE_W / 2.0, xy[a].1 + NODE_H / 2.0)
            };
            let (bx, by) = if b < n {
                (xy[b].0, xy[b].1 + NODE_H / 2.0)
            } else {
                (xy[b].0 + NODE_W / 2.0, xy[b].1 + NODE_H / 2.0)
            };
            let dx = (bx - ax) / 2.0;
            if k == 0 {
                let _ = write!(d, "M {ax:.1} {ay:.1}");
            }
            let _ = write!(d, " C {:.1} {ay:.1}, {:.1} {by:.1}, {bx:.1} {by:.1}", ax + dx, bx - dx);
        }
        let (from, to) = (&nodes[chain[0]].id, &nodes[chain[chain.len() - 1]].id);
        let _ = write!(
            out,
            r#"<path class="edge" data-from="{}" data-to="{}" d="{d}" marker-end="url(#arrow)"/>"#,
            escape(from),
            escape(to)
        );
    }
    for (i, node) in nodes.iter().enumerate() {
        let (x, y) = xy[i];
        let label: String = node.label.chars().take(22).collect();
        let detail: String = node.detail.chars().take(26).collect();
        let inner = format!(
            r#"<rect x="{x:.1}" y="{y:.1}" width="{NODE_W}" height="{NODE_H}" rx="6"/><text class="label" x="{:.1}" y="{:.1}">{}</text><text class="detail" x="{:.1}" y="{:.1}">{}</text>"#,
            x + 10.0,
            y + 19.0,
            escape(&label),
            x + 10.0,
            y + 36.0,
            escape(&detail)
        );
        let _ = write!(out, r#"<g class="node {}" data-id="{}">"#, escape(&node.class), escape(&node.id));
        match &node.href {
            Some(h) => {
                let _ = write!(out, r#"<a href="{}"><title>{}</title>{inner}</a>"#, escape(h), escape(&node.id));
            }
            None => {
                let _ = write!(out, r#"<title>{}</title>{inner}"#, escape(&node.id));
            }
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> Node {
        Node { id: id.into(), label: id.into(), detail: String::new(), class: "ok".into(), href: None }
    }

    fn x_of(svg: &str, id: &str) -> f64 {
        let at = svg.find(&format!(r#"data-id="{id}""#)).unwrap();
        let rect = &svg[at..];
        let x = rect.split(r#"<rect x=""#).nth(1).unwrap();
        x.split('"').next().unwrap().parse().unwrap()
    }

    #[test]
    fn data_flows_left_to_right_and_long_edges_bend() {
        let nodes = vec![node("prep"), node("train"), node("eval"), node("report")];
        let edges = vec![
            ("prep".to_string(), "train".to_string()),
            ("train".to_string(), "eval".to_string()),
            ("prep".to_string(), "report".to_string()),
            ("eval".to_string(), "report".to_string()),
        ];
        let svg = svg(&nodes, &edges);
        assert!(x_of(&svg, "prep") < x_of(&svg, "train"));
        assert!(x_of(&svg, "train") < x_of(&svg, "eval"));
        assert!(x_of(&svg, "eval") < x_of(&svg, "report"));
        assert_eq!(svg.matches(r#"class="edge""#).count(), 4);
        // prep → report spans three layers: one curve per segment.
        let long = svg.split(r#"data-from="prep" data-to="report""#).nth(1).unwrap();
        assert_eq!(long.split("marker-end").next().unwrap().matches(" C ").count(), 3);
    }

    #[test]
    fn cycles_and_unknown_names_do_not_break_it() {
        let nodes = vec![node("a"), node("b")];
        let edges = vec![("a".into(), "b".into()), ("b".into(), "a".into()), ("a".into(), "zzz".into())];
        let svg = svg(&nodes, &edges);
        assert_eq!(svg.matches(r#"<g class="node"#).count(), 2);
        assert!(svg.ends_with("</svg>"));
        assert!(super::svg(&[], &[]).contains("<svg"));
    }
}
