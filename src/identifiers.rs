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

/// Placeholder values that SDKs, forms and template code send when the real
/// value is missing (seen in the wild as customer ids and UIDs). Compared
/// after trimming, lowercasing and taking off one pair of quotes.
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
    "visitor",
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
    "no",
    "yes",
    "test",
    "user",
    "customer",
    "email",
    "phone",
    "id",
    "uid",
    "cid",
    "user_id",
    "userid",
    "customer_id",
    "customerid",
    "distinct_id",
    "distinctid",
    "anonymous_id",
    "anonymousid",
    "visitor_id",
    "device_id",
    "not_authenticated",
    "unauthenticated",
    "logged_out",
    "{{customer_id}}",
    "{{user_id}}",
    "${user_id}",
    "%user_id%",
];

/// The longest placeholder value (checked by a test).
const JUNK_VALUE_MAX_LEN: usize = 20;

/// What `md5(x)` / `sha256(x)` give when the SDK hashes a missing value.
static JUNK_HASHES: LazyLock<HashSet<String>> = LazyLock::new(|| {
    ["", "undefined", "null", "[object Object]", "none", "nan"].iter().flat_map(|v| [md5_hex(v), sha256_hex(v)]).collect()
});

/// Why a value cannot identify anybody (as a customer id or a UID), or None
/// when it can.
pub fn junk_reason(value: &str) -> Option<&'static str> {
    let trimmed = value.trim();
    let unquoted = ['"', '\'', '`']
        .iter()
        .find_map(|q| trimmed.strip_prefix(*q).and_then(|rest| rest.strip_suffix(*q)))
        .map(str::trim)
        .unwrap_or(trimmed);
    if unquoted.is_empty() {
        return Some("empty value");
    }
    if unquoted.chars().all(|c| c == '0' || c == '-') {
        return Some("only zeros and dashes");
    }
    // Only values as short as a placeholder, or as long as a hash, can be one
    // (so a UUID, the usual UID, is decided without any copy).
    let len = unquoted.len();
    if len <= JUNK_VALUE_MAX_LEN && JUNK_VALUES.contains(&unquoted.to_lowercase().as_str()) {
        return Some("placeholder value");
    }
    if (len == 32 || len == 64) && JUNK_HASHES.contains(&unquoted.to_ascii_lowercase()) {
        return Some("hash of an empty or placeholder value");
    }
    None
}

/// Device ids that many devices send alike (placeholders, all-zero ids,
/// the id every Android emulator of some versions reports): they never link
/// profiles. A portal adds its own (setting `constant_device_ids`).
const CONSTANT_DEVICE_IDS: &[&str] = &[
    "web",
    "browser",
    "desktop",
    "mobile",
    "ios",
    "android",
    "server",
    "unknown",
    "device",
    "deviceid",
    "00000000-0000-0000-0000-000000000000",
    "00000000000000000000000000000000",
    "9774d56d682e549c", // Android emulator / many Android 2.2 devices' ANDROID_ID
    "0000000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
];

/// Why a device id cannot link anybody, or None when it can.
pub fn constant_device_reason(value: &str, extra: &[String]) -> Option<&'static str> {
    let v = value.trim().to_lowercase();
    if CONSTANT_DEVICE_IDS.contains(&v.as_str()) || extra.iter().any(|e| e.trim().eq_ignore_ascii_case(&v)) {
        return Some("a device id many devices share");
    }
    junk_reason(&v)
}

/// Lowercased, trimmed email with its domain in ASCII (IDNA: `bücher.de` is
/// `xn--bcher-kva.de`); Gmail addresses lose dots and "+tags" in the local
/// part, since Gmail delivers them to the same mailbox. None when the value
/// is not an address or is junk.
pub fn normalize_email(value: &str) -> Option<String> {
    let v = value.trim().to_lowercase();
    let (local, domain) = v.rsplit_once('@')?;
    // Only values that mean "missing" make the local part junk: test@, user@ or info@ are real mailboxes.
    let missing = matches!(local, "null" | "undefined" | "none" | "nan" | "nil" | "[object object]" | "n/a" | "unknown" | "anonymous")
        || local.chars().all(|c| c == '0' || c == '-');
    if local.is_empty() || local.contains('@') || v.chars().any(|c| c.is_whitespace() || c.is_control()) || missing {
        return None;
    }
    let domain = idna::domain_to_ascii(domain).ok()?;
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return None;
    }
    if domain == "gmail.com" || domain == "googlemail.com" {
        let base = local.split('+').next().unwrap_or(local).replace('.', "");
        return (!base.is_empty()).then(|| format!("{base}@gmail.com"));
    }
    Some(format!("{local}@{domain}"))
}

/// A phone number in E.164 (`+442079460958`), parsed with libphonenumber's
/// rules: an international number as it is, a national one in `region` (an
/// ISO 3166 code such as GB or VN, the portal's `default_phone_region`).
/// Without a region a national number keeps its digits (`02079460958`).
/// None when it is not a usable number.
pub fn normalize_phone(value: &str, region: Option<&str>) -> Option<String> {
    let v = value.trim();
    if v.is_empty() || v.chars().any(|c| c.is_alphabetic()) {
        return None;
    }
    let digits: String = v.chars().filter(|c| c.is_ascii_digit()).collect();
    let distinct: HashSet<char> = digits.chars().collect();
    if digits.len() < 7 || digits.len() > 15 || distinct.len() < 2 {
        return None;
    }
    let international = v.starts_with('+') || v.starts_with("00");
    let input = match v.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => v.to_string(),
    };
    let region = region.and_then(|r| r.trim().to_uppercase().parse::<phonenumber::country::Id>().ok());
    if international || region.is_some() {
        let number = phonenumber::parse(region, &input).ok()?;
        if !phonenumber::is_valid(&number) {
            return None;
        }
        return Some(number.format().mode(phonenumber::Mode::E164).to_string());
    }
    Some(digits)
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
    fn junk_value_lengths_are_known() {
        assert!(JUNK_VALUES.iter().all(|v| v.len() <= JUNK_VALUE_MAX_LEN), "raise JUNK_VALUE_MAX_LEN");
        assert_eq!(junk_reason(" '[Object Object]' "), Some("placeholder value"));
        assert_eq!(junk_reason("0190b4a2-7c3e-7d4f-9a1b-2c3d4e5f6a7b"), None);
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
        for v in [
            "distinct_id",
            "DistinctId",
            "id",
            "user_id",
            "not_authenticated",
            "anonymous",
            "guest",
            "None",
            "NaN",
            "\"undefined\"",
            "'null'",
            "`none`",
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
        assert_eq!(normalize_email("Ann@Bücher.DE").as_deref(), Some("ann@xn--bcher-kva.de"), "the domain in its ASCII form");
        for bad in ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "undefined@example.com", "ann@@example.com"] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn phones_normalize_to_e164() {
        assert_eq!(normalize_phone("+1 (415) 555-2671", None).as_deref(), Some("+14155552671"));
        assert_eq!(normalize_phone("0044 20 7946 0958", None).as_deref(), Some("+442079460958"));
        assert_eq!(
            normalize_phone("+44 20 7946 0958", Some("GB")),
            normalize_phone("020 7946 0958", Some("gb")),
            "one number, international or national in its region"
        );
        assert_eq!(normalize_phone("090 123 4567", Some("VN")).as_deref(), Some("+84901234567"));
        assert_eq!(normalize_phone("090-123-4567", None).as_deref(), Some("0901234567"), "no region: the digits");
        for bad in ["", "12345", "0000000000", "call me", "1111111", "+44 1234"] {
            assert_eq!(normalize_phone(bad, Some("GB")), None, "{bad:?}");
        }
    }

    #[test]
    fn constant_device_ids_never_link() {
        for constant in ["web", "UNKNOWN", "00000000-0000-0000-0000-000000000000", "9774d56d682e549c", "undefined"] {
            assert!(constant_device_reason(constant, &[]).is_some(), "{constant}");
        }
        assert!(constant_device_reason("kiosk-7", &["KIOSK-7".into()]).is_some(), "a portal's own list");
        assert_eq!(constant_device_reason("d-8f3a", &[]), None);
    }

    #[test]
    fn uids_are_uuid_v7() {
        let a = new_uid();
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert_ne!(a, new_uid());
    }
}
