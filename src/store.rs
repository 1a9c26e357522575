//! The SPI edge: every statement the extension runs is a fixed text that is
//! planned once per backend and kept (`SPI_keepplan`), so the hot path pays
//! for execution only; PostgreSQL re-plans kept statements by itself when the
//! tables they use change. Rows are read one way: `Rows` and `Row`, columns
//! by name, with a typed value or a clear internal error (a decoding failure
//! is a bug, never a silent default). The identity lock is the portal's
//! (`portal::lock`).

use pgrx::datum::{DatumWithOid, FromDatum, IntoDatum};
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiHeapTupleData, SpiTupleTable};
use pgrx::{pg_sys, PgOid};
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    static PLANS: RefCell<HashMap<usize, OwnedPreparedStatement>> = RefCell::new(HashMap::new());
}

/// Runs one of the extension's statements with its arguments.
pub fn exec<'conn>(client: &mut SpiClient<'conn>, sql: &'static str, args: &[DatumWithOid]) -> Rows<'conn> {
    let key = sql.as_ptr() as usize;
    let table = PLANS.with(|plans| {
        let mut plans = plans.borrow_mut();
        let plan = plans.entry(key).or_insert_with(|| {
            let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
            client.prepare_mut(sql, &types).unwrap_or_else(|e| panic!("cdp_identity: cannot prepare statement: {e}\n{sql}")).keep()
        });
        client.update(&*plan, None, args).unwrap_or_else(|e| panic!("cdp_identity: statement failed: {e}\n{sql}"))
    });
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
