//! `outpost groups list|describe`: consumer groups as the broker keeps them (docs/GROUPS.md).

use clap::{Args as ClapArgs, Subcommand};

use super::common::AddrArgs;
use super::{CliError, EXIT_OK};
use crate::client::{CommittedOffsetInfo, GroupListing, GroupSummary, group_state_name};

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every group with its state and member count
    ///
    /// Groups with committed offsets but no member since the broker started show as Empty.
    List {
        #[command(flatten)]
        addr: AddrArgs,
    },
    /// Show a group's members, their partitions, committed offsets and lag
    ///
    /// lag is the partition's durable end minus the committed offset; "reclaimed" marks a
    /// committed offset whose records the ring no longer stores.
    Describe {
        #[command(flatten)]
        addr: AddrArgs,
        /// Group id
        group: String,
    },
}

pub fn run(args: Args) -> Result<i32, CliError> {
    smol::block_on(async {
        match args.command {
            Command::List { addr } => {
                let client = addr.connect().await?;
                let groups = client
                    .list_groups()
                    .await
                    .map_err(|e| CliError::client("cannot list groups", e))?;
                client.close().await;
                print!("{}", list_table(&groups));
            }
            Command::Describe { addr, group } => {
                let client = addr.connect().await?;
                let what = || format!("cannot describe group {group}");
                let d = client
                    .describe_group(&group)
                    .await
                    .map_err(|e| CliError::client(what(), e))?;
                let offsets = client
                    .fetch_offsets(&group, None, &[])
                    .await
                    .map_err(|e| CliError::client(what(), e))?;
                client.close().await;
                print!("{}", describe_text(&d, &offsets));
            }
        }
        Ok(EXIT_OK)
    })
}

/// `groups list` output: a header line, then one line per group.
pub fn list_table(groups: &[GroupListing]) -> String {
    if groups.is_empty() {
        return "no groups\n".into();
    }
    let width = groups
        .iter()
        .map(|g| g.group.len())
        .max()
        .unwrap_or(0)
        .max("group".len());
    let mut out = format!("{:<width$}  {:<18}  {:>7}\n", "group", "state", "members");
    for g in groups {
        out.push_str(&format!(
            "{:<width$}  {:<18}  {:>7}\n",
            g.group,
            group_state_name(g.state),
            g.members
        ));
    }
    out
}

/// `groups describe` output: the group line, its members with their partitions, then the
/// committed offsets with lag.
pub fn describe_text(d: &GroupSummary, offsets: &[CommittedOffsetInfo]) -> String {
    let mut out = if d.exists {
        format!(
            "group {}: {}, generation {}, strategy {}, {} member{}\n",
            d.group,
            group_state_name(d.state),
            d.generation,
            d.strategy.as_deref().unwrap_or("-"),
            d.members.len(),
            if d.members.len() == 1 { "" } else { "s" }
        )
    } else {
        format!("group {}: no members since the broker started\n", d.group)
    };
    for m in &d.members {
        let parts: Vec<String> = m
            .assignment
            .iter()
            .map(|p| format!("{}-{}", p.topic, p.partition))
            .collect();
        let leader = if d.leader.as_deref() == Some(m.member.as_str()) {
            " (leader)"
        } else {
            ""
        };
        out.push_str(&format!(
            "  member {}{leader}: client {}, session {} ms, partitions: {}\n",
            m.member,
            m.client_id,
            m.session_timeout_ms,
            if parts.is_empty() {
                "none".to_owned()
            } else {
                parts.join(", ")
            }
        ));
    }
    if offsets.is_empty() {
        out.push_str("no committed offsets\n");
        return out;
    }
    let width = offsets
        .iter()
        .map(|o| o.topic.len())
        .max()
        .unwrap_or(0)
        .max("topic".len());
    out.push_str(&format!(
        "{:<width$}  {:>9}  {:>12}  {:>12}  {:>10}\n",
        "topic", "partition", "committed", "next", "lag"
    ));
    for o in offsets {
        let committed = o.committed.map_or("-".to_owned(), |c| c.to_string());
        let lag = match o.lag() {
            None => "-".to_owned(),
            Some(l) if o.reclaimed() => format!("{l} (reclaimed)"),
            Some(l) => l.to_string(),
        };
        out.push_str(&format!(
            "{:<width$}  {:>9}  {:>12}  {:>12}  {:>10}\n",
            o.topic, o.partition, committed, o.next, lag
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{GroupMemberInfo, GroupPartitionRef};

    #[test]
    fn tables() {
        assert_eq!(list_table(&[]), "no groups\n");
        let groups = vec![
            GroupListing {
                group: "readers".into(),
                state: 2,
                members: 2,
            },
            GroupListing {
                group: "g".into(),
                state: 0,
                members: 0,
            },
        ];
        assert_eq!(
            list_table(&groups),
            "group    state               members\n\
             readers  Stable                    2\n\
             g        Empty                     0\n"
        );
        let d = GroupSummary {
            group: "readers".into(),
            exists: true,
            state: 2,
            generation: 3,
            strategy: Some("range".into()),
            leader: Some("a-1-0".into()),
            members: vec![GroupMemberInfo {
                member: "a-1-0".into(),
                client_id: "a".into(),
                session_timeout_ms: 10_000,
                topics: vec!["t".into()],
                assignment: vec![
                    GroupPartitionRef {
                        topic: "t".into(),
                        partition: 0,
                    },
                    GroupPartitionRef {
                        topic: "t".into(),
                        partition: 1,
                    },
                ],
            }],
        };
        let offsets = vec![
            CommittedOffsetInfo {
                topic: "t".into(),
                partition: 0,
                committed: Some(40),
                metadata: String::new(),
                commit_timestamp_ms: 1,
                earliest: 0,
                next: 50,
            },
            CommittedOffsetInfo {
                topic: "t".into(),
                partition: 1,
                committed: Some(5),
                metadata: String::new(),
                commit_timestamp_ms: 1,
                earliest: 10,
                next: 12,
            },
        ];
        assert_eq!(
            describe_text(&d, &offsets),
            "group readers: Stable, generation 3, strategy range, 1 member\n  \
             member a-1-0 (leader): client a, session 10000 ms, partitions: t-0, t-1\n\
             topic  partition     committed          next         lag\n\
             t              0            40            50          10\n\
             t              1             5            12  7 (reclaimed)\n"
        );
        let none = GroupSummary {
            exists: false,
            members: Vec::new(),
            ..d
        };
        assert_eq!(
            describe_text(&none, &[]),
            "group readers: no members since the broker started\nno committed offsets\n"
        );
    }
}
