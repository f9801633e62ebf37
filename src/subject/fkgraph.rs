//! The foreign-key graph among subject tables: which keys reference a
//! subject table, the order erasure visits the tables in (children first,
//! a cycle as one component), and the SQL that matches rows by key values
//! read from another table (bound as arrays, never spliced).

pub(super) use crate::catalog::{foreign_keys_to, ForeignKey};
use crate::error::PResult;
use crate::sql::{Params, Value as SqlValue};
use pgrx::prelude::*;
use std::collections::BTreeSet;

/// Erasure's SQL over a foreign key.
impl ForeignKey {
    /// `p__.y OPERATOR(…) c__.x AND …`
    pub(super) fn join(&self) -> String {
        self.parent_cols
            .iter()
            .zip(&self.child_cols)
            .zip(&self.ops)
            .map(|((p, c), op)| format!("p__.{p} {op} c__.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    pub(super) fn on_delete_text(&self) -> &'static str {
        match self.on_delete.as_str() {
            "r" => "RESTRICT",
            "c" => "CASCADE",
            "n" => "SET NULL",
            "d" => "SET DEFAULT",
            _ => "NO ACTION",
        }
    }
}

/// The strongly connected components of the foreign-key graph among
/// subject tables (edges child → parent), in processing order: a component
/// comes before every component it references (children first); among
/// those ready, the one holding the first table in name order.
pub(super) fn components(n: usize, edges: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    // Tarjan's algorithm
    struct State<'a> {
        edges: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in s.edges[v].iter() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().expect("v is on the stack");
                s.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            comp.sort_unstable();
            s.out.push(comp);
        }
    }
    let mut s = State {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    let comps = s.out;
    let mut comp_of = vec![0; n];
    for (ci, c) in comps.iter().enumerate() {
        for &v in c {
            comp_of[v] = ci;
        }
    }
    // waiting[d] = components with an edge into d not yet placed
    let mut waiting: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); comps.len()];
    for (v, parents) in edges.iter().enumerate() {
        for &p in parents {
            if comp_of[v] != comp_of[p] {
                waiting[comp_of[p]].insert(comp_of[v]);
            }
        }
    }
    let mut placed = vec![false; comps.len()];
    let mut order = Vec::with_capacity(comps.len());
    while order.len() < comps.len() {
        let next = (0..comps.len())
            .filter(|&c| !placed[c] && waiting[c].is_empty())
            .min_by_key(|&c| comps[c][0])
            .expect("the condensation of a graph has no cycle");
        placed[next] = true;
        order.push(comps[next].clone());
        for w in waiting.iter_mut() {
            w.remove(&next);
        }
    }
    order
}

/// `EXISTS` over the key tuples in `arrays` (one array per key column, bound
/// as parameters): TRUE when the row `alias` has one of them. `alias_is_pk`:
/// the alias's columns are the referenced (parent) ones, the left operands
/// of the key's operators.
pub(super) fn key_match(
    alias: &str,
    cols: &[String],
    ops: &[String],
    arrays: &[SqlValue],
    alias_is_pk: bool,
    params: &mut Params,
) -> String {
    let unnests: Vec<String> = arrays
        .iter()
        .map(|a| format!("pg_catalog.unnest({})", params.push(a.arg())))
        .collect();
    let names: Vec<String> = (1..=arrays.len()).map(|i| format!("k{i}")).collect();
    let conds: Vec<String> = cols
        .iter()
        .zip(ops)
        .zip(&names)
        .map(|((c, op), k)| {
            if alias_is_pk {
                format!("{alias}.{c} {op} k__.{k}")
            } else {
                format!("k__.{k} {op} {alias}.{c}")
            }
        })
        .collect();
    format!(
        "EXISTS (SELECT 1 FROM ROWS FROM ({}) AS k__({}) WHERE {})",
        unnests.join(", "),
        names.join(", "),
        conds.join(" AND ")
    )
}

/// `array_agg` of each column of `cols` over the rows of `table AS alias`
/// matching `cond`, with no NULL in the key: `None` when no row matches.
pub(super) fn key_arrays(
    table: &str,
    alias: &str,
    cols: &[String],
    cond: &str,
    params: &Params,
) -> PResult<Option<Vec<SqlValue>>> {
    let aggs: Vec<String> = cols
        .iter()
        .map(|c| format!("pg_catalog.array_agg({alias}.{c})"))
        .collect();
    let not_null: Vec<String> = cols
        .iter()
        .map(|c| format!("{alias}.{c} IS NOT NULL"))
        .collect();
    let sql = format!(
        "SELECT {} FROM {table} AS {alias} WHERE ({cond}) AND {}",
        aggs.join(", "),
        not_null.join(" AND ")
    );
    Spi::connect(|c| {
        let row = c.select(&sql, Some(1), params.args())?.first();
        let mut out = Vec::with_capacity(cols.len());
        for i in 1..=cols.len() {
            match row.get::<SqlValue>(i)? {
                Some(v) => out.push(v),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    })
}

#[cfg(test)]
mod unit {
    use super::components;
    use std::collections::BTreeSet;

    fn graph(n: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
        let mut g = vec![BTreeSet::new(); n];
        for &(c, p) in edges {
            g[c].insert(p);
        }
        components(n, &g)
    }

    #[test]
    fn components_come_children_first() {
        // 0 accounts <- 1 orders <- 2 lines; 3 alone
        assert_eq!(
            graph(4, &[(1, 0), (2, 1)]),
            vec![vec![2], vec![1], vec![0], vec![3]]
        );
        // without edges: name order
        assert_eq!(graph(3, &[]), vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn cycles_are_one_component_and_do_not_block_the_others() {
        // 0 <-> 1 form a cycle; 2 references 0; 3 is referenced by 1
        let order = graph(4, &[(0, 1), (1, 0), (2, 0), (1, 3)]);
        assert_eq!(order, vec![vec![2], vec![0, 1], vec![3]]);
        // a three-table cycle with a tail
        let order = graph(5, &[(0, 1), (1, 2), (2, 0), (4, 2)]);
        assert_eq!(order, vec![vec![3], vec![4], vec![0, 1, 2]]);
    }
}
