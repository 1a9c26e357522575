//! Predicted matching (`identify_type = 'predict'`): scores still-anonymous
//! profiles against a customer from the signals their context carried, in the
//! Fellegi-Sunter way, with term-frequency adjustment (as Splink does):
//!
//! - a signal that agrees adds log2(m / u), one that disagrees adds
//!   log2((1 - m) / (1 - u)), a missing one adds nothing; the sum and the prior
//!   give a match probability: odds = prior / (1 - prior) * 2^sum;
//! - m and u come from the portal's weights, except that for an agreement on
//!   a user agent, screen, IP network, timezone or locale, u is how common
//!   that value is: u = (n + 1) / (N + 2), n the profiles recorded with the
//!   value and N those recorded with the signal within the predict window
//!   (`cdp.signal_counts`), once N reaches `MIN_SAMPLE` (before that the
//!   configured u), and never below `U_FLOOR`. Agreeing on the most common
//!   phone of a market is weak evidence; agreeing on a rare browser is strong;
//! - the strong-signal rule: an auto-merge needs an agreement on a strong
//!   signal (`predict_strong_signals`, by default the device id, which a
//!   shared or constant device never provides); weak signals alone give at
//!   most a suggestion for review.
//!
//! At or above `predict_auto_merge` the profile is merged (reason `predict`),
//! between `predict_review` and that a suggestion is stored, below nothing.

use crate::errors::{CdpError, CdpResult};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The signals compared, in the order they are reported.
pub const SIGNALS: &[&str] = &["device_id", "user_agent", "ip_network", "screen", "timezone", "locale", "recent"];

/// m (probability the signal agrees for the same person) and u (for two
/// different people) per signal.
pub const DEFAULT_WEIGHTS: &str = r#"{"device_id": [0.95, 0.0001], "user_agent": [0.9, 0.02], "ip_network": [0.75, 0.01], "screen": [0.9, 0.1], "timezone": [0.95, 0.3], "locale": [0.95, 0.3], "recent": [0.6, 0.05]}"#;

#[derive(Debug, Clone, PartialEq)]
pub struct Weights(BTreeMap<String, (f64, f64)>);

impl Weights {
    pub fn parse(text: &str) -> CdpResult<Self> {
        let bad = |why: String| CdpError::invalid(format!("cdp.predict_weights: {why}"));
        let value: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON ({e})")))?;
        let object = value.as_object().ok_or_else(|| bad("must be a JSON object".into()))?;
        let mut weights = BTreeMap::new();
        for (signal, pair) in object {
            if !SIGNALS.contains(&signal.as_str()) {
                return Err(bad(format!("unknown signal \"{signal}\"; known: {}", SIGNALS.join(", "))));
            }
            let (m, u) = match pair.as_array().map(|a| a.as_slice()) {
                Some([m, u]) => (m.as_f64(), u.as_f64()),
                _ => (None, None),
            };
            match (m, u) {
                (Some(m), Some(u)) if m > 0.0 && m < 1.0 && u > 0.0 && u < 1.0 => {
                    weights.insert(signal.clone(), (m, u));
                }
                _ => return Err(bad(format!("\"{signal}\" must be [m, u] with both strictly between 0 and 1"))),
            }
        }
        Ok(Weights(weights))
    }
}

/// The signals of one profile (or the set of values seen for a customer).
pub type Signals = BTreeMap<String, BTreeSet<String>>;

/// Signals from system attributes: the last-value ones, the IP reduced to its
/// network (/24 for IPv4, /48 for IPv6).
pub fn signals_of(system: &Map<String, Value>, signals: &mut Signals) {
    for key in ["device_id", "user_agent", "screen", "timezone", "locale"] {
        if let Some(v) = system.get(key).and_then(Value::as_str).filter(|v| !v.is_empty()) {
            signals.entry(key.into()).or_default().insert(v.to_string());
        }
    }
    if let Some(network) = system.get("ip").and_then(Value::as_str).and_then(ip_network) {
        signals.entry("ip_network".into()).or_default().insert(network);
    }
}

pub fn ip_network(ip: &str) -> Option<String> {
    let ip = ip.trim();
    if ip.contains(':') {
        let parts: Vec<&str> = ip.split(':').take(3).collect();
        (parts.len() == 3).then(|| parts.join(":"))
    } else {
        let parts: Vec<&str> = ip.split('.').collect();
        (parts.len() == 4 && parts.iter().all(|p| p.parse::<u8>().is_ok())).then(|| parts[..3].join("."))
    }
}

/// The signals whose agreement is weighed by how common the agreeing value is.
pub const FREQUENCY_SIGNALS: &[&str] = &["user_agent", "screen", "ip_network", "timezone", "locale"];

/// Profiles with a signal in the window below which its counts are too few
/// to say how common a value is (the configured u is used).
pub const MIN_SAMPLE: i64 = 50;

/// The smallest u an agreement on a weak signal may have: one in a thousand.
pub const U_FLOOR: f64 = 0.001;

/// How common a value is: (profiles with the value, profiles with the signal)
/// in the window, when known.
pub type Frequency<'a> = &'a dyn Fn(&str, &str) -> Option<(i64, i64)>;

/// The u of an agreement on `signal` through `values`: the configured one, or
/// the frequency of the most common agreeing value (the cautious choice).
fn agreement_u(signal: &str, values: &BTreeSet<&String>, configured: f64, frequency: Frequency<'_>) -> f64 {
    if !FREQUENCY_SIGNALS.contains(&signal) {
        return configured;
    }
    values
        .iter()
        .filter_map(|v| frequency(signal, v))
        .filter(|(_, total)| *total >= MIN_SAMPLE)
        .map(|(n, total)| ((n + 1) as f64 / (total + 2) as f64).max(U_FLOOR))
        .fold(None, |most: Option<f64>, u| Some(most.map_or(u, |m| m.max(u))))
        .unwrap_or(configured)
}

/// A candidate's score: its match probability (before the strong-signal
/// rule), what each signal did, and whether a strong signal agreed.
pub struct Score {
    pub probability: f64,
    pub report: Value,
    pub strong: bool,
}

/// Scores a candidate against the customer's signals.
pub fn score(customer: &Signals, candidate: &Signals, weights: &Weights, prior: f64, strong: &[String], frequency: Frequency<'_>) -> Score {
    let mut total = 0.0;
    let mut report = Map::new();
    let mut strong_agrees = false;
    for signal in SIGNALS {
        let (Some((m, u)), Some(theirs), Some(ours)) = (weights.0.get(*signal), candidate.get(*signal), customer.get(*signal)) else {
            continue;
        };
        let common: BTreeSet<&String> = theirs.intersection(ours).collect();
        let agrees = !common.is_empty();
        let weight = if agrees {
            // A value nearly everyone has is no evidence either way (never negative).
            let u = agreement_u(signal, &common, *u, frequency).min(*m);
            report.insert(signal.to_string(), json!({"agrees": true, "u": (u * 10000.0).round() / 10000.0}));
            (m / u).log2()
        } else {
            report.insert(signal.to_string(), json!({"agrees": false}));
            ((1.0 - m) / (1.0 - u)).log2()
        };
        strong_agrees |= agrees && strong.iter().any(|s| s == signal);
        total += weight;
        if let Some(Value::Object(entry)) = report.get_mut(*signal) {
            entry.insert("weight".into(), json!((weight * 100.0).round() / 100.0));
        }
    }
    let odds = prior / (1.0 - prior) * total.exp2();
    Score { probability: odds / (1.0 + odds), report: Value::Object(report), strong: strong_agrees }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals(pairs: &[(&str, &str)]) -> Signals {
        let mut s = Signals::new();
        for (k, v) in pairs {
            s.entry(k.to_string()).or_default().insert(v.to_string());
        }
        s
    }

    #[test]
    fn agreement_raises_and_disagreement_lowers_the_probability() {
        let w = Weights::parse(DEFAULT_WEIGHTS).unwrap();
        let customer = signals(&[("user_agent", "UA-1"), ("ip_network", "10.1.2"), ("timezone", "Asia/Hanoi"), ("locale", "vi")]);
        let same = signals(&[("user_agent", "UA-1"), ("ip_network", "10.1.2"), ("timezone", "Asia/Hanoi"), ("locale", "vi")]);
        let other = signals(&[("user_agent", "UA-2"), ("ip_network", "10.9.9"), ("timezone", "Asia/Hanoi"), ("locale", "vi")]);
        let unknown = |_: &str, _: &str| None;
        let strong = vec!["device_id".to_string()];
        let same_score = score(&customer, &same, &w, 0.01, &strong, &unknown);
        let p_other = score(&customer, &other, &w, 0.01, &strong, &unknown).probability;
        assert!(same_score.probability > 0.95, "{}", same_score.probability);
        assert!(!same_score.strong, "no device id agreed: not strong");
        assert!(p_other < 0.01, "{p_other}");
        assert_eq!(same_score.report["user_agent"]["agrees"], json!(true));
        let p_nothing = score(&customer, &Signals::new(), &w, 0.01, &strong, &unknown).probability;
        assert!((p_nothing - 0.01).abs() < 1e-9, "no signal: the prior");
    }

    #[test]
    fn agreement_on_a_common_value_is_weak_evidence() {
        let w = Weights::parse(DEFAULT_WEIGHTS).unwrap();
        let strong = vec!["device_id".to_string()];
        let customer = signals(&[("user_agent", "iPhone Safari"), ("ip_network", "100.64.1"), ("screen", "390x844")]);
        // The most common phone, on a carrier /24 a tenth of the visitors share.
        let common = |signal: &str, _: &str| Some(if signal == "ip_network" { (100, 1000) } else { (300, 1000) });
        let rare = |_: &str, _: &str| Some((1, 1000));
        let p_common = score(&customer, &customer, &w, 0.01, &strong, &common).probability;
        let p_rare = score(&customer, &customer, &w, 0.01, &strong, &rare).probability;
        assert!(p_common < 0.6, "common values say little: {p_common}");
        assert!(p_rare > p_common, "a rare value says more: {p_rare} vs {p_common}");
        let few = |_: &str, _: &str| Some((1, 10));
        let unknown = |_: &str, _: &str| None;
        assert_eq!(
            score(&customer, &customer, &w, 0.01, &strong, &few).probability,
            score(&customer, &customer, &w, 0.01, &strong, &unknown).probability,
            "below MIN_SAMPLE the configured u applies"
        );
        let device = signals(&[("device_id", "d-1")]);
        assert!(score(&device, &device, &w, 0.01, &strong, &unknown).strong, "a device id agreement is strong");
    }

    #[test]
    fn weights_are_checked() {
        assert!(Weights::parse(r#"{"user_agent": [0.9, 0.1]}"#).is_ok());
        for bad in ["[]", "nope", r#"{"shoe_size": [0.9, 0.1]}"#, r#"{"user_agent": [1.0, 0.1]}"#, r#"{"user_agent": [0.9]}"#] {
            assert_eq!(Weights::parse(bad).unwrap_err().sqlstate(), "22023", "{bad}");
        }
    }

    #[test]
    fn ip_networks() {
        assert_eq!(ip_network("203.0.113.77").as_deref(), Some("203.0.113"));
        assert_eq!(ip_network("2001:db8:85a3::8a2e:370:7334").as_deref(), Some("2001:db8:85a3"));
        assert_eq!(ip_network("not an ip"), None);
    }
}
