//! Small SPI helpers: queries that may return no row.
//!
//! pgrx's `Spi::get_one` treats an empty result as an error; most catalog
//! lookups here mean "absent" by an empty result, so they go through [`opt`].
//! Lists of rows go through [`rows`].

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
