//! Errors the extension reports to its callers, each with the SQLSTATE a
//! PostgreSQL user expects. Pure modules return `CdpError`; the SQL-facing
//! layer turns it into an ERROR with `raise`.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 22004 null_value_not_allowed
    NullValue,
    /// 22023 invalid_parameter_value
    InvalidValue,
    /// 22001 string_data_right_truncation
    TooLong,
    /// 22007 invalid_datetime_format
    InvalidDatetime,
    /// 22008 datetime_field_overflow
    DatetimeOverflow,
    /// 54000 program_limit_exceeded
    LimitExceeded,
    /// 55000 object_not_in_prerequisite_state
    NotInState,
    /// 42501 insufficient_privilege
    InsufficientPrivilege,
    /// 55P03 lock_not_available
    LockNotAvailable,
    /// 42710 duplicate_object
    DuplicateObject,
    /// 42704 undefined_object
    UndefinedObject,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdpError {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

pub type CdpResult<T> = Result<T, CdpError>;

impl CdpError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CdpError { kind, message: message.into(), hint: None }
    }

    pub fn null(field: &str) -> Self {
        Self::new(ErrorKind::NullValue, format!("{field} must not be NULL"))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidValue, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn sqlstate(&self) -> &'static str {
        match self.kind {
            ErrorKind::NullValue => "22004",
            ErrorKind::InvalidValue => "22023",
            ErrorKind::TooLong => "22001",
            ErrorKind::InvalidDatetime => "22007",
            ErrorKind::DatetimeOverflow => "22008",
            ErrorKind::LimitExceeded => "54000",
            ErrorKind::NotInState => "55000",
            ErrorKind::InsufficientPrivilege => "42501",
            ErrorKind::LockNotAvailable => "55P03",
            ErrorKind::DuplicateObject => "42710",
            ErrorKind::UndefinedObject => "42704",
        }
    }

    fn error_code(&self) -> PgSqlErrorCode {
        match self.kind {
            ErrorKind::NullValue => PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            ErrorKind::InvalidValue => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            ErrorKind::TooLong => PgSqlErrorCode::ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
            ErrorKind::InvalidDatetime => PgSqlErrorCode::ERRCODE_INVALID_DATETIME_FORMAT,
            ErrorKind::DatetimeOverflow => PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
            ErrorKind::LimitExceeded => PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            ErrorKind::NotInState => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            ErrorKind::InsufficientPrivilege => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            ErrorKind::LockNotAvailable => PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
            ErrorKind::DuplicateObject => PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            ErrorKind::UndefinedObject => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        }
    }

    /// Reports the error to PostgreSQL; the current transaction is aborted,
    /// so nothing the call wrote survives.
    pub fn raise(&self) -> ! {
        let mut report = ErrorReport::new(self.error_code(), self.message.clone(), "cdp_identity");
        if let Some(hint) = &self.hint {
            report = report.set_hint(hint.clone());
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }
}

/// Unwraps a result or raises its error as a PostgreSQL ERROR.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for CdpResult<T> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.raise(),
        }
    }
}
