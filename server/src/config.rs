//! Configuration: Prometheus-style command-line flags ([`Flags`], clap), an optional YAML file
//! (`--config.file`, [`FileConfig`]) and the resolved [`Config`] the server runs with.
//!
//! Precedence: a flag given on the command line wins over the file, the file wins over the
//! default. That is why every flag is an `Option` without a clap default: the default is applied
//! in [`Config::resolve`] and stated in the flag's help text.
//!
//! The YAML file mirrors the flags, grouped by prefix:
//!
//! ```yaml
//! web: { listen_address: "127.0.0.1:9201", enable_admin_api: false }
//! storage: { path: ./data, retention_time: 15d, retention_size: 10GiB, wal_fsync: always }
//! limits: { max_decompressed_body_size: 32MiB, max_labels_per_series: 30,
//!           max_label_name_length: 1024, max_label_value_length: 2048,
//!           max_series_per_metric: 0, max_active_series: 0 }
//! query: { timeout: 2m, max_samples: 50000000, max_concurrency: 20, lookback_delta: 5m }
//! log: { level: info, format: logfmt }
//! ebpf: { enable: false, open_ports: "8080,9000-9100", exe_path: "/usr/bin/app", interval: 15s }
//! ```
//!
//! TLS and credentials are not here but in `--web.config.file` ([`crate::web_config`]), as in
//! Prometheus, so that secrets can live in a separately protected file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Deserialize;

use crate::units::{parse_bytes, parse_duration};

/// `hearth`: a Prometheus-compatible time-series database (remote-write in, PromQL out).
#[derive(Debug, Clone, Parser, Default)]
#[command(name = "hearth", version, about)]
pub struct Flags {
    /// Address to listen on for the API, remote-write and telemetry. [default: 127.0.0.1:9201]
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    pub listen_address: Option<SocketAddr>,
    /// Prometheus web configuration file (TLS and basic auth; see the docs of web_config).
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
    /// Enable the admin API endpoints (`/api/v1/admin/tsdb/snapshot`), as Prometheus'
    /// flag of the same name. [default: false]
    #[arg(long = "web.enable-admin-api")]
    pub web_enable_admin_api: bool,
    /// Hearth configuration file (YAML). Flags given on the command line override it.
    #[arg(long = "config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Base path for the data directory. [default: ./data]
    #[arg(long = "storage.tsdb.path", value_name = "DIR")]
    pub storage_path: Option<PathBuf>,
    /// How long to retain samples (Prometheus duration, e.g. 15d, 1y; 0s keeps forever). [default: 15d]
    #[arg(long = "storage.tsdb.retention.time", value_name = "DURATION")]
    pub retention_time: Option<String>,
    /// Maximum bytes of blocks to retain (e.g. 512MB, 10GiB; base 2); 0 disables. [default: 0]
    #[arg(long = "storage.tsdb.retention.size", value_name = "SIZE")]
    pub retention_size: Option<String>,
    /// When the WAL is fsynced: on every commit, periodically, or never. [default: always]
    #[arg(long = "storage.tsdb.wal-fsync", value_name = "POLICY")]
    pub wal_fsync: Option<WalFsync>,
    /// Period of the `interval` fsync policy. [default: 1s]
    #[arg(long = "storage.tsdb.wal-fsync-interval", value_name = "DURATION")]
    pub wal_fsync_interval: Option<String>,

    /// Largest remote-write body accepted, after snappy decompression (and as Content-Length). [default: 32MiB]
    #[arg(long = "limits.max-decompressed-body-size", value_name = "SIZE")]
    pub max_decompressed_body_size: Option<String>,
    /// Most labels (including __name__) one series may have; 0 disables. [default: 30]
    #[arg(long = "limits.max-labels-per-series", value_name = "N")]
    pub max_labels_per_series: Option<usize>,
    /// Longest label name in bytes; 0 disables. [default: 1024]
    #[arg(long = "limits.max-label-name-length", value_name = "BYTES")]
    pub max_label_name_length: Option<usize>,
    /// Longest label value in bytes; 0 disables. [default: 2048]
    #[arg(long = "limits.max-label-value-length", value_name = "BYTES")]
    pub max_label_value_length: Option<usize>,
    /// Most series one metric name may have in the head; 0 disables. [default: 0]
    #[arg(long = "limits.max-series-per-metric", value_name = "N")]
    pub max_series_per_metric: Option<usize>,
    /// Most series in the head in total; 0 disables. [default: 0]
    #[arg(long = "limits.max-active-series", value_name = "N")]
    pub max_active_series: Option<usize>,

    /// Maximum time a query may take before it is aborted. [default: 2m]
    #[arg(long = "query.timeout", value_name = "DURATION")]
    pub query_timeout: Option<String>,
    /// Maximum number of samples a single query can load into memory. [default: 50000000]
    #[arg(long = "query.max-samples", value_name = "N")]
    pub query_max_samples: Option<usize>,
    /// Maximum number of queries executed concurrently. [default: 20]
    #[arg(long = "query.max-concurrency", value_name = "N")]
    pub query_max_concurrency: Option<usize>,
    /// How far back an instant vector selector looks for a sample. [default: 5m]
    #[arg(long = "query.lookback-delta", value_name = "DURATION")]
    pub query_lookback_delta: Option<String>,

    /// Only log messages with the given severity or above. [default: info]
    #[arg(long = "log.level", value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,
    /// Output format of log messages. [default: logfmt]
    #[arg(long = "log.format", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Collect HTTP metrics of local processes with eBPF. [default: false]
    #[arg(long = "ebpf.enable")]
    pub ebpf_enable: bool,
    /// Local TCP server ports whose HTTP traffic eBPF observes: ports and ranges, e.g.
    /// 8080,9000-9100 (Beyla's open_ports). [default: any]
    #[arg(long = "ebpf.open-ports", value_name = "PORTS")]
    pub ebpf_open_ports: Option<String>,
    /// Only observe processes whose executable path matches this regular expression
    /// (Beyla's exe_path). [default: any]
    #[arg(long = "ebpf.exe-path", value_name = "REGEX")]
    pub ebpf_exe_path: Option<String>,
    /// How often eBPF aggregates are appended as samples. [default: 15s]
    #[arg(long = "ebpf.interval", value_name = "DURATION")]
    pub ebpf_interval: Option<String>,
}

/// `--storage.tsdb.wal-fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WalFsync {
    /// fsync before every commit returns: an acknowledged write survives power loss.
    #[default]
    Always,
    /// fsync every `--storage.tsdb.wal-fsync-interval`: a crash of the machine loses at most
    /// that much; a crash of the process loses nothing (the page cache survives it).
    Interval,
    /// Leave it to the OS.
    Never,
}

/// `--log.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Debug and above.
    Debug,
    /// Info and above.
    #[default]
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
}

/// `--log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `ts=... level=info msg="..." key=value`, as Prometheus' go-kit logger.
    #[default]
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// The YAML configuration file. Every field is optional; see the module doc for the shape.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// `web:` section.
    pub web: FileWeb,
    /// `storage:` section.
    pub storage: FileStorage,
    /// `limits:` section.
    pub limits: FileLimits,
    /// `query:` section.
    pub query: FileQuery,
    /// `log:` section.
    pub log: FileLog,
    /// `ebpf:` section.
    pub ebpf: FileEbpf,
    /// `usage:` section (usage analytics; see [`crate::usage::UsageConfig`]).
    pub usage: crate::usage::UsageConfig,
}

/// `web:` section of [`FileConfig`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileWeb {
    /// As `--web.listen-address`.
    pub listen_address: Option<SocketAddr>,
    /// As `--web.config.file`.
    pub config_file: Option<PathBuf>,
    /// As `--web.enable-admin-api`.
    pub enable_admin_api: Option<bool>,
}

/// `storage:` section of [`FileConfig`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileStorage {
    /// As `--storage.tsdb.path`.
    pub path: Option<PathBuf>,
    /// As `--storage.tsdb.retention.time`.
    pub retention_time: Option<String>,
    /// As `--storage.tsdb.retention.size`.
    pub retention_size: Option<String>,
    /// As `--storage.tsdb.wal-fsync`.
    pub wal_fsync: Option<WalFsync>,
    /// As `--storage.tsdb.wal-fsync-interval`.
    pub wal_fsync_interval: Option<String>,
}

/// `limits:` section of [`FileConfig`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileLimits {
    /// As `--limits.max-decompressed-body-size`.
    pub max_decompressed_body_size: Option<String>,
    /// As `--limits.max-labels-per-series`.
    pub max_labels_per_series: Option<usize>,
    /// As `--limits.max-label-name-length`.
    pub max_label_name_length: Option<usize>,
    /// As `--limits.max-label-value-length`.
    pub max_label_value_length: Option<usize>,
    /// As `--limits.max-series-per-metric`.
    pub max_series_per_metric: Option<usize>,
    /// As `--limits.max-active-series`.
    pub max_active_series: Option<usize>,
}

/// `query:` section of [`FileConfig`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileQuery {
    /// As `--query.timeout`.
    pub timeout: Option<String>,
    /// As `--query.max-samples`.
    pub max_samples: Option<usize>,
    /// As `--query.max-concurrency`.
    pub max_concurrency: Option<usize>,
    /// As `--query.lookback-delta`.
    pub lookback_delta: Option<String>,
}

/// `log:` section of [`FileConfig`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileLog {
    /// As `--log.level`.
    pub level: Option<LogLevel>,
    /// As `--log.format`.
    pub format: Option<LogFormat>,
}

/// `ebpf:` section of [`FileConfig`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileEbpf {
    /// As `--ebpf.enable`.
    pub enable: Option<bool>,
    /// As `--ebpf.open-ports` (`"8080,9000-9100"`).
    pub open_ports: Option<String>,
    /// As `--ebpf.exe-path`.
    pub exe_path: Option<String>,
    /// As `--ebpf.interval`.
    pub interval: Option<String>,
}

/// Why the configuration could not be resolved. Startup fails with the message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML of the expected shape.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("invalid value for {key}: {message}")]
    Value {
        /// The flag or file key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Storage settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// Data directory.
    pub path: PathBuf,
    /// Blocks entirely older than this are deleted; `Duration::ZERO` keeps everything.
    pub retention_time: Duration,
    /// Oldest blocks are deleted while blocks exceed this many bytes; 0 disables.
    pub retention_size_bytes: u64,
    /// WAL fsync policy.
    pub wal_fsync: WalFsync,
    /// Period of [`WalFsync::Interval`].
    pub wal_fsync_interval: Duration,
}

/// Ingest limits. A 0 disables a count or length limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest remote-write body after decompression, bytes (also the Content-Length limit).
    pub max_decompressed_body_bytes: usize,
    /// Most labels per series, `__name__` included.
    pub max_labels_per_series: usize,
    /// Longest label name, bytes.
    pub max_label_name_bytes: usize,
    /// Longest label value, bytes.
    pub max_label_value_bytes: usize,
    /// Most series per metric name in the head.
    pub max_series_per_metric: usize,
    /// Most series in the head.
    pub max_active_series: usize,
}

/// PromQL engine settings.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryConfig {
    /// Per-query timeout.
    pub timeout: Duration,
    /// Most samples one query may hold in memory.
    pub max_samples: usize,
    /// Most queries evaluated at once; more wait.
    pub max_concurrency: usize,
    /// Lookback delta of instant vector selectors.
    pub lookback_delta: Duration,
}

/// eBPF source settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EbpfConfig {
    /// Whether the source runs.
    pub enable: bool,
    /// Local TCP ports observed, Beyla syntax; `None` for any.
    pub open_ports: Option<String>,
    /// Executable path regular expression; `None` for any.
    pub exe_path: Option<String>,
    /// Aggregation and append period.
    pub interval: Duration,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Listen address.
    pub listen_address: SocketAddr,
    /// `--web.config.file`, if any.
    pub web_config_file: Option<PathBuf>,
    /// `--web.enable-admin-api`: whether the admin endpoints answer.
    pub web_enable_admin_api: bool,
    /// Storage.
    pub storage: StorageConfig,
    /// Ingest limits.
    pub limits: Limits,
    /// Query engine.
    pub query: QueryConfig,
    /// Log level.
    pub log_level: LogLevel,
    /// Log format.
    pub log_format: LogFormat,
    /// eBPF.
    pub ebpf: EbpfConfig,
    /// Usage analytics (from the file only).
    pub usage: crate::usage::UsageConfig,
}

fn dur(key: &'static str, v: Option<String>, default: &str) -> Result<Duration, ConfigError> {
    let s = v.unwrap_or_else(|| default.to_string());
    parse_duration(&s).map_err(|e| ConfigError::Value { key, message: e.to_string() })
}

fn bytes(key: &'static str, v: Option<String>, default: &str) -> Result<u64, ConfigError> {
    let s = v.unwrap_or_else(|| default.to_string());
    parse_bytes(&s).map_err(|e| ConfigError::Value { key, message: e.to_string() })
}

/// Reads and parses a YAML file into `T`.
///
/// # Errors
/// [`ConfigError::Read`] or [`ConfigError::Parse`].
pub fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    serde_norway::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })
}

impl Config {
    /// Resolves flags over the file (read from `flags.config_file` when set) over defaults.
    ///
    /// # Errors
    /// [`ConfigError`] for an unreadable file or a malformed value.
    pub fn load(flags: Flags) -> Result<Config, ConfigError> {
        let file = match &flags.config_file {
            Some(p) => read_yaml::<FileConfig>(p)?,
            None => FileConfig::default(),
        };
        Config::resolve(flags, file)
    }

    /// Resolves flags over `file` over defaults.
    ///
    /// # Errors
    /// [`ConfigError::Value`] for a malformed value.
    pub fn resolve(f: Flags, file: FileConfig) -> Result<Config, ConfigError> {
        let max_body = bytes(
            "limits.max-decompressed-body-size",
            f.max_decompressed_body_size.or(file.limits.max_decompressed_body_size),
            "32MiB",
        )?;
        let max_decompressed_body_bytes = usize::try_from(max_body).map_err(|_| ConfigError::Value {
            key: "limits.max-decompressed-body-size",
            message: "larger than the address space".into(),
        })?;
        if max_decompressed_body_bytes == 0 {
            return Err(ConfigError::Value {
                key: "limits.max-decompressed-body-size",
                message: "must be greater than 0".into(),
            });
        }
        let max_concurrency = f.query_max_concurrency.or(file.query.max_concurrency).unwrap_or(20);
        if max_concurrency == 0 {
            return Err(ConfigError::Value { key: "query.max-concurrency", message: "must be greater than 0".into() });
        }
        let lookback_delta = dur("query.lookback-delta", f.query_lookback_delta.or(file.query.lookback_delta), "5m")?;
        if lookback_delta.is_zero() {
            return Err(ConfigError::Value { key: "query.lookback-delta", message: "must be greater than 0".into() });
        }
        let ebpf_interval = dur("ebpf.interval", f.ebpf_interval.or(file.ebpf.interval), "15s")?;
        if ebpf_interval.is_zero() {
            return Err(ConfigError::Value { key: "ebpf.interval", message: "must be greater than 0".into() });
        }
        let wal_fsync_interval = dur(
            "storage.tsdb.wal-fsync-interval",
            f.wal_fsync_interval.or(file.storage.wal_fsync_interval),
            "1s",
        )?;
        Ok(Config {
            listen_address: f
                .listen_address
                .or(file.web.listen_address)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9201))),
            web_config_file: f.web_config_file.or(file.web.config_file),
            web_enable_admin_api: f.web_enable_admin_api || file.web.enable_admin_api.unwrap_or(false),
            storage: StorageConfig {
                path: f.storage_path.or(file.storage.path).unwrap_or_else(|| PathBuf::from("./data")),
                retention_time: dur(
                    "storage.tsdb.retention.time",
                    f.retention_time.or(file.storage.retention_time),
                    "15d",
                )?,
                retention_size_bytes: bytes(
                    "storage.tsdb.retention.size",
                    f.retention_size.or(file.storage.retention_size),
                    "0",
                )?,
                wal_fsync: f.wal_fsync.or(file.storage.wal_fsync).unwrap_or_default(),
                wal_fsync_interval,
            },
            limits: Limits {
                max_decompressed_body_bytes,
                max_labels_per_series: f.max_labels_per_series.or(file.limits.max_labels_per_series).unwrap_or(30),
                max_label_name_bytes: f.max_label_name_length.or(file.limits.max_label_name_length).unwrap_or(1024),
                max_label_value_bytes: f.max_label_value_length.or(file.limits.max_label_value_length).unwrap_or(2048),
                max_series_per_metric: f.max_series_per_metric.or(file.limits.max_series_per_metric).unwrap_or(0),
                max_active_series: f.max_active_series.or(file.limits.max_active_series).unwrap_or(0),
            },
            query: QueryConfig {
                timeout: dur("query.timeout", f.query_timeout.or(file.query.timeout), "2m")?,
                max_samples: f.query_max_samples.or(file.query.max_samples).unwrap_or(50_000_000),
                max_concurrency,
                lookback_delta,
            },
            log_level: f.log_level.or(file.log.level).unwrap_or_default(),
            log_format: f.log_format.or(file.log.format).unwrap_or_default(),
            ebpf: EbpfConfig {
                enable: f.ebpf_enable || file.ebpf.enable.unwrap_or(false),
                open_ports: f.ebpf_open_ports.or(file.ebpf.open_ports),
                exe_path: f.ebpf_exe_path.or(file.ebpf.exe_path),
                interval: ebpf_interval,
            },
            usage: file.usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Flags {
        Flags::try_parse_from(std::iter::once("hearth").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_match_prometheus() {
        let c = Config::resolve(parse(&[]), FileConfig::default()).unwrap();
        assert_eq!(c.listen_address.to_string(), "127.0.0.1:9201");
        assert_eq!(c.storage.path, PathBuf::from("./data"));
        assert_eq!(c.storage.retention_time, Duration::from_secs(15 * 86400));
        assert_eq!(c.storage.retention_size_bytes, 0);
        assert_eq!(c.storage.wal_fsync, WalFsync::Always);
        assert_eq!(c.query.timeout, Duration::from_secs(120));
        assert_eq!(c.query.max_samples, 50_000_000);
        assert_eq!(c.query.max_concurrency, 20);
        assert_eq!(c.query.lookback_delta, Duration::from_secs(300));
        assert_eq!(c.log_format, LogFormat::Logfmt);
        assert!(!c.ebpf.enable);
    }

    #[test]
    fn flags_override_file_override_defaults() {
        let file: FileConfig = serde_norway::from_str(
            "storage:\n  retention_time: 30d\n  path: /var/lib/hearth\nquery:\n  timeout: 10s\nebpf:\n  open_ports: \"80,443\"\n",
        )
        .unwrap();
        let c = Config::resolve(parse(&["--query.timeout=1m", "--storage.tsdb.retention.size=512MB"]), file).unwrap();
        assert_eq!(c.storage.retention_time, Duration::from_secs(30 * 86400));
        assert_eq!(c.storage.path, PathBuf::from("/var/lib/hearth"));
        assert_eq!(c.query.timeout, Duration::from_secs(60));
        assert_eq!(c.storage.retention_size_bytes, 512 << 20);
        assert_eq!(c.ebpf.open_ports.as_deref(), Some("80,443"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = Config::resolve(parse(&["--storage.tsdb.retention.time=15"]), FileConfig::default()).unwrap_err();
        assert!(e.to_string().contains("storage.tsdb.retention.time"), "{e}");
        let e = Config::resolve(parse(&["--query.max-concurrency=0"]), FileConfig::default()).unwrap_err();
        assert!(e.to_string().contains("query.max-concurrency"), "{e}");
        assert!(serde_norway::from_str::<FileConfig>("storage:\n  bogus: 1\n").is_err());
    }

    #[test]
    fn ebpf_and_enum_flags_parse() {
        let c = Config::resolve(
            parse(&["--ebpf.enable", "--ebpf.open-ports=8080,9090", "--storage.tsdb.wal-fsync=never", "--log.format=json"]),
            FileConfig::default(),
        )
        .unwrap();
        assert!(c.ebpf.enable);
        assert_eq!(c.ebpf.open_ports.as_deref(), Some("8080,9090"));
        assert_eq!(c.storage.wal_fsync, WalFsync::Never);
        assert_eq!(c.log_format, LogFormat::Json);
    }
}
