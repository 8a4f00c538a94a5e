//! Client quotas as the metadata keeps them (KIP-546): entities and their keys, the
//! checks Kafka's controller makes on AlterClientQuotas, the filter of
//! DescribeClientQuotas, and which entity's quota applies to a client. Pure.
//!
//! An entity is a set of (type, name) pairs — `user`, `client-id`, `ip` — where a
//! `None` name is that type's default entity. The image keeps, per entity, only the
//! keys set (an entity left with none is dropped).

use std::collections::BTreeMap;
use std::net::IpAddr;

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// The user a client is until security lands: every listener is PLAINTEXT, so every
/// principal is Kafka's `User:ANONYMOUS`.
pub const ANONYMOUS: &str = "ANONYMOUS";

/// A quota entity: its (type, name) pairs sorted by type, one per type.
pub type QuotaEntity = Vec<(String, Option<String>)>;

/// Every entity's quotas, by key.
pub type ClientQuotas = BTreeMap<QuotaEntity, BTreeMap<String, f64>>;

/// A value's type, as Kafka's `QuotaConfig` declares the key.
#[derive(Clone, Copy)]
enum ValueType {
    Long,
    Int,
    Double,
}

/// The keys of user and client-id entities.
const USER_CLIENT_KEYS: &[(&str, ValueType)] = &[
    (PRODUCER_BYTE_RATE, ValueType::Long),
    (CONSUMER_BYTE_RATE, ValueType::Long),
    (REQUEST_PERCENTAGE, ValueType::Double),
    (CONTROLLER_MUTATION_RATE, ValueType::Double),
];

/// The keys of ip entities.
const IP_KEYS: &[(&str, ValueType)] = &[(CONNECTION_CREATION_RATE, ValueType::Int)];

/// Kafka keys Fjord does not enforce yet: refused rather than stored, so no quota is
/// reported that nothing applies.
const NOT_ENFORCED: &[&str] = &[CONTROLLER_MUTATION_RATE, CONNECTION_CREATION_RATE];

/// One entity's change, checked against the image it was built on.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuotaAlteration {
    pub entity: QuotaEntity,
    pub set: BTreeMap<String, f64>,
    pub remove: Vec<String>,
}

impl QuotaAlteration {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// Applies checked alterations to `quotas`.
pub fn apply(quotas: &mut ClientQuotas, alterations: &[QuotaAlteration]) {
    for a in alterations {
        let keys = quotas.entry(a.entity.clone()).or_default();
        for k in &a.remove {
            keys.remove(k);
        }
        keys.extend(a.set.iter().map(|(k, v)| (k.clone(), *v)));
        if keys.is_empty() {
            quotas.remove(&a.entity);
        }
    }
}

/// The entity as a request names it: pairs in request order, a later pair of a type
/// replacing an earlier one (as Kafka reads them into a map).
pub fn entity_of(pairs: impl IntoIterator<Item = (String, Option<String>)>) -> QuotaEntity {
    let map: BTreeMap<String, Option<String>> = pairs.into_iter().collect();
    map.into_iter().collect()
}

/// How Kafka prints an entity in its messages.
pub fn entity_text(entity: &QuotaEntity) -> String {
    let entries: Vec<String> = entity
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("null")))
        .collect();
    format!("ClientQuotaEntity(entries={{{}}})", entries.join(", "))
}

/// Checks one entity's operations (key, Some(value) to set, None to remove) as
/// Kafka's controller does, against the entity's current quotas. Returns what to
/// apply (removals only of keys that are set, sets only of changed values) or the
/// INVALID_REQUEST message.
pub fn check_alteration(
    entity: &QuotaEntity,
    ops: &[(String, Option<f64>)],
    current: Option<&BTreeMap<String, f64>>,
) -> Result<QuotaAlteration, String> {
    let mut seen = std::collections::HashSet::new();
    if ops.iter().any(|(k, _)| !seen.insert(k.as_str())) {
        // Kafka's message for a repeated key names the entity as a duplicate.
        return Err(format!("Ignoring duplicate entity {}", entity_text(entity)));
    }
    if entity.is_empty() {
        return Err("Invalid empty client quota entity".into());
    }
    for (t, name) in entity {
        if t != USER && t != CLIENT_ID && t != IP {
            return Err(format!("Unhandled client quota entity type: {t}"));
        }
        if name.as_deref() == Some("") {
            return Err(format!("Empty {t} not supported"));
        }
    }
    let has = |t: &str| entity.iter().any(|(e, _)| e == t);
    let keys = if has(IP) {
        if has(USER) || has(CLIENT_ID) {
            return Err(
                "Invalid quota entity combination, IP entity shouldnot be combined \
                        with User or ClientId"
                    .into(),
            );
        }
        let ip = entity
            .iter()
            .find(|(t, _)| t == IP)
            .and_then(|(_, n)| n.as_deref());
        if let Some(ip) = ip {
            if ip.parse::<IpAddr>().is_err() {
                return Err(format!("{ip} is not a valid IP or resolvable host."));
            }
        }
        IP_KEYS
    } else {
        USER_CLIENT_KEYS
    };
    let mut out = QuotaAlteration {
        entity: entity.clone(),
        set: BTreeMap::new(),
        remove: Vec::new(),
    };
    for (key, value) in ops {
        let Some(value) = value else {
            if current.is_some_and(|c| c.contains_key(key)) {
                out.remove.push(key.clone());
            }
            continue;
        };
        check_value(keys, key, *value)?;
        if current.and_then(|c| c.get(key)) != Some(value) {
            out.set.insert(key.clone(), *value);
        }
    }
    Ok(out)
}

fn check_value(keys: &[(&str, ValueType)], key: &str, value: f64) -> Result<(), String> {
    let Some(&(_, ty)) = keys.iter().find(|(k, _)| *k == key) else {
        return Err(format!("Invalid configuration key {key}"));
    };
    if value <= 0.0 || value.is_nan() {
        return Err(format!("Quota {key} must be greater than 0"));
    }
    let integral = |max: f64, name: &str| {
        if value > max {
            Err(format!("Proposed value for {key} is too large for {name}."))
        } else if (value % 1.0).abs() > 1e-6 {
            Err(format!("{key} cannot be a fractional value."))
        } else {
            Ok(())
        }
    };
    match ty {
        ValueType::Double => Ok(()),
        ValueType::Int => integral(i32::MAX as f64, "an INT"),
        ValueType::Long => integral(i64::MAX as f64, "a LONG"),
    }?;
    if NOT_ENFORCED.contains(&key) {
        return Err(format!(
            "Fjord does not enforce {key} yet, so it does not accept it"
        ));
    }
    Ok(())
}

/// DescribeClientQuotas' match types.
pub const MATCH_EXACT: i8 = 0;
pub const MATCH_DEFAULT: i8 = 1;
pub const MATCH_SPECIFIED: i8 = 2;

/// Why a DescribeClientQuotas filter is refused.
#[derive(Debug, PartialEq)]
pub enum FilterError {
    /// INVALID_REQUEST.
    Invalid(String),
    /// UNSUPPORTED_VERSION (an entity type Kafka does not know).
    Unsupported(String),
}

/// An entity a filter selected, with its quotas.
pub type Described<'a> = (&'a QuotaEntity, &'a BTreeMap<String, f64>);

/// The entities a filter of (entity type, match type, match) components selects, as
/// Kafka's `ClientQuotasImage.describe`: exact components must equal (a default
/// component matches the default entity), specified ones only need the type; with
/// `strict`, an entity has no other types.
pub fn describe<'a>(
    quotas: &'a ClientQuotas,
    components: &[(String, i8, Option<String>)],
    strict: bool,
) -> Result<Vec<Described<'a>>, FilterError> {
    let mut exact: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    let mut typed: Vec<&str> = Vec::new();
    for (t, match_type, m) in components {
        if t.is_empty() {
            return Err(FilterError::Invalid("Invalid empty entity type.".into()));
        }
        if exact.contains_key(t.as_str()) || typed.contains(&t.as_str()) {
            return Err(FilterError::Invalid(format!(
                "Entity type {t} cannot appear more than once in the filter."
            )));
        }
        if t != USER && t != CLIENT_ID && t != IP {
            return Err(FilterError::Unsupported(format!(
                "Unsupported entity type {t}"
            )));
        }
        let named = |what: &str| {
            FilterError::Invalid(format!(
                "Request specified {what}, but also specified a match string."
            ))
        };
        match (*match_type, m) {
            (MATCH_EXACT, None) => {
                return Err(FilterError::Invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                ))
            }
            (MATCH_EXACT, Some(m)) => {
                exact.insert(t, Some(m));
            }
            (MATCH_DEFAULT, None) => {
                exact.insert(t, None);
            }
            (MATCH_DEFAULT, Some(_)) => return Err(named("MATCH_TYPE_DEFAULT")),
            (MATCH_SPECIFIED, None) => typed.push(t),
            (MATCH_SPECIFIED, Some(_)) => return Err(named("MATCH_TYPE_SPECIFIED")),
            (other, _) => return Err(FilterError::Invalid(format!("Unknown match type {other}"))),
        }
    }
    let asks = |t: &str| exact.contains_key(t) || typed.contains(&t);
    if asks(IP) && (asks(USER) || asks(CLIENT_ID)) {
        return Err(FilterError::Invalid(
            "Invalid entity filter component combination. IP filter component should not \
             be used with user or clientId filter component."
                .into(),
        ));
    }
    let name_of =
        |e: &'a QuotaEntity, t: &str| e.iter().find(|(et, _)| et == t).map(|(_, n)| n.as_deref());
    Ok(quotas
        .iter()
        .filter(|(e, _)| !strict || e.len() == exact.len() + typed.len())
        .filter(|(e, _)| exact.iter().all(|(t, want)| name_of(e, t) == Some(*want)))
        .filter(|(e, _)| typed.iter().all(|t| name_of(e, t).is_some()))
        .collect())
}

/// The quota that applies to `user`'s client `client_id` for `key`, and the
/// (user, client-id) names of the sensor it is measured on. Kafka's default quota
/// callback: the first entity in this order that sets `key`, from the most specific
/// (user and client-id) to the least (the default client-id); quotas of a user's own
/// entity are shared by all of that user's clients, a client-id's by every user.
pub fn resolve(
    quotas: &ClientQuotas,
    user: &str,
    client_id: &str,
    key: &str,
) -> Option<(f64, String, String)> {
    let u = || (USER.to_string(), Some(user.to_string()));
    let du = || (USER.to_string(), None);
    let c = || (CLIENT_ID.to_string(), Some(client_id.to_string()));
    let dc = || (CLIENT_ID.to_string(), None);
    let both = (user.to_string(), client_id.to_string());
    let user_only = (user.to_string(), String::new());
    let client_only = (String::new(), client_id.to_string());
    let levels: [(QuotaEntity, &(String, String)); 8] = [
        (vec![c(), u()], &both),
        (vec![dc(), u()], &both),
        (vec![u()], &user_only),
        (vec![c(), du()], &both),
        (vec![dc(), du()], &both),
        (vec![du()], &user_only),
        (vec![c()], &client_only),
        (vec![dc()], &client_only),
    ];
    levels.iter().find_map(|(entity, tags)| {
        let bound = quotas.get(entity)?.get(key)?;
        Some((*bound, tags.0.clone(), tags.1.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(pairs: &[(&str, Option<&str>)]) -> QuotaEntity {
        entity_of(
            pairs
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(str::to_string))),
        )
    }

    fn set(key: &str, v: f64) -> (String, Option<f64>) {
        (key.to_string(), Some(v))
    }

    #[test]
    fn alterations_are_checked_as_kafka_checks_them() {
        let alice = e(&[("user", Some("alice"))]);
        let check = |entity: &QuotaEntity, ops: &[(String, Option<f64>)]| {
            check_alteration(entity, ops, None)
        };
        assert_eq!(
            check(&vec![], &[set(PRODUCER_BYTE_RATE, 1.0)]).expect_err("refused"),
            "Invalid empty client quota entity"
        );
        assert_eq!(
            check(&e(&[("group", Some("g"))]), &[]).expect_err("refused"),
            "Unhandled client quota entity type: group"
        );
        assert_eq!(
            check(&e(&[("client-id", Some(""))]), &[]).expect_err("refused"),
            "Empty client-id not supported"
        );
        assert!(check(&e(&[("ip", None), ("user", None)]), &[])
            .expect_err("refused")
            .starts_with("Invalid quota entity combination"));
        assert_eq!(
            check(&e(&[("ip", Some("nowhere!"))]), &[]).expect_err("refused"),
            "nowhere! is not a valid IP or resolvable host."
        );
        assert_eq!(
            check(&alice, &[set("bogus", 1.0)]).expect_err("refused"),
            "Invalid configuration key bogus"
        );
        assert_eq!(
            check(&alice, &[set(PRODUCER_BYTE_RATE, 0.0)]).expect_err("refused"),
            "Quota producer_byte_rate must be greater than 0"
        );
        assert_eq!(
            check(&alice, &[set(PRODUCER_BYTE_RATE, 1.5)]).expect_err("refused"),
            "producer_byte_rate cannot be a fractional value."
        );
        assert_eq!(
            check(&alice, &[set(CONSUMER_BYTE_RATE, 1e30)]).expect_err("refused"),
            "Proposed value for consumer_byte_rate is too large for a LONG."
        );
        assert_eq!(
            check(&alice, &[set(CONNECTION_CREATION_RATE, 5.0)]).expect_err("refused"),
            "Invalid configuration key connection_creation_rate"
        );
        assert!(check(&alice, &[set(CONTROLLER_MUTATION_RATE, 5.0)])
            .expect_err("refused")
            .contains("does not enforce"));
        assert!(check(
            &alice,
            &[set(PRODUCER_BYTE_RATE, 1.0), set(PRODUCER_BYTE_RATE, 2.0)]
        )
        .expect_err("refused")
        .starts_with("Ignoring duplicate entity ClientQuotaEntity(entries={user=alice})"));
        // A fractional request percentage is fine; an unset key's removal writes nothing.
        let ok = check(
            &alice,
            &[
                set(REQUEST_PERCENTAGE, 12.5),
                (CONSUMER_BYTE_RATE.into(), None),
            ],
        )
        .expect("accepted");
        assert_eq!(ok.set, BTreeMap::from([(REQUEST_PERCENTAGE.into(), 12.5)]));
        assert!(ok.remove.is_empty());

        // Against current values: an unchanged value and a removal of a set key.
        let current = BTreeMap::from([
            (REQUEST_PERCENTAGE.to_string(), 12.5),
            (CONSUMER_BYTE_RATE.to_string(), 100.0),
        ]);
        let a = check_alteration(
            &alice,
            &[
                set(REQUEST_PERCENTAGE, 12.5),
                (CONSUMER_BYTE_RATE.into(), None),
            ],
            Some(&current),
        )
        .expect("accepted");
        assert!(a.set.is_empty());
        assert_eq!(a.remove, vec![CONSUMER_BYTE_RATE.to_string()]);
        let mut quotas = ClientQuotas::from([(alice.clone(), current)]);
        apply(&mut quotas, &[a]);
        assert_eq!(quotas[&alice].len(), 1);
        let last = QuotaAlteration {
            entity: alice.clone(),
            set: BTreeMap::new(),
            remove: vec![REQUEST_PERCENTAGE.into()],
        };
        apply(&mut quotas, &[last]);
        assert!(quotas.is_empty(), "an entity with no keys left is dropped");
    }

    fn quotas() -> ClientQuotas {
        let q = |k: &str, v: f64| BTreeMap::from([(k.to_string(), v)]);
        ClientQuotas::from([
            (e(&[("user", Some("alice"))]), q(PRODUCER_BYTE_RATE, 1.0)),
            (
                e(&[("user", Some("alice")), ("client-id", Some("app"))]),
                q(PRODUCER_BYTE_RATE, 2.0),
            ),
            (e(&[("user", None)]), q(CONSUMER_BYTE_RATE, 3.0)),
            (e(&[("client-id", None)]), q(PRODUCER_BYTE_RATE, 4.0)),
            (e(&[("client-id", Some("app"))]), q(REQUEST_PERCENTAGE, 5.0)),
        ])
    }

    fn names(found: Vec<(&QuotaEntity, &BTreeMap<String, f64>)>) -> Vec<String> {
        found.into_iter().map(|(e, _)| entity_text(e)).collect()
    }

    #[test]
    fn describe_filters_as_kafka_does() {
        let q = quotas();
        let c = |t: &str, m: i8, s: Option<&str>| (t.to_string(), m, s.map(str::to_string));
        let all = describe(&q, &[], false).expect("accepted");
        assert_eq!(all.len(), 5);
        assert!(describe(&q, &[], true).expect("accepted").is_empty());
        let alice =
            describe(&q, &[c("user", MATCH_EXACT, Some("alice"))], false).expect("accepted");
        assert_eq!(alice.len(), 2);
        let strict =
            describe(&q, &[c("user", MATCH_EXACT, Some("alice"))], true).expect("accepted");
        assert_eq!(
            names(strict),
            vec!["ClientQuotaEntity(entries={user=alice})"]
        );
        let default_user =
            describe(&q, &[c("user", MATCH_DEFAULT, None)], false).expect("accepted");
        assert_eq!(
            names(default_user),
            vec!["ClientQuotaEntity(entries={user=null})"]
        );
        let clients =
            describe(&q, &[c("client-id", MATCH_SPECIFIED, None)], true).expect("accepted");
        assert_eq!(clients.len(), 2);

        let err =
            |cs: &[(String, i8, Option<String>)]| describe(&q, cs, false).expect_err("refused");
        assert_eq!(
            err(&[c("", MATCH_EXACT, Some("x"))]),
            FilterError::Invalid("Invalid empty entity type.".into())
        );
        assert!(matches!(
            err(&[c("user", MATCH_DEFAULT, None), c("user", MATCH_SPECIFIED, None)]),
            FilterError::Invalid(m) if m.contains("more than once")
        ));
        assert_eq!(
            err(&[c("group", MATCH_SPECIFIED, None)]),
            FilterError::Unsupported("Unsupported entity type group".into())
        );
        assert!(
            matches!(err(&[c("user", MATCH_EXACT, None)]), FilterError::Invalid(m)
            if m == "Request specified MATCH_TYPE_EXACT, but set match string to null.")
        );
        assert!(
            matches!(err(&[c("user", MATCH_DEFAULT, Some("a"))]), FilterError::Invalid(m)
            if m.contains("MATCH_TYPE_DEFAULT"))
        );
        assert!(matches!(err(&[c("user", 7, None)]), FilterError::Invalid(m)
            if m == "Unknown match type 7"));
        assert!(matches!(
            err(&[c("ip", MATCH_SPECIFIED, None), c("user", MATCH_SPECIFIED, None)]),
            FilterError::Invalid(m) if m.starts_with("Invalid entity filter component")
        ));
    }

    #[test]
    fn the_most_specific_entity_setting_a_key_applies() {
        let q = quotas();
        let r = |user: &str, client: &str, key: &str| resolve(&q, user, client, key);
        let tags = |b: f64, u: &str, c: &str| Some((b, u.to_string(), c.to_string()));
        assert_eq!(
            r("alice", "app", PRODUCER_BYTE_RATE),
            tags(2.0, "alice", "app")
        );
        // alice's own quota is shared by all her clients.
        assert_eq!(
            r("alice", "other", PRODUCER_BYTE_RATE),
            tags(1.0, "alice", "")
        );
        // The default client-id quota, per client.
        assert_eq!(r("bob", "x", PRODUCER_BYTE_RATE), tags(4.0, "", "x"));
        // The default user quota, per user.
        assert_eq!(r("bob", "x", CONSUMER_BYTE_RATE), tags(3.0, "bob", ""));
        assert_eq!(r("bob", "app", REQUEST_PERCENTAGE), tags(5.0, "", "app"));
        assert_eq!(r("bob", "x", REQUEST_PERCENTAGE), None);
    }
}
