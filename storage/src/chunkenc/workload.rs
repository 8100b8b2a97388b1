//! Deterministic synthetic scrape data shaped like node-exporter's output, for the chunk
//! encodings' size tests and benchmarks (and anyone else who needs realistic float series).
//!
//! Every series is scraped every 15 s. Timestamps: 90 % of scrapes land exactly on the
//! interval (Prometheus aligns scrape timestamps within its 2 ms tolerance), 10 % are off by
//! up to ±25 ms. Values by [`SeriesKind`], mixed in [`NODE_EXPORTER_MIX`] proportions that
//! follow a typical host's node-exporter output (many constant gauges and rarely moving error
//! counters, CPU-seconds counters per core and mode, byte counters, memory gauges).

/// What a series' values look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesKind {
    /// Never changes (`node_filesystem_size_bytes`, `node_network_mtu_bytes`, info metrics = 1).
    ConstantGauge,
    /// Integer counter that rarely moves (`node_network_receive_errs_total`): +1..=3 with
    /// probability 2 % per scrape.
    IdleCounter,
    /// Integer counter growing by varying amounts (`node_network_receive_bytes_total`):
    /// +0..=2×mean per scrape (mean 5 000 to 500 000), reset to 0 with probability 0.2 %.
    BusyCounter,
    /// `node_cpu_seconds_total`: seconds with 2 decimals (USER_HZ ticks / 100); +14.80..=15.00
    /// per scrape for idle modes, +0.00..=0.60 for the others.
    CpuSecondsCounter,
    /// Integer bytes gauge (`node_memory_*_bytes`): random walk in 4 KiB pages, moving on half
    /// of the scrapes by up to ±256 pages.
    MemoryGauge,
    /// Gauge with 2 decimals (`node_load1`, `node_hwmon_temp_celsius`): random walk of up to
    /// ±0.30 per scrape.
    DecimalGauge,
    /// Gauge with full f64 precision (ratios, `node_time_seconds`-like): random walk of
    /// arbitrary floats, the worst case for every encoding.
    FullPrecisionGauge,
}

/// Share of each kind among a host's series (weights sum to 100).
pub const NODE_EXPORTER_MIX: [(SeriesKind, u32); 7] = [
    (SeriesKind::ConstantGauge, 30),
    (SeriesKind::IdleCounter, 20),
    (SeriesKind::BusyCounter, 12),
    (SeriesKind::CpuSecondsCounter, 16),
    (SeriesKind::MemoryGauge, 10),
    (SeriesKind::DecimalGauge, 8),
    (SeriesKind::FullPrecisionGauge, 4),
];

/// Scrape interval of the workload, ms.
pub const SCRAPE_INTERVAL_MS: i64 = 15_000;

/// SplitMix64: a tiny seeded generator so the workload is identical on every machine and needs
/// no dependency outside tests.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `p_percent / 100` (fractional percent allowed via per-mille).
    pub fn chance_per_mille(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` samples of one series of `kind`, starting at `start_t_ms`.
pub fn series(kind: SeriesKind, seed: u64, start_t_ms: i64, n: usize) -> Vec<(i64, f64)> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(n);
    // Per-series parameters.
    let mean_inc = 5_000 + rng.below(495_000) as i64;
    let idle_cpu = rng.chance_per_mille(500);
    let const_value = match rng.below(3) {
        0 => 1.0,
        1 => 1500.0,
        _ => (rng.below(1 << 30) * 4096) as f64,
    };
    let mut int_state: i64 = match kind {
        SeriesKind::MemoryGauge => (rng.below(4_000_000) + 100_000) as i64,
        SeriesKind::DecimalGauge => rng.range(0, 9000),
        _ => rng.below(10_000_000) as i64,
    };
    let mut f_state = rng.unit() * 100.0;
    for i in 0..n {
        let jitter = if rng.chance_per_mille(100) { rng.range(-25, 25) } else { 0 };
        let t = start_t_ms + i as i64 * SCRAPE_INTERVAL_MS + jitter;
        let v = match kind {
            SeriesKind::ConstantGauge => const_value,
            SeriesKind::IdleCounter => {
                if rng.chance_per_mille(20) {
                    int_state += rng.range(1, 3);
                }
                int_state as f64
            }
            SeriesKind::BusyCounter => {
                if rng.chance_per_mille(2) {
                    int_state = 0;
                }
                int_state += rng.range(0, 2 * mean_inc);
                int_state as f64
            }
            SeriesKind::CpuSecondsCounter => {
                int_state += if idle_cpu { rng.range(1480, 1500) } else { rng.range(0, 60) };
                int_state as f64 / 100.0
            }
            SeriesKind::MemoryGauge => {
                if rng.chance_per_mille(500) {
                    int_state = (int_state + rng.range(-256, 256)).max(0);
                }
                (int_state * 4096) as f64
            }
            SeriesKind::DecimalGauge => {
                int_state = (int_state + rng.range(-30, 30)).max(0);
                int_state as f64 / 100.0
            }
            SeriesKind::FullPrecisionGauge => {
                f_state += (rng.unit() - 0.5) * 0.1;
                f_state
            }
        };
        out.push((t, v));
    }
    out
}

/// A host's worth of series: `n_series` series in [`NODE_EXPORTER_MIX`] proportions, each
/// with `n_samples` samples, paired with its kind.
pub fn node_exporter(n_series: usize, n_samples: usize, seed: u64) -> Vec<(SeriesKind, Vec<(i64, f64)>)> {
    let total: u32 = NODE_EXPORTER_MIX.iter().map(|(_, w)| w).sum();
    (0..n_series)
        .map(|i| {
            // Deterministic assignment by position so every kind gets its exact share.
            let slot = (i as u32 * total / n_series.max(1) as u32) % total;
            let mut acc = 0;
            let kind = NODE_EXPORTER_MIX
                .iter()
                .find(|(_, w)| {
                    acc += w;
                    slot < acc
                })
                .map_or(SeriesKind::ConstantGauge, |(k, _)| *k);
            let start = 1_700_000_000_000 + (i as i64 * 37) % SCRAPE_INTERVAL_MS;
            (kind, series(kind, seed.wrapping_add(i as u64 * 7919), start, n_samples))
        })
        .collect()
}
