//! Value evolution helpers: random walks, resolution, the latency distribution, and stable
//! hash-derived names.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Multiplies `x` by `1 ± rel` (uniform) and clamps it to `[lo, hi]`: a rate or level that drifts.
pub(crate) fn walk_rel(rng: &mut ChaCha8Rng, x: f64, rel: f64, lo: f64, hi: f64) -> f64 {
    (x * (1.0 + rng.random_range(-rel..=rel))).clamp(lo, hi)
}

/// Adds a uniform step in `[-step, step]` to `x` and clamps it to `[lo, hi]`.
pub(crate) fn walk_abs(rng: &mut ChaCha8Rng, x: f64, step: f64, lo: f64, hi: f64) -> f64 {
    (x + rng.random_range(-step..=step)).clamp(lo, hi)
}

/// Rounds to `decimals` decimal places (the resolution an exporter prints).
pub(crate) fn round_to(x: f64, decimals: i32) -> f64 {
    let p = 10f64.powi(decimals);
    (x * p).round() / p
}

/// Rounds down to a multiple of `quantum` (e.g. 4096 for page-aligned byte counts).
pub(crate) fn quantize(x: f64, quantum: f64) -> f64 {
    (x / quantum).floor() * quantum
}

/// Shape parameter β of the log-logistic latency distribution; β = 2.5 gives a right tail
/// like real request latencies (p99 ≈ 6× the median).
pub(crate) const LATENCY_BETA: f64 = 2.5;

/// Mean / median of the log-logistic distribution with β = 2.5: (π/β) / sin(π/β).
pub(crate) const LATENCY_MEAN_OVER_MEDIAN: f64 = 1.321_306_4;

/// P(latency <= le) of a log-logistic distribution with the given median: `1 / (1 +
/// (le/median)^-β)`. Monotonic non-decreasing in `le`, 1 at +Inf.
pub(crate) fn latency_cdf(le: f64, median: f64) -> f64 {
    if le.is_infinite() {
        return 1.0;
    }
    1.0 / (1.0 + (le / median).powf(-LATENCY_BETA))
}

/// A stable 64-bit hash of `parts` under the workload seed: names and offsets derive from it so
/// they do not depend on the order random numbers were drawn in.
pub(crate) fn stable_hash(seed: u64, parts: &[u64]) -> u64 {
    let mut buf = Vec::with_capacity(parts.len() * 8);
    for p in parts {
        buf.extend_from_slice(&p.to_le_bytes());
    }
    xxh3_64_with_seed(&buf, seed)
}

/// Kubernetes' alphabet for generated name suffixes (no vowels, no confusable digits).
const K8S_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A `len`-character Kubernetes-style random suffix from `h` (like `7d9f8b6c4d` or `x2kqp`).
pub(crate) fn k8s_suffix(mut h: u64, len: usize) -> String {
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        s.push(K8S_ALPHABET[(h % K8S_ALPHABET.len() as u64) as usize] as char);
        h /= K8S_ALPHABET.len() as u64;
        if h == 0 {
            h = 0x9e37_79b9_7f4a_7c15;
        }
    }
    s
}

/// A UUID-shaped string from two hashes (kube_pod_info's `uid`).
pub(crate) fn uuid_like(a: u64, b: u64) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// The scrape offset of a target within the interval: a multiple of 10 ms in `[0, interval)`.
pub(crate) fn scrape_offset_ms(seed: u64, target_key: u64, interval_ms: i64) -> i64 {
    let slots = (interval_ms / 10).max(1) as u64;
    (stable_hash(seed, &[0x0ff5e7, target_key]) % slots) as i64 * 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_cdf_is_monotonic_and_median_is_half() {
        let m = 0.1;
        assert!((latency_cdf(m, m) - 0.5).abs() < 1e-12);
        let mut prev = 0.0;
        for le in [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, f64::INFINITY] {
            let c = latency_cdf(le, m);
            assert!(c >= prev, "cdf({le}) = {c} < {prev}");
            prev = c;
        }
        assert_eq!(prev, 1.0);
    }

    #[test]
    fn mean_over_median_matches_beta() {
        let x = std::f64::consts::PI / LATENCY_BETA;
        assert!((x / x.sin() - LATENCY_MEAN_OVER_MEDIAN).abs() < 1e-6);
    }

    #[test]
    fn offsets_are_on_the_10ms_grid_within_the_interval() {
        for key in 0..1000 {
            let o = scrape_offset_ms(7, key, 15_000);
            assert!((0..15_000).contains(&o));
            assert_eq!(o % 10, 0);
        }
    }
}
