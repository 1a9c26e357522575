//! The SPI edge: every statement the extension runs is a fixed text that is
//! prepared once per backend and kept (`SPI_keepplan`), so the hot path pays
//! for execution only. PostgreSQL re-plans kept statements when the tables
//! they use are analyzed, but not as they grow: a plan made while they were
//! empty (every index a tie) would stay, and can read a whole portal per
//! call. So each statement is prepared again after 64 executions, then each
//! time its count reaches the next power of 4 (a handful of times in a
//! backend's life). Rows are read one way: `Rows` and `Row`, columns
//! by name, with a typed value or a clear internal error (a decoding failure
//! is a bug, never a silent default). The identity lock is the portal's
//! (`portal::lock`).

use pgrx::datum::{DatumWithOid, FromDatum, IntoDatum};
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiHeapTupleData, SpiTupleTable};
use pgrx::{pg_sys, PgOid};
use std::cell::RefCell;
use std::collections::HashMap;

/// A kept statement and how often this backend ran it since it was prepared.
struct Kept {
    plan: OwnedPreparedStatement,
    runs: u64,
}

thread_local! {
    static PLANS: RefCell<HashMap<usize, Kept>> = RefCell::new(HashMap::new());
}

/// Whether a statement run `runs` times is prepared again before its next run.
fn replan_after(runs: u64) -> bool {
    runs >= 64 && runs.is_power_of_two() && runs.trailing_zeros().is_multiple_of(2)
}

/// Runs one of the extension's statements with its arguments.
pub fn exec<'conn>(client: &mut SpiClient<'conn>, sql: &'static str, args: &[DatumWithOid]) -> Rows<'conn> {
    let key = sql.as_ptr() as usize;
    let table = PLANS.with(|plans| {
        let mut plans = plans.borrow_mut();
        let mut runs = 0;
        if let Some(kept) = plans.get(&key) {
            runs = kept.runs;
            if replan_after(runs) {
                plans.remove(&key); // (frees the plan)
            }
        }
        let kept = plans.entry(key).or_insert_with(|| {
            let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
            let plan = client.prepare_mut(sql, &types).unwrap_or_else(|e| panic!("cdp_identity: cannot prepare statement: {e}\n{sql}"));
            Kept { plan: plan.keep(), runs }
        });
        kept.runs += 1;
        client.update(&kept.plan, None, args).unwrap_or_else(|e| panic!("cdp_identity: statement failed: {e}\n{sql}"))
    });
    Rows { table, sql }
}

/// Runs one of the extension's rare statements (an undo, an erasure) planned
/// for its arguments every time, nothing kept: planning costs little next to
/// such a call, and a plan kept from when the tables were empty could stay
/// for the backend's life and read a whole portal.
pub fn exec_unkept<'conn>(client: &mut SpiClient<'conn>, sql: &'static str, args: &[DatumWithOid]) -> Rows<'conn> {
    let table = client.update(sql, None, args).unwrap_or_else(|e| panic!("cdp_identity: statement failed: {e}\n{sql}"));
    Rows { table, sql }
}

/// The rows a statement returned.
pub struct Rows<'conn> {
    table: SpiTupleTable<'conn>,
    sql: &'static str,
}

/// One row, read by column name.
pub struct Row<'conn> {
    tuple: SpiHeapTupleData<'conn>,
    sql: &'static str,
}

impl<'conn> Rows<'conn> {
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The only (or first) row of a statement that always returns one.
    pub fn one(self) -> Row<'conn> {
        let sql = self.sql;
        self.optional().unwrap_or_else(|| panic!("cdp_identity: a statement returned no row\n{sql}"))
    }

    /// The first row, if there is one.
    pub fn optional(mut self) -> Option<Row<'conn>> {
        let sql = self.sql;
        self.table.next().map(|tuple| Row { tuple, sql })
    }

    pub fn rows(self) -> impl Iterator<Item = Row<'conn>> {
        let sql = self.sql;
        self.table.map(move |tuple| Row { tuple, sql })
    }
}

impl Row<'_> {
    /// A column that may be NULL.
    pub fn get<T: FromDatum + IntoDatum>(&self, name: &str) -> Option<T> {
        self.tuple.get_by_name::<T, _>(name).unwrap_or_else(|e| panic!("cdp_identity: cannot read column {name}: {e}\n{}", self.sql))
    }

    /// A column that is never NULL.
    pub fn value<T: FromDatum + IntoDatum>(&self, name: &str) -> T {
        self.get(name).unwrap_or_else(|| panic!("cdp_identity: column {name} is NULL\n{}", self.sql))
    }
}

/// A jsonb datum (owned by the current call) as a statement argument.
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

#[cfg(test)]
mod replan_tests {
    use super::replan_after;

    #[test]
    fn a_statement_is_prepared_again_at_64_then_at_each_power_of_4() {
        let at: Vec<u64> = (0..2_000_000).filter(|&n| replan_after(n)).collect();
        assert_eq!(at, vec![64, 256, 1024, 4096, 16384, 65536, 262144, 1048576]);
    }
}
