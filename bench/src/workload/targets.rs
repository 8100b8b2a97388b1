//! The two kinds of scrape target: a node (node-exporter) and a pod slot (the application's own
//! metrics plus what kube-state-metrics says about the pod). Each keeps the state its values
//! evolve from and emits its series in a fixed template order.

use rand::Rng;

use super::values::{
    k8s_suffix, latency_cdf, quantize, round_to, scrape_offset_ms, stable_hash, uuid_like, walk_abs, walk_rel,
    LATENCY_MEAN_OVER_MEDIAN,
};
use super::{Ctx, MetricKind, Sample, SeriesId, SeriesMeta, Step, WorkloadConfig, STALE_NAN_BITS};

/// Series per node-exporter target.
pub const NODE_SERIES: usize = 57;
/// Series per pod: 75 from the application, 11 from kube-state-metrics.
pub const POD_SERIES: usize = 86;
/// The first kube-state-metrics template of a pod.
const POD_KSM_FIRST: usize = 75;

const CPUS: usize = 4;
const MODES: [&str; 8] = ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"];
/// How a CPU's busy time splits over the non-idle modes (index as MODES; idle is 1 − busy).
const BUSY_SPLIT: [f64; 8] = [0.0, 0.04, 0.01, 0.01, 0.03, 0.01, 0.25, 0.65];
const NET_DEVICES: [&str; 2] = ["eth0", "lo"];
const FILESYSTEMS: [(&str, &str, &str); 2] = [("/dev/nvme0n1p1", "/", "ext4"), ("tmpfs", "/run", "tmpfs")];
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Deployments (their `job`) and namespaces the pods belong to.
const DEPLOYMENTS: [(&str, &str); 8] = [
    ("api-gateway", "edge"),
    ("frontend", "web"),
    ("checkout", "shop"),
    ("payments", "shop"),
    ("catalog", "shop"),
    ("search", "search"),
    ("auth", "identity"),
    ("notifications", "messaging"),
];
/// `(method, code, share of the handler's requests)`.
const COMBOS: [(&str, &str, f64); 4] = [("GET", "200", 0.80), ("GET", "404", 0.05), ("POST", "201", 0.14), ("POST", "500", 0.01)];
/// Prometheus client libraries' default histogram buckets (`prometheus.DefBuckets`) and +Inf.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, f64::INFINITY];
const PHASES: [&str; 5] = ["Failed", "Pending", "Running", "Succeeded", "Unknown"];
const KSM_INSTANCE: &str = "10.96.0.20:8080";

/// Builds a series' labels, sorted by name as Prometheus sends them.
fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut l: Vec<(String, String)> = pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    l.sort();
    l
}

fn push_series(series: &mut Vec<SeriesMeta>, target: u32, kind: MetricKind, pairs: &[(&str, &str)]) -> SeriesId {
    series.push(SeriesMeta { labels: labels(pairs), kind, target });
    (series.len() - 1) as SeriesId
}

fn le_label(le: f64) -> String {
    if le.is_infinite() {
        "+Inf".to_string()
    } else {
        format!("{le}")
    }
}

/// A node-exporter target.
pub(crate) struct NodeTarget {
    offset_ms: i64,
    first: SeriesId,
    limit: usize,
    busy: [f64; CPUS],
    cpu: [[f64; 8]; CPUS],
    mem_total: f64,
    mem_avail: f64,
    net_rate: [f64; 4],
    net: [f64; 8],
    fs_size: [f64; 2],
    fs_avail: [f64; 2],
    load: [f64; 3],
    disk_rate: [f64; 2],
    disk: [f64; 2],
    boot_time: f64,
}

impl NodeTarget {
    pub(crate) fn new(
        ctx: &mut Ctx,
        id: u32,
        node: usize,
        limit: usize,
        start_t_ms: i64,
        series: &mut Vec<SeriesMeta>,
    ) -> Self {
        let instance = format!("10.0.{}.{}:9100", node / 250, node % 250 + 1);
        let base = [("job", "node"), ("instance", instance.as_str())];
        let first = series.len() as SeriesId;
        let mut templates: Vec<(MetricKind, Vec<(&str, String)>)> = Vec::with_capacity(NODE_SERIES);
        for cpu in 0..CPUS {
            for mode in MODES {
                templates.push((
                    MetricKind::Counter,
                    vec![("__name__", "node_cpu_seconds_total".into()), ("cpu", cpu.to_string()), ("mode", mode.into())],
                ));
            }
        }
        for m in ["MemTotal", "MemAvailable", "MemFree", "Cached", "Buffers"] {
            templates.push((MetricKind::Gauge, vec![("__name__", format!("node_memory_{m}_bytes"))]));
        }
        for dev in NET_DEVICES {
            for m in ["receive_bytes", "transmit_bytes", "receive_packets", "transmit_packets"] {
                templates.push((
                    MetricKind::Counter,
                    vec![("__name__", format!("node_network_{m}_total")), ("device", dev.into())],
                ));
            }
        }
        for (device, mountpoint, fstype) in FILESYSTEMS {
            for m in ["size", "free", "avail"] {
                templates.push((
                    MetricKind::Gauge,
                    vec![
                        ("__name__", format!("node_filesystem_{m}_bytes")),
                        ("device", device.into()),
                        ("mountpoint", mountpoint.into()),
                        ("fstype", fstype.into()),
                    ],
                ));
            }
        }
        for m in ["node_load1", "node_load5", "node_load15"] {
            templates.push((MetricKind::Gauge, vec![("__name__", m.into())]));
        }
        for m in ["read", "written"] {
            templates.push((
                MetricKind::Counter,
                vec![("__name__", format!("node_disk_{m}_bytes_total")), ("device", "nvme0n1".into())],
            ));
        }
        templates.push((MetricKind::Gauge, vec![("__name__", "node_boot_time_seconds".into())]));
        debug_assert_eq!(templates.len(), NODE_SERIES);
        for (kind, extra) in templates.iter().take(limit) {
            let mut pairs: Vec<(&str, &str)> = base.to_vec();
            pairs.extend(extra.iter().map(|(n, v)| (*n, v.as_str())));
            push_series(series, id, *kind, &pairs);
        }

        let rng = &mut ctx.rng;
        let uptime_s = rng.random_range(86_400.0..60.0 * 86_400.0);
        let busy = std::array::from_fn(|_| rng.random_range(0.05..0.6));
        let cpu = std::array::from_fn(|c: usize| {
            std::array::from_fn(|m| {
                let share = if m == 0 { 1.0 - busy[c] } else { busy[c] * BUSY_SPLIT[m] };
                uptime_s * share
            })
        });
        let mem_total = [16.0, 32.0, 64.0][rng.random_range(0..3)] * GIB - 300.0 * 1024.0 * 1024.0;
        let net_rate = [
            rng.random_range(1e5..2e7),
            rng.random_range(1e5..2e7),
            rng.random_range(1e3..1e5),
            rng.random_range(1e3..1e5),
        ];
        let net = std::array::from_fn(|i| {
            let bytes = net_rate[i % 2 + 2 * (i / 4)] * uptime_s;
            if i % 4 < 2 {
                bytes.floor()
            } else {
                (bytes / 800.0).floor()
            }
        });
        let fs_size = [quantize(rng.random_range(50.0..500.0) * GIB, 4096.0), quantize(mem_total / 5.0, 4096.0)];
        let disk_rate = [rng.random_range(1e4..5e6), rng.random_range(1e4..5e6)];
        NodeTarget {
            offset_ms: scrape_offset_ms(ctx.seed, 0x40de_0000 | node as u64, (ctx.interval_s * 1000.0) as i64),
            first,
            limit,
            busy,
            cpu,
            mem_total,
            mem_avail: mem_total * rng.random_range(0.2..0.8),
            net_rate,
            net,
            fs_size,
            fs_avail: [fs_size[0] * rng.random_range(0.2..0.9), fs_size[1] * rng.random_range(0.9..1.0)],
            load: [busy.iter().sum::<f64>(); 3],
            disk_rate,
            disk: [(disk_rate[0] * uptime_s).floor(), (disk_rate[1] * uptime_s).floor()],
            boot_time: (start_t_ms as f64 / 1000.0 - uptime_s).floor(),
        }
    }

    pub(crate) fn scrape(&mut self, ctx: &mut Ctx, round_t_ms: i64, out: &mut Vec<Sample>) {
        let dt = ctx.interval_s;
        let rng = &mut ctx.rng;
        for c in 0..CPUS {
            self.busy[c] = walk_abs(rng, self.busy[c], 0.03, 0.01, 0.98);
            for m in 0..MODES.len() {
                let share = if m == 0 { 1.0 - self.busy[c] } else { self.busy[c] * BUSY_SPLIT[m] };
                self.cpu[c][m] += dt * share;
            }
        }
        self.mem_avail = walk_abs(rng, self.mem_avail, self.mem_total * 0.005, self.mem_total * 0.05, self.mem_total * 0.95);
        for (i, r) in self.net_rate.iter_mut().enumerate() {
            let (lo, hi) = if i < 2 { (1e4, 1e8) } else { (1e2, 1e6) };
            *r = walk_rel(rng, *r, 0.05, lo, hi);
        }
        for (i, counter) in self.net.iter_mut().enumerate() {
            let bytes = self.net_rate[i % 2 + 2 * (i / 4)] * dt;
            *counter += if i % 4 < 2 { bytes.floor() } else { (bytes / 800.0).floor() };
        }
        for (i, avail) in self.fs_avail.iter_mut().enumerate() {
            *avail = walk_abs(rng, *avail, self.fs_size[i] * 0.0005, self.fs_size[i] * 0.02, self.fs_size[i]);
        }
        let busy_cpus: f64 = self.busy.iter().sum();
        let instant = (busy_cpus + rng.random_range(-0.3..0.3)).max(0.0);
        // Exponentially damped averages as the kernel's: 1, 5 and 15 minutes.
        for (i, minutes) in [1.0, 5.0, 15.0].iter().enumerate() {
            let a = (-dt / (60.0 * minutes)).exp();
            self.load[i] = self.load[i] * a + instant * (1.0 - a);
        }
        for (rate, counter) in self.disk_rate.iter_mut().zip(self.disk.iter_mut()) {
            *rate = walk_rel(rng, *rate, 0.1, 1e3, 2e8);
            *counter += (*rate * dt).floor();
        }

        let t_ms = round_t_ms + self.offset_ms;
        for i in 0..self.limit {
            let v = match i {
                0..32 => round_to(self.cpu[i / 8][i % 8], 2),
                32 => self.mem_total,
                33 => quantize(self.mem_avail, 4096.0),
                34 => quantize(self.mem_avail * 0.3, 4096.0),
                35 => quantize(self.mem_avail * 0.6, 4096.0),
                36 => quantize(self.mem_avail * 0.02, 4096.0),
                37..45 => self.net[i - 37],
                45..51 => {
                    let fs = (i - 45) / 3;
                    match (i - 45) % 3 {
                        0 => self.fs_size[fs],
                        1 => quantize(self.fs_avail[fs] + self.fs_size[fs] * 0.05, 4096.0).min(self.fs_size[fs]),
                        _ => quantize(self.fs_avail[fs], 4096.0),
                    }
                }
                51..54 => round_to(self.load[i - 51], 2),
                54..56 => self.disk[i - 54],
                _ => self.boot_time,
            };
            out.push(Sample { series: self.first + i as SeriesId, t_ms, v });
        }
    }
}

/// A pod slot: one pod at a time, replaced on churn.
pub(crate) struct PodTarget {
    id: u32,
    slot: usize,
    node: usize,
    limit: usize,
    app_offset_ms: i64,
    ksm_offset_ms: i64,
    churn_phase_ms: i64,
    /// Start of the workload, t_ms: generations count from here.
    start_t_ms: i64,
    generation: i64,
    first: SeriesId,
    deployment: usize,
    handler_rate: [f64; 4],
    median_s: [f64; 4],
    requests: [[u64; 4]; 4],
    buckets: [[u64; 12]; 4],
    sum_s: [f64; 4],
    cpu_share: f64,
    cpu_s: f64,
    rss_bytes: f64,
    goroutines: f64,
    restarts: u64,
}

impl PodTarget {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        ctx: &mut Ctx,
        id: u32,
        slot: usize,
        node: usize,
        limit: usize,
        cfg: &WorkloadConfig,
        start_t_ms: i64,
        series: &mut Vec<SeriesMeta>,
    ) -> Self {
        let interval_ms = cfg.scrape_interval_ms;
        let churn_phase_ms = cfg
            .churn_interval_ms
            .map_or(0, |c| (stable_hash(ctx.seed, &[0xc4a2, slot as u64]) % c as u64) as i64);
        let mut pod = PodTarget {
            id,
            slot,
            node,
            limit,
            app_offset_ms: scrape_offset_ms(ctx.seed, 0x90d0_0000 | slot as u64, interval_ms),
            ksm_offset_ms: scrape_offset_ms(ctx.seed, 0x45e, interval_ms),
            churn_phase_ms,
            start_t_ms,
            generation: 0,
            first: 0,
            deployment: slot % DEPLOYMENTS.len(),
            handler_rate: [0.0; 4],
            median_s: [0.0; 4],
            requests: [[0; 4]; 4],
            buckets: [[0; 12]; 4],
            sum_s: [0.0; 4],
            cpu_share: 0.0,
            cpu_s: 0.0,
            rss_bytes: 0.0,
            goroutines: 0.0,
            restarts: 0,
        };
        // Pods present at the start have been running for a while; their counters are large.
        let age_s = ctx.rng.random_range(3_600.0..7.0 * 86_400.0);
        pod.start_generation(ctx, series, age_s);
        pod
    }

    /// Creates the series of the current generation and resets the state to a pod that has been
    /// running for `age_s` seconds.
    fn start_generation(&mut self, ctx: &mut Ctx, series: &mut Vec<SeriesMeta>, age_s: f64) {
        let rng = &mut ctx.rng;
        let top = rng.random_range(2.0..40.0);
        self.handler_rate = [top, top * rng.random_range(0.2..0.8), 0.1, 1.0 / 15.0];
        self.median_s = std::array::from_fn(|h| if h < 2 { rng.random_range(0.01..0.3) } else { 0.002 });
        self.cpu_share = rng.random_range(0.01..0.5);
        self.cpu_s = round_to(age_s * self.cpu_share, 2);
        self.rss_bytes = quantize(rng.random_range(40e6..400e6), 4096.0);
        self.goroutines = rng.random_range(20.0..300.0f64).round();
        for h in 0..4 {
            let n = (self.handler_rate[h] * age_s) as u64;
            self.add_requests(h, n);
        }
        self.allocate_series(ctx.seed, series);
    }

    fn allocate_series(&mut self, seed: u64, series: &mut Vec<SeriesMeta>) {
        let (deploy, namespace) = DEPLOYMENTS[self.deployment];
        let rs = k8s_suffix(stable_hash(seed, &[0x4e5, self.deployment as u64]), 10);
        let g = self.generation as u64;
        let pod_hash = stable_hash(seed, &[0x90d, self.slot as u64, g]);
        let pod = format!("{deploy}-{rs}-{}", k8s_suffix(pod_hash, 5));
        let pod_ip = format!("10.244.{}.{}", (pod_hash >> 8) % 250, pod_hash % 250 + 2);
        let instance = format!("{pod_ip}:8080");
        let host_ip = format!("10.0.{}.{}", self.node / 250, self.node % 250 + 1);
        let node_name = format!("node-{:03}", self.node);
        let uid = uuid_like(pod_hash, stable_hash(seed, &[0x01d, self.slot as u64, g]));
        let handlers = [
            format!("/api/v1/{deploy}"),
            format!("/api/v1/{deploy}/:id"),
            "/healthz".to_string(),
            "/metrics".to_string(),
        ];
        let app = [("job", deploy), ("instance", instance.as_str()), ("namespace", namespace), ("pod", pod.as_str())];
        let ksm = [("job", "kube-state-metrics"), ("instance", KSM_INSTANCE), ("namespace", namespace), ("pod", pod.as_str())];
        self.first = series.len() as SeriesId;
        let id = self.id;
        let mut n = 0usize;
        let mut push = |kind: MetricKind, base: &[(&str, &str)], extra: &[(&str, &str)]| {
            if n < self.limit {
                let mut pairs = base.to_vec();
                pairs.extend_from_slice(extra);
                push_series(series, id, kind, &pairs);
            }
            n += 1;
        };
        for handler in &handlers {
            for (method, code, _) in COMBOS {
                push(
                    MetricKind::Counter,
                    &app,
                    &[("__name__", "http_requests_total"), ("method", method), ("code", code), ("handler", handler)],
                );
            }
        }
        for handler in &handlers {
            for le in BUCKETS {
                let le = le_label(le);
                push(
                    MetricKind::HistogramBucket,
                    &app,
                    &[("__name__", "http_request_duration_seconds_bucket"), ("handler", handler), ("le", &le)],
                );
            }
            push(MetricKind::HistogramSum, &app, &[("__name__", "http_request_duration_seconds_sum"), ("handler", handler)]);
            push(MetricKind::HistogramCount, &app, &[("__name__", "http_request_duration_seconds_count"), ("handler", handler)]);
        }
        push(MetricKind::Counter, &app, &[("__name__", "process_cpu_seconds_total")]);
        push(MetricKind::Gauge, &app, &[("__name__", "process_resident_memory_bytes")]);
        push(MetricKind::Gauge, &app, &[("__name__", "go_goroutines")]);
        let created_by = format!("{deploy}-{rs}");
        push(
            MetricKind::Info,
            &ksm,
            &[
                ("__name__", "kube_pod_info"),
                ("uid", &uid),
                ("node", &node_name),
                ("pod_ip", &pod_ip),
                ("host_ip", &host_ip),
                ("created_by_kind", "ReplicaSet"),
                ("created_by_name", &created_by),
            ],
        );
        for phase in PHASES {
            push(MetricKind::Gauge, &ksm, &[("__name__", "kube_pod_status_phase"), ("phase", phase)]);
        }
        for m in ["running", "ready", "waiting", "terminated"] {
            let name = format!("kube_pod_container_status_{m}");
            push(MetricKind::Gauge, &ksm, &[("__name__", &name), ("container", deploy)]);
        }
        push(
            MetricKind::Counter,
            &ksm,
            &[("__name__", "kube_pod_container_status_restarts_total"), ("container", deploy)],
        );
        debug_assert_eq!(n, POD_SERIES);
    }

    /// Adds `n` requests to handler `h`: split over the (method, code) combinations, and into
    /// the histogram's cumulative buckets by the latency distribution.
    fn add_requests(&mut self, h: usize, n: u64) {
        let mut rest = n;
        for c in 1..COMBOS.len() {
            let k = ((n as f64 * COMBOS[c].2).round() as u64).min(rest);
            self.requests[h][c] += k;
            rest -= k;
        }
        self.requests[h][0] += rest;
        for (i, le) in BUCKETS.iter().enumerate() {
            // round(n · cdf) is monotonic in le because cdf is; the +Inf bucket gets exactly n.
            self.buckets[h][i] += (n as f64 * latency_cdf(*le, self.median_s[h])).round() as u64;
        }
        self.sum_s[h] += n as f64 * self.median_s[h] * LATENCY_MEAN_OVER_MEDIAN;
    }

    fn restart(&mut self) {
        self.requests = [[0; 4]; 4];
        self.buckets = [[0; 12]; 4];
        self.sum_s = [0.0; 4];
        self.cpu_s = 0.0;
        self.rss_bytes = 40e6;
        self.restarts += 1;
    }

    pub(crate) fn scrape(
        &mut self,
        ctx: &mut Ctx,
        round_t_ms: i64,
        cfg: &WorkloadConfig,
        series: &mut Vec<SeriesMeta>,
        out: &mut Step,
    ) {
        let t_app = round_t_ms + self.app_offset_ms;
        let t_ksm = round_t_ms + self.ksm_offset_ms;
        if let Some(churn) = cfg.churn_interval_ms {
            let g = (round_t_ms - self.start_t_ms + self.churn_phase_ms).div_euclid(churn);
            if g != self.generation {
                // The old pod is gone: Prometheus marks its series stale at the next scrape.
                let stale = f64::from_bits(STALE_NAN_BITS);
                for i in 0..self.limit {
                    let t_ms = if i < POD_KSM_FIRST { t_app } else { t_ksm };
                    out.samples.push(Sample { series: self.first + i as SeriesId, t_ms, v: stale });
                }
                self.generation = g;
                self.requests = [[0; 4]; 4];
                self.buckets = [[0; 12]; 4];
                self.sum_s = [0.0; 4];
                self.restarts = 0;
                self.start_generation(ctx, series, 0.0);
            }
        }
        let dt = ctx.interval_s;
        if ctx.rng.random::<f64>() < ctx.restart_probability {
            self.restart();
            out.resets.push(self.id);
        }
        for h in 0..4 {
            let (lo, hi) = if h < 2 { (0.2, 200.0) } else { (self.handler_rate[h], self.handler_rate[h]) };
            self.handler_rate[h] = walk_rel(&mut ctx.rng, self.handler_rate[h], 0.02, lo, hi);
            self.median_s[h] = walk_rel(&mut ctx.rng, self.median_s[h], 0.02, 0.001, 3.0);
            let n = (self.handler_rate[h] * dt * ctx.rng.random_range(0.9..1.1)).round() as u64;
            self.add_requests(h, n);
        }
        self.cpu_share = walk_abs(&mut ctx.rng, self.cpu_share, 0.01, 0.001, 2.0);
        self.cpu_s += dt * self.cpu_share;
        self.rss_bytes = walk_abs(&mut ctx.rng, self.rss_bytes, 2e6, 20e6, 2e9);
        self.goroutines = walk_abs(&mut ctx.rng, self.goroutines, 5.0, 10.0, 5000.0).round();

        for i in 0..self.limit {
            let (t_ms, v) = match i {
                0..16 => (t_app, self.requests[i / 4][i % 4] as f64),
                16..72 => {
                    let h = (i - 16) / 14;
                    let j = (i - 16) % 14;
                    let v = match j {
                        0..12 => self.buckets[h][j] as f64,
                        12 => self.sum_s[h],
                        _ => self.buckets[h][11] as f64,
                    };
                    (t_app, v)
                }
                72 => (t_app, round_to(self.cpu_s, 2)),
                73 => (t_app, quantize(self.rss_bytes, 4096.0)),
                74 => (t_app, self.goroutines),
                75 => (t_ksm, 1.0),
                76..81 => (t_ksm, if PHASES[i - 76] == "Running" { 1.0 } else { 0.0 }),
                81 | 82 => (t_ksm, 1.0),
                83 | 84 => (t_ksm, 0.0),
                _ => (t_ksm, self.restarts as f64),
            };
            out.samples.push(Sample { series: self.first + i as SeriesId, t_ms, v });
        }
    }
}
