//! Hashing, normalization and junk detection of identifiers (customer ids,
//! emails, phones, device ids). Pure Rust: no database access.

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::LazyLock;

pub fn md5_hex(input: &str) -> String {
    hex(&Md5::digest(input.as_bytes()))
}

pub fn sha256_hex(input: &str) -> String {
    hex(&Sha256::digest(input.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The identity hash of a customer id under a portal's secret: lowercase
/// hex HMAC-SHA256 (what a backend hands to the page as `identify_hash`).
pub fn identity_hash(customer_id: &str, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(customer_id.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Whether `hash` is the identity hash of the customer id (compared in
/// constant time). Anything that is not 64 hex digits is simply not valid.
pub fn identity_hash_is_valid(customer_id: &str, hash: &str, secret: &str) -> bool {
    let hash = hash.trim();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let bytes: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).unwrap_or(0)).collect();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(customer_id.as_bytes());
    mac.verify_slice(&bytes).is_ok()
}

/// Placeholder values that SDKs and forms send when the real value is
/// missing. Compared after trimming and lowercasing.
const JUNK_VALUES: &[&str] = &[
    "",
    "null",
    "undefined",
    "none",
    "nan",
    "nil",
    "0",
    "-1",
    "true",
    "false",
    "anonymous",
    "anon",
    "guest",
    "unknown",
    "[object object]",
    "[object undefined]",
    "[object null]",
    "object",
    "n/a",
    "na",
    "not set",
    "(not set)",
    "not_set",
    "unset",
    "empty",
    "blank",
    "missing",
    "default",
    "void",
    "(null)",
    "<null>",
    "{}",
    "[]",
    "\"\"",
    "''",
    "no",
    "yes",
    "test",
    "user",
    "customer",
    "email",
    "phone",
];

/// What `md5(x)` / `sha256(x)` give when the SDK hashes a missing value.
static JUNK_HASHES: LazyLock<HashSet<String>> = LazyLock::new(|| {
    ["", "undefined", "null", "[object Object]", "none", "nan"].iter().flat_map(|v| [md5_hex(v), sha256_hex(v)]).collect()
});

/// Why a value cannot identify anybody, or None when it can.
pub fn junk_reason(value: &str) -> Option<&'static str> {
    let v = value.trim().to_lowercase();
    if v.chars().all(|c| c == '0' || c == '-') {
        Some("only zeros and dashes")
    } else if JUNK_VALUES.contains(&v.as_str()) {
        Some("placeholder value")
    } else if JUNK_HASHES.contains(&v) {
        Some("hash of an empty or placeholder value")
    } else {
        None
    }
}

/// Lowercased, trimmed email; Gmail addresses lose dots and "+tags" in the
/// local part, since Gmail delivers them to the same mailbox. None when the
/// value is not an address or is junk.
pub fn normalize_email(value: &str) -> Option<String> {
    let v = value.trim().to_lowercase();
    let (local, domain) = v.split_once('@')?;
    let valid = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !v.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid || junk_reason(local).is_some() {
        return None;
    }
    let local = if domain == "gmail.com" || domain == "googlemail.com" {
        let base = local.split('+').next().unwrap_or(local).replace('.', "");
        if base.is_empty() {
            return None;
        }
        return Some(format!("{base}@gmail.com"));
    } else {
        local
    };
    Some(format!("{local}@{domain}"))
}

/// Digits of a phone number, with a leading "+" when the number was given in
/// international form ("+" or "00" prefix). None when fewer than 7 digits
/// remain, when letters are mixed in, or when the digits are junk.
pub fn normalize_phone(value: &str) -> Option<String> {
    let v = value.trim();
    if v.chars().any(|c| c.is_alphabetic()) {
        return None;
    }
    let digits: String = v.chars().filter(|c| c.is_ascii_digit()).collect();
    let (international, digits) = if v.starts_with('+') {
        (true, digits)
    } else if let Some(rest) = digits.strip_prefix("00") {
        (true, rest.to_string())
    } else {
        (false, digits)
    };
    let distinct: HashSet<char> = digits.chars().collect();
    if digits.len() < 7 || digits.len() > 15 || distinct.len() < 2 {
        return None;
    }
    Some(if international { format!("+{digits}") } else { digits })
}

/// A fresh UID: a UUIDv7, so UIDs sort by creation time.
pub fn new_uid() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_lowercase_hex() {
        assert_eq!(md5_hex("hello"), "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(sha256_hex("hello"), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn identity_hashes_are_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            identity_hash("what do ya want for nothing?", "Jefe"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let good = identity_hash("cust-1", "a secret of sixteen+");
        assert!(identity_hash_is_valid("cust-1", &good, "a secret of sixteen+"));
        assert!(identity_hash_is_valid("cust-1", &good.to_uppercase(), "a secret of sixteen+"));
        assert!(!identity_hash_is_valid("cust-2", &good, "a secret of sixteen+"), "another customer id");
        assert!(!identity_hash_is_valid("cust-1", &good, "another secret, long"), "another secret");
        for bad in ["", "xyz", &good[..63], &format!("{good}0"), &"zz".repeat(32), "é".repeat(32).as_str()] {
            assert!(!identity_hash_is_valid("cust-1", bad, "a secret of sixteen+"), "{bad:?}");
        }
    }

    #[test]
    fn junk_values_are_refused() {
        for v in [
            "",
            "  ",
            "null",
            "NULL",
            "Undefined",
            "none",
            "NaN",
            "0",
            "-1",
            "true",
            "FALSE",
            "anonymous",
            "Guest",
            "unknown",
            "[object Object]",
            "000",
            "0-0-0",
            "---",
            "d41d8cd98f00b204e9800998ecf8427e",
            "D41D8CD98F00B204E9800998ECF8427E",
            &md5_hex("undefined"),
            &md5_hex("null"),
            &sha256_hex(""),
            &sha256_hex("undefined"),
            &sha256_hex("null"),
        ] {
            assert!(junk_reason(v).is_some(), "{v:?} should be junk");
        }
        for v in ["c-42", &md5_hex("ann@example.com"), "10", "customer-0001", "-12"] {
            assert_eq!(junk_reason(v), None, "{v:?} should be usable");
        }
    }

    #[test]
    fn emails_normalize() {
        assert_eq!(normalize_email(" Ann@Example.COM ").as_deref(), Some("ann@example.com"));
        assert_eq!(normalize_email("j.o.e+news@GMail.com").as_deref(), Some("joe@gmail.com"));
        assert_eq!(normalize_email("joe@googlemail.com").as_deref(), Some("joe@gmail.com"));
        assert_eq!(normalize_email("ann+x@example.com").as_deref(), Some("ann+x@example.com"));
        for bad in ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "undefined@example.com", "ann@@example.com"] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn phones_normalize() {
        assert_eq!(normalize_phone("+1 (415) 555-0100").as_deref(), Some("+14155550100"));
        assert_eq!(normalize_phone("0044 20 7946 0958").as_deref(), Some("+442079460958"));
        assert_eq!(normalize_phone("090-123-4567").as_deref(), Some("0901234567"));
        for bad in ["", "12345", "0000000000", "call me", "1111111"] {
            assert_eq!(normalize_phone(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn uids_are_uuid_v7() {
        let a = new_uid();
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert_ne!(a, new_uid());
    }
}
