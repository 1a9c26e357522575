//! The identity graph of a profile as positioned shapes for an inline SVG:
//! columns, left to right, of device ids, UIDs, the other profiles (merged
//! anonymous profiles, profiles restored by an undo, the other side of a
//! reassignment or session split) and the profile itself. Edges: each UID to
//! the profile it writes to, each device id to the profiles it was seen on,
//! each identity decision (merge with its rule and evidence, reassignment,
//! session split; undone ones dashed). Text is escaped by the template.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

const COL_X: [f64; 4] = [20.0, 220.0, 440.0, 810.0];
const NODE_W: [f64; 4] = [160.0, 180.0, 190.0, 200.0];
const NODE_H: f64 = 38.0;
const ROW: f64 = 58.0;
const TOP: f64 = 44.0;
/// Nodes drawn per column; the rest are counted in a "+N more" node.
const MAX_PER_COLUMN: usize = 24;

#[derive(Debug, Serialize, Clone)]
pub struct Node {
    pub key: String,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub label: String,
    pub sub: String,
    /// CSS class: root, customer, anonymous, restored, other, uid, device, more
    pub class: String,
    /// A link to the profile page for profile nodes.
    pub profile_id: Option<i64>,
    pub title: String,
}

#[derive(Debug, Serialize, Clone)]
pub struct Edge {
    pub path: String,
    pub label: String,
    pub title: String,
    /// Where the label starts: beside the left end of the edge (so the labels
    /// of the edges converging on one profile do not overlap).
    pub lx: f64,
    pub ly: f64,
    /// CSS class: merge, undone, reassign, session, uid, device
    pub class: String,
}

#[derive(Debug, Serialize, Default)]
pub struct Graph {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub columns: Vec<(f64, String)>,
}

/// A profile other than the root: its customer id and the profile it is merged into.
pub type ProfileInfo = (Option<String>, Option<i64>);

/// What the graph is drawn from.
pub struct Input<'a> {
    pub root: i64,
    pub root_customer: Option<&'a str>,
    /// Profiles other than the root: id → (customer id, merged into).
    pub profiles: &'a BTreeMap<i64, ProfileInfo>,
    /// (uid, profile it writes to)
    pub uids: &'a [(String, i64)],
    /// (device id, profile it was seen on)
    pub devices: &'a [(String, i64)],
    /// cdp.explain's decisions
    pub decisions: &'a [Value],
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n.saturating_sub(1)).collect::<String>())
    }
}

fn curve(x1: f64, y1: f64, x2: f64, y2: f64) -> String {
    let dx = ((x2 - x1).abs() / 2.0).max(40.0);
    format!("M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}", x1 + dx, x2 - dx)
}

/// Two nodes of one column: an arc bulging right.
fn arc(x: f64, y1: f64, y2: f64) -> String {
    let bulge = 60.0 + (y2 - y1).abs() / 6.0;
    format!("M{x:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x:.1},{y2:.1}", x + bulge, x + bulge)
}

pub fn build(input: &Input) -> Graph {
    let mut graph = Graph::default();
    let mut columns: [Vec<Node>; 4] = Default::default();
    let mut more = [0usize; 4];
    let mut place = |col: usize, mut node: Node, columns: &mut [Vec<Node>; 4]| {
        if columns[col].len() >= MAX_PER_COLUMN {
            more[col] += 1;
            return;
        }
        node.x = COL_X[col];
        node.w = NODE_W[col];
        node.h = NODE_H;
        node.y = TOP + ROW * columns[col].len() as f64;
        columns[col].push(node);
    };
    let node = |key: String, label: String, sub: String, class: &str, profile_id: Option<i64>, title: String| Node {
        key,
        x: 0.0,
        y: 0.0,
        w: 0.0,
        h: 0.0,
        label,
        sub,
        class: class.into(),
        profile_id,
        title,
    };

    // The profile itself.
    let root_label = match input.root_customer {
        Some(c) => format!("customer {}", short(c, 18)),
        None => "anonymous profile".into(),
    };
    place(
        3,
        node(
            format!("p{}", input.root),
            root_label,
            format!("profile #{}", input.root),
            "root",
            Some(input.root),
            input.root_customer.map_or_else(|| format!("profile {}", input.root), |c| format!("customer {c}, profile {}", input.root)),
        ),
        &mut columns,
    );
    // The other profiles: members first, then the others the decisions name.
    let mut others: Vec<(&i64, &ProfileInfo)> = input.profiles.iter().filter(|(id, _)| **id != input.root).collect();
    others.sort_by_key(|(id, (_, merged_into))| (*merged_into != Some(input.root), **id));
    for (id, (customer, merged_into)) in others {
        let (class, sub) = match (customer, merged_into) {
            (Some(c), _) => ("customer", format!("customer {}", short(c, 14))),
            (None, Some(into)) if *into == input.root => ("anonymous", "merged".to_string()),
            (None, Some(into)) => ("other", format!("merged into #{into}")),
            (None, None) => ("restored", "anonymous, live".to_string()),
        };
        let title = match customer {
            Some(c) => format!("profile {id}: customer {c}"),
            None => format!("profile {id}: anonymous ({sub})"),
        };
        place(2, node(format!("p{id}"), format!("profile #{id}"), sub, class, Some(*id), title), &mut columns);
    }
    for (uid, profile) in input.uids {
        place(1, node(format!("u{uid}"), short(uid, 22), format!("UID → #{profile}"), "uid", None, format!("UID {uid}")), &mut columns);
    }
    let mut seen_devices = BTreeSet::new();
    for (device, _) in input.devices {
        if seen_devices.insert(device.clone()) {
            place(
                0,
                node(format!("d{device}"), short(device, 20), "device id".into(), "device", None, format!("device id {device}")),
                &mut columns,
            );
        }
    }
    for (col, n) in more.iter().enumerate() {
        if *n > 0 {
            let count = columns[col].len();
            let mut extra = node(format!("more{col}"), format!("+{n} more"), String::new(), "more", None, format!("{n} more not drawn"));
            extra.x = COL_X[col];
            extra.w = NODE_W[col];
            extra.h = NODE_H;
            extra.y = TOP + ROW * count as f64;
            columns[col].push(extra);
        }
    }

    let position: BTreeMap<String, (usize, f64, f64, f64)> = columns
        .iter()
        .enumerate()
        .flat_map(|(col, nodes)| nodes.iter().map(move |n| (n.key.clone(), (col, n.x, n.y + n.h / 2.0, n.w))))
        .collect();
    let connect = |from: &str, to: &str, label: String, title: String, class: &str, edges: &mut Vec<Edge>| {
        let (Some(&(c1, x1, y1, w1)), Some(&(c2, x2, y2, w2))) = (position.get(from), position.get(to)) else { return };
        let (path, lx, ly) = if c1 == c2 {
            let x = x1 + w1;
            (arc(x, y1, y2), x + 8.0, (y1 + y2) / 2.0 + 4.0)
        } else if c1 < c2 {
            (curve(x1 + w1, y1, x2, y2), x1 + w1 + 8.0, y1 - 6.0)
        } else {
            (curve(x2 + w2, y2, x1, y1), x2 + w2 + 8.0, y2 - 6.0)
        };
        edges.push(Edge { path, label, title, lx, ly, class: class.into() });
    };
    let mut edges = Vec::new();
    for (uid, profile) in input.uids {
        connect(
            &format!("u{uid}"),
            &format!("p{profile}"),
            String::new(),
            format!("UID {uid} writes to profile {profile}"),
            "uid",
            &mut edges,
        );
    }
    let mut seen_device_edges = BTreeSet::new();
    for (device, profile) in input.devices {
        if seen_device_edges.insert((device.clone(), *profile)) {
            connect(
                &format!("d{device}"),
                &format!("p{profile}"),
                String::new(),
                format!("device {device} seen on profile {profile}"),
                "device",
                &mut edges,
            );
        }
    }
    for d in input.decisions {
        let get = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("");
        let from = d.get("from_profile").and_then(Value::as_i64).unwrap_or(0);
        let into = d.get("into_profile").and_then(Value::as_i64).unwrap_or(0);
        let id = d.get("merge_id").and_then(Value::as_i64).unwrap_or(0);
        let undone = !d.get("undone_at").is_none_or(Value::is_null);
        let (kind, reason, evidence, uid) = (get("kind"), get("reason"), get("evidence"), get("uid"));
        let class = match (undone, kind, reason) {
            (true, _, _) => "undone",
            (false, "uid_reassigned", "session") => "session",
            (false, "uid_reassigned", _) => "reassign",
            _ => "merge",
        };
        let what = match (kind, reason) {
            ("uid_reassigned", "session") => "session split".to_string(),
            ("uid_reassigned", _) => format!("UID {} moved", short(uid, 12)),
            _ => format!("{reason}: {}", short(evidence, 18)),
        };
        let label = format!("#{id} {what}{}", if undone { " (undone)" } else { "" });
        let title = format!(
            "decision {id}: {kind}, rule {reason}, evidence {evidence}{}, profile {from} → {into}{}",
            if uid.is_empty() { String::new() } else { format!(", uid {uid}") },
            if undone { format!(", undone at {}", get("undone_at")) } else { String::new() }
        );
        connect(&format!("p{from}"), &format!("p{into}"), label, title, class, &mut edges);
    }

    let rows = columns.iter().map(Vec::len).max().unwrap_or(1).max(1);
    graph.height = TOP + ROW * rows as f64 + 10.0;
    graph.width = COL_X[3] + NODE_W[3] + 20.0;
    graph.columns = vec![
        (COL_X[0], "device ids".into()),
        (COL_X[1], "UIDs".into()),
        (COL_X[2], "other profiles".into()),
        (COL_X[3], "this profile".into()),
    ];
    graph.nodes = columns.into_iter().flatten().collect();
    graph.edges = edges;
    graph
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn draws_profiles_uids_devices_and_decisions() {
        let mut profiles = BTreeMap::new();
        profiles.insert(1, (None, Some(4)));
        profiles.insert(2, (None, None));
        let uids = vec![("u1".to_string(), 1), ("u4".to_string(), 4)];
        let devices = vec![("d1".to_string(), 1), ("d1".to_string(), 4)];
        let decisions = vec![
            json!({"merge_id": 7, "kind": "merge", "from_profile": 1, "into_profile": 4, "reason": "email", "evidence": "<a@x.com>", "undone_at": null}),
            json!({"merge_id": 8, "kind": "merge", "from_profile": 2, "into_profile": 4, "reason": "uid", "evidence": "u2", "undone_at": "2026-01-01"}),
        ];
        let g = build(&Input {
            root: 4,
            root_customer: Some("c1"),
            profiles: &profiles,
            uids: &uids,
            devices: &devices,
            decisions: &decisions,
        });
        assert_eq!(g.nodes.len(), 1 + 2 + 2 + 1);
        assert_eq!(g.edges.len(), 2 + 2 + 2);
        assert!(g.edges.iter().any(|e| e.class == "undone" && e.label.contains("#8")));
        assert!(g.edges.iter().any(|e| e.class == "merge" && e.label.contains("email: <a@x.com>")));
        assert!(g.nodes.iter().any(|n| n.class == "restored" && n.profile_id == Some(2)));
    }

    #[test]
    fn caps_a_column() {
        let profiles = BTreeMap::new();
        let uids: Vec<(String, i64)> = (0..100).map(|i| (format!("u{i}"), 1)).collect();
        let g = build(&Input { root: 1, root_customer: None, profiles: &profiles, uids: &uids, devices: &[], decisions: &[] });
        assert_eq!(g.nodes.iter().filter(|n| n.class == "uid").count(), MAX_PER_COLUMN);
        assert!(g.nodes.iter().any(|n| n.class == "more" && n.label == "+76 more"));
    }
}
