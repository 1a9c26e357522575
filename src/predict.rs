//! Predicted matching (`identify_type = 'predict'`): scores still-anonymous
//! profiles against a customer from the signals their context carried, in the
//! Fellegi-Sunter way: each signal that agrees adds log2(m/u), each that
//! disagrees adds log2((1-m)/(1-u)), a missing one adds nothing; the sum and a
//! prior give a match probability. Above `cdp.predict_auto_merge` the profile
//! is merged (reason `predict`), between `cdp.predict_review` and that a
//! suggestion is stored for review, below nothing happens.

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

/// The match weight and probability of a candidate, with what each signal did.
pub fn score(customer: &Signals, candidate: &Signals, weights: &Weights, prior: f64) -> (f64, Value) {
    let mut total = 0.0;
    let mut report = Map::new();
    for signal in SIGNALS {
        let (Some((m, u)), Some(theirs), Some(ours)) = (weights.0.get(*signal), candidate.get(*signal), customer.get(*signal)) else {
            continue;
        };
        let agrees = !theirs.is_disjoint(ours);
        let weight = if agrees { (m / u).log2() } else { ((1.0 - m) / (1.0 - u)).log2() };
        total += weight;
        report.insert(signal.to_string(), json!({"agrees": agrees, "weight": (weight * 100.0).round() / 100.0}));
    }
    let odds = prior / (1.0 - prior) * total.exp2();
    (odds / (1.0 + odds), Value::Object(report))
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
        let (p_same, report) = score(&customer, &same, &w, 0.01);
        let (p_other, _) = score(&customer, &other, &w, 0.01);
        assert!(p_same > 0.95, "{p_same}");
        assert!(p_other < 0.01, "{p_other}");
        assert_eq!(report["user_agent"]["agrees"], json!(true));
        let (p_nothing, _) = score(&customer, &Signals::new(), &w, 0.01);
        assert!((p_nothing - 0.01).abs() < 1e-9, "no signal: the prior");
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
