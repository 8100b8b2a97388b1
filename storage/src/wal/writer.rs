//! [`WalWriter`]: appends commits to the WAL with one `write()` each and makes them durable per
//! the [`FsyncPolicy`], with group commit under [`FsyncPolicy::Always`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::segment::{list_segments, SegmentSink, DEFAULT_SEGMENT_BYTES};
use crate::error::{Result, StorageError};
use crate::metrics::StorageMetrics;

/// When the WAL is fsynced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Fsync before every commit returns; concurrent committers share one fsync (group commit).
    /// An acknowledged commit survives a power loss. The default.
    #[default]
    Always,
    /// Fsync from a background thread every interval: a power loss (not a process crash) may
    /// lose up to this much acknowledged data.
    Interval(Duration),
    /// Never fsync (the OS writes back): a process crash loses nothing written, a power loss
    /// may lose anything not yet written back. Prometheus' behaviour.
    Never,
}

/// WAL writer options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// Segment size at which the next segment is started. Default 128 MiB.
    pub segment_bytes: u64,
    /// Fsync policy. Default [`FsyncPolicy::Always`].
    pub fsync: FsyncPolicy,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions { segment_bytes: DEFAULT_SEGMENT_BYTES, fsync: FsyncPolicy::Always }
    }
}

/// The write side of one WAL directory. Shared by all appenders (`&self` methods; internally
/// one mutex around the open segment, held only for the `write()`).
pub struct WalWriter {
    shared: Arc<Shared>,
    syncer: Option<JoinHandle<()>>,
}

struct Shared {
    dir: PathBuf,
    opts: WalOptions,
    metrics: Arc<StorageMetrics>,
    /// The open segment and the not-yet-written buffered records. Held for one `write()`.
    inner: Mutex<Inner>,
    /// Group-commit state; separate from `inner` so that writers are not blocked by an fsync.
    sync: Mutex<SyncState>,
    sync_cv: Condvar,
    /// Set on drop to stop the interval syncer.
    stop: Mutex<bool>,
    stop_cv: Condvar,
}

struct Inner {
    sink: SegmentSink,
    /// Records buffered by [`WalWriter::buffer`] (series definitions), written ahead of the
    /// next commit so that a series record always precedes samples that use it.
    pending: Vec<u8>,
    /// Number of writes done; a commit's sequence number is the value after its write.
    written_seq: u64,
    /// A shared handle to the current segment file for fsyncing outside the lock.
    file: Arc<std::fs::File>,
}

struct SyncState {
    synced_seq: u64,
    syncing: bool,
}

impl WalWriter {
    /// Opens the WAL directory `dir` for writing (creating it), starting a new segment after
    /// the highest existing one (or after `min_next - 1`), never appending to an old segment:
    /// its tail may be torn.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub fn open(dir: &Path, opts: WalOptions, min_next: u64, metrics: Arc<StorageMetrics>) -> Result<WalWriter> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(format!("create WAL dir {}", dir.display()), e))?;
        let segs = list_segments(dir)?;
        let next = segs.last().map_or(1, |l| l + 1).max(min_next).max(1);
        let sync = opts.fsync != FsyncPolicy::Never;
        let sink = SegmentSink::create(dir, next, opts.segment_bytes, sync)?;
        let file = Arc::new(sink.file().try_clone().map_err(|e| StorageError::io("clone WAL segment handle", e))?);
        metrics.wal_segments.store(segs.len() as u64 + 1, std::sync::atomic::Ordering::Relaxed);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            opts,
            metrics,
            inner: Mutex::new(Inner { sink, pending: Vec::new(), written_seq: 0, file }),
            sync: Mutex::new(SyncState { synced_seq: 0, syncing: false }),
            sync_cv: Condvar::new(),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
        });
        let syncer = match opts.fsync {
            FsyncPolicy::Interval(d) => {
                let s = Arc::clone(&shared);
                Some(
                    std::thread::Builder::new()
                        .name("wal-fsync".into())
                        .spawn(move || s.interval_loop(d))
                        .map_err(|e| StorageError::io("spawn WAL fsync thread", e))?,
                )
            }
            _ => None,
        };
        Ok(WalWriter { shared, syncer })
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The options in force.
    pub fn options(&self) -> WalOptions {
        self.shared.opts
    }

    /// Buffers records (built by `f` with the [`super::record`] encoders) to be written ahead of
    /// the next commit, without a syscall. The head logs series definitions this way at series
    /// creation, so that whichever transaction first commits a sample for the series writes the
    /// definition before it.
    pub fn buffer(&self, f: impl FnOnce(&mut Vec<u8>)) {
        f(&mut self.shared.inner.lock().pending);
    }

    /// Writes `records` (whole framed records, possibly empty) together with any buffered
    /// records in one `write()`, then waits for durability per the fsync policy.
    ///
    /// # Errors
    /// [`StorageError::Io`]; the records may or may not be on disk, and are not acknowledged.
    pub fn commit(&self, records: &[u8]) -> Result<()> {
        let seq = {
            let mut inner = self.shared.inner.lock();
            let inner = &mut *inner;
            if inner.pending.is_empty() && records.is_empty() {
                return Ok(());
            }
            let n = (inner.pending.len() + records.len()) as u64;
            let sync_on_roll = self.shared.opts.fsync != FsyncPolicy::Never;
            let rolled = if inner.pending.is_empty() {
                inner.sink.write(records, sync_on_roll)?
            } else {
                let buffered = inner.pending.len();
                inner.pending.extend_from_slice(records);
                match inner.sink.write(&inner.pending, sync_on_roll) {
                    Ok(rolled) => {
                        inner.pending.clear();
                        rolled
                    }
                    Err(e) => {
                        // Keep the buffered definitions for the next write (it goes to a fresh
                        // segment); the failed commit's own records are the caller's to retry.
                        inner.pending.truncate(buffered);
                        return Err(e);
                    }
                }
            };
            if rolled {
                self.shared.metrics.wal_segments.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                inner.file =
                    Arc::new(inner.sink.file().try_clone().map_err(|e| StorageError::io("clone WAL segment handle", e))?);
            }
            StorageMetrics::add(&self.shared.metrics.wal_bytes_written, n);
            inner.written_seq += 1;
            inner.written_seq
        };
        if self.shared.opts.fsync == FsyncPolicy::Always {
            self.shared.wait_synced(seq)?;
        }
        Ok(())
    }

    /// Writes buffered records and fsyncs the current segment, whatever the policy.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub fn sync(&self) -> Result<()> {
        self.commit(&[])?;
        let seq = self.shared.inner.lock().written_seq;
        self.shared.sync_to(seq, true)
    }

    /// Closes the current segment (writing buffered records, fsynced unless the policy is
    /// `Never`) and starts the next one. Returns the number of the **closed** segment: every
    /// record committed before this call is in a segment numbered at most that.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub fn cut_segment(&self) -> Result<u64> {
        let mut inner = self.shared.inner.lock();
        let inner = &mut *inner;
        let sync = self.shared.opts.fsync != FsyncPolicy::Never;
        if !inner.pending.is_empty() {
            inner.sink.write(&inner.pending, sync)?; // on error the buffer is kept for a retry
            inner.pending.clear();
            inner.written_seq += 1;
        }
        let closed = inner.sink.segment();
        inner.sink.roll(sync)?;
        inner.file = Arc::new(inner.sink.file().try_clone().map_err(|e| StorageError::io("clone WAL segment handle", e))?);
        self.shared.metrics.wal_segments.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(closed)
    }

    /// The number of the segment currently written.
    pub fn current_segment(&self) -> u64 {
        self.shared.inner.lock().sink.segment()
    }
}

impl Shared {
    /// Waits until write `seq` is fsynced; one waiter fsyncs on behalf of all (group commit).
    fn wait_synced(&self, seq: u64) -> Result<()> {
        self.sync_to(seq, false)
    }

    fn sync_to(&self, seq: u64, force: bool) -> Result<()> {
        let mut st = self.sync.lock();
        let mut forced_done = !force;
        loop {
            if st.synced_seq >= seq && forced_done {
                return Ok(());
            }
            if st.syncing {
                self.sync_cv.wait(&mut st);
                continue;
            }
            st.syncing = true;
            drop(st);
            // Everything written up to `target` is in `file` or in an older segment, and older
            // segments were fsynced when they were closed.
            let (file, target) = {
                let inner = self.inner.lock();
                (Arc::clone(&inner.file), inner.written_seq)
            };
            let started = Instant::now();
            let r = file.sync_data();
            StorageMetrics::add(&self.metrics.wal_fsyncs, 1);
            StorageMetrics::add(&self.metrics.wal_fsync_micros, started.elapsed().as_micros() as u64);
            st = self.sync.lock();
            st.syncing = false;
            self.sync_cv.notify_all();
            match r {
                Ok(()) => {
                    st.synced_seq = st.synced_seq.max(target);
                    forced_done = true;
                }
                Err(e) => return Err(StorageError::io(format!("fsync WAL in {}", self.dir.display()), e)),
            }
        }
    }

    fn interval_loop(&self, every: Duration) {
        let mut stop = self.stop.lock();
        loop {
            if *stop {
                return;
            }
            let timed_out = self.stop_cv.wait_for(&mut stop, every).timed_out();
            if *stop {
                return;
            }
            if timed_out {
                drop(stop);
                let seq = self.inner.lock().written_seq;
                if let Err(e) = self.sync_to(seq, false) {
                    tracing::warn!(error = %e, "periodic WAL fsync failed");
                }
                stop = self.stop.lock();
            }
        }
    }
}

impl Drop for WalWriter {
    fn drop(&mut self) {
        *self.shared.stop.lock() = true;
        self.shared.stop_cv.notify_all();
        if let Some(h) = self.syncer.take() {
            let _ = h.join();
        }
        let flushed = self.commit(&[]);
        let synced = if self.shared.opts.fsync == FsyncPolicy::Never {
            Ok(())
        } else {
            let seq = self.shared.inner.lock().written_seq;
            flushed.and_then(|()| self.shared.sync_to(seq, false))
        };
        if let Err(e) = synced {
            tracing::warn!(error = %e, dir = %self.shared.dir.display(), "closing the WAL failed");
        }
    }
}
