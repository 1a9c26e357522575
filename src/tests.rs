//! Rust-level tests that need a running PostgreSQL, run by `cargo pgrx test`.
//! The public surface is tested by the SQL scenarios in tests/sql.
#[pgrx::pg_schema]
mod tests {
    use crate::identity::Reason;
    use crate::ingest::time_at;
    use crate::timeparse::TimeValue;
    use pgrx::datum::TimestampWithTimeZone;
    use pgrx::prelude::*;

    fn ts(sql_literal: &str) -> TimestampWithTimeZone {
        Spi::get_one::<TimestampWithTimeZone>(&format!("SELECT '{sql_literal}'::timestamptz")).unwrap().unwrap()
    }

    #[pg_test]
    fn json_times_keep_full_precision_whatever_the_session_time_zone() {
        let text = |t: &str| TimeValue::Text(t.into());
        for session_zone in ["UTC", "America/Los_Angeles", "Asia/Tokyo"] {
            Spi::run(&format!("SET LOCAL TimeZone = '{session_zone}'")).unwrap();
            assert_eq!(time_at("t", &text("2024-01-01T10:11:12Z"), None).unwrap(), ts("2024-01-01 10:11:12+00"));
            assert_eq!(time_at("t", &text("2024-01-01T10:11:12.345+02:00"), None).unwrap(), ts("2024-01-01 08:11:12.345+00"));
            assert_eq!(time_at("t", &text("2026-11-30 17:15:09.5"), Some("Asia/Ho_Chi_Minh")).unwrap(), ts("2026-11-30 10:15:09.5+00"));
            // No context.timezone: cdp.default_timezone (UTC), not the session's zone.
            assert_eq!(time_at("t", &text("2026-11-30 17:15:09"), None).unwrap(), ts("2026-11-30 17:15:09+00"));
            assert_eq!(time_at("t", &TimeValue::EpochMillis(1704103872345.0), None).unwrap(), ts("2024-01-01 10:11:12.345+00"));
        }
        assert_eq!(time_at("t", &text("2026-11-30 17:15:00"), Some("No/Such_Zone")).unwrap_err().sqlstate(), "22023");
        assert_eq!(time_at("t", &text("2026-03-08 02:30:00"), Some("America/New_York")).unwrap_err().sqlstate(), "22007");
        assert_eq!(time_at("t", &text("now"), None).unwrap_err().sqlstate(), "22007");
        Spi::run("SET LOCAL cdp.default_timezone = 'Asia/Tokyo'").unwrap();
        assert_eq!(time_at("t", &text("2026-11-30 17:15:09"), None).unwrap(), ts("2026-11-30 08:15:09+00"));
    }

    #[pg_test]
    fn merge_reasons_prefer_the_strongest_evidence() {
        let mut reasons = vec![Reason::IdentifyId, Reason::Phone, Reason::Uid, Reason::Email, Reason::DeviceId];
        reasons.sort();
        assert_eq!(reasons, vec![Reason::Uid, Reason::DeviceId, Reason::Email, Reason::Phone, Reason::IdentifyId]);
        // A profile found both by device and by email is recorded as a device merge.
        Spi::run("SELECT cdp.track_event('a', 'form', 'submit', '{\"dims\": {\"customers\": {\"email\": \"x@example.com\"}}, \"context\": {\"device_id\": \"dev\"}}')").unwrap();
        Spi::run("SELECT cdp.track_event('b', 'user', 'sign_in', '{\"dims\": {\"customers\": {\"customer_id\": \"cx\", \"email\": \"x@example.com\"}}, \"context\": {\"device_id\": \"dev\"}}')").unwrap();
        let reason = Spi::get_one::<String>("SELECT reason FROM cdp.merges m JOIN cdp.uids u ON u.profile_id = m.from_profile WHERE u.uid = 'a'");
        assert_eq!(reason.unwrap().as_deref(), Some("device_id"));
    }

    #[pg_test]
    fn system_attribute_writes_only_when_something_changed() {
        use crate::attributes::SystemAttributes;
        use crate::profiles::UidState;
        let noon = ts("2026-11-30 12:00:00+00");
        let state = |current: bool| UidState {
            own_profile: 1,
            root: 1,
            root_is_customer: false,
            last_device_id: None,
            system_at: Some(noon),
            first_touch_at: Some(noon),
            system_current: current,
        };
        let mut first_touch = SystemAttributes::default();
        first_touch.first.insert("first_page_url".into(), "https://x.example/".into());
        let later = ts("2026-11-30 13:00:00+00");
        let earlier = ts("2026-11-30 11:00:00+00");
        assert_eq!(state(true).system_changes(&SystemAttributes::default(), later), (false, false), "same context: no write");
        assert_eq!(state(false).system_changes(&SystemAttributes::default(), later), (true, false), "new browser, newer event");
        assert_eq!(state(false).system_changes(&SystemAttributes::default(), earlier), (false, false), "an older event never overwrites");
        assert_eq!(state(true).system_changes(&first_touch, earlier), (false, true), "an earlier event is the new first touch");
        assert_eq!(state(true).system_changes(&first_touch, later), (false, false), "a later one is not");
    }

    #[pg_test]
    fn profile_writers_share_the_identity_lock() {
        Spi::run("SELECT cdp.track_event('w', 'a', 'b')").unwrap();
        let mode = Spi::get_one::<String>(
            "SELECT mode FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = x'43445001'::int::oid",
        );
        assert_eq!(mode.unwrap().as_deref(), Some("ShareLock"), "creating a profile waits only for identify");
    }

    #[pg_test]
    fn identify_takes_the_identity_lock_exclusively() {
        Spi::run("SELECT cdp.identify('r', 'cr')").unwrap();
        let mode = Spi::get_one::<String>(
            "SELECT mode FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = x'43445001'::int::oid",
        );
        assert_eq!(mode.unwrap().as_deref(), Some("ExclusiveLock"));
    }

    #[pg_test]
    fn undone_decisions_block_only_old_evidence() {
        use crate::unmerge::{is_blocked, Block};
        let undone_at = ts("2026-11-30 12:00:00+00");
        let blocks = vec![Block { from_profile: 7, evidence: vec!["device_id:pc".into(), "uid:u1".into()], blocked_at: undone_at }];
        let before = ts("2026-11-30 11:00:00+00");
        let after = ts("2026-11-30 13:00:00+00");
        assert!(is_blocked(&blocks, 7, "device_id:pc", after), "the same device never merges them again");
        assert!(!is_blocked(&blocks, 7, "email:a@b.co", after), "new evidence does");
        assert!(!is_blocked(&blocks, 8, "device_id:pc", after), "other profiles are not affected");
        assert!(is_blocked(&blocks, 7, "uid:u1", before), "a replayed identify of the UID does not");
        assert!(!is_blocked(&blocks, 7, "uid:u1", after), "a later sign-in of the UID does");
    }

    #[pg_test]
    fn settings_are_registered() {
        assert_eq!(Spi::get_one::<String>("SHOW cdp.device_linking").unwrap().as_deref(), Some("on"));
        assert_eq!(Spi::get_one::<String>("SHOW cdp.max_payload_bytes").unwrap().as_deref(), Some("1MB"));
    }
}
