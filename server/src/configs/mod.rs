//! The config model: Kafka's topic and broker config names, types, defaults,
//! documentation and validation, and the precedence that turns layers of settings
//! into one effective value. Pure: no I/O, no threads; every shard calls it on its
//! own `ClusterImage` and `Config`.
//!
//! Precedence, highest first (Kafka's, as `ConfigHelper` reports it):
//! 1. the topic's override (`TopicImage::configs`), source `DYNAMIC_TOPIC_CONFIG`;
//! 2. the dynamic per-broker config (`ClusterImage::broker_configs["<node id>"]`);
//! 3. the dynamic cluster-wide default (`ClusterImage::broker_configs[""]`);
//! 4. the static broker config (`server.properties` and `--override`);
//! 5. Kafka's default.
//!
//! Layers 2–4 hold the *broker* name of a setting (`log.retention.ms`), layer 1 the
//! *topic* name (`retention.ms`); [`topic::TOPIC_CONFIGS`] links the two.
//!
//! The broker keys are catalogued once: [`broker::BROKER_KEYS`] (the broker's own
//! keys) and the broker synonyms in [`topic::TOPIC_CONFIGS`]. Start-up validation
//! (`config.rs`), DescribeConfigs and AlterConfigs all read that catalogue.

pub mod broker;
pub mod kafka_keys;
pub mod settings;
pub mod topic;

use std::collections::BTreeMap;

pub use settings::{ThrottledReplicas, TopicSettings};

/// Kafka's `DescribeConfigsResponse.ConfigType` ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

/// Kafka's `DescribeConfigsResponse.ConfigSource` ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

/// What values a config accepts (Kafka's `ConfigDef` validators).
#[derive(Clone, Copy, Debug)]
pub enum Valid {
    /// An integer of the config's type (INT: i32, LONG: i64) within `[min, max]`.
    Range { min: i64, max: i64 },
    /// A double within `[min, max]`.
    DoubleRange { min: f64, max: f64 },
    /// One of these strings (case-sensitive, as Kafka's `ValidString`).
    OneOf(&'static [&'static str]),
    /// One of these strings in any case (Kafka's `CaseInsensitiveValidString`).
    OneOfIgnoreCase(&'static [&'static str]),
    /// A comma-separated list whose items are each one of these.
    ListOf(&'static [&'static str]),
    /// `*`, or a list of `partition:broker` pairs (throttled replicas).
    ThrottledReplicas,
    /// `-1` or `[min, max]` (compression levels).
    LevelOrDefault { min: i64, max: i64 },
    /// Anything of the type.
    Any,
}

/// What a static broker key accepts at start-up, for the keys `config.rs` reads into
/// its typed `Config`. `config.rs` checks the rule (it parses these values) with its
/// own messages, which name the key.
#[derive(Clone, Copy, Debug)]
pub enum StaticRule {
    /// An integer within `[min, max]`.
    Int { min: i64, max: i64 },
    /// `true` or `false`, in any case.
    Bool,
    /// Any string.
    Str,
    /// A comma-separated list of `NAME://host:port`.
    Listeners,
    /// `CreateTime` or `LogAppendTime`.
    TimestampType,
    /// A comma-separated list of `id@host:port`, each id once.
    Voters,
    /// `broker,controller` in either order: Fjord runs in combined mode only.
    ProcessRoles,
    /// A comma-separated list of `NAME:PROTOCOL`, PROTOCOL one of Kafka's four;
    /// `config.rs` checks that the listeners in use are PLAINTEXT.
    ProtocolMap,
    /// A comma-separated list of `host:port`.
    HostPorts,
}

/// [`StaticRule::Int`] within `[min, max]`.
pub const fn int(min: i64, max: i64) -> StaticRule {
    StaticRule::Int { min, max }
}

/// One config a resource can have.
#[derive(Clone, Copy, Debug)]
pub struct ConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    /// Kafka's default as Kafka prints it; None is Kafka's null.
    pub default: Option<&'static str>,
    pub valid: Valid,
    /// True when Fjord acts on the value. Otherwise it is read-only: only its default
    /// may be set (so tools that restate defaults keep working).
    pub fjord_acts: bool,
    pub doc: &'static str,
}

/// A config error; the message always names the key. Answered as INVALID_CONFIG.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits a LIST value as Kafka does: comma-separated, trimmed, empty items dropped.
pub fn list_items(v: &str) -> Vec<&str> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

impl ConfigDef {
    /// Checks `value` against the type and validator; returns it trimmed.
    pub fn validate(&self, value: &str) -> Result<String, ConfigError> {
        let v = value.trim();
        let bad = |why: &str| {
            ConfigError(format!(
                "Invalid value {v} for configuration {}: {why}",
                self.name
            ))
        };
        match self.ty {
            ConfigType::Boolean => {
                if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                    return Err(bad("Expected value to be either true or false"));
                }
            }
            ConfigType::Int | ConfigType::Short | ConfigType::Long => {
                let n: i64 = v.parse().map_err(|_| bad("Not a number of type LONG"))?;
                if self.ty == ConfigType::Int && i32::try_from(n).is_err() {
                    return Err(bad("Not a number of type INT"));
                }
                match self.valid {
                    Valid::Range { min, max } if n < min || n > max => {
                        return Err(bad(&range_message(min, max)));
                    }
                    Valid::LevelOrDefault { min, max } if n != -1 && (n < min || n > max) => {
                        return Err(bad(&format!("Value must be -1 or in [{min}, {max}]")));
                    }
                    _ => {}
                }
            }
            ConfigType::Double => {
                let n: f64 = v.parse().map_err(|_| bad("Not a number of type DOUBLE"))?;
                if let Valid::DoubleRange { min, max } = self.valid {
                    if !(min..=max).contains(&n) {
                        return Err(bad(&format!("Value must be between {min} and {max}")));
                    }
                }
            }
            ConfigType::String | ConfigType::Class | ConfigType::Password => {
                let ok = match self.valid {
                    Valid::OneOf(allowed) => allowed.contains(&v),
                    Valid::OneOfIgnoreCase(allowed) => {
                        allowed.iter().any(|a| a.eq_ignore_ascii_case(v))
                    }
                    _ => true,
                };
                if !ok {
                    if let Valid::OneOf(allowed) | Valid::OneOfIgnoreCase(allowed) = self.valid {
                        return Err(bad(&format!(
                            "String must be one of: {}",
                            allowed.join(", ")
                        )));
                    }
                }
            }
            ConfigType::List => match self.valid {
                Valid::ListOf(allowed) => {
                    if let Some(item) = list_items(v).into_iter().find(|i| !allowed.contains(i)) {
                        return Err(bad(&format!(
                            "Invalid value {item}; must be one of: [{}]",
                            allowed.join(", ")
                        )));
                    }
                }
                Valid::ThrottledReplicas => {
                    let items = list_items(v);
                    let ok = items == ["*"]
                        || items.iter().all(|i| {
                            i.split_once(':').is_some_and(|(p, b)| {
                                p.trim().parse::<i32>().is_ok() && b.trim().parse::<i32>().is_ok()
                            })
                        });
                    if !ok {
                        return Err(bad(
                            "must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...",
                        ));
                    }
                }
                _ => {}
            },
        }
        Ok(v.to_string())
    }

    /// Validates a value to be set, refusing anything but the default when Fjord does
    /// not act on this config.
    pub fn validate_settable(&self, value: &str) -> Result<String, ConfigError> {
        let v = self.validate(value)?;
        if !self.fjord_acts && Some(v.as_str()) != self.default {
            return Err(ConfigError(format!(
                "Invalid value {v} for configuration {}: Fjord does not support this \
                 config; only its default ({}) may be set",
                self.name,
                self.default.unwrap_or("null")
            )));
        }
        Ok(v)
    }
}

fn range_message(min: i64, max: i64) -> String {
    // An INT's upper bound is its type's, which Kafka does not state.
    match (min, max) {
        (min, i64::MAX) | (min, 2_147_483_647) => format!("Value must be at least {min}"),
        (i64::MIN, max) => format!("Value must be no more than {max}"),
        (min, max) => format!("Value must be between {min} and {max}"),
    }
}

/// The broker-level layers a shard sees: its image's dynamic configs and its static
/// properties. Borrowed; built per request.
#[derive(Clone, Copy)]
pub struct Layers<'a> {
    pub dynamic_broker: Option<&'a BTreeMap<String, String>>,
    pub dynamic_default: Option<&'a BTreeMap<String, String>>,
    pub static_props: &'a BTreeMap<String, String>,
}

/// One synonym of a described config, in precedence order.
#[derive(Clone, Debug, PartialEq)]
pub struct Synonym {
    pub name: String,
    pub value: Option<String>,
    pub source: Source,
}

/// A config as DescribeConfigs reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Described {
    pub name: String,
    pub value: Option<String>,
    pub source: Source,
    pub read_only: bool,
    pub sensitive: bool,
    pub ty: ConfigType,
    pub doc: &'static str,
    /// Every layer that sets it, highest precedence first (the first one wins).
    pub synonyms: Vec<Synonym>,
}

impl<'a> Layers<'a> {
    /// Kafka's `configSynonyms`: the broker names `chain` (the config first, then names
    /// it falls back to) looked up layer by layer, dropping entries before the first
    /// one named `chain[0]`. `defaults` gives each name's default.
    pub fn broker_synonyms(
        &self,
        chain: &[&str],
        defaults: impl Fn(&str) -> Option<&'static str>,
    ) -> Vec<Synonym> {
        self.broker_synonyms_of(chain[0], chain, defaults)
    }

    /// [`Layers::broker_synonyms`] for `name`, one of `chain` (a coarser config, such
    /// as `log.retention.hours` of `log.retention.ms`): entries before the first one
    /// named `name` are dropped.
    pub fn broker_synonyms_of(
        &self,
        name: &str,
        chain: &[&str],
        defaults: impl Fn(&str) -> Option<&'static str>,
    ) -> Vec<Synonym> {
        let mut out = Vec::new();
        let layers = [
            (self.dynamic_broker, Source::DynamicBroker),
            (self.dynamic_default, Source::DynamicDefaultBroker),
            (Some(self.static_props), Source::StaticBroker),
        ];
        for (map, source) in layers {
            for name in chain {
                if let Some(v) = map.and_then(|m| m.get(*name)) {
                    out.push(Synonym {
                        name: name.to_string(),
                        value: Some(v.clone()),
                        source,
                    });
                }
            }
        }
        for name in chain {
            if let Some(v) = defaults(name) {
                out.push(Synonym {
                    name: name.to_string(),
                    value: Some(v.to_string()),
                    source: Source::Default,
                });
            }
        }
        let first = out.iter().position(|s| s.name == name);
        out.split_off(first.unwrap_or(out.len()))
    }
}

#[cfg(test)]
mod tests;
