//! The parameters of one generated statement, the way pg_graphql's
//! `ParamContext` collects them: each value pushed gets the next `$n`, and
//! the statement's text refers to it only through the placeholder `push`
//! returns, so no statement numbers its placeholders by hand and no value is
//! spliced into SQL text. Each value keeps its type (`DatumWithOid`); a
//! value sent in another type's text form (a `tid` as `'(b,0)'`) is cast
//! where it is used ([`Params::push_as`]).

use pgrx::datum::DatumWithOid;

#[derive(Default)]
pub struct Params {
    args: Vec<DatumWithOid<'static>>,
}

impl Params {
    /// Add a value; returns its placeholder (`$n`).
    pub fn push(&mut self, value: impl Into<DatumWithOid<'static>>) -> String {
        self.args.push(value.into());
        format!("${}", self.args.len())
    }

    /// Add a value used as SQL type `sql_type` (schema-qualified); returns
    /// `CAST($n AS sql_type)`.
    pub fn push_as(&mut self, value: impl Into<DatumWithOid<'static>>, sql_type: &str) -> String {
        format!("CAST({} AS {sql_type})", self.push(value))
    }

    /// The values, in placeholder order, for SPI.
    pub fn args(&self) -> &[DatumWithOid<'static>] {
        &self.args
    }
}
