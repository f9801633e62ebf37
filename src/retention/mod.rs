//! The retention engine: policies and the runs that apply them.
//!
//! | file        | owns                                                          |
//! |-------------|---------------------------------------------------------------|
//! | `filters`   | row_filter / hold filter validation (analyzer + allow-list)   |
//! | `holds`     | legal holds and the predicate of each table's holds           |
//! | `anonymize` | per-column anonymization SQL (`anonymize::plan`)              |
//! | `policy`    | the policy store: `add/alter/drop_retention_policy`, loading  |
//! | `validate`  | the checks shared by a policy's creation and a run's start    |
//! | `statement` | the SQL of every batch shape, parameters bound (`Params`)     |
//! | `run`       | the run state machine (`Run`), `run_retention`                |
//!
//! Erasure (`crate::subject`) uses `holds` and `anonymize` too.

pub mod anonymize;
pub mod filters;
pub mod holds;
pub mod policy;
pub mod run;
pub mod statement;
pub mod validate;
