//! Rust-level tests that need a running PostgreSQL, run by `cargo pgrx test`
//! (jsonb values only exist inside a server). The public surface is tested
//! by the SQL scenarios in tests/sql.
#[pgrx::pg_schema]
mod tests {
    use crate::attributes::{contact_identifiers, Attributes, Identifier, SystemAttributes, SystemFields};
    use crate::jsonb::{self, Container, Value};
    use crate::payload::read;
    use crate::request::time_at;
    use crate::settings::PortalSettings;
    use crate::tables::merges::Reason;
    use crate::tables::uids::UidState;
    use crate::timeparse::TimeValue;
    use crate::validate::IdentifyType;
    use pgrx::datum::TimestampWithTimeZone;
    use pgrx::prelude::*;

    fn ts(sql_literal: &str) -> TimestampWithTimeZone {
        Spi::get_one::<TimestampWithTimeZone>(&format!("SELECT '{sql_literal}'::timestamptz")).unwrap().unwrap()
    }

    /// A jsonb value made from JSON text, read in place like an argument.
    fn doc(text: &str) -> Container<'static> {
        // SAFETY: jsonb_in returns a jsonb datum in its full form, alive until the test's transaction ends.
        unsafe { Container::of_datum(jsonb::parse_text(text)) }
    }

    #[pg_test]
    fn json_times_keep_full_precision_whatever_the_session_time_zone() {
        let text = |t: &str| TimeValue::Text(t.into());
        let defaults = PortalSettings::default();
        for session_zone in ["UTC", "America/Los_Angeles", "Asia/Tokyo"] {
            Spi::run(&format!("SET LOCAL TimeZone = '{session_zone}'")).unwrap();
            assert_eq!(time_at("t", &text("2024-01-01T10:11:12Z"), None, &defaults).unwrap(), ts("2024-01-01 10:11:12+00"));
            assert_eq!(time_at("t", &text("2024-01-01T10:11:12.345+02:00"), None, &defaults).unwrap(), ts("2024-01-01 08:11:12.345+00"));
            assert_eq!(
                time_at("t", &text("2026-11-30 17:15:09.5"), Some("Asia/Ho_Chi_Minh"), &defaults).unwrap(),
                ts("2026-11-30 10:15:09.5+00")
            );
            // No context.timezone: cdp.default_timezone (UTC), not the session's zone.
            assert_eq!(time_at("t", &text("2026-11-30 17:15:09"), None, &defaults).unwrap(), ts("2026-11-30 17:15:09+00"));
            assert_eq!(time_at("t", &TimeValue::EpochMillis(1704103872345.0), None, &defaults).unwrap(), ts("2024-01-01 10:11:12.345+00"));
        }
        assert_eq!(time_at("t", &text("2026-11-30 17:15:00"), Some("No/Such_Zone"), &defaults).unwrap_err().sqlstate(), "22023");
        assert_eq!(time_at("t", &text("2026-03-08 02:30:00"), Some("America/New_York"), &defaults).unwrap_err().sqlstate(), "22007");
        assert_eq!(time_at("t", &text("now"), None, &defaults).unwrap_err().sqlstate(), "22007");
        Spi::run("SET LOCAL cdp.default_timezone = 'Asia/Tokyo'").unwrap();
        assert_eq!(time_at("t", &text("2026-11-30 17:15:09"), None, &defaults).unwrap(), ts("2026-11-30 08:15:09+00"));
        let paris = PortalSettings::parse(serde_json::json!({"default_timezone": "Europe/Paris"}).as_object().unwrap()).unwrap();
        assert_eq!(time_at("t", &text("2026-11-30 17:15:09"), None, &paris).unwrap(), ts("2026-11-30 16:15:09+00"), "a portal's zone wins");
    }

    #[pg_test]
    fn the_seed_sign_in_payload_is_read_in_place() {
        let payload = doc(r#"{
            "dims": {"customers": {"customer_id": "abc", "name": "Ann", "email": "ann@example.com"}},
            "extra": {"identify_id": "abc", "identify_time": "2026-11-30 10:00:00",
                      "identify_event": "user_sign_in", "identify_type": "exact"},
            "context": {"device_id": "d1", "session_id": 42}}"#);
        let facts = read(payload.as_value()).unwrap();
        let claim = facts.claim.unwrap();
        assert_eq!(claim.customer_id, "abc");
        assert_eq!(claim.field, "payload.dims.customers.customer_id");
        assert_eq!(claim.identify_time, Some(TimeValue::Text("2026-11-30 10:00:00".into())));
        let attributes = Attributes::from_sources("attributes", &facts.attribute_sources).unwrap();
        assert_eq!(attributes.text("name").as_deref(), Some("Ann"));
        assert_eq!(attributes.text("customer_id"), None, "the customer id is the identity, not an attribute");
        assert_eq!(facts.context.device_id.as_deref(), Some("d1"));
        assert_eq!(facts.context.session_id.as_deref(), Some("42"), "a number is read as its text");
    }

    #[pg_test]
    fn identify_id_identifies_without_customer_id() {
        let facts = read(doc(r#"{"extra": {"identify_id": "xyz", "identify_type": "predict"}}"#).as_value()).unwrap();
        let claim = facts.claim.unwrap();
        assert_eq!((claim.customer_id.as_str(), claim.identify_type), ("xyz", IdentifyType::Predict));
    }

    #[pg_test]
    fn numeric_identify_time_is_epoch_milliseconds() {
        let facts = read(doc(r#"{"extra": {"identify_id": "x", "identify_time": 1704103872345}}"#).as_value()).unwrap();
        assert_eq!(facts.claim.unwrap().identify_time, Some(TimeValue::EpochMillis(1704103872345.0)));
        let bad = read(doc(r#"{"extra": {"identify_id": "x", "identify_time": true}}"#).as_value()).err().unwrap();
        assert_eq!(bad.sqlstate(), "22023");
    }

    #[pg_test]
    fn lead_form_sets_attributes_only() {
        let facts = read(doc(r#"{"dims": {"customers": {"email": "a@b.co"}}}"#).as_value()).unwrap();
        assert!(facts.claim.is_none());
        assert_eq!(Attributes::from_sources("attributes", &facts.attribute_sources).unwrap().text("email").as_deref(), Some("a@b.co"));
    }

    #[pg_test]
    fn payload_shapes_are_checked() {
        for bad in [
            r#"[]"#,
            r#""x""#,
            r#"{"dims": 1}"#,
            r#"{"context": []}"#,
            r#"{"dims": {"customers": "x"}}"#,
            r#"{"context": {"device_id": {}}}"#,
            r#"{"extra": {"identify_type": "maybe", "identify_id": "x"}}"#,
        ] {
            assert_eq!(read(doc(bad).as_value()).err().map(|e| e.sqlstate()), Some("22023"), "{bad}");
        }
    }

    #[pg_test]
    fn attributes_are_combined_exactly_without_nulls() {
        let users = doc(r#"{"plan": "free", "score": 1.10, "big": 1e400, "gone": null, "nested": {"deep": [1, {"x": 2.50}]}}"#);
        let customers = doc(r#"{"customer_id": "c", "plan": "pro", "": "empty key", "email": " Ann@Example.com", "phone": "undefined"}"#);
        let attributes = Attributes::from_sources("attributes", &[users, customers]).unwrap();
        // SAFETY: a jsonb object datum built by Attributes.
        let combined = unsafe { Container::of_datum(attributes.datum().unwrap()) };
        let keys: Vec<String> = combined.entries().iter().map(|(k, _)| String::from_utf8_lossy(k).into_owned()).collect();
        assert_eq!(keys, ["big", "plan", "email", "phone", "score", "nested"], "nulls, the customer id and an empty key are dropped");
        assert_eq!(attributes.text("plan").as_deref(), Some("pro"), "dims.customers wins over dims.users");
        assert_eq!(attributes.text("score").as_deref(), Some("1.10"), "numbers keep their digits");
        assert_eq!(attributes.text("big").map(|t| t.len()), Some(401), "1e400 is kept exactly");
        match combined.get("nested") {
            Some(Value::Object(nested)) => assert!(matches!(nested.get("deep"), Some(Value::Array(a)) if a.len() == 2)),
            _ => panic!("nested values are kept"),
        }
        let (found, skipped) = contact_identifiers(&attributes, None).unwrap();
        assert_eq!(found, vec![Identifier { kind: "email", value: "ann@example.com".into() }]);
        assert_eq!((skipped.len(), skipped[0].field.as_str(), skipped[0].reason.as_str()), (1, "attributes.phone", "placeholder value"));
        assert!(Attributes::from_sources("attributes", &[doc(r#"{"a": null, "customer_id": "x"}"#)]).unwrap().is_empty());
    }

    #[pg_test]
    fn merge_reasons_prefer_the_strongest_evidence() {
        let mut reasons = vec![Reason::IdentifyId, Reason::Phone, Reason::Uid, Reason::Email, Reason::DeviceId];
        reasons.sort();
        assert_eq!(reasons, vec![Reason::Uid, Reason::DeviceId, Reason::Email, Reason::Phone, Reason::IdentifyId]);
        // A profile found both by device and by email is recorded as a device merge.
        Spi::run("SELECT cdp.track_event('a', 'form', 'submit', '{\"dims\": {\"customers\": {\"email\": \"x@example.com\"}}, \"context\": {\"device_id\": \"dev\"}}')").unwrap();
        Spi::run("SELECT cdp.track_event('b', 'user', 'sign_in', '{\"dims\": {\"customers\": {\"customer_id\": \"cx\", \"email\": \"x@example.com\"}}, \"context\": {\"device_id\": \"dev\"}}')").unwrap();
        let reason =
            Spi::get_one::<String>("SELECT reason FROM cdp.merges m JOIN cdp.uids u ON u.profile_id = m.from_profile WHERE u.uid = 'a'");
        assert_eq!(reason.unwrap().as_deref(), Some("device_id"));
    }

    #[pg_test]
    fn system_attribute_writes_only_when_something_changed() {
        let noon = ts("2026-11-30 12:00:00+00");
        let stored = SystemFields { user_agent: Some("UA-1".into()), ..Default::default() };
        let state = UidState {
            own_profile: 1,
            root: 1,
            root_is_customer: false,
            last_device_id: None,
            shared: false,
            session: None,
            last_event_at: None,
            system_at: Some(noon),
            first_touch_at: Some(noon),
            stored: stored.clone(),
        };
        let other = SystemFields { user_agent: Some("UA-2".into()), ..Default::default() };
        let later = ts("2026-11-30 13:00:00+00");
        let earlier = ts("2026-11-30 11:00:00+00");
        assert_eq!(state.system_changes(&stored, false, later), (false, false), "same context: no write");
        assert_eq!(state.system_changes(&other, false, later), (true, false), "new browser, newer event");
        assert_eq!(state.system_changes(&other, false, earlier), (false, false), "an older event never overwrites");
        assert_eq!(state.system_changes(&stored, true, earlier), (false, true), "an earlier event is the new first touch");
        assert_eq!(state.system_changes(&stored, true, later), (false, false), "a later one is not");
        assert_eq!(SystemAttributes::default().last.len(), 0);
    }

    #[pg_test]
    fn the_hot_path_and_the_general_path_agree_on_what_changes_a_profile() {
        // The same rule is checked in SQL by the one-statement hot path and in
        // Rust by the batch path: an event whose stored system fields are all
        // equal appends only; any new or different field goes the general way.
        // Two UIDs in the same state, one fed through track_event, one through track_batch.
        for uid in ["h1", "h2"] {
            Spi::run(&format!(r#"SELECT cdp.track_event('{uid}', 'pageview', 'view', '{{"context": {{"user_agent": "UA-1", "ip": "10.0.0.1", "device_id": "d"}}}}')"#)).unwrap();
        }
        let writes = || {
            Spi::get_one::<i64>("SELECT n_tup_upd + n_tup_ins FROM pg_stat_xact_user_tables WHERE relid = 'cdp.profiles'::regclass")
                .unwrap()
                .unwrap_or(0)
        };
        for (payload, changes) in [
            (r#"{"context": {"user_agent": "UA-1", "ip": "10.0.0.1", "device_id": "d"}}"#, false),
            (r#"{"context": {"user_agent": "UA-1"}}"#, false),
            (r#"{}"#, false),
            (r#"{"context": {"user_agent": "UA-2"}}"#, true),
            (r#"{"context": {"user_agent": "UA-2"}}"#, false),
            (r#"{"context": {"locale": "vi"}}"#, true),
            (r#"{"context": {"page_url": "https://x.example/"}}"#, true),
            (r#"{"context": {"page_url": "https://x.example/later"}}"#, false),
        ] {
            let before = writes();
            Spi::run(&format!("SELECT cdp.track_event('h1', 'pageview', 'view', '{payload}')")).unwrap();
            let by_sql = writes() != before;
            let before = writes();
            Spi::run(&format!(
                r#"SELECT cdp.track_batch('[{{"uid": "h2", "category": "pageview", "action": "view", "payload": {payload}}}]')"#
            ))
            .unwrap();
            let by_rust = writes() != before;
            assert_eq!((by_sql, by_rust), (changes, changes), "{payload}: (track_event wrote, track_batch wrote)");
        }
    }

    fn portal_row_lock() -> Option<String> {
        // The identity lock is a row lock on the portal's row: pgrowlocks is
        // not installed, so look at the tuple's locker instead.
        Spi::get_one::<String>(
            "SELECT CASE WHEN xmax::text::bigint = txid_current() % (2^32)::bigint THEN 'locked by me' END
             FROM cdp.portal_settings WHERE portal = 'default'",
        )
        .unwrap()
    }

    #[pg_test]
    fn profile_writers_take_the_portal_lock() {
        Spi::run("SELECT cdp.track_event('w', 'a', 'b')").unwrap();
        assert_eq!(portal_row_lock().as_deref(), Some("locked by me"), "creating a profile takes the portal's identity lock");
    }

    #[pg_test]
    fn appends_take_no_lock() {
        Spi::run("SELECT cdp.track_event('w2', 'a', 'b')").unwrap();
        Spi::run("COMMIT").ok();
        let locks_before =
            Spi::get_one::<i64>("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'tuple'").unwrap();
        Spi::run("SELECT cdp.track_event('w2', 'a', 'c')").unwrap();
        let locks_after = Spi::get_one::<i64>("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'tuple'").unwrap();
        assert_eq!(locks_before, locks_after);
    }

    #[pg_test]
    fn identify_takes_the_portal_lock() {
        Spi::run("SELECT cdp.identify('r', 'cr')").unwrap();
        assert_eq!(portal_row_lock().as_deref(), Some("locked by me"));
    }

    #[pg_test]
    fn portal_settings_are_checked_key_by_key() {
        let parse = |v: serde_json::Value| PortalSettings::parse(v.as_object().unwrap()).err().map(|e| e.message);
        assert_eq!(parse(serde_json::json!({"max_payload_bytes": 2048, "identity_verification": "required"})), None);
        for (bad, key) in [
            (serde_json::json!({"max_payload_bytes": 10}), "max_payload_bytes"),
            (serde_json::json!({"max_batch_items": "lots"}), "max_batch_items"),
            (serde_json::json!({"device_linking": 1}), "device_linking"),
            (serde_json::json!({"predict_review": 1.5}), "predict_review"),
            (serde_json::json!({"identity_verification": "maybe"}), "identity_verification"),
            (serde_json::json!({"contact_linking": "sometimes"}), "contact_linking"),
            (serde_json::json!({"default_timezone": "Mars/Olympus"}), "default_timezone"),
            (serde_json::json!({"predict_weights": {"shoe_size": [0.5, 0.1]}}), "predict_weights"),
            (serde_json::json!({"max_payload_byte": 2048}), "max_payload_byte"),
        ] {
            let message = parse(bad.clone()).unwrap_or_else(|| panic!("{bad} was accepted"));
            assert!(message.contains(key), "{bad}: {message}");
        }
    }

    #[pg_test]
    fn undone_decisions_block_only_old_evidence() {
        use crate::identity::blocks::{is_blocked, Block};
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
    fn settings_are_registered_and_the_prefix_reserved() {
        assert_eq!(Spi::get_one::<String>("SHOW cdp.device_linking").unwrap().as_deref(), Some("on"));
        assert_eq!(Spi::get_one::<String>("SHOW cdp.max_payload_bytes").unwrap().as_deref(), Some("1MB"));
    }

    #[pg_test(error = "invalid configuration parameter name \"cdp.max_payload_byte\"")]
    fn a_misspelt_setting_is_an_error() {
        Spi::run("SET cdp.max_payload_byte = '2MB'").unwrap();
    }
}
