//! `outpost topics create|list|describe`.

use clap::{Args as ClapArgs, Subcommand};

use super::common::AddrArgs;
use super::{CliError, EXIT_OK};
use crate::client::{TopicDescription, TopicInfo};

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a topic (durable before the broker answers)
    ///
    /// Names are 1-249 bytes of [A-Za-z0-9._-], as in Kafka.
    Create {
        #[command(flatten)]
        addr: AddrArgs,
        /// Topic name
        name: String,
        /// Number of partitions
        #[arg(long, value_name = "N", default_value_t = 1)]
        partitions: u32,
    },
    /// List every topic and its partition count
    List {
        #[command(flatten)]
        addr: AddrArgs,
    },
    /// Show a topic's partitions and their offsets
    ///
    /// earliest is the oldest record still stored; next is one past the last durable record.
    Describe {
        #[command(flatten)]
        addr: AddrArgs,
        /// Topic name
        name: String,
    },
}

pub fn run(args: Args) -> Result<i32, CliError> {
    smol::block_on(async {
        match args.command {
            Command::Create {
                addr,
                name,
                partitions,
            } => {
                let client = addr.connect().await?;
                let t = client
                    .create_topic(&name, partitions)
                    .await
                    .map_err(|e| CliError::client(format!("cannot create topic {name}"), e))?;
                client.close().await;
                println!(
                    "created topic {} with {} partition{}",
                    t.name,
                    t.partitions,
                    plural(u64::from(t.partitions))
                );
            }
            Command::List { addr } => {
                let client = addr.connect().await?;
                let topics = client
                    .list_topics()
                    .await
                    .map_err(|e| CliError::client("cannot list topics", e))?;
                client.close().await;
                print!("{}", list_table(&topics));
            }
            Command::Describe { addr, name } => {
                let client = addr.connect().await?;
                let d = client
                    .describe_topic(&name)
                    .await
                    .map_err(|e| CliError::client(format!("cannot describe topic {name}"), e))?;
                client.close().await;
                print!("{}", describe_table(&d));
            }
        }
        Ok(EXIT_OK)
    })
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `topics list` output: a header line, then one line per topic.
pub fn list_table(topics: &[TopicInfo]) -> String {
    if topics.is_empty() {
        return "no topics\n".into();
    }
    let width = topics
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(0)
        .max("topic".len());
    let mut out = format!("{:<width$}  {:>10}\n", "topic", "partitions");
    for t in topics {
        out.push_str(&format!("{:<width$}  {:>10}\n", t.name, t.partitions));
    }
    out
}

/// `topics describe` output: the topic, then a table of partitions with earliest and next.
pub fn describe_table(d: &TopicDescription) -> String {
    let records: u64 = d
        .partitions
        .iter()
        .map(|p| p.next.saturating_sub(p.earliest))
        .sum();
    let mut out = format!(
        "topic {}: {} partition{}, {records} record{} stored\n",
        d.name,
        d.partitions.len(),
        plural(d.partitions.len() as u64),
        plural(records)
    );
    out.push_str(&format!(
        "{:>10}  {:>12}  {:>12}\n",
        "partition", "earliest", "next"
    ));
    for p in &d.partitions {
        out.push_str(&format!(
            "{:>10}  {:>12}  {:>12}\n",
            p.partition, p.earliest, p.next
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::PartitionInfo;

    #[test]
    fn tables() {
        let topics = vec![
            TopicInfo {
                name: "a".into(),
                partitions: 1,
            },
            TopicInfo {
                name: "readings.long-name".into(),
                partitions: 12,
            },
        ];
        assert_eq!(
            list_table(&topics),
            "topic               partitions\n\
             a                            1\n\
             readings.long-name          12\n"
        );
        assert_eq!(list_table(&[]), "no topics\n");
        let d = TopicDescription {
            name: "t".into(),
            partitions: vec![
                PartitionInfo {
                    partition: 0,
                    earliest: 0,
                    next: 3,
                },
                PartitionInfo {
                    partition: 1,
                    earliest: 5,
                    next: 5,
                },
            ],
        };
        assert_eq!(
            describe_table(&d),
            "topic t: 2 partitions, 3 records stored\n \
             partition      earliest          next\n         \
             0             0             3\n         \
             1             5             5\n"
        );
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;
    use crate::cli::parse;

    fn topics(args: &[&str]) -> Result<Command, clap::Error> {
        let mut all = vec!["topics"];
        all.extend_from_slice(args);
        match parse(&all)? {
            crate::cli::Command::Topics(a) => Ok(a.command),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn subcommands() {
        match topics(&["create", "t"]).unwrap() {
            Command::Create {
                name, partitions, ..
            } => assert_eq!((name.as_str(), partitions), ("t", 1)),
            other => panic!("{other:?}"),
        }
        match topics(&["create", "t", "--partitions", "8"]).unwrap() {
            Command::Create { partitions, .. } => assert_eq!(partitions, 8),
            other => panic!("{other:?}"),
        }
        assert!(matches!(topics(&["list"]).unwrap(), Command::List { .. }));
        match topics(&["describe", "t", "--addr", "h:1"]).unwrap() {
            Command::Describe { name, addr } => {
                assert_eq!((name.as_str(), addr.resolve().as_str()), ("t", "h:1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(topics(&["create"]).is_err(), "the name is required");
        assert!(topics(&["delete", "t"]).is_err());
    }
}
