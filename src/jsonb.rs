//! Reading PostgreSQL's binary jsonb in place.
//!
//! Payloads and batches arrive as jsonb; the extension needs a few fields of
//! them (the context, the identity claim) and stores the rest as it came.
//! pgrx's `JsonB` argument type would print every argument to text and parse
//! it again with serde_json: a copy of the whole payload per call, a
//! recursion limit that aborts the call with an internal error on deeply
//! nested input, and numbers that lose their digits (`1.10`, `1e400`). Here
//! the fields are looked up in the binary value with PostgreSQL's own jsonb
//! functions, and sub-values are handed to statements as jsonb datums, so
//! what is stored is exactly what was sent.

use pgrx::callconv::{Arg, ArgAbi};
use pgrx::datum::{DatumWithOid, FromDatum};
use pgrx::nullable::Nullable;
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin};
use std::borrow::Cow;
use std::cell::OnceCell;
use std::marker::PhantomData;

/// A jsonb argument of a public function, read in place. It is detoasted
/// (decompressed, fetched from TOAST) only when first read, so its size can
/// be checked against a limit before the value is copied into memory.
pub struct JsonbArg {
    raw: pg_sys::Datum,
    detoasted: OnceCell<*mut pg_sys::Jsonb>,
}

impl JsonbArg {
    /// The value in its full (4-byte header) form: the container must be aligned to be read.
    fn jsonb(&self) -> *mut pg_sys::Jsonb {
        // SAFETY: `raw` is a jsonb datum that lives for the whole call.
        *self.detoasted.get_or_init(|| unsafe { pg_sys::pg_detoast_datum(self.raw.cast_mut_ptr()) }.cast())
    }

    /// The top-level value.
    pub fn root(&self) -> Container<'_> {
        // SAFETY: a detoasted jsonb (4-byte header) lives for the whole call.
        unsafe { Container::of_datum(pg_sys::Datum::from(self.jsonb())) }
    }

    /// The argument as a statement parameter, unchanged.
    pub fn as_arg(&self) -> DatumWithOid<'_> {
        // SAFETY: the datum is a jsonb value that lives for the whole call.
        unsafe { DatumWithOid::new(pg_sys::Datum::from(self.jsonb()), pg_sys::JSONBOID) }
    }

    /// The JSON text of the value (for small, non-hot inputs such as settings).
    pub fn to_json_text(&self) -> String {
        // SAFETY: JsonbToCString prints a live container into a palloc'd buffer.
        unsafe {
            let jsonb = self.jsonb();
            let text = pg_sys::JsonbToCString(std::ptr::null_mut(), &raw mut (*jsonb).root, self.size() as i32);
            std::ffi::CStr::from_ptr(text).to_string_lossy().into_owned()
        }
    }

    /// Size in bytes of the value once detoasted (read from its header, without detoasting it).
    pub fn size(&self) -> usize {
        // SAFETY: a jsonb varlena datum, possibly toasted.
        unsafe { pg_sys::toast_raw_datum_size(self.raw) }.saturating_sub(pg_sys::VARHDRSZ)
    }
}

impl FromDatum for JsonbArg {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        if is_null {
            return None;
        }
        Some(JsonbArg { raw: datum, detoasted: OnceCell::new() })
    }
}

// SAFETY: unboxed with FromDatum exactly like pgrx's own by-reference types.
unsafe impl<'fcx> ArgAbi<'fcx> for JsonbArg {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe { arg.unbox_arg_using_from_datum() }.unwrap_or_else(|| panic!("argument {index} must not be null"))
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum() }.into()
    }
}

// SAFETY: the SQL type is jsonb, which is what FromDatum reads.
unsafe impl SqlTranslatable for JsonbArg {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(JsonbArg);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}

/// An object, an array or a top-level scalar inside a jsonb value.
#[derive(Clone, Copy)]
pub struct Container<'a> {
    ptr: *mut pg_sys::JsonbContainer,
    /// Bytes of the container (what a copy of it takes).
    len: i32,
    _value: PhantomData<&'a pg_sys::Jsonb>,
}

/// One jsonb value, borrowed from its container.
#[derive(Clone, Copy)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Number(Number<'a>),
    String(&'a [u8]),
    Object(Container<'a>),
    Array(Container<'a>),
}

/// A JSON number as PostgreSQL keeps it (exact decimal).
#[derive(Clone, Copy)]
pub struct Number<'a> {
    numeric: pg_sys::Numeric,
    _value: PhantomData<&'a pg_sys::Jsonb>,
}

impl<'a> Container<'a> {
    fn new(ptr: *mut pg_sys::JsonbContainer, len: i32) -> Self {
        Container { ptr, len, _value: PhantomData }
    }

    /// The top-level container of a jsonb datum in its full (4-byte header) form.
    ///
    /// # Safety
    /// `datum` must be such a jsonb value, alive for `'a`.
    pub unsafe fn of_datum(datum: pg_sys::Datum) -> Self {
        let jsonb: *mut pg_sys::Jsonb = datum.cast_mut_ptr();
        let len = unsafe { pgrx::varlena::varsize_any_exhdr(jsonb.cast()) } as i32;
        Container::new(unsafe { &raw mut (*jsonb).root }, len)
    }

    fn header(&self) -> u32 {
        // SAFETY: ptr points at a live container.
        unsafe { (*self.ptr).header }
    }

    pub fn is_object(&self) -> bool {
        self.header() & pg_sys::JB_FOBJECT != 0
    }

    pub fn is_array(&self) -> bool {
        self.header() & pg_sys::JB_FARRAY != 0 && self.header() & pg_sys::JB_FSCALAR == 0
    }

    /// Bytes of the container as stored.
    pub fn byte_len(&self) -> usize {
        self.len.max(0) as usize
    }

    /// Elements of an array, or pairs of an object.
    pub fn len(&self) -> usize {
        (self.header() & pg_sys::JB_CMASK) as usize
    }

    /// The whole container as one value (a top-level scalar as that scalar).
    pub fn as_value(&self) -> Value<'a> {
        if self.is_object() {
            Value::Object(*self)
        } else if self.is_array() {
            Value::Array(*self)
        } else {
            self.element(0).unwrap_or(Value::Null)
        }
    }

    /// The value of `key` in an object; None when absent or not an object.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        if !self.is_object() {
            return None;
        }
        let mut found = pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvNull, val: pg_sys::JsonbValue__bindgen_ty_1 { boolean: false } };
        // SAFETY: a live object container; the key is read, not kept; the
        // result points into the container (strings, nested values) or is a
        // scalar copied into `found`.
        let result = unsafe { pg_sys::getKeyJsonValueFromContainer(self.ptr, key.as_ptr().cast(), key.len() as i32, &mut found) };
        (!result.is_null()).then(|| unsafe { Value::from_raw(&found) })
    }

    /// Element `i` of an array (or the scalar of a top-level scalar).
    pub fn element(&self, i: usize) -> Option<Value<'a>> {
        if i >= self.len() || self.is_object() {
            return None;
        }
        // SAFETY: a live array container and an index inside it; the result is
        // a palloc'd copy whose pointers point into the container.
        let result = unsafe { pg_sys::getIthJsonbValueFromContainer(self.ptr, i as u32) };
        (!result.is_null()).then(|| unsafe { Value::from_raw(&*result) })
    }

    /// The pairs of an object, in jsonb's key order.
    pub fn entries(&self) -> Vec<(&'a [u8], Value<'a>)> {
        let mut pairs = Vec::with_capacity(self.len());
        if !self.is_object() {
            return pairs;
        }
        // SAFETY: the iterator walks a live container; skipNested keeps
        // nested containers as binary values pointing into it.
        unsafe {
            let mut it = pg_sys::JsonbIteratorInit(self.ptr);
            let mut v = std::mem::zeroed::<pg_sys::JsonbValue>();
            let mut key: Option<&'a [u8]> = None;
            loop {
                match pg_sys::JsonbIteratorNext(&mut it, &mut v, true) {
                    pg_sys::JsonbIteratorToken::WJB_DONE => break,
                    pg_sys::JsonbIteratorToken::WJB_KEY => key = Some(bytes_of(&v)),
                    pg_sys::JsonbIteratorToken::WJB_VALUE => {
                        if let Some(k) = key.take() {
                            pairs.push((k, Value::from_raw(&v)));
                        }
                    }
                    _ => {}
                }
            }
        }
        pairs
    }

    /// How deeply containers nest inside this one (1 for a flat object),
    /// counted up to `limit` + 1 (the walk stops there).
    pub fn depth(&self, limit: usize) -> usize {
        let (mut depth, mut deepest) = (0usize, 0usize);
        // SAFETY: a walk of a live container with PostgreSQL's iterator.
        unsafe {
            let mut it = pg_sys::JsonbIteratorInit(self.ptr);
            let mut v = std::mem::zeroed::<pg_sys::JsonbValue>();
            loop {
                match pg_sys::JsonbIteratorNext(&mut it, &mut v, false) {
                    pg_sys::JsonbIteratorToken::WJB_DONE => break,
                    pg_sys::JsonbIteratorToken::WJB_BEGIN_ARRAY | pg_sys::JsonbIteratorToken::WJB_BEGIN_OBJECT => {
                        depth += 1;
                        deepest = deepest.max(depth);
                        if deepest > limit {
                            break;
                        }
                    }
                    pg_sys::JsonbIteratorToken::WJB_END_ARRAY | pg_sys::JsonbIteratorToken::WJB_END_OBJECT => depth -= 1,
                    _ => {}
                }
            }
        }
        deepest
    }

    /// This container as a jsonb datum of its own (a copy), for a statement.
    pub fn to_datum(self) -> pg_sys::Datum {
        let mut v = pg_sys::JsonbValue {
            type_: pg_sys::jbvType::jbvBinary,
            val: pg_sys::JsonbValue__bindgen_ty_1 {
                binary: pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_4 { len: self.len, data: self.ptr },
            },
        };
        // SAFETY: JsonbValueToJsonb copies a binary value into a new palloc'd jsonb.
        pg_sys::Datum::from(unsafe { pg_sys::JsonbValueToJsonb(&mut v) })
    }
}

impl<'a> Value<'a> {
    /// # Safety
    /// `v` must be a value read from a container that lives for `'a`.
    unsafe fn from_raw(v: &pg_sys::JsonbValue) -> Value<'a> {
        match v.type_ {
            pg_sys::jbvType::jbvString => Value::String(unsafe { bytes_of(v) }),
            pg_sys::jbvType::jbvNumeric => Value::Number(Number { numeric: unsafe { v.val.numeric }, _value: PhantomData }),
            pg_sys::jbvType::jbvBool => Value::Bool(unsafe { v.val.boolean }),
            pg_sys::jbvType::jbvBinary => {
                let c = Container::new(unsafe { v.val.binary.data }, unsafe { v.val.binary.len });
                if c.is_object() {
                    Value::Object(c)
                } else {
                    Value::Array(c)
                }
            }
            _ => Value::Null,
        }
    }

    /// The value as PostgreSQL's in-memory form, for building new jsonb.
    fn to_raw(self) -> pg_sys::JsonbValue {
        use pg_sys::JsonbValue__bindgen_ty_1 as V;
        let (type_, val) = match self {
            Value::Null => (pg_sys::jbvType::jbvNull, V { boolean: false }),
            Value::Bool(b) => (pg_sys::jbvType::jbvBool, V { boolean: b }),
            Value::Number(n) => (pg_sys::jbvType::jbvNumeric, V { numeric: n.numeric }),
            Value::String(bytes) => (
                pg_sys::jbvType::jbvString,
                V { string: pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_1 { len: bytes.len() as i32, val: bytes.as_ptr() as *mut _ } },
            ),
            Value::Object(c) | Value::Array(c) => {
                (pg_sys::jbvType::jbvBinary, V { binary: pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_4 { len: c.len, data: c.ptr } })
            }
        };
        pg_sys::JsonbValue { type_, val }
    }

    /// A string's text (invalid UTF-8 cannot occur in a UTF-8 database; it
    /// would be replaced rather than fail).
    pub fn as_text(&self) -> Option<Cow<'a, str>> {
        match self {
            Value::String(bytes) => Some(String::from_utf8_lossy(bytes)),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// What kind of JSON value this is, for messages ("a string", "an object").
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

impl Number<'_> {
    /// The number as PostgreSQL prints it (`1.10` stays `1.10`).
    pub fn text(&self) -> String {
        // SAFETY: numeric_out of a live numeric returns a palloc'd C string.
        unsafe {
            let text = pgrx::direct_function_call::<&std::ffi::CStr>(pg_sys::numeric_out, &[Some(pg_sys::Datum::from(self.numeric))]);
            text.map(|c| c.to_string_lossy().into_owned()).unwrap_or_default()
        }
    }

    /// The number as a float (infinite when it does not fit).
    pub fn as_f64(&self) -> f64 {
        self.text().parse::<f64>().unwrap_or(f64::NAN)
    }
}

/// The bytes of a string value (not NUL-terminated).
unsafe fn bytes_of<'a>(v: &pg_sys::JsonbValue) -> &'a [u8] {
    let s = unsafe { v.val.string };
    if s.len <= 0 || s.val.is_null() {
        return &[];
    }
    unsafe { std::slice::from_raw_parts(s.val.cast::<u8>(), s.len as usize) }
}

/// A new jsonb object of these pairs, as a datum owned by the current call.
/// Values are copied as they are (nested ones too); of two equal keys the
/// later wins, as in jsonb input.
pub fn object_datum(pairs: &[(&[u8], Value<'_>)]) -> pg_sys::Datum {
    use pg_sys::JsonbIteratorToken::{WJB_BEGIN_OBJECT, WJB_END_OBJECT, WJB_KEY, WJB_VALUE};
    // SAFETY: pushJsonbValue builds an in-memory value from values that live
    // for the call; JsonbValueToJsonb serializes it into a new palloc'd jsonb.
    unsafe {
        let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
        pg_sys::pushJsonbValue(&mut state, WJB_BEGIN_OBJECT, std::ptr::null_mut());
        for (key, value) in pairs {
            let mut key = Value::String(key).to_raw();
            pg_sys::pushJsonbValue(&mut state, WJB_KEY, &mut key);
            let mut value = value.to_raw();
            pg_sys::pushJsonbValue(&mut state, WJB_VALUE, &mut value);
        }
        let object = pg_sys::pushJsonbValue(&mut state, WJB_END_OBJECT, std::ptr::null_mut());
        pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(object))
    }
}

/// A jsonb value parsed from JSON text (`jsonb_in`), for tests.
#[cfg(any(test, feature = "pg_test"))]
pub fn parse_text(text: &str) -> pg_sys::Datum {
    let cstring = std::ffi::CString::new(text).expect("JSON text has no NUL byte");
    // SAFETY: jsonb_in takes a C string and returns a jsonb datum (or raises 22P02).
    let datum = unsafe { pgrx::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(cstring.as_ptr()))]) };
    datum.expect("jsonb_in returns a value")
}
