//! Model-based tests: [`MemIndex`] (and, through [`check_reader`], any [`IndexReader`]) against
//! a naive model that evaluates matchers by brute force over a `Vec` of label sets.

use std::sync::Arc;

use proptest::prelude::*;
use roaring::RoaringBitmap;

use super::*;
use crate::labels::Labels;
use crate::matcher::{MatchOp, Matcher};

/// Brute force: the ids of `sets` (id = position) selected by every matcher, a missing label
/// tested as `""`.
pub(crate) fn model_select(sets: &[Labels], matchers: &[Matcher]) -> RoaringBitmap {
    sets.iter()
        .enumerate()
        .filter(|(_, l)| matchers.iter().all(|m| m.matches(l.get(&m.name).unwrap_or(""))))
        .map(|(i, _)| i as u32)
        .collect()
}

/// Checks every question of [`IndexReader`] against the model for an index holding `sets`
/// under ids `0..sets.len()`, minus `deleted`.
pub(crate) fn check_reader(ix: &dyn DynReader, sets: &[Labels], deleted: &RoaringBitmap, matchers: &[Vec<Matcher>]) {
    let live: Vec<(u32, &Labels)> =
        sets.iter().enumerate().map(|(i, l)| (i as u32, l)).filter(|(i, _)| !deleted.contains(*i)).collect();
    let all: RoaringBitmap = live.iter().map(|(i, _)| *i).collect();
    assert_eq!(ix.all(), all, "all postings");
    let mut names: Vec<String> = live.iter().flat_map(|(_, l)| l.iter().map(|l| l.name.clone())).collect();
    names.sort();
    names.dedup();
    assert_eq!(ix.names(), names, "label names");
    for n in &names {
        let mut values: Vec<String> = live.iter().filter_map(|(_, l)| l.get(n).map(str::to_string)).collect();
        values.sort();
        values.dedup();
        assert_eq!(ix.values(n), values, "values of {n}");
        for v in &values {
            let want: RoaringBitmap = live.iter().filter(|(_, l)| l.get(n) == Some(v)).map(|(i, _)| *i).collect();
            assert_eq!(ix.postings_of(n, v), want, "postings {n}={v}");
        }
    }
    for ms in matchers {
        let mut want = model_select(sets, ms);
        want -= deleted;
        assert_eq!(ix.select(ms), want, "matchers {ms:?}");
    }
}

/// Object-safe adapter so one checker runs over every reader.
pub(crate) trait DynReader {
    fn all(&self) -> RoaringBitmap;
    fn names(&self) -> Vec<String>;
    fn values(&self, name: &str) -> Vec<String>;
    fn postings_of(&self, name: &str, value: &str) -> RoaringBitmap;
    fn select(&self, ms: &[Matcher]) -> RoaringBitmap;
}

impl<T: IndexReader> DynReader for T {
    fn all(&self) -> RoaringBitmap {
        self.all_postings().expect("all postings")
    }
    fn names(&self) -> Vec<String> {
        self.label_names().expect("names")
    }
    fn values(&self, name: &str) -> Vec<String> {
        self.label_values(name).expect("values")
    }
    fn postings_of(&self, name: &str, value: &str) -> RoaringBitmap {
        self.postings(name, value).expect("postings")
    }
    fn select(&self, ms: &[Matcher]) -> RoaringBitmap {
        postings_for_matchers(self, ms).expect("select")
    }
}

const NAMES: [&str; 4] = ["__name__", "job", "instance", "zone"];
const VALUES: [&str; 7] = ["a", "ab", "abc", "b", "ba", "x\ny", "host-10"];

/// A random label set over a small alphabet, so matchers often hit.
pub(crate) fn arb_labels() -> impl Strategy<Value = Labels> {
    proptest::collection::vec((0..NAMES.len(), 0..VALUES.len() + 1), 0..4).prop_map(|pairs| {
        // Index == VALUES.len() is the empty value: the label is absent.
        Labels::from_pairs(pairs.into_iter().map(|(n, v)| (NAMES[n], VALUES.get(v).copied().unwrap_or(""))))
    })
}

const REGEXES: [&str; 12] = ["a.*", "a|b", "a|", ".*", ".+", "ab?c?", "", "(a|b)a", "host-1.*", "x.y", "[ab]+", ".*b"];

/// A random matcher of any of the four kinds, with empty values and regexes.
pub(crate) fn arb_matcher() -> impl Strategy<Value = Matcher> {
    let name = (0..NAMES.len() + 1).prop_map(|i| NAMES.get(i).copied().unwrap_or("missing").to_string());
    let eq_value = (0..VALUES.len() + 1).prop_map(|i| VALUES.get(i).copied().unwrap_or("").to_string());
    let re = (0..REGEXES.len()).prop_map(|i| REGEXES[i].to_string());
    (name, 0..4u8, eq_value, re).prop_map(|(n, op, v, re)| match op {
        0 => Matcher::new(MatchOp::Equal, n, v).expect("eq"),
        1 => Matcher::new(MatchOp::NotEqual, n, v).expect("neq"),
        2 => Matcher::new(MatchOp::RegexMatch, n, re).expect("re"),
        _ => Matcher::new(MatchOp::RegexNoMatch, n, re).expect("nre"),
    })
}

fn build(sets: &[Labels]) -> MemIndex {
    let ix = MemIndex::new(Arc::new(Symbols::new()));
    for (i, l) in sets.iter().enumerate() {
        ix.add(i as u32, l);
    }
    ix
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]

    #[test]
    fn mem_index_matches_model(
        sets in proptest::collection::vec(arb_labels(), 0..40),
        matchers in proptest::collection::vec(proptest::collection::vec(arb_matcher(), 0..4), 1..8),
        deleted_mask in proptest::collection::vec(any::<bool>(), 40),
        use_affected in any::<bool>(),
    ) {
        let ix = build(&sets);
        check_reader(&ix, &sets, &RoaringBitmap::new(), &matchers);
        let deleted: RoaringBitmap =
            (0..sets.len() as u32).filter(|i| deleted_mask[*i as usize]).collect();
        if use_affected {
            let syms = Arc::clone(ix.symbols());
            let affected: Vec<(u32, u32)> = deleted
                .iter()
                .flat_map(|i| sets[i as usize].iter().map(|l| (syms.intern(&l.name), syms.intern(&l.value))).collect::<Vec<_>>())
                .collect();
            ix.delete_affected(&deleted, affected);
        } else {
            ix.delete(&deleted);
        }
        check_reader(&ix, &sets, &deleted, &matchers);
    }
}

#[test]
fn prometheus_semantics_examples() {
    let sets = vec![
        Labels::from_pairs([("__name__", "up"), ("job", "api"), ("instance", "host-1")]),
        Labels::from_pairs([("__name__", "up"), ("job", "db"), ("instance", "host-10")]),
        Labels::from_pairs([("__name__", "up"), ("instance", "host-2")]),
    ];
    let ix = build(&sets);
    let sel = |ms: Vec<Matcher>| postings_for_matchers(&ix, &ms).expect("select").iter().collect::<Vec<_>>();
    assert_eq!(sel(vec![Matcher::equal("job", "")]), vec![2], "= \"\" selects series lacking the label");
    assert_eq!(sel(vec![Matcher::not_equal("job", "api")]), vec![1, 2], "!= keeps series lacking the label");
    assert_eq!(sel(vec![Matcher::regex("instance", "host-1.*").expect("re")]), vec![0, 1]);
    assert_eq!(sel(vec![Matcher::regex("job", "api|").expect("re")]), vec![0, 2]);
    assert_eq!(sel(vec![Matcher::not_regex("job", ".+").expect("re")]), vec![2]);
    assert_eq!(sel(vec![Matcher::equal("__name__", "up"), Matcher::not_equal("job", "")]), vec![0, 1]);
    assert_eq!(sel(vec![Matcher::equal("__name__", "nope")]), Vec::<u32>::new());
}

#[test]
fn concurrent_adds_are_all_indexed() {
    let ix = Arc::new(MemIndex::new(Arc::new(Symbols::new())));
    let handles: Vec<_> = (0..4u32)
        .map(|t| {
            let ix = Arc::clone(&ix);
            std::thread::spawn(move || {
                for i in 0..500u32 {
                    let id = t * 500 + i;
                    ix.add(id, &Labels::from_pairs([("__name__", "m"), ("thread", &t.to_string()), ("i", &i.to_string())]));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    assert_eq!(ix.num_series(), 2000);
    assert_eq!(ix.postings("__name__", "m").expect("p").len(), 2000);
    assert_eq!(ix.label_values("i").expect("v").len(), 500);
    assert_eq!(ix.postings("thread", "3").expect("p").len(), 500);
}

#[test]
fn cardinality_stats_top_n() {
    let ix = build(&[
        Labels::from_pairs([("__name__", "up"), ("job", "api")]),
        Labels::from_pairs([("__name__", "up"), ("job", "db")]),
        Labels::from_pairs([("__name__", "go_goroutines"), ("job", "web")]),
    ]);
    let s = cardinality_stats(&ix, 1).expect("stats");
    assert_eq!(s.num_series, 3);
    assert_eq!(s.series_count_by_metric_name, vec![Stat { name: "up".into(), count: 2 }]);
    assert_eq!(s.label_value_count_by_label_name, vec![Stat { name: "job".into(), count: 3 }]);
    // __name__: 2×len("up") + 13 = 17; job: 3 + 2 + 3 = 8.
    assert_eq!(s.memory_in_bytes_by_label_name, vec![Stat { name: "__name__".into(), count: 17 }]);
    assert_eq!(s.series_count_by_label_value_pair, vec![Stat { name: "__name__=up".into(), count: 2 }]);
}
