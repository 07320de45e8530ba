//! Resolution tests: shipped files, precedence, and every refusal an operator can hit.

use std::error::Error as _;
use std::path::PathBuf;

use super::*;
use crate::storage::{CorruptionPolicy, FullPolicy};

/// A minimal valid config on the dev board, with `extra` appended to the top level and
/// `storage` appended to `[storage]`.
fn config(top: &str, storage: &str) -> String {
    format!(
        "board = \"x86_64-dev\"\n{top}\n[storage]\nfull_policy = \"reject\"\n\
         corruption_policy = \"refuse\"\n{storage}\n"
    )
}

fn parse(text: &str) -> Result<Settings, ConfigFileError> {
    parse_config("test.toml", text, None, &Overrides::default())
}

fn parse_err(text: &str) -> (ConfigFileError, String) {
    let e = parse(text).unwrap_err();
    let msg = e.to_string();
    (e, msg)
}

/// A scratch directory unique to this process and test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("outpost-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("boards")).unwrap();
        Scratch(dir)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A board file named `name` with the dev board's numbers, `extra` appended.
fn board_text(name: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\ntarget_triple = \"x86_64-unknown-linux-gnu\"\n\
         erase_block_bytes = \"64 KiB\"\nprogram_unit_bytes = 512\nring_bytes = \"64 MiB\"\n\
         segment_bytes = \"4 MiB\"\nmemory_budget_bytes = \"32 MiB\"\n\
         listen_addr = \"127.0.0.1:9000\"\n{extra}\n"
    )
}

#[test]
fn embedded_default_loads_on_the_dev_board() {
    let s = load(&Overrides::default()).unwrap();
    assert_eq!(s.config_source, EMBEDDED_CONFIG_LABEL);
    assert_eq!(s.board.name, "x86_64-dev");
    assert_eq!(s.board_source, "boards/x86_64-dev.toml (embedded)");
    assert_eq!(s.data_dir, PathBuf::from("./data"));
    assert_eq!(s.listen_addr, "127.0.0.1:7478".parse().unwrap());
    assert_eq!(s.log_level, log::LevelFilter::Info);
    // The dev board is dev_default()'s geometry, and the shipped file leaves the limits at
    // their defaults: the two must stay in step.
    assert_eq!(s.ring, RingConfig::dev_default());
    assert_eq!(s.broker, BrokerConfig::defaults_for(&s.ring));
}

#[test]
fn shipped_config_validates_with_every_embedded_board() {
    for (name, _) in embedded_boards() {
        let o = Overrides {
            board: Some((*name).to_owned()),
            ..Overrides::default()
        };
        let s = load(&o).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.board.name, *name);
        assert_eq!(s.ring.erase_block_bytes, s.board.erase_block_bytes);
        assert_eq!(s.ring.ring_bytes, s.board.ring_bytes);
        assert_eq!(s.listen_addr, s.board.listen_addr);
        assert!(s.ring.ram_bytes_estimate() <= s.board.memory_budget_bytes);
        // The same through the file's `board` key.
        let text =
            DEFAULT_CONFIG_TEXT.replace("board = \"x86_64-dev\"", &format!("board = \"{name}\""));
        assert!(text.contains(&format!("board = \"{name}\"")), "{text}");
        let s2 = parse_config("copy.toml", &text, None, &Overrides::default()).unwrap();
        assert_eq!(s2.ring, s.ring);
    }
}

#[test]
fn shipped_config_comments_every_key() {
    // Every key line (live or commented out) is preceded by a comment line or another key
    // of the same group, and every [storage] key is present.
    for key in [
        "board",
        "data_dir",
        "listen_addr",
        "full_policy",
        "corruption_policy",
        "ring_bytes",
        "segment_bytes",
        "group_bytes_max",
        "batch_bytes_max",
        "meta_bytes_max",
        "partitions_max",
        "index_interval_bytes",
        "read_chunk_bytes",
        "append_queue_max",
        "connections_max",
        "inflight_max",
        "frame_bytes_max",
        "topics_max",
        "partitions_per_topic_max",
        "idle_timeout_ms",
        "fetch_wait_ms_max",
        "fetch_bytes_max",
        "level",
    ] {
        let at = DEFAULT_CONFIG_TEXT
            .lines()
            .position(|l| l.trim_start_matches("# ").starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("{key} not in the shipped config"));
        let before = DEFAULT_CONFIG_TEXT.lines().nth(at - 1).unwrap();
        assert!(before.starts_with('#'), "{key} has no comment above it");
    }
}

#[test]
fn board_limits_apply_unless_the_file_sets_them() {
    let o = Overrides {
        board: Some("spi-nor-16m".into()),
        ..Overrides::default()
    };
    let s = load(&o).unwrap();
    assert_eq!(s.ring.group_bytes_max, 64 * 1024);
    assert_eq!(s.ring.partitions_max, 64);
    // Not set by the board: built-in default.
    assert_eq!(s.ring.index_interval_bytes, 64 * 1024);

    let text = config("", "group_bytes_max = \"128 KiB\"").replace("x86_64-dev", "spi-nor-16m");
    let s = parse(&text).unwrap();
    assert_eq!(s.ring.group_bytes_max, 128 * 1024);
    assert_eq!(s.ring.batch_bytes_max, 16 * 1024);
}

#[test]
fn file_values_are_read() {
    let text = config(
        "data_dir = \"/var/lib/outpost\"\nlisten_addr = \"[::1]:9999\"\n[log]\nlevel = \"debug\"",
        "",
    );
    // [log] before [storage] is fine in TOML; keep [storage] after it.
    let s = parse(&text).unwrap();
    assert_eq!(s.data_dir, PathBuf::from("/var/lib/outpost"));
    assert_eq!(s.listen_addr, "[::1]:9999".parse().unwrap());
    assert_eq!(s.log_level, log::LevelFilter::Debug);

    let text = config(
        "",
        "ring_bytes = \"128 MiB\"\nsegment_bytes = \"8 MiB\"\nbatch_bytes_max = 65536\n\
         partitions_max = 16\nappend_queue_max = 8\nread_chunk_bytes = \"16 KiB\"\n\
         index_interval_bytes = \"1 MiB\"\nmeta_bytes_max = \"1 KiB\"\n\
         full_policy = \"drop-oldest\"",
    )
    .replace("full_policy = \"reject\"\n", "")
    .replace(
        "corruption_policy = \"refuse\"",
        "corruption_policy = \"skip-segment\"",
    );
    let r = parse(&text).unwrap().ring;
    assert_eq!(r.ring_bytes, 128 << 20);
    assert_eq!(r.segment_bytes, 8 << 20);
    assert_eq!(r.batch_bytes_max, 65536);
    assert_eq!(r.partitions_max, 16);
    assert_eq!(r.append_queue_max, 8);
    assert_eq!(r.read_chunk_bytes, 16 * 1024);
    assert_eq!(r.index_interval_bytes, 1 << 20);
    assert_eq!(r.meta_bytes_max, 1024);
    assert_eq!(r.full_policy, FullPolicy::DropOldest);
    assert_eq!(r.corruption_policy, CorruptionPolicy::SkipSegment);
}

#[test]
fn overrides_beat_the_file() {
    let scratch = Scratch::new("overrides");
    let board = scratch.write("boards/flagboard.toml", &board_text("flagboard", ""));
    let text = config(
        "listen_addr = \"127.0.0.1:1111\"\ndata_dir = \"/from/file\"",
        "",
    );
    let o = Overrides {
        config: None,
        board: Some(board.display().to_string()),
        listen: Some("0.0.0.0:2222".into()),
        data: Some("/from/flag".into()),
    };
    let s = parse_config("test.toml", &text, None, &o).unwrap();
    assert_eq!(s.board.name, "flagboard");
    assert_eq!(s.board_source, board.display().to_string());
    assert_eq!(s.listen_addr, "0.0.0.0:2222".parse().unwrap());
    assert_eq!(s.data_dir, PathBuf::from("/from/flag"));

    // Without flags the file wins over the board's listen address.
    let o = Overrides {
        board: Some(board.display().to_string()),
        ..Overrides::default()
    };
    let s = parse_config("test.toml", &text, None, &o).unwrap();
    assert_eq!(s.listen_addr, "127.0.0.1:1111".parse().unwrap());
    assert_eq!(s.data_dir, PathBuf::from("/from/file"));

    // Without either, the board's.
    let s = parse_config("test.toml", &config("", ""), None, &o).unwrap();
    assert_eq!(s.listen_addr, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(s.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
}

#[test]
fn board_by_path_relative_to_the_config_file() {
    let scratch = Scratch::new("bypath");
    scratch.write("boards/gw.toml", &board_text("gw", "partitions_max = 32"));
    let text = config("", "").replace("\"x86_64-dev\"", "\"boards/gw.toml\"");
    let path = scratch.write("outpost.toml", &text);
    let s = load(&Overrides {
        config: Some(path.clone()),
        ..Overrides::default()
    })
    .unwrap();
    assert_eq!(s.board.name, "gw");
    assert_eq!(s.ring.partitions_max, 32);
    assert_eq!(s.config_source, path.display().to_string());
    assert_eq!(
        s.board_source,
        scratch.0.join("boards/gw.toml").display().to_string()
    );

    // A file name ending in .toml without a '/' is a path too.
    scratch.write("gw.toml", &board_text("gw", ""));
    let text = config("", "").replace("\"x86_64-dev\"", "\"gw.toml\"");
    let path = scratch.write("other.toml", &text);
    let s = load(&Overrides {
        config: Some(path),
        ..Overrides::default()
    })
    .unwrap();
    assert_eq!(s.board.name, "gw");
}

#[test]
fn refuses_missing_config_file() {
    let e = load(&Overrides {
        config: Some("/nonexistent/outpost.toml".into()),
        ..Overrides::default()
    })
    .unwrap_err();
    assert!(matches!(e, ConfigFileError::Read { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/outpost.toml"), "{e}");
    assert!(e.source().is_some());
}

#[test]
fn refuses_unknown_key_in_config() {
    for (text, key) in [
        (config("colour = \"blue\"", ""), "colour"),
        (config("", "segmnet_bytes = \"4 MiB\""), "segmnet_bytes"),
        (
            format!("{}\n[log]\nlevle = \"info\"\n", config("", "")),
            "levle",
        ),
        (
            format!(
                "{}\n[forwarder]\nbootstrap_servers = [\"k:9092\"]\ngateway_id = \"g\"\n\
                 lingr_ms = 1\n",
                config("", "")
            ),
            "lingr_ms",
        ),
    ] {
        let (e, msg) = parse_err(&text);
        assert!(matches!(e, ConfigFileError::Parse { .. }), "{e:?}");
        assert!(msg.contains(key), "{msg}");
        assert!(msg.contains("test.toml"), "{msg}");
        assert!(msg.contains("line"), "{msg}");
        assert!(e.source().is_some());
    }
}

#[test]
fn refuses_unknown_key_in_board() {
    let scratch = Scratch::new("boardkey");
    let board = scratch.write("boards/b.toml", &board_text("b", "wear_level = true"));
    let o = Overrides {
        board: Some(board.display().to_string()),
        ..Overrides::default()
    };
    let e = parse_config("test.toml", &config("", ""), None, &o).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigFileError::Parse { .. }), "{e:?}");
    assert!(msg.contains("wear_level"), "{msg}");
    assert!(msg.contains(&board.display().to_string()), "{msg}");
}

#[test]
fn refuses_bad_unit() {
    let (e, msg) = parse_err(&config("", "group_bytes_max = \"64 MB\""));
    assert!(matches!(e, ConfigFileError::Parse { .. }), "{e:?}");
    assert!(msg.contains("group_bytes_max"), "{msg}");
    assert!(msg.contains("bad unit"), "{msg}");
    assert!(msg.contains(ACCEPTED_UNITS), "{msg}");
}

#[test]
fn refuses_segment_not_multiple_of_erase_block() {
    let (e, msg) = parse_err(&config("", "segment_bytes = 4194816"));
    assert!(
        matches!(&e, ConfigFileError::Invalid { file, key, .. }
            if file == "test.toml" && key == "storage.segment_bytes"),
        "{e:?}"
    );
    assert!(
        msg.contains("segment_bytes") && msg.contains("erase_block_bytes"),
        "{msg}"
    );

    // The same mistake in a board file is blamed on the board file.
    let scratch = Scratch::new("segment");
    let text = board_text("b", "").replace("segment_bytes = \"4 MiB\"", "segment_bytes = 4194816");
    let board = scratch.write("boards/b.toml", &text);
    let o = Overrides {
        board: Some(board.display().to_string()),
        ..Overrides::default()
    };
    let e = parse_config("test.toml", &config("", ""), None, &o).unwrap_err();
    assert!(
        matches!(&e, ConfigFileError::Invalid { file, key, .. }
            if *file == board.display().to_string() && key == "segment_bytes"),
        "{e:?}"
    );
}

#[test]
fn refuses_ring_smaller_than_four_segments() {
    let (e, msg) = parse_err(&config("", "ring_bytes = \"12 MiB\""));
    assert!(matches!(e, ConfigFileError::Invalid { .. }), "{e:?}");
    assert!(msg.contains("storage.ring_bytes"), "{msg}");
    assert!(msg.contains("at least 4"), "{msg}");
}

#[test]
fn refuses_unknown_policy_listing_allowed_values() {
    let (e, msg) = parse_err(&config("", "").replace("\"reject\"", "\"drop-newest\""));
    assert!(matches!(e, ConfigFileError::Parse { .. }), "{e:?}");
    assert!(msg.contains("full_policy"), "{msg}");
    assert!(msg.contains("drop-newest"), "{msg}");
    assert!(
        msg.contains("reject") && msg.contains("drop-oldest"),
        "{msg}"
    );

    let (_, msg) = parse_err(&config("", "").replace("\"refuse\"", "\"Refuse\""));
    assert!(msg.contains("corruption_policy"), "{msg}");
    assert!(msg.contains("skip-segment"), "{msg}");
}

#[test]
fn refuses_missing_policy() {
    let (_, msg) = parse_err(&config("", "").replace("full_policy = \"reject\"\n", ""));
    assert!(msg.contains("full_policy"), "{msg}");
    let (_, msg) = parse_err("board = \"x86_64-dev\"\n");
    assert!(msg.contains("storage"), "{msg}");
}

#[test]
fn refuses_bad_log_level() {
    let (_, msg) = parse_err(&format!("{}\n[log]\nlevel = \"loud\"\n", config("", "")));
    assert!(msg.contains("level") && msg.contains("loud"), "{msg}");
    assert!(msg.contains("trace"), "{msg}");
}

#[test]
fn refuses_unknown_board_listing_known_ones() {
    let (e, msg) = parse_err(&config("", "").replace("x86_64-dev", "rpi5"));
    assert!(matches!(e, ConfigFileError::UnknownBoard { .. }), "{e:?}");
    assert!(msg.contains("rpi5"), "{msg}");
    for (name, _) in embedded_boards() {
        assert!(msg.contains(name), "{msg}");
    }
    let e = load(&Overrides {
        board: Some("nope".into()),
        ..Overrides::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("rpi4-sdcard"), "{e}");
}

#[test]
fn refuses_missing_board() {
    let text = config("", "").replace("board = \"x86_64-dev\"\n", "");
    let (e, msg) = parse_err(&text);
    assert!(
        matches!(&e, ConfigFileError::Invalid { key, .. } if key == "board"),
        "{e:?}"
    );
    assert!(msg.contains("--board"), "{msg}");
    // --board supplies it.
    let o = Overrides {
        board: Some("x86_64-dev".into()),
        ..Overrides::default()
    };
    parse_config("test.toml", &text, None, &o).unwrap();
}

#[test]
fn refuses_board_name_not_matching_its_file() {
    let scratch = Scratch::new("mismatch");
    let board = scratch.write("boards/real.toml", &board_text("copied", ""));
    let o = Overrides {
        board: Some(board.display().to_string()),
        ..Overrides::default()
    };
    let e = parse_config("test.toml", &config("", ""), None, &o).unwrap_err();
    assert!(
        matches!(e, ConfigFileError::BoardNameMismatch { .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains("copied") && msg.contains("\"real\""), "{msg}");
}

#[test]
fn refuses_exceeding_the_memory_budget() {
    // One index entry per 64 bytes of a 64 MiB ring: 32 MiB of index alone.
    let (e, msg) = parse_err(&config("", "index_interval_bytes = 64"));
    assert!(
        matches!(&e, ConfigFileError::Invalid { file, key, .. }
            if file == "boards/x86_64-dev.toml (embedded)" && key == "memory_budget_bytes"),
        "{e:?}"
    );
    let mut ring = RingConfig::dev_default();
    ring.index_interval_bytes = 64;
    let needed = ring.ram_bytes_estimate().to_string();
    assert!(msg.contains(&needed), "{msg}");
    assert!(msg.contains(&(32u64 << 20).to_string()), "{msg}");
}

#[test]
fn refuses_bad_listen_address() {
    let (e, msg) = parse_err(&config("listen_addr = \"localhost:7478\"", ""));
    assert!(
        matches!(&e, ConfigFileError::BadAddress { key, .. } if key == "listen_addr"),
        "{e:?}"
    );
    assert!(
        msg.contains("listen_addr") && msg.contains("localhost:7478"),
        "{msg}"
    );
    assert!(msg.contains("test.toml"), "{msg}");
    assert!(e.source().is_some());

    let o = Overrides {
        listen: Some("7478".into()),
        ..Overrides::default()
    };
    let e = parse_config("test.toml", &config("", ""), None, &o).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("--listen") && msg.contains("\"7478\""),
        "{msg}"
    );
}

#[test]
fn blames_a_built_in_default_on_the_config_file() {
    // A board with tiny segments and no limits: the default 1 MiB group cannot fit.
    let scratch = Scratch::new("builtin");
    let text = board_text("tiny", "")
        .replace(
            "erase_block_bytes = \"64 KiB\"",
            "erase_block_bytes = \"4 KiB\"",
        )
        .replace("segment_bytes = \"4 MiB\"", "segment_bytes = \"256 KiB\"")
        .replace("ring_bytes = \"64 MiB\"", "ring_bytes = \"4 MiB\"");
    let board = scratch.write("boards/tiny.toml", &text);
    let o = Overrides {
        board: Some(board.display().to_string()),
        ..Overrides::default()
    };
    let e = parse_config("test.toml", &config("", ""), None, &o).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(&e, ConfigFileError::Invalid { file, key, .. }
            if file == "test.toml" && key == "storage.group_bytes_max"),
        "{e:?}"
    );
    assert!(msg.contains("built-in default"), "{msg}");
    assert!(msg.contains(&board.display().to_string()), "{msg}");
}

/// A minimal valid config with `broker` as the `[broker]` table.
fn broker_config(broker: &str) -> String {
    format!("{}\n[broker]\n{broker}\n", config("", ""))
}

#[test]
fn broker_defaults_and_file_values() {
    let s = parse(&config("", "")).unwrap();
    let b = &s.broker;
    assert_eq!(b.connections_max, 256);
    assert_eq!(b.inflight_max, 256);
    assert_eq!(
        u64::from(b.frame_bytes_max),
        s.ring.batch_bytes_max + 64 * 1024
    );
    assert_eq!(b.topics_max, 128);
    assert_eq!(b.partitions_per_topic_max, 64);
    assert_eq!(b.idle_timeout_ms, 300_000);
    assert_eq!(b.fetch_wait_ms_max, 30_000);
    assert_eq!(b.fetch_bytes_max, 1 << 20);

    let s = parse(&broker_config(
        "connections_max = 8\ninflight_max = 4\nframe_bytes_max = \"512 KiB\"\n\
         topics_max = 3\npartitions_per_topic_max = 2\nidle_timeout_ms = 1000\n\
         fetch_wait_ms_max = 50\nfetch_bytes_max = \"64 KiB\"",
    ))
    .unwrap();
    let b = &s.broker;
    assert_eq!(b.connections_max, 8);
    assert_eq!(b.inflight_max, 4);
    assert_eq!(b.frame_bytes_max, 512 * 1024);
    assert_eq!(b.topics_max, 3);
    assert_eq!(b.partitions_per_topic_max, 2);
    assert_eq!(b.idle_timeout_ms, 1000);
    assert_eq!(b.fetch_wait_ms_max, 50);
    assert_eq!(b.fetch_bytes_max, 64 * 1024);
}

#[test]
fn broker_default_frame_follows_the_board_batch_limit() {
    let o = Overrides {
        board: Some("spi-nor-16m".into()),
        ..Overrides::default()
    };
    let s = load(&o).unwrap();
    assert_eq!(u64::from(s.broker.frame_bytes_max), 16 * 1024 + 64 * 1024);
}

#[test]
fn refuses_zero_broker_limits_by_key() {
    for key in [
        "connections_max",
        "inflight_max",
        "frame_bytes_max",
        "topics_max",
        "partitions_per_topic_max",
        "idle_timeout_ms",
        "fetch_wait_ms_max",
        "fetch_bytes_max",
    ] {
        let (e, msg) = parse_err(&broker_config(&format!("{key} = 0")));
        assert!(
            matches!(&e, ConfigFileError::Invalid { file, key: k, .. }
                if file == "test.toml" && *k == format!("broker.{key}")),
            "{key}: {e:?}"
        );
        assert!(msg.contains("greater than 0"), "{msg}");
    }
}

#[test]
fn refuses_frame_smaller_than_a_batch_plus_4_kib() {
    // Default batch_bytes_max is 256 KiB.
    let (e, msg) = parse_err(&broker_config("frame_bytes_max = \"259 KiB\""));
    assert!(
        matches!(&e, ConfigFileError::Invalid { key, .. } if key == "broker.frame_bytes_max"),
        "{e:?}"
    );
    assert!(msg.contains("batch_bytes_max + 4 KiB"), "{msg}");
    parse(&broker_config("frame_bytes_max = \"260 KiB\"")).unwrap();

    // A batch limit raised without the frame limit: the default follows it.
    let s = parse(&config("", "batch_bytes_max = \"512 KiB\"")).unwrap();
    assert_eq!(s.broker.frame_bytes_max, 576 * 1024);
}

#[test]
fn refuses_bad_broker_values() {
    let (e, msg) = parse_err(&broker_config("frame_bytes_max = \"8 GiB\""));
    assert!(
        matches!(&e, ConfigFileError::Invalid { key, .. } if key == "broker.frame_bytes_max"),
        "{e:?}"
    );
    assert!(msg.contains("4 GiB"), "{msg}");

    let (e, msg) = parse_err(&broker_config("conections_max = 3"));
    assert!(matches!(e, ConfigFileError::Parse { .. }), "{e:?}");
    assert!(msg.contains("conections_max"), "{msg}");

    let (_, msg) = parse_err(&broker_config("idle_timeout_ms = -1"));
    assert!(msg.contains("idle_timeout_ms"), "{msg}");

    let (_, msg) = parse_err(&broker_config("fetch_bytes_max = \"1 MB\""));
    assert!(msg.contains("fetch_bytes_max"), "{msg}");

    // topics_max x partitions_per_topic_max above the ring's partitions_max is fine.
    let s = parse(&broker_config(
        "topics_max = 1000\npartitions_per_topic_max = 1000",
    ))
    .unwrap();
    assert!(
        u64::from(s.broker.topics_max) * u64::from(s.broker.partitions_per_topic_max)
            > u64::from(s.ring.partitions_max)
    );
}

const FORWARDER: &str = "\n[forwarder]\nbootstrap_servers = [\"127.0.0.1:9092\"]\n\
    gateway_id = \"gw-7\"\n";
const ROUTE: &str = "\n[[forwarder.route]]\nedge_topic = \"t\"\nupstream_topic = \"up\"\n\
    partitioning = \"key-hash\"\n";

#[test]
fn forwarder_section_with_defaults() {
    assert_eq!(parse(&config("", "")).unwrap().forwarder, None);
    let s = parse(&format!("{}{FORWARDER}{ROUTE}", config("", ""))).unwrap();
    let f = s.forwarder.unwrap();
    assert_eq!(f.transactional_id, "outpost-gw-7");
    assert_eq!(f.cursor_topic, "outpost-cursors");
    assert_eq!(f.routes.len(), 1);
    assert_eq!(
        f.routes[0].partitioning,
        crate::forwarder::Partitioning::KeyHash
    );
    assert_eq!(f.batch_bytes_max, 1 << 20);
    assert_eq!(f.validate(), Ok(()));
}

#[test]
fn forwarder_errors_name_the_key() {
    for (extra, route, key) in [
        ("retry_ms_min = 0\n", ROUTE, "forwarder.retry_ms_min"),
        (
            "batch_bytes_max = \"1 B\"\n",
            ROUTE,
            "forwarder.batch_bytes_max",
        ),
        ("", "", "forwarder.route"),
        (
            "upstream_batch_bytes_max = \"64 KiB\"\n",
            ROUTE,
            "forwarder.upstream_batch_bytes_max",
        ),
    ] {
        let text = format!("{}{FORWARDER}{extra}{route}", config("", ""));
        let (e, msg) = parse_err(&text);
        assert!(
            matches!(&e, ConfigFileError::Invalid { key: k, .. } if k == key),
            "{key}: {e:?}"
        );
        assert!(msg.contains("test.toml"), "{msg}");
    }
    // A bad partitioning name is a parse error naming the accepted ones.
    let bad = ROUTE.replace("key-hash", "round-robin");
    let (_, msg) = parse_err(&format!("{}{FORWARDER}{bad}", config("", "")));
    assert!(msg.contains("same") && msg.contains("key-hash"), "{msg}");
}
