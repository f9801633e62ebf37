//! Small SPI helpers: queries that may return no row, statement parameters,
//! raw values carried from one statement to another.
//!
//! pgrx's `Spi::get_one` treats an empty result as an error; most catalog
//! lookups here mean "absent" by an empty result, so they go through [`opt`].
//! Lists of rows go through [`rows`]. Generated statements never splice a
//! value into their text: [`Params`] collects each value and hands back its
//! `$n`. [`Value`] is a value of any type read by one statement and bound,
//! unchanged, as a parameter of another (e.g. foreign-key columns read as
//! one table's owner and matched as another's).

mod params;
pub mod subxact;

pub use params::Params;

use crate::error::PResult;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{SpiError, SpiHeapTupleData};

/// First column of the first row, or `None` when there is no row (or NULL).
pub fn opt<T: FromDatum + IntoDatum>(query: &str, args: &[DatumWithOid]) -> PResult<Option<T>> {
    Spi::connect(|c| {
        let rows = c.select(query, Some(1), args)?;
        match rows.into_iter().next() {
            Some(row) => Ok(row.get::<T>(1)?),
            None => Ok(None),
        }
    })
}

/// Every row of a read-only query, each made into a value by `f`.
pub fn rows<T>(
    query: &str,
    args: &[DatumWithOid],
    mut f: impl FnMut(&SpiHeapTupleData<'_>) -> Result<T, SpiError>,
) -> PResult<Vec<T>> {
    Spi::connect(|c| {
        let rows = c.select(query, None, args)?;
        Ok(rows.map(|r| f(&r)).collect::<Result<Vec<_>, _>>()?)
    })
}

/// Like [`opt`] for a statement that writes (`INSERT/UPDATE/DELETE …
/// RETURNING`): SPI runs it read-write even while the transaction has not
/// written anything yet (pgrx runs `select` read-only until then, which makes
/// PostgreSQL refuse the statement).
pub fn opt_mut<T: FromDatum + IntoDatum>(query: &str, args: &[DatumWithOid]) -> PResult<Option<T>> {
    Spi::connect_mut(|c| {
        let rows = c.update(query, None, args)?;
        match rows.into_iter().next() {
            Some(row) => Ok(row.get::<T>(1)?),
            None => Ok(None),
        }
    })
}

/// A non-NULL value of any type, copied out of an SPI result into the
/// transaction's memory, to be bound as a parameter of a later statement
/// (with its own type: no text round trip, no type I/O function runs).
#[derive(Clone, Copy, Debug)]
pub struct Value {
    datum: pg_sys::Datum,
    type_oid: pg_sys::Oid,
}

impl Value {
    /// The value as a statement parameter, with its own type.
    pub fn arg(self) -> DatumWithOid<'static> {
        unsafe { DatumWithOid::new(self, self.type_oid) }
    }
}

impl FromDatum for Value {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null || typoid == pg_sys::Oid::INVALID {
            return None;
        }
        // copy into the current context (pgrx switches to the one above
        // SPI's before calling this), detoasted
        let mut typlen: i16 = 0;
        let mut typbyval = false;
        pg_sys::get_typlenbyval(typoid, &mut typlen, &mut typbyval);
        let datum = if typbyval {
            datum
        } else if typlen == -1 {
            pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(datum.cast_mut_ptr()))
        } else {
            // fixed length by reference, or a C string (-2)
            let src = datum.cast_mut_ptr::<u8>();
            let len = if typlen == -2 {
                std::ffi::CStr::from_ptr(src.cast())
                    .to_bytes_with_nul()
                    .len()
            } else {
                typlen as usize
            };
            let dst = pg_sys::palloc(len).cast::<u8>();
            std::ptr::copy_nonoverlapping(src, dst, len);
            pg_sys::Datum::from(dst)
        };
        Some(Value {
            datum,
            type_oid: typoid,
        })
    }
}

impl IntoDatum for Value {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.datum)
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::ANYELEMENTOID
    }

    fn is_compatible_with(_other: pg_sys::Oid) -> bool {
        true
    }
}
