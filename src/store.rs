//! The SPI edge: every statement the extension runs is a fixed text that is
//! planned once per backend and kept (`SPI_keepplan`), so the hot path pays
//! for execution only. PostgreSQL re-plans kept statements by itself when the
//! tables they use change.

use pgrx::datum::{DatumWithOid, FromDatum, IntoDatum};
use pgrx::pg_sys;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use pgrx::PgOid;
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    static PLANS: RefCell<HashMap<usize, OwnedPreparedStatement>> = RefCell::new(HashMap::new());
}

/// Runs one of the extension's statements with its arguments.
pub fn exec<'conn>(client: &mut SpiClient<'conn>, sql: &'static str, args: &[DatumWithOid]) -> SpiTupleTable<'conn> {
    let key = sql.as_ptr() as usize;
    PLANS.with(|plans| {
        let mut plans = plans.borrow_mut();
        if !plans.contains_key(&key) {
            let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
            let plan = client
                .prepare_mut(sql, &types)
                .unwrap_or_else(|e| panic!("cdp_identity: cannot prepare statement: {e}"))
                .keep();
            plans.insert(key, plan);
        }
        let plan = &plans[&key];
        client.update(plan, None, args).unwrap_or_else(|e| panic!("cdp_identity: statement failed: {e}"))
    })
}

/// The first column of the first row, if there is a row and it is not NULL.
pub fn first_value<T: FromDatum + IntoDatum>(table: SpiTupleTable<'_>) -> Option<T> {
    if table.is_empty() {
        return None;
    }
    table.first().get::<T>(1).unwrap_or_else(|e| panic!("cdp_identity: unexpected result: {e}"))
}

/// Column `ordinal` (1-based) of the current row.
pub fn column<T: FromDatum + IntoDatum>(row: &pgrx::spi::SpiHeapTupleData<'_>, ordinal: usize) -> Option<T> {
    row.get::<T>(ordinal).unwrap_or_else(|e| panic!("cdp_identity: unexpected result: {e}"))
}

/// Advisory lock key (`pg_advisory_xact_lock(int, int)`, held until the
/// transaction ends). Identity decisions (identify, merges, reassignments) take the identity
/// lock exclusively; events that change profile state take it shared. Events
/// that only append to the timeline take no lock at all.
const IDENTITY_LOCK: (i32, i32) = (0x4344_5001, 0);

/// Every identity decision runs alone, so it sees and changes a consistent
/// set of profiles; this is what makes concurrent calls deadlock-free.
pub fn lock_identity_exclusive(client: &mut SpiClient<'_>) {
    exec(client, "SELECT pg_catalog.pg_advisory_xact_lock($1, $2)", &[IDENTITY_LOCK.0.into(), IDENTITY_LOCK.1.into()]);
}

/// Profile writes of events run concurrently with each other, never with an
/// identity decision.
pub fn lock_identity_shared(client: &mut SpiClient<'_>) {
    exec(client, "SELECT pg_catalog.pg_advisory_xact_lock_shared($1, $2)", &[IDENTITY_LOCK.0.into(), IDENTITY_LOCK.1.into()]);
}

/// A jsonb argument of the calling function, detoasted once, to hand to
/// statements as it is (no text round trip, no second parse).
///
/// # Safety
/// `fcinfo` must be the current call's and argument `n` must be jsonb.
pub unsafe fn jsonb_argument(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Option<pg_sys::Datum> {
    let datum = unsafe { pgrx::fcinfo::pg_getarg_datum(fcinfo, n) }?;
    Some(pg_sys::Datum::from(unsafe { pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr()) }))
}

/// Size in bytes of a jsonb datum's data.
pub fn jsonb_size(datum: pg_sys::Datum) -> usize {
    // SAFETY: a detoasted jsonb varlena from `jsonb_argument`.
    unsafe { pgrx::varlena::varsize_any_exhdr(datum.cast_mut_ptr()) }
}

/// A jsonb datum as a statement argument.
pub fn jsonb_arg<'a>(datum: pg_sys::Datum) -> DatumWithOid<'a> {
    // SAFETY: the datum is a jsonb value that lives for the whole call.
    unsafe { DatumWithOid::new(datum, pg_sys::JSONBOID) }
}

/// The current transaction's start time (what now() returns).
pub fn transaction_start() -> pgrx::datum::TimestampWithTimeZone {
    // SAFETY: plain read of the transaction's start time.
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    pgrx::datum::TimestampWithTimeZone::try_from(now).expect("the transaction start time is a valid timestamptz")
}
