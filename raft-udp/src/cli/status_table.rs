//! The compact human table `cluster` prints for `status` (the JSON lines of
//! `raft-udp status` stay available there as `status --json`).

use crate::packet::NodeStatus;
use std::fmt::Write;
use std::net::SocketAddr;

/// One row per node, aligned; a node that did not answer shows as `down`.
pub(crate) fn table(addrs: &[SocketAddr], answers: &[Option<NodeStatus>]) -> String {
    let header = ["node", "addr", "role", "term", "leader", "commit", "applied", "last", "snap", "dropped"];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for (i, (addr, answer)) in addrs.iter().zip(answers).enumerate() {
        rows.push(match answer {
            Some(s) => vec![
                format!("n{}", s.id),
                addr.to_string(),
                s.role.clone(),
                s.term.to_string(),
                s.leader.map_or("-".into(), |l| format!("n{l}")),
                s.commit_index.to_string(),
                s.last_applied.to_string(),
                s.last_log_index.to_string(),
                s.snapshot_index.to_string(),
                s.dropped.total().to_string(),
            ],
            None => {
                let mut row = vec![format!("n{}", i + 1), addr.to_string(), "down".into()];
                row.resize(header.len(), "-".into());
                row
            }
        });
    }
    let widths: Vec<usize> =
        (0..header.len()).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or_default()).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            // Text left-aligned, numbers right-aligned.
            let _ = if c < 3 {
                write!(line, "{cell:<w$}  ", w = widths[c])
            } else {
                write!(line, "{cell:>w$}  ", w = widths[c])
            };
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_net::udp::Counters;

    #[test]
    fn rows_line_up_and_show_down_nodes() {
        let addrs: Vec<SocketAddr> = vec!["127.0.0.1:7001".parse().unwrap(), "127.0.0.1:7002".parse().unwrap()];
        let up = NodeStatus {
            id: 1,
            role: "leader".into(),
            term: 3,
            leader: Some(1),
            commit_index: 17,
            last_applied: 17,
            last_log_index: 18,
            snapshot_index: 0,
            dropped: Counters { malformed: 2, ..Counters::default() },
            sessions: 4,
            session_bytes: 384,
            session_limit_bytes: 1 << 20,
            unproven: 0,
            voters: vec![1, 2],
            learners: vec![],
        };
        let t = table(&addrs, &[Some(up), None]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("node  addr"), "{t}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(cells, ["n1", "127.0.0.1:7001", "leader", "3", "n1", "17", "17", "18", "0", "2"]);
        let cells: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(cells[..3], ["n2", "127.0.0.1:7002", "down"]);
        // Right-aligned columns end at the same place on every line.
        assert_eq!(lines[0].find("term").map(|i| i + 4), lines[1].find(" 3 ").map(|i| i + 2));
    }
}
