//! `outpost status`: the broker's uptime, ring use, connections and every partition's offsets,
//! then forwarding: the link to Kafka and each forwarded partition's backlog
//! (FORWARDER_STATUS; a broker that predates it is said to, not an error).

use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args as ClapArgs;

use super::common::AddrArgs;
use super::{CliError, EXIT_FAILURE, EXIT_OK};
use crate::client::{ClientError, ForwardLink, ForwarderStatus, Status};
use crate::protocol::ErrorCode;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    addr: AddrArgs,
}

pub fn run(args: Args) -> Result<i32, CliError> {
    smol::block_on(async {
        let client = args.addr.connect().await?;
        // Both requests in flight at once.
        let (status, forwarder) =
            smol::future::zip(client.status(), client.forwarder_status()).await;
        let status = status.map_err(|e| CliError::client("cannot get the broker's status", e))?;
        let forwarding = match forwarder {
            Ok(f) => Forwarding::Status(f),
            Err(e) if e.code() == Some(ErrorCode::UnknownKind) => Forwarding::Unsupported,
            Err(e @ ClientError::Server { .. }) => Forwarding::Refused(e.to_string()),
            Err(e) => {
                return Err(CliError::client("cannot get the forwarder's status", e));
            }
        };
        let server = client.server_info().server.clone();
        client.close().await;
        print!(
            "{}",
            render(client.addr(), &server, &status, &forwarding, unix_now_ms())
        );
        Ok(match forwarding {
            Forwarding::Refused(_) => EXIT_FAILURE,
            _ => EXIT_OK,
        })
    })
}

/// What the broker said about forwarding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forwarding {
    /// Its FORWARDER_STATUS answer (`configured` false: no forwarder).
    Status(ForwarderStatus),
    /// The broker predates FORWARDER_STATUS (it answered `UNKNOWN_KIND`).
    Unsupported,
    /// The broker refused FORWARDER_STATUS: the error, as the client prints it.
    Refused(String),
}

/// This machine's clock in ms since the Unix epoch (0 if it is set before 1970).
fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A duration as `1d 2h 3m 4.567s`, leaving out leading zero units.
pub fn uptime(ms: u64) -> String {
    let (d, rest) = (ms / 86_400_000, ms % 86_400_000);
    let (h, rest) = (rest / 3_600_000, rest % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let s = format!("{}.{:03}s", rest / 1000, rest % 1000);
    match (d, h, m) {
        (0, 0, 0) => s,
        (0, 0, m) => format!("{m}m {s}"),
        (0, h, m) => format!("{h}h {m}m {s}"),
        (d, h, m) => format!("{d}d {h}h {m}m {s}"),
    }
}

/// A span of time, coarser as it grows: `3.2s`, `4m 12s`, `2h 3m`, `5d 1h` (tenths of a
/// second and smaller units are cut, not rounded).
pub fn span(ms: u64) -> String {
    let (d, h, m, s) = (
        ms / 86_400_000,
        ms % 86_400_000 / 3_600_000,
        ms % 3_600_000 / 60_000,
        ms % 60_000 / 1000,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}.{}s", ms % 1000 / 100),
        (0, 0, m) => format!("{m}m {s}s"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// How long before `now_ms` the instant `at_ms` was (both Unix ms): `3.2s ago`. Record
/// timestamps come from the producers' clocks, so an instant after `now_ms` is possible:
/// `1.5s in the future`.
pub fn age(now_ms: i64, at_ms: i64) -> String {
    let d = i128::from(now_ms) - i128::from(at_ms);
    let ms = u64::try_from(d.unsigned_abs()).unwrap_or(u64::MAX);
    if d < 0 {
        format!("{} in the future", span(ms))
    } else {
        format!("{} ago", span(ms))
    }
}

/// The whole `outpost status` output: the broker, then forwarding; ages are taken at
/// `now_ms` (Unix ms).
pub fn render(
    addr: &str,
    server: &str,
    s: &Status,
    forwarding: &Forwarding,
    now_ms: i64,
) -> String {
    let mut out = render_broker(addr, server, s);
    out.push_str(&render_forwarding(forwarding, now_ms));
    out
}

/// The `forwarding:` section.
pub fn render_forwarding(forwarding: &Forwarding, now_ms: i64) -> String {
    let f = match forwarding {
        Forwarding::Unsupported => {
            return "forwarding: unknown (the broker does not support FORWARDER_STATUS)\n".into();
        }
        Forwarding::Refused(e) => return format!("forwarding: unavailable ({})\n", one_line(e)),
        Forwarding::Status(f) if !f.configured => return "forwarding: not configured\n".into(),
        Forwarding::Status(f) => f,
    };
    let mut out = match f.link {
        ForwardLink::Other(n) => format!("forwarding: unknown state {n}\n"),
        link => format!("forwarding: {}\n", link.name()),
    };
    out.push_str(&format!(
        "  last error: {}\n",
        f.last_error.as_deref().map_or("none".into(), one_line)
    ));
    out.push_str(&format!(
        "  last commit: {}\n",
        f.last_commit_ms.map_or("never".into(), |t| age(now_ms, t))
    ));
    out.push_str(&format!(
        "  commits: {}, records forwarded: {}, gaps: {}\n",
        f.commits, f.records_forwarded, f.gaps
    ));
    if f.partitions.is_empty() {
        out.push_str("  partitions: none\n");
        return out;
    }
    out.push_str(&format!(
        "  partitions: {} (position: next edge offset to forward; behind: durable on the edge, \
         not yet committed upstream)\n",
        f.partitions.len()
    ));
    let mut rows = vec![[
        "topic/partition".to_string(),
        "upstream topic".into(),
        "position".into(),
        "records behind".into(),
        "~bytes behind".into(),
        "oldest unforwarded".into(),
        "last commit".into(),
    ]];
    for p in &f.partitions {
        let dash = || "-".to_string();
        rows.push([
            format!("{}/{}", p.topic, p.partition),
            p.upstream_topic.clone(),
            p.position.map_or_else(dash, |n| n.to_string()),
            p.records_behind().map_or_else(dash, |n| n.to_string()),
            match p.bytes_behind {
                0 => "0".into(),
                n => format!("~{n}"),
            },
            p.oldest_unforwarded_ms
                .map_or("none".into(), |t| age(now_ms, t)),
            p.last_commit_ms.map_or("never".into(), |t| age(now_ms, t)),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, &w)) in row.iter().zip(&widths).enumerate() {
            // Names to the left, numbers and ages to the right.
            if i < 2 {
                line.push_str(&format!("  {cell:<w$}"));
            } else {
                line.push_str(&format!("  {cell:>w$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `text` on one line: control characters (newlines in an error chain) become spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The broker part: uptime, ring, connections and the partitions table.
pub fn render_broker(addr: &str, server: &str, s: &Status) -> String {
    let pct = if s.ring_bytes == 0 {
        0.0
    } else {
        s.ring_used_bytes as f64 * 100.0 / s.ring_bytes as f64
    };
    let mut out = format!("broker: {server} at {addr}\n");
    out.push_str(&format!("uptime: {}\n", uptime(s.uptime_ms)));
    out.push_str(&format!(
        "ring: {} of {} bytes used ({pct:.1}%), {} of {} segments live\n",
        s.ring_used_bytes, s.ring_bytes, s.segments_live, s.segments_total
    ));
    out.push_str(&format!("connections: {}\n", s.connections));
    if s.partitions.is_empty() {
        out.push_str("partitions: none\n");
        return out;
    }
    out.push_str(&format!(
        "partitions: {} (earliest: oldest stored offset; next: one past the last durable)\n",
        s.partitions.len()
    ));
    let width = s
        .partitions
        .iter()
        .map(|p| p.topic.len())
        .max()
        .unwrap_or(0)
        .max("topic".len());
    out.push_str(&format!(
        "  {:<width$}  {:>10}  {:>12}  {:>12}\n",
        "topic", "partition", "earliest", "next"
    ));
    for p in &s.partitions {
        out.push_str(&format!(
            "  {:<width$}  {:>10}  {:>12}  {:>12}\n",
            p.topic, p.partition, p.earliest, p.next
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ForwardPartition, PartitionStatus};

    #[test]
    fn uptime_units() {
        assert_eq!(uptime(0), "0.000s");
        assert_eq!(uptime(61_005), "1m 1.005s");
        assert_eq!(uptime(3_600_000), "1h 0m 0.000s");
        assert_eq!(uptime(90_061_001), "1d 1h 1m 1.001s");
    }

    #[test]
    fn status_table() {
        let s = Status {
            uptime_ms: 1500,
            ring_bytes: 1000,
            ring_used_bytes: 250,
            segments_live: 2,
            segments_total: 16,
            connections: 3,
            partitions: vec![PartitionStatus {
                topic: "t".into(),
                partition: 0,
                earliest: 0,
                next: 9,
            }],
        };
        let none = Forwarding::Status(ForwarderStatus {
            configured: false,
            link: ForwardLink::Connecting,
            last_error: None,
            last_commit_ms: None,
            commits: 0,
            records_forwarded: 0,
            gaps: 0,
            partitions: vec![],
        });
        let out = render("127.0.0.1:7478", "outpost 0.1.0", &s, &none, 0);
        assert_eq!(
            out,
            "broker: outpost 0.1.0 at 127.0.0.1:7478\n\
             uptime: 1.500s\n\
             ring: 250 of 1000 bytes used (25.0%), 2 of 16 segments live\n\
             connections: 3\n\
             partitions: 1 (earliest: oldest stored offset; next: one past the last durable)\n  \
             topic   partition      earliest          next\n  \
             t               0             0             9\n\
             forwarding: not configured\n"
        );
    }

    #[test]
    fn ages() {
        assert_eq!(span(0), "0.0s");
        assert_eq!(span(3_290), "3.2s");
        assert_eq!(span(59_999), "59.9s");
        assert_eq!(span(60_000), "1m 0s");
        assert_eq!(span(252_900), "4m 12s");
        assert_eq!(span(7_380_000), "2h 3m");
        assert_eq!(span(435_600_000), "5d 1h");
        assert_eq!(age(10_000, 6_800), "3.2s ago");
        assert_eq!(age(10_000, 11_500), "1.5s in the future");
        assert_eq!(age(i64::MAX, i64::MIN), format!("{} ago", span(u64::MAX)));
    }

    const NOW: i64 = 1_700_000_100_000;

    fn forwarding() -> ForwarderStatus {
        ForwarderStatus {
            configured: true,
            link: ForwardLink::BackingOff,
            last_error: Some("Produce to broker 1:\nconnection refused".into()),
            last_commit_ms: Some(NOW - 3_200),
            commits: 12,
            records_forwarded: 3400,
            gaps: 1,
            partitions: vec![
                ForwardPartition {
                    topic: "telemetry".into(),
                    partition: 0,
                    upstream_topic: "gw.telemetry".into(),
                    position: Some(1000),
                    durable_next: 1024,
                    bytes_behind: 3072,
                    oldest_unforwarded_ms: Some(NOW - 65_000),
                    last_commit_ms: Some(NOW - 3_200),
                },
                ForwardPartition {
                    topic: "telemetry".into(),
                    partition: 1,
                    upstream_topic: "gw.telemetry".into(),
                    position: None,
                    durable_next: 7,
                    bytes_behind: 0,
                    oldest_unforwarded_ms: None,
                    last_commit_ms: None,
                },
            ],
        }
    }

    #[test]
    fn forwarding_section() {
        let out = render_forwarding(&Forwarding::Status(forwarding()), NOW);
        let expected = [
            "forwarding: backing off",
            "  last error: Produce to broker 1: connection refused",
            "  last commit: 3.2s ago",
            "  commits: 12, records forwarded: 3400, gaps: 1",
            "  partitions: 2 (position: next edge offset to forward; behind: durable on the \
             edge, not yet committed upstream)",
            "  topic/partition  upstream topic  position  records behind  ~bytes behind  \
             oldest unforwarded  last commit",
            "  telemetry/0      gw.telemetry        1000              24          ~3072           1m 5s ago     3.2s ago",
            "  telemetry/1      gw.telemetry           -               -              0                none        never",
        ];
        assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{out}");
        assert!(out.ends_with('\n'));

        let mut idle = forwarding();
        idle.link = ForwardLink::Connected;
        idle.last_error = None;
        idle.last_commit_ms = None;
        idle.partitions.clear();
        assert_eq!(
            render_forwarding(&Forwarding::Status(idle.clone()), NOW),
            "forwarding: connected\n  \
             last error: none\n  \
             last commit: never\n  \
             commits: 12, records forwarded: 3400, gaps: 1\n  \
             partitions: none\n"
        );
        idle.link = ForwardLink::Other(9);
        assert!(
            render_forwarding(&Forwarding::Status(idle), NOW)
                .starts_with("forwarding: unknown state 9\n")
        );
    }

    #[test]
    fn forwarding_unsupported_or_refused() {
        assert_eq!(
            render_forwarding(&Forwarding::Unsupported, NOW),
            "forwarding: unknown (the broker does not support FORWARDER_STATUS)\n"
        );
        assert_eq!(
            render_forwarding(&Forwarding::Refused("server refused: X".into()), NOW),
            "forwarding: unavailable (server refused: X)\n"
        );
    }
}
