//! The write-ahead log: every committed append transaction is written here before it becomes
//! visible, so that the head can be rebuilt after a crash.
//!
//! # Directory layout
//!
//! ```text
//! wal/
//!   00000001            segment files, numbered from 1, 8 decimal digits
//!   00000002
//!   checkpoint.00000001/  compacted state of segments ..=1 (its own segments from 00000000)
//! ```
//!
//! A segment is closed and the next one started when a write would take it past
//! [`WalOptions::segment_bytes`] (default 128 MiB). A segment is never reopened for writing:
//! after a restart the writer starts a fresh segment, because the old one may end in a torn
//! record.
//!
//! # Segment layout (version 1)
//!
//! ```text
//! offset 0   magic "HWAL" (4 bytes)
//! offset 4   segment version u8 = 1
//! offset 5   3 zero bytes
//! offset 8   records, back to back, until the end of the file
//! ```
//!
//! # Record frame
//!
//! ```text
//! len     u32 LE   length of payload in bytes (>= 2)
//! crc     u32 LE   CRC-32C (Castagnoli) of payload
//! payload len bytes:
//!   type    u8     1 series, 2 samples, 3 histogram samples, 4 exemplars, 5 metadata,
//!                  6 lower bound, 7 samples with start timestamps, 8 histogram samples
//!                  with start timestamps
//!   version u8     1 for every type today; a new layout gets a new version, old ones stay
//!   body           per type, below
//! ```
//!
//! `uvarint` is LEB128 (Go's `binary.PutUvarint`); `varint` is zig-zag + LEB128; `str` is
//! `uvarint len` then UTF-8 bytes; `labels` is `uvarint n` then `n × (str name, str value)`
//! sorted by name; `f64` is the IEEE-754 bit pattern as u64 LE (so NaN payloads, and with them
//! Prometheus' stale marker `0x7ff0000000000002`, survive bit-exact).
//!
//! | type | body (version 1) |
//! |------|------------------|
//! | 1 series | repeated: `uvarint ref`, `labels` |
//! | 2 samples | `u64 LE ref0`, `i64 LE t0`, then repeated: `varint (ref - ref0)`, `varint (t_ms - t0)`, `f64 v` |
//! | 3 histograms | `u64 LE ref0`, `i64 LE t0`, then repeated: `varint dref`, `varint dt`, `histogram` |
//! | 4 exemplars | `u64 LE ref0`, `i64 LE t0`, then repeated: `varint dref`, `varint dt`, `f64 value`, `labels` |
//! | 5 metadata | repeated: `str metric`, `u8 type` (0 unknown, 1 counter, 2 gauge, 3 histogram, 4 gaugehistogram, 5 summary, 6 info, 7 stateset), `str unit`, `str help` |
//! | 6 lower bound | `i64 LE min_valid_t_ms`: samples before it belong to blocks (first record of a checkpoint) |
//! | 7 samples with ST | as 2, with `varint (st_ms - t0)` after each entry's `dt` (`st_ms` 0: none) |
//! | 8 histograms with ST | as 3, with `varint (st_ms - t0)` after each entry's `dt` |
//!
//! Types 7 and 8 carry start timestamps ([`crate::Appender::append_st`]); a writer uses them
//! only for a record in which some entry has a non-zero start timestamp, so data without start
//! timestamps is logged exactly as before.
//!
//! `histogram` is: `u8 counter_reset_hint`, `varint schema`, `f64 zero_threshold`,
//! `f64 zero_count`, `f64 count`, `f64 sum`, positive spans (`uvarint n`, `n × (varint offset,
//! uvarint length)`), positive buckets (`uvarint n`, `n × f64`, absolute counts), negative
//! spans, negative buckets, custom bounds (`uvarint n`, `n × f64`).
//!
//! The deltas of samples, histograms and exemplars are against the first entry of the record
//! (as Prometheus' `record` package does), which keeps a commit's record small without making
//! each entry depend on its predecessor.
//!
//! # Writing
//!
//! [`WalWriter::commit`] writes one appender commit, all its records, with one `write()`, then
//! waits per the [`FsyncPolicy`]: `Always` (default) fsyncs before returning, and concurrent
//! committers share one fsync (group commit: whoever finds no fsync running starts one that
//! covers every write done so far; the others wait for it); `Interval(d)` fsyncs from a
//! background thread; `Never` leaves it to the OS. Series definitions are buffered with
//! [`WalWriter::buffer`] when a series is created and written ahead of the next commit, so a
//! series record always precedes the first sample that uses the series.
//!
//! # Reading
//!
//! [`replay`] reads the newest checkpoint, then every later segment, in order. A record whose
//! frame is torn (short header, length past the end of file), whose checksum does not match,
//! or whose body does not decode drops the rest of its segment with a `tracing::warn!` naming
//! the segment and offset; replay goes on with the next segment. A crash (`kill -9`) can only
//! tear the last record of the last segment, so it never costs an acknowledged commit.
//!
//! # Checkpoints
//!
//! See [`checkpoint()`]: `checkpoint.N/` holds the still-needed part of everything up to segment
//! `N`, written atomically (temp dir + rename); segments `<= N` and older checkpoints are then
//! deleted.

pub mod checkpoint;
pub mod reader;
pub mod record;
pub mod segment;
pub mod writer;

#[cfg(test)]
mod tests;

pub use checkpoint::{checkpoint, CheckpointStats};
pub use reader::{checkpoint_name, list_checkpoints, replay, ReplayStats};
pub use record::{
    DecodeError, Record, RecordType, RefExemplar, RefHistogramSample, RefMetadata, RefSample, RefSeries,
};
pub use segment::{list_segments, segment_name, DEFAULT_SEGMENT_BYTES};
pub use writer::{FsyncPolicy, WalOptions, WalWriter};
