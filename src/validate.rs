//! Validation of the scalar arguments of the public functions.

use crate::errors::{CdpError, CdpResult, ErrorKind};

/// Longest UID, customer id, category or action accepted, in characters.
pub const MAX_IDENTIFIER_CHARS: usize = 255;

/// A UID or customer id: trimmed, non-empty, at most 255 characters, no
/// control characters.
pub fn identifier<'a>(field: &str, value: Option<&'a str>) -> CdpResult<&'a str> {
    let value = value.ok_or_else(|| CdpError::null(field))?.trim();
    if value.is_empty() {
        return Err(CdpError::invalid(format!("{field} must not be empty")));
    }
    check_length_and_controls(field, value)?;
    Ok(value)
}

/// An event category or action: trimmed, non-empty, at most 255 characters.
pub fn event_name<'a>(field: &str, value: Option<&'a str>) -> CdpResult<&'a str> {
    identifier(field, value)
}

fn check_length_and_controls(field: &str, value: &str) -> CdpResult<()> {
    let chars = value.chars().count();
    if chars > MAX_IDENTIFIER_CHARS {
        return Err(CdpError::new(
            ErrorKind::TooLong,
            format!("{field} is {chars} characters long; at most {MAX_IDENTIFIER_CHARS} are allowed"),
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(CdpError::invalid(format!("{field} contains the control character U+{:04X}", c as u32)));
    }
    Ok(())
}

/// How an identify was decided: `exact` (the customer signed in) or
/// `predict` (a probabilistic match, recorded as such on the merge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifyType {
    Exact,
    Predict,
}

impl IdentifyType {
    pub fn parse(value: Option<&str>) -> CdpResult<Self> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("exact") => Ok(IdentifyType::Exact),
            Some("predict") => Ok(IdentifyType::Predict),
            Some(other) => Err(CdpError::invalid(format!("identify_type \"{other}\" is unknown; use 'exact' or 'predict'"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IdentifyType::Exact => "exact",
            IdentifyType::Predict => "predict",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_trimmed_and_checked() {
        assert_eq!(identifier("uid", Some("  u-1 ")).unwrap(), "u-1");
        assert_eq!(identifier("uid", None).unwrap_err().sqlstate(), "22004");
        assert_eq!(identifier("uid", Some("   ")).unwrap_err().sqlstate(), "22023");
        assert_eq!(identifier("uid", Some("a\u{7}b")).unwrap_err().sqlstate(), "22023");
        let long = "x".repeat(256);
        assert_eq!(identifier("uid", Some(&long)).unwrap_err().sqlstate(), "22001");
        assert!(identifier("uid", Some(&"é".repeat(255))).is_ok());
    }

    #[test]
    fn identify_types() {
        assert_eq!(IdentifyType::parse(None).unwrap(), IdentifyType::Exact);
        assert_eq!(IdentifyType::parse(Some("PREDICT")).unwrap(), IdentifyType::Predict);
        assert_eq!(IdentifyType::parse(Some("fuzzy")).unwrap_err().sqlstate(), "22023");
    }
}
