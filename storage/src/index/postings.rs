//! Matcher evaluation: the series ids selected by a list of label matchers.
//!
//! Semantics are Prometheus' `tsdb/querier.go` `PostingsForMatchers`:
//! - the result is the intersection of every matcher's selection;
//! - a label a series lacks has the value `""`, so a matcher that matches `""` also selects the
//!   series without the label: `{a=""}` selects series lacking `a`, `{a=~"x|"}` selects series
//!   with `a="x"` or no `a`;
//! - a matcher that selects by absence or by negation (`a!="x"`, `a!~"x.*"`, `a=""`) is
//!   evaluated as the complement of a positive lookup and subtracted from the positive
//!   intersection, or from all postings when there is no positive matcher;
//! - `=~".*"` filters nothing and is skipped.
//!
//! # Cost
//! Nothing here scans series. `=` reads one postings list; a regex over a literal set
//! ([`Matcher::set_matches`]) reads only those values' postings; a regex with a literal prefix
//! ([`Matcher::prefix`]) range-scans only the values with that prefix; any other regex tests
//! each value of its label once. The intersection starts from the smallest list.

use roaring::{MultiOps, RoaringBitmap};

use super::IndexReader;
use crate::error::Result;
use crate::matcher::{MatchOp, Matcher};

/// The ids of the series selected by all `matchers` (Prometheus semantics, see the module doc).
/// With no matchers, every series is selected.
///
/// # Errors
/// Whatever the index returns (corruption of an on-disk index).
pub fn postings_for_matchers(ix: &(impl IndexReader + ?Sized), matchers: &[Matcher]) -> Result<RoaringBitmap> {
    let mut its: Vec<RoaringBitmap> = Vec::new();
    let mut not_its: Vec<RoaringBitmap> = Vec::new();
    for m in matchers {
        if m.matches_everything() {
            continue;
        }
        let matches_empty = m.matches_empty();
        let is_not = matches!(m.op, MatchOp::NotEqual | MatchOp::RegexNoMatch);
        match (is_not, matches_empty) {
            // `a!="x"`, `a!~"x.*"`: everything except the series the positive form selects.
            (true, true) => {
                let inv = m.inverse().expect("negative matcher has an inverse");
                not_its.push(postings_for_matcher(ix, &inv)?);
            }
            // `a!=""`, `a!~"x|"`: series whose value fails the positive form, i.e. matches `m`.
            (true, false) => {
                let inv = m.inverse().expect("negative matcher has an inverse");
                let p = inverse_postings_for_matcher(ix, &inv)?;
                if p.is_empty() {
                    return Ok(p);
                }
                its.push(p);
            }
            // `a=""`, `a=~"x|"`: everything except the series whose value fails `m`.
            (false, true) => not_its.push(inverse_postings_for_matcher(ix, m)?),
            // `a="x"`, `a=~"x.+"`.
            (false, false) => {
                let p = postings_for_matcher(ix, m)?;
                if p.is_empty() {
                    return Ok(p);
                }
                its.push(p);
            }
        }
    }
    let mut result = if its.is_empty() { ix.all_postings()? } else { intersect(its) };
    for n in &not_its {
        if result.is_empty() {
            break;
        }
        result -= n;
    }
    Ok(result)
}

/// Intersects postings lists, starting from the smallest so every step is as cheap as the
/// running result. The intersection of no lists is empty.
pub fn intersect(mut lists: Vec<RoaringBitmap>) -> RoaringBitmap {
    lists.sort_unstable_by_key(|b| b.len());
    let mut it = lists.into_iter();
    let Some(mut acc) = it.next() else {
        return RoaringBitmap::new();
    };
    for b in it {
        if acc.is_empty() {
            break;
        }
        acc &= b;
    }
    acc
}

/// Series whose value of `m.name` matches the positive matcher `m` (`=` or `=~`). Series lacking
/// the label are never included here (the caller handles the empty value).
fn postings_for_matcher(ix: &(impl IndexReader + ?Sized), m: &Matcher) -> Result<RoaringBitmap> {
    if let Some(set) = m.set_matches() {
        return ix.postings_union(&m.name, &set);
    }
    let prefix = m.prefix().unwrap_or("");
    ix.postings_matching(&m.name, prefix, &mut |v| m.matches(v))
}

/// Series that carry label `m.name` with a value that `m` rejects.
fn inverse_postings_for_matcher(ix: &(impl IndexReader + ?Sized), m: &Matcher) -> Result<RoaringBitmap> {
    ix.postings_matching(&m.name, "", &mut |v| !m.matches(v))
}

/// Unions many postings lists at once (roaring's multi-way union is faster than folding).
pub fn union_all(lists: Vec<RoaringBitmap>) -> RoaringBitmap {
    lists.union()
}
