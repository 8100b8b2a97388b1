//! Per-request limits and validation options of the remote-write receiver. Series-count limits
//! are storage's (head options); their refusals come back as [`storage::AppendError`] and are
//! passed through as [`super::Rejection::Append`].

/// How label and metric names are validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NameValidation {
    /// Prometheus' legacy rules: label names `[a-zA-Z_][a-zA-Z0-9_]*`, metric names
    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`. The default, because the storage contract
    /// (`storage::labels::is_valid_label_name`) and the PromQL parser assume it.
    #[default]
    Legacy,
    /// Prometheus 3's UTF-8 scheme: any non-empty valid UTF-8 name.
    Utf8,
}

/// Limits applied to every remote-write request. Every knob states its default and where the
/// default comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Largest accepted decompressed body, bytes; checked against the snappy header before
    /// decompressing (413 past it). Default 32 MiB: VictoriaMetrics' `-maxInsertRequestSize`
    /// default, and far above what a Prometheus sender produces (`max_samples_per_send` 2,000
    /// samples of ~100–300 bytes each in 1.0 is under 1 MiB). Capped at `u32::MAX` internally.
    pub max_decompressed_bytes: usize,
    /// Most labels (`__name__` included) one series may carry. Default 30: Mimir's
    /// `max_label_names_per_series`.
    pub max_labels_per_series: usize,
    /// Longest label name, bytes. Default 1024: Mimir's `max_label_name_length`.
    pub max_label_name_bytes: usize,
    /// Longest label value, bytes. Default 2048: Mimir's `max_label_value_length`.
    pub max_label_value_bytes: usize,
    /// How far after `now_ms` a sample or histogram timestamp may be, ms. Default 600,000
    /// (10 minutes): Mimir's `creation_grace_period`.
    pub max_future_ms: i64,
    /// Most characters (names and values together) in one exemplar's labels. Default 128: the
    /// OpenMetrics limit Prometheus enforces (`exemplar.ExemplarMaxLabelSetLength`).
    pub max_exemplar_label_runes: usize,
    /// Label and metric name rules. Default [`NameValidation::Legacy`].
    pub name_validation: NameValidation,
    /// Whether a 2.0 series' `created_timestamp` becomes a zero sample appended before its
    /// first sample (Prometheus' `created-timestamp-zero-ingestion` feature). Default `false`,
    /// as in Prometheus, where the feature flag is off by default.
    pub created_timestamp_zero_ingestion: bool,
    /// How many rejections the report keeps with their details (the counts are always
    /// complete). Default 10.
    pub max_reported_rejections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompressed_bytes: 32 << 20,
            max_labels_per_series: 30,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 2048,
            max_future_ms: 10 * 60 * 1000,
            max_exemplar_label_runes: 128,
            name_validation: NameValidation::Legacy,
            created_timestamp_zero_ingestion: false,
            max_reported_rejections: 10,
        }
    }
}

impl Limits {
    /// The largest compressed body that can decompress to at most
    /// [`Limits::max_decompressed_bytes`] (snappy's worst-case expansion), bytes: the body
    /// limit the HTTP server should enforce before reading the body into memory.
    pub fn max_compressed_body_bytes(&self) -> usize {
        snap::raw::max_compress_len(self.effective_max_decompressed_bytes())
    }

    /// [`Limits::max_decompressed_bytes`] capped at `u32::MAX` (offsets into the body are u32).
    pub(crate) fn effective_max_decompressed_bytes(&self) -> usize {
        self.max_decompressed_bytes.min(u32::MAX as usize)
    }
}
