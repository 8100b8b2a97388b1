//! Checkpoints: the WAL's state up to a segment, compacted to what is still needed, so that
//! replay time stays bounded by the head's size rather than by its history.
//!
//! `checkpoint(wal_dir, last, keep, mint)` reads the previous checkpoint and segments
//! `..=last`, writes a lower-bound record (`mint`, or a higher bound found in the input) first,
//! then keeps series records of series `keep` accepts, samples/histograms/exemplars of
//! those series with `t_ms >= mint`, and the newest metadata per metric name, and writes them
//! as segments of `checkpoint.<last>/` (the WAL segment format). It is written under
//! `checkpoint.<last>.tmp/`, fsynced, and renamed, so a crash leaves either the old state or the
//! new one. Only then are segments `<= last` and older checkpoints deleted.

use std::collections::HashMap;
use std::path::Path;

use super::reader::{checkpoint_name, list_checkpoints, replay_dir_segments};
use super::record::{self, DecodeError, RecordType, RefExemplar, RefHistogramSample, RefSample, RefSeries};
use super::segment::{list_segments, segment_path, sync_dir, SegmentSink, DEFAULT_SEGMENT_BYTES};
use crate::api::{Exemplar, Metadata, SeriesRef};
use crate::error::{Result, StorageError};
use crate::metrics::StorageMetrics;

/// What a checkpoint kept and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Series records kept.
    pub series_kept: u64,
    /// Series records dropped (series no longer alive).
    pub series_dropped: u64,
    /// Float and histogram samples kept.
    pub samples_kept: u64,
    /// Float and histogram samples dropped.
    pub samples_dropped: u64,
    /// Exemplars kept.
    pub exemplars_kept: u64,
    /// WAL segments deleted after the checkpoint was in place.
    pub segments_deleted: u64,
}

/// Flush the re-encoded buffer to the checkpoint file past this size.
const FLUSH_BYTES: usize = 1 << 20;

/// Writes `checkpoint.<last>` from the previous checkpoint and WAL segments `..=last`, then
/// deletes those segments and older checkpoints. See the module doc.
///
/// # Errors
/// [`StorageError::Io`], or what replay reports. On error the old state is left in place
/// (a leftover `.tmp` directory is removed by the next checkpoint).
pub fn checkpoint(
    wal_dir: &Path,
    last: u64,
    keep: &dyn Fn(SeriesRef) -> bool,
    mint_ms: i64,
    metrics: &StorageMetrics,
) -> Result<CheckpointStats> {
    let mut stats = CheckpointStats::default();
    let prev = list_checkpoints(wal_dir)?.into_iter().rfind(|(n, _)| *n <= last);
    let after = prev.as_ref().map_or(0, |p| p.0);
    let segs: Vec<u64> = list_segments(wal_dir)?.into_iter().filter(|&s| s > after && s <= last).collect();

    let final_dir = wal_dir.join(checkpoint_name(last));
    let tmp_dir = wal_dir.join(format!("{}.tmp", checkpoint_name(last)));
    if tmp_dir.exists() {
        std::fs::remove_dir_all(&tmp_dir).map_err(|e| StorageError::io(format!("remove {}", tmp_dir.display()), e))?;
    }
    std::fs::create_dir_all(&tmp_dir).map_err(|e| StorageError::io(format!("create {}", tmp_dir.display()), e))?;

    let mut sink = SegmentSink::create(&tmp_dir, 0, DEFAULT_SEGMENT_BYTES, false)?;
    let mut out: Vec<u8> = Vec::with_capacity(FLUSH_BYTES * 2);
    let mut meta: HashMap<String, Metadata> = HashMap::new();
    let mut series = Vec::<RefSeries>::new();
    let mut samples = Vec::<RefSample>::new();
    let mut hists = Vec::<RefHistogramSample>::new();
    let mut exemplars = Vec::<RefExemplar>::new();
    let mut write_err: Option<StorageError> = None;
    let mut bound = mint_ms;
    record::encode_min_valid_time(&mut out, mint_ms);

    let mut on_record = |payload: &[u8]| -> Result<(), DecodeError> {
        match record::record_type(payload)? {
            RecordType::Series => {
                series.clear();
                record::decode_series(payload, &mut series)?;
                let before = series.len();
                series.retain(|s| keep(s.series_ref));
                stats.series_kept += series.len() as u64;
                stats.series_dropped += (before - series.len()) as u64;
                record::encode_series(
                    &mut out,
                    series
                        .iter()
                        .map(|s| (s.series_ref, s.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))),
                );
            }
            RecordType::Samples | RecordType::SamplesSt => {
                samples.clear();
                record::decode_samples(payload, &mut samples)?;
                let before = samples.len();
                samples.retain(|s| s.t_ms >= mint_ms && keep(s.series_ref));
                stats.samples_kept += samples.len() as u64;
                stats.samples_dropped += (before - samples.len()) as u64;
                record::encode_samples(&mut out, &samples);
            }
            RecordType::HistogramSamples | RecordType::HistogramSamplesSt => {
                hists.clear();
                record::decode_histograms(payload, &mut hists)?;
                let before = hists.len();
                hists.retain(|s| s.t_ms >= mint_ms && keep(s.series_ref));
                stats.samples_kept += hists.len() as u64;
                stats.samples_dropped += (before - hists.len()) as u64;
                record::encode_histograms(&mut out, hists.iter().map(|s| (s.series_ref, s.st_ms, s.t_ms, &s.h)));
            }
            RecordType::Exemplars => {
                exemplars.clear();
                record::decode_exemplars(payload, &mut exemplars)?;
                exemplars.retain(|e| e.t_ms >= mint_ms && keep(e.series_ref));
                stats.exemplars_kept += exemplars.len() as u64;
                let ex: Vec<(SeriesRef, Exemplar)> = exemplars
                    .drain(..)
                    .map(|e| (e.series_ref, Exemplar { labels: e.labels, value: e.value, t_ms: e.t_ms }))
                    .collect();
                record::encode_exemplars(&mut out, ex.iter().map(|(r, e)| (*r, e)));
            }
            RecordType::Metadata => {
                let mut v = Vec::new();
                record::decode_metadata(payload, &mut v)?;
                for m in v {
                    meta.insert(m.metric, m.metadata);
                }
            }
            RecordType::MinValidTime => bound = bound.max(record::decode_min_valid_time(payload)?),
        }
        if out.len() >= FLUSH_BYTES && write_err.is_none() {
            if let Err(e) = sink.write(&out, false) {
                write_err = Some(e);
            }
            out.clear();
        }
        Ok(())
    };

    if let Some((_, cp)) = &prev {
        let cp_segs = list_segments(cp)?;
        replay_dir_segments(cp, &cp_segs, metrics, &mut on_record)?;
    }
    replay_dir_segments(wal_dir, &segs, metrics, &mut on_record)?;
    if let Some(e) = write_err {
        return Err(e);
    }
    if bound > mint_ms {
        record::encode_min_valid_time(&mut out, bound);
    }
    let mut names: Vec<&String> = meta.keys().collect();
    names.sort();
    record::encode_metadata(&mut out, names.into_iter().map(|n| (n.as_str(), &meta[n])));
    sink.write(&out, false)?;
    sink.sync()?;
    drop(sink);
    sync_dir(&tmp_dir)?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|e| StorageError::io(format!("remove {}", final_dir.display()), e))?;
    }
    std::fs::rename(&tmp_dir, &final_dir)
        .map_err(|e| StorageError::io(format!("rename {} into place", tmp_dir.display()), e))?;
    sync_dir(wal_dir)?;

    // The new checkpoint is durable: older state can go.
    for s in list_segments(wal_dir)?.into_iter().filter(|&s| s <= last) {
        let p = segment_path(wal_dir, s);
        std::fs::remove_file(&p).map_err(|e| StorageError::io(format!("delete WAL segment {}", p.display()), e))?;
        stats.segments_deleted += 1;
    }
    for (n, p) in list_checkpoints(wal_dir)? {
        if n < last {
            std::fs::remove_dir_all(&p).map_err(|e| StorageError::io(format!("delete checkpoint {}", p.display()), e))?;
        }
    }
    sync_dir(wal_dir)?;
    metrics.wal_segments.store(list_segments(wal_dir)?.len() as u64, std::sync::atomic::Ordering::Relaxed);
    StorageMetrics::add(&metrics.checkpoints, 1);
    Ok(stats)
}
