//! `[groups]`: the consumer-group coordinator's limits and timeouts (docs/GROUPS.md section
//! 1.5), defaults from `GroupConfig::default()`, validated with errors naming `groups.<key>`.

use super::error::ConfigFileError;
use super::file::GroupsSection;
use crate::groups::GroupConfig;

/// `[groups]` with its defaults filled in, validated. Invariants of the result: every limit
/// is at least 1, `0 < session_timeout_ms_min <= session_timeout_ms_max`, and a configured
/// `rebalance_timeout_ms` is at least 1.
pub(crate) fn resolve_groups(
    label: &str,
    s: &GroupsSection,
) -> Result<GroupConfig, ConfigFileError> {
    let invalid = |key: &str, reason: String| ConfigFileError::Invalid {
        file: label.to_owned(),
        key: format!("groups.{key}"),
        reason,
    };
    let d = GroupConfig::default();
    let count = |key: &str, v: Option<u32>, default: usize| match v {
        None => Ok(default),
        Some(0) => Err(invalid(key, "must be greater than 0".into())),
        Some(n) => usize::try_from(n).map_err(|_| invalid(key, format!("{n} is too large"))),
    };
    let cfg = GroupConfig {
        groups_max: count("groups_max", s.groups_max, d.groups_max)?,
        members_per_group_max: count(
            "members_per_group_max",
            s.members_per_group_max,
            d.members_per_group_max,
        )?,
        topics_per_member_max: count(
            "topics_per_member_max",
            s.topics_per_member_max,
            d.topics_per_member_max,
        )?,
        session_timeout_ms_min: s.session_timeout_ms_min.unwrap_or(d.session_timeout_ms_min),
        session_timeout_ms_max: s.session_timeout_ms_max.unwrap_or(d.session_timeout_ms_max),
        rebalance_timeout_ms: s.rebalance_timeout_ms.or(d.rebalance_timeout_ms),
    };
    if cfg.session_timeout_ms_min == 0 {
        return Err(invalid(
            "session_timeout_ms_min",
            "must be greater than 0".into(),
        ));
    }
    if cfg.session_timeout_ms_min > cfg.session_timeout_ms_max {
        return Err(invalid(
            "session_timeout_ms_max",
            format!(
                "{} is below session_timeout_ms_min ({})",
                cfg.session_timeout_ms_max, cfg.session_timeout_ms_min
            ),
        ));
    }
    if cfg.rebalance_timeout_ms == Some(0) {
        return Err(invalid(
            "rebalance_timeout_ms",
            "must be greater than 0 (leave it out to use the members' session timeouts)".into(),
        ));
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> Result<GroupsSection, toml::de::Error> {
        toml::from_str(text)
    }

    fn key_of(e: &ConfigFileError) -> &str {
        match e {
            ConfigFileError::Invalid { key, .. } => key,
            other => panic!("not Invalid: {other:?}"),
        }
    }

    #[test]
    fn defaults_values_and_refusals_by_key() {
        let d = resolve_groups("t.toml", &section("").unwrap()).unwrap();
        assert_eq!(d, GroupConfig::default());
        let s = section(
            "session_timeout_ms_min = 1000\nsession_timeout_ms_max = 20000\ngroups_max = 4\n\
             members_per_group_max = 3\ntopics_per_member_max = 2\nrebalance_timeout_ms = 5000",
        )
        .unwrap();
        let c = resolve_groups("t.toml", &s).unwrap();
        assert_eq!(
            c,
            GroupConfig {
                groups_max: 4,
                members_per_group_max: 3,
                topics_per_member_max: 2,
                session_timeout_ms_min: 1000,
                session_timeout_ms_max: 20_000,
                rebalance_timeout_ms: Some(5000),
            }
        );
        for (text, key) in [
            ("groups_max = 0", "groups.groups_max"),
            ("members_per_group_max = 0", "groups.members_per_group_max"),
            ("topics_per_member_max = 0", "groups.topics_per_member_max"),
            (
                "session_timeout_ms_min = 0",
                "groups.session_timeout_ms_min",
            ),
            (
                "session_timeout_ms_min = 9000\nsession_timeout_ms_max = 8000",
                "groups.session_timeout_ms_max",
            ),
            ("rebalance_timeout_ms = 0", "groups.rebalance_timeout_ms"),
        ] {
            let e = resolve_groups("t.toml", &section(text).unwrap()).unwrap_err();
            assert_eq!(key_of(&e), key, "{text}");
            assert!(
                e.to_string().starts_with(&format!("t.toml: {key}: ")),
                "{e}"
            );
        }
        // Unknown keys are refused by the schema.
        assert!(section("session_timeout = 1").is_err());
    }
}
