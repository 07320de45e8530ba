//! `outpost status`: the broker's uptime, ring use, connections and every partition's offsets.

use clap::Args as ClapArgs;

use super::common::AddrArgs;
use super::{CliError, EXIT_OK};
use crate::client::Status;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    addr: AddrArgs,
}

pub fn run(args: Args) -> Result<i32, CliError> {
    smol::block_on(async {
        let client = args.addr.connect().await?;
        let status = client
            .status()
            .await
            .map_err(|e| CliError::client("cannot get the broker's status", e))?;
        let server = client.server_info().server.clone();
        client.close().await;
        print!("{}", render(client.addr(), &server, &status));
        Ok(EXIT_OK)
    })
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

pub fn render(addr: &str, server: &str, s: &Status) -> String {
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
    use crate::client::PartitionStatus;

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
        let out = render("127.0.0.1:7478", "outpost 0.1.0", &s);
        assert_eq!(
            out,
            "broker: outpost 0.1.0 at 127.0.0.1:7478\n\
             uptime: 1.500s\n\
             ring: 250 of 1000 bytes used (25.0%), 2 of 16 segments live\n\
             connections: 3\n\
             partitions: 1 (earliest: oldest stored offset; next: one past the last durable)\n  \
             topic   partition      earliest          next\n  \
             t               0             0             9\n"
        );
    }
}
