//! Validation and normalization of identifiers: UIDs, customer ids,
//! identify ids, event names and the identifier-like fields of a payload.
//!
//! Lookalikes must not split or join people, so identifiers are compared in
//! one form: trimmed, NFKC-normalized (`ＡＢＣ` is `ABC`), and refused when
//! they carry characters nobody types on purpose (control and format
//! characters such as zero-width spaces, byte-order marks and bidi
//! controls, line and paragraph separators). A customer id that looks like a
//! hash (32 or 64 hex digits, what md5 and sha256 give) is folded to
//! lowercase, so `MD5(x)` and `md5(x)` are one customer.

use crate::errors::{CdpError, CdpResult, ErrorKind};
use unicode_general_category::{get_general_category, GeneralCategory};
use unicode_normalization::UnicodeNormalization;

/// Longest identifier accepted, in characters.
pub const MAX_IDENTIFIER_CHARS: usize = 255;

/// A UID, identify id or other identifier: required, trimmed, checked, NFKC.
pub fn identifier(field: &str, value: Option<&str>) -> CdpResult<String> {
    let value = value.ok_or_else(|| CdpError::null(field))?;
    normalized(field, value)?.ok_or_else(|| CdpError::invalid(format!("{field} must not be empty")))
}

/// A customer id: an identifier whose hash-looking form is lowercase.
pub fn customer_id(field: &str, value: Option<&str>) -> CdpResult<String> {
    let id = identifier(field, value)?;
    Ok(if looks_like_a_hash(&id) { id.to_ascii_lowercase() } else { id })
}

/// An event category or action: the identifier rules.
pub fn event_name(field: &str, value: Option<&str>) -> CdpResult<String> {
    identifier(field, value)
}

/// An optional identifier-like field (a message id, a device id, an email):
/// None when blank, else checked and normalized like an identifier.
pub fn optional(field: &str, value: Option<&str>) -> CdpResult<Option<String>> {
    match value {
        None => Ok(None),
        Some(v) => normalized(field, v),
    }
}

/// Trimmed, checked and NFKC-normalized; None when blank.
fn normalized(field: &str, raw: &str) -> CdpResult<Option<String>> {
    let value = raw.trim();
    if value.is_empty() {
        return Ok(None);
    }
    // Printable ASCII (nearly every id) is already in NFKC and holds no refused character.
    if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        check_length(field, value)?;
        return Ok(Some(value.to_string()));
    }
    // Counted before normalizing too: a huge input is refused before any work.
    check_length(field, value)?;
    if let Some(c) = value.chars().find(|c| refused(*c)) {
        let what = match get_general_category(c) {
            GeneralCategory::Control => "control character",
            GeneralCategory::Format => "invisible format character",
            _ => "line or paragraph separator",
        };
        return Err(CdpError::invalid(format!("{field} contains the {what} U+{:04X}", c as u32))
            .with_hint("Identifiers must be plain text: zero-width spaces, byte-order marks, bidi controls and line breaks are refused."));
    }
    let value: String = value.nfkc().collect();
    let value = value.trim();
    check_length(field, value)?;
    Ok((!value.is_empty()).then(|| value.to_string()))
}

fn check_length(field: &str, value: &str) -> CdpResult<()> {
    let chars = value.chars().count();
    if chars > MAX_IDENTIFIER_CHARS {
        return Err(CdpError::new(
            ErrorKind::TooLong,
            format!("{field} is {chars} characters long; at most {MAX_IDENTIFIER_CHARS} are allowed"),
        ));
    }
    Ok(())
}

/// Control (Cc) and format (Cf) characters, line and paragraph separators.
fn refused(c: char) -> bool {
    matches!(
        get_general_category(c),
        GeneralCategory::Control | GeneralCategory::Format | GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
    )
}

/// 32 or 64 hex digits: what md5() and sha256() of an email give.
pub fn looks_like_a_hash(value: &str) -> bool {
    (value.len() == 32 || value.len() == 64) && value.bytes().all(|b| b.is_ascii_hexdigit())
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
    fn lookalikes_are_one_identifier_or_refused() {
        assert_eq!(identifier("uid", Some("ＡＢＣ")).unwrap(), "ABC", "full-width letters are NFKC-folded");
        assert_eq!(identifier("uid", Some("e\u{301}")).unwrap(), "é", "composed");
        for invisible in ["a\u{200B}b", "\u{FEFF}abc", "ab\u{202E}c", "a\u{2028}b", "a\u{2029}b", "a\u{00AD}b", "a\u{2066}b"] {
            let e = identifier("uid", Some(invisible)).unwrap_err();
            assert_eq!(e.sqlstate(), "22023", "{invisible:?}");
            assert!(e.message.contains("U+"), "{}", e.message);
        }
        let hash = "5D41402ABC4B2A76B9719D911017C592";
        assert_eq!(customer_id("customer_id", Some(hash)).unwrap(), hash.to_lowercase(), "an md5 in upper case is the same customer");
        assert_eq!(customer_id("customer_id", Some("Cust-ABC")).unwrap(), "Cust-ABC", "other ids keep their case");
        assert_eq!(optional("message_id", Some("  ")).unwrap(), None);
        assert_eq!(optional("message_id", Some(&"m".repeat(300))).unwrap_err().sqlstate(), "22001");
    }

    #[test]
    fn identify_types() {
        assert_eq!(IdentifyType::parse(None).unwrap(), IdentifyType::Exact);
        assert_eq!(IdentifyType::parse(Some("PREDICT")).unwrap(), IdentifyType::Predict);
        assert_eq!(IdentifyType::parse(Some("fuzzy")).unwrap_err().sqlstate(), "22023");
    }
}
