//! Label sets: the identity of a series.
//!
//! A series is named by a set of `(name, value)` pairs, `__name__` included (Prometheus data
//! model). [`Labels`] keeps its pairs sorted by name, with no duplicate names and no empty
//! values: a label with an empty value is the same as no label at all (Prometheus semantics),
//! so the builder drops it. Sorting makes equality, hashing and ordering of series cheap and
//! canonical.
//!
//! This type is the owned, string-holding form used at the API boundary. Inside the head, series
//! hold interned symbol ids instead (see [`crate::index::symbols`]).

use std::cmp::Ordering;
use std::fmt;

use xxhash_rust::xxh3::Xxh3;

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// One `name="value"` pair.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Label {
    /// Label name, e.g. `job`. Never empty in a valid series.
    pub name: String,
    /// Label value. Never empty inside a [`Labels`] (empty means absent).
    pub value: String,
}

impl Label {
    /// Builds a label from anything string-like.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label { name: name.into(), value: value.into() }
    }
}

/// A canonical label set: sorted by name, names unique, values non-empty.
///
/// Ordering between label sets is Prometheus' `labels.Compare`: pairwise by name, then by value,
/// and a set that is a prefix of another sorts first. Series results are returned in this order.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// The empty label set.
    pub fn empty() -> Self {
        Labels(Vec::new())
    }

    /// Builds a canonical set from pairs in any order. Empty values are dropped; when a name
    /// repeats, the last value wins (use [`Labels::from_pairs_checked`] to reject duplicates).
    pub fn from_pairs<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        let mut v: Vec<Label> = pairs
            .into_iter()
            .map(|(n, v)| Label::new(n, v))
            .filter(|l| !l.value.is_empty())
            .collect();
        // Stable sort keeps the input order among equal names, so dedup keeps the last one.
        v.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(v.len());
        for l in v {
            match out.last_mut() {
                Some(last) if last.name == l.name => *last = l,
                _ => out.push(l),
            }
        }
        Labels(out)
    }

    /// Builds a canonical set, rejecting a repeated label name.
    ///
    /// # Errors
    /// [`LabelsError::DuplicateName`] with the first repeated name.
    pub fn from_pairs_checked<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Result<Self, LabelsError> {
        let mut v: Vec<Label> = pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        for w in v.windows(2) {
            if w[0].name == w[1].name {
                return Err(LabelsError::DuplicateName(w[0].name.clone()));
            }
        }
        v.retain(|l| !l.value.is_empty());
        Ok(Labels(v))
    }

    /// Wraps a vector that the caller guarantees is already canonical (sorted by name, unique
    /// names, non-empty values). Checked in debug builds.
    pub fn from_sorted_unchecked(v: Vec<Label>) -> Self {
        debug_assert!(v.windows(2).all(|w| w[0].name < w[1].name), "labels not sorted/unique");
        debug_assert!(v.iter().all(|l| !l.value.is_empty()), "empty label value");
        Labels(v)
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// The pairs as a slice, in name order.
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// Consumes the set into its sorted pairs.
    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }

    /// A copy with `name` set to `value` (or removed when `value` is empty).
    pub fn with(&self, name: &str, value: &str) -> Labels {
        let mut v = self.0.clone();
        match v.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                v.remove(i);
            }
            Ok(i) => v[i].value = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => v.insert(i, Label::new(name, value)),
        }
        Labels(v)
    }

    /// A copy without `name`.
    pub fn without(&self, name: &str) -> Labels {
        self.with(name, "")
    }

    /// A copy that keeps only the names for which `keep` returns true.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) -> Labels {
        Labels(self.0.iter().filter(|l| keep(&l.name)).cloned().collect())
    }

    /// A 64-bit hash of the whole set (xxh3 over names and values with separators). Stable
    /// within one build; not a persistence format.
    pub fn hash64(&self) -> u64 {
        hash_pairs(self.0.iter().map(|l| (l.name.as_bytes(), l.value.as_bytes())))
    }

    /// Total bytes of names and values, for limits and cost accounting.
    pub fn byte_len(&self) -> usize {
        self.0.iter().map(|l| l.name.len() + l.value.len()).sum()
    }
}

/// Hashes sorted `(name, value)` pairs the way [`Labels::hash64`] does, so that callers that hold
/// labels in another shape (borrowed slices, symbol-resolved strings) get the same hash without
/// building a [`Labels`].
pub fn hash_pairs<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> u64 {
    // 0xff never occurs in valid UTF-8, so it separates fields unambiguously.
    let mut h = Xxh3::new();
    for (n, v) in pairs {
        h.update(n);
        h.update(&[0xff]);
        h.update(v);
        h.update(&[0xff]);
    }
    h.digest()
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            match a.name.cmp(&b.name) {
                Ordering::Equal => {}
                o => return o,
            }
            match a.value.cmp(&b.value) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Labels {
    /// Prometheus' text form: `{a="1", b="2"}`, values escaped as Go strings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Why a label set is not a valid series identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelsError {
    /// The same label name appears twice.
    #[error("duplicate label name {0:?}")]
    DuplicateName(String),
    /// A label name is empty.
    #[error("empty label name")]
    EmptyName,
    /// A label name is not a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
    #[error("invalid label name {0:?}")]
    InvalidName(String),
    /// The set has no `__name__` or an empty one.
    #[error("series has no metric name")]
    MissingMetricName,
}

/// True if `name` is a valid legacy Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b[1..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// True if `name` is a valid legacy Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b[1..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_sorts_dedups_and_drops_empty() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        assert_eq!(l.to_string(), r#"{a="3", b="2"}"#);
        assert_eq!(l.get("a"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn checked_rejects_duplicates() {
        assert_eq!(
            Labels::from_pairs_checked([("a", "1"), ("a", "2")]),
            Err(LabelsError::DuplicateName("a".into()))
        );
    }

    #[test]
    fn ordering_is_prometheus_compare() {
        let a = Labels::from_pairs([("a", "1")]);
        let ab = Labels::from_pairs([("a", "1"), ("b", "1")]);
        let b = Labels::from_pairs([("b", "0")]);
        assert!(a < ab);
        assert!(ab < b);
        assert!(Labels::from_pairs([("a", "1")]) < Labels::from_pairs([("a", "2")]));
    }

    #[test]
    fn with_and_without() {
        let l = Labels::from_pairs([("a", "1"), ("c", "3")]);
        assert_eq!(l.with("b", "2").to_string(), r#"{a="1", b="2", c="3"}"#);
        assert_eq!(l.with("a", "").to_string(), r#"{c="3"}"#);
        assert_eq!(l.without("c").to_string(), r#"{a="1"}"#);
    }

    #[test]
    fn hash_differs_on_boundary_shift() {
        let a = Labels::from_pairs([("ab", "c")]);
        let b = Labels::from_pairs([("a", "bc")]);
        assert_ne!(a.hash64(), b.hash64());
    }

    #[test]
    fn name_validity() {
        assert!(is_valid_label_name("_a1"));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name("a:b"));
        assert!(is_valid_metric_name("a:b"));
        assert!(!is_valid_metric_name(""));
    }
}
