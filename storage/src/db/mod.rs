//! The database: the head plus the persistent blocks, and their upkeep.
//!
//! [`Db`] is what the server opens. Writes go to the head ([`Db::appender`]); reads see the
//! head and every block as one ([`Db::querier`], a [`MergeQuerier`]). A background thread
//! ([`Db::start_maintenance`]) keeps the head bounded and the blocks few:
//!
//! 1. **Head compaction** (Prometheus' rule): while the head spans more than 1.5 × the block
//!    range, its oldest block-aligned range `[mint, mint + range)` is written as a level-1 block,
//!    the block is opened and published to queriers, and only then is the head truncated to
//!    `mint + range` (which also checkpoints the WAL). A crash between the two leaves the data
//!    in both the block and the head/WAL; queries deduplicate, and the next run truncates.
//! 2. **Block compaction**: [`crate::block::compact::plan`] picks blocks to merge into the
//!    exponential ranges (2h, 6h, 18h, ... capped at 10% of retention); the merged block is
//!    published before its inputs are deleted.
//! 3. **Retention**: whole blocks whose data is older than `retention_ms` (measured from the
//!    newest sample) are deleted, then the oldest blocks while all blocks plus the WAL and head
//!    chunk files exceed `retention_bytes`.
//!
//! Readers hold an `Arc` snapshot of the block list, so a block deleted while a query runs
//! stays mapped until the query ends.
//!
//! # Directory
//! ```text
//! <dir>/lock          held with flock(2) while the database is open
//! <dir>/wal/          head WAL (crate::wal)
//! <dir>/chunks_head/  head chunk files (crate::chunks)
//! <dir>/<ULID>/       blocks (crate::block)
//! ```
//! [`Db::snapshot`] ([`snapshot`]) writes a copy as plain blocks into any directory (the
//! server uses `<dir>/snapshots/<name>/`, which the block listing ignores).

pub mod merge;
pub mod snapshot;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::api::{Querier, SelectHints};
use crate::block::{self, compact, retention, Block, BlockQuerier, BlockWriter};
use crate::error::{Result, StorageError};
use crate::head::{Head, HeadAppender, HeadOptions, HeadQuerier};
use crate::index::{cardinality_stats, CardinalityStats};
use crate::matcher::Matcher;
use crate::metrics::StorageMetrics;
use crate::series::Series;

pub use merge::{merge_series, MergeQuerier};
pub use snapshot::SnapshotStats;

/// Default time retention: 15 days in ms (Prometheus' default).
pub const DEFAULT_RETENTION_MS: i64 = 15 * 24 * 3_600_000;

/// Options of a [`Db`]. Every field has a default (see [`DbOptions::default`]).
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// Head options: block range (`chunk_range_ms`, default 2 h), WAL fsync policy (default
    /// always, with group commit), series limits, exemplar capacity.
    pub head: HeadOptions,
    /// Blocks older than this (ms, measured back from the newest sample) are deleted.
    /// Default 15 d. `0` disables time retention.
    pub retention_ms: i64,
    /// Maximum bytes of blocks plus WAL and head chunk files; the oldest blocks are deleted
    /// past it. Default 0 (off).
    pub retention_bytes: u64,
    /// How often the maintenance thread runs. Default 1 minute (Prometheus' compaction
    /// interval).
    pub maintenance_interval: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            head: HeadOptions::default(),
            retention_ms: DEFAULT_RETENTION_MS,
            retention_bytes: 0,
            maintenance_interval: Duration::from_secs(60),
        }
    }
}

/// What one maintenance run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceStats {
    /// Blocks written from the head.
    pub head_blocks: usize,
    /// Merges of blocks into bigger ones.
    pub merges: usize,
    /// Blocks deleted by time or size retention.
    pub deleted: usize,
}

/// The database. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
}

struct DbInner {
    dir: PathBuf,
    opts: DbOptions,
    head: Head,
    /// The published block list, sorted by min time. Replaced wholesale (copy on write) so a
    /// querier's snapshot is one `Arc` clone.
    blocks: RwLock<Arc<Vec<Arc<Block>>>>,
    metrics: Arc<StorageMetrics>,
    /// Serialises maintenance runs (background thread and explicit calls).
    maintenance: Mutex<()>,
    /// Set to stop the background thread; the condvar wakes it early.
    stop: Mutex<bool>,
    wake: Condvar,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// Holds the flock on `<dir>/lock` for the life of the database.
    _lock: File,
}

impl Db {
    /// Opens (or creates) the database in `dir`: takes the directory lock, removes leftovers of
    /// interrupted block writes and deletions, opens every block, then opens the head (WAL
    /// replay). Samples older than the newest block's end are refused afterwards
    /// ([`crate::AppendError::OutOfBounds`]).
    ///
    /// # Errors
    /// [`StorageError::Io`] (including "directory in use" when another process holds the lock),
    /// or corruption/version errors from a block or the WAL.
    pub fn open(dir: impl AsRef<Path>, opts: DbOptions) -> Result<Db> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::io(format!("create {}", dir.display()), e))?;
        let lock = lock_dir(&dir)?;
        let metrics = Arc::clone(&opts.head.metrics);
        let removed = retention::remove_leftovers(&dir)?;
        if removed > 0 {
            tracing::info!(removed, "removed leftovers of interrupted block writes or deletions");
        }
        let mut blocks = Vec::new();
        for (_, path) in block::list_block_dirs(&dir)? {
            blocks.push(Arc::new(Block::open(&path)?));
        }
        blocks.sort_by_key(|b| b.meta().min_time_ms);
        let mut head_opts = opts.head.clone();
        if let Some(max) = blocks.iter().map(|b| b.meta().max_time_ms).max() {
            // Block max times are exclusive: the head accepts from the block's end on.
            head_opts.min_valid_t_ms = head_opts.min_valid_t_ms.max(max);
        }
        let head = Head::open(&dir, head_opts)?;
        let db = Db {
            inner: Arc::new(DbInner {
                dir,
                opts,
                head,
                blocks: RwLock::new(Arc::new(blocks)),
                metrics,
                maintenance: Mutex::new(()),
                stop: Mutex::new(false),
                wake: Condvar::new(),
                worker: Mutex::new(None),
                _lock: lock,
            }),
        };
        db.publish_block_metrics();
        Ok(db)
    }

    /// A write transaction on the head.
    pub fn appender(&self) -> HeadAppender {
        self.inner.head.appender()
    }

    /// A reader over the head and every block, as of now.
    pub fn querier(&self) -> DbQuerier {
        DbQuerier { blocks: Arc::clone(&self.inner.blocks.read()), head: Arc::new(self.inner.head.querier()) }
    }

    /// The head, for exemplars, metadata, memory and replay information.
    pub fn head(&self) -> &Head {
        &self.inner.head
    }

    /// The counters the database publishes.
    pub fn metrics(&self) -> &Arc<StorageMetrics> {
        &self.inner.metrics
    }

    /// The options the database was opened with.
    pub fn options(&self) -> &DbOptions {
        &self.inner.opts
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The published blocks, sorted by min time.
    pub fn blocks(&self) -> Arc<Vec<Arc<Block>>> {
        Arc::clone(&self.inner.blocks.read())
    }

    /// Cardinality of the head (what Prometheus' `/api/v1/status/tsdb` reports), top `limit`
    /// entries per list.
    ///
    /// # Errors
    /// [`StorageError`] from the index.
    pub fn head_stats(&self, limit: usize) -> Result<CardinalityStats> {
        cardinality_stats(self.inner.head.index().as_ref(), limit)
    }

    /// Starts the background maintenance thread (idempotent). It runs [`Db::maintain`] every
    /// `maintenance_interval` until [`Db::close`].
    pub fn start_maintenance(&self) {
        let mut worker = self.inner.worker.lock();
        if worker.is_some() {
            return;
        }
        let db = self.clone();
        *worker = Some(
            std::thread::Builder::new()
                .name("hearth-maintenance".into())
                .spawn(move || db.maintenance_loop())
                .expect("spawning a thread only fails when the OS is out of resources"),
        );
    }

    fn maintenance_loop(&self) {
        loop {
            {
                let mut stop = self.inner.stop.lock();
                if !*stop {
                    self.inner.wake.wait_for(&mut stop, self.inner.opts.maintenance_interval);
                }
                if *stop {
                    return;
                }
            }
            if let Err(e) = self.maintain(now_ms()) {
                tracing::error!(error = %e, "storage maintenance failed; will retry");
            }
        }
    }

    /// One maintenance run: compact the head while it is too long, merge blocks, apply
    /// retention. `now_ms` is the wall clock (ms), used only as a lower bound for what "newest"
    /// means when the database is empty.
    ///
    /// # Errors
    /// The first [`StorageError`]; what was done before it stays done.
    pub fn maintain(&self, now_ms: i64) -> Result<MaintenanceStats> {
        let _g = self.inner.maintenance.lock();
        let mut stats = MaintenanceStats::default();
        stats.head_blocks = self.compact_head()?;
        stats.merges = self.compact_blocks()?;
        stats.deleted = self.apply_retention(now_ms)?;
        Ok(stats)
    }

    /// Writes the head's oldest block ranges into blocks while the head spans more than
    /// 1.5 × the block range. Returns the number of blocks written.
    fn compact_head(&self) -> Result<usize> {
        let head = &self.inner.head;
        let range = self.inner.opts.head.chunk_range_ms;
        let mut written = 0;
        loop {
            let (hmin, hmax) = (head.min_time(), head.max_time());
            if hmin > hmax || hmax - hmin <= range / 2 * 3 {
                return Ok(written);
            }
            let mint = hmin.div_euclid(range) * range;
            let maxt = mint + range; // exclusive
            let started = Instant::now();
            match self.write_head_block(mint, maxt) {
                Ok(()) => {}
                Err(e) => {
                    StorageMetrics::add(&self.inner.metrics.compactions_failed, 1);
                    return Err(e);
                }
            }
            head.truncate(maxt)?;
            StorageMetrics::add(&self.inner.metrics.compactions, 1);
            StorageMetrics::add(&self.inner.metrics.compaction_millis, started.elapsed().as_millis() as u64);
            written += 1;
        }
    }

    /// Writes `[mint, maxt)` of the head as a block and publishes it (no block when the range
    /// holds no series).
    fn write_head_block(&self, mint: i64, maxt: i64) -> Result<()> {
        // Refuse appends into the range first, so nothing lands there after the snapshot.
        self.inner.head.set_min_valid_time(maxt);
        let series = self.inner.head.series_chunks(mint, maxt - 1)?;
        if series.is_empty() {
            return Ok(());
        }
        let mut w = BlockWriter::create(&self.inner.dir, mint, maxt)?;
        for s in &series {
            w.add_series(&s.labels, &s.chunks)?;
        }
        let meta = w.finish()?;
        let block = Arc::new(Block::open(&self.inner.dir.join(meta.ulid.to_string()))?);
        tracing::info!(ulid = %meta.ulid, mint, maxt, series = series.len(), "compacted head range into a block");
        self.publish_blocks(|list| list.push(block), &[]);
        Ok(())
    }

    /// Merges blocks as the compaction plan says, until it says nothing. Returns merges done.
    fn compact_blocks(&self) -> Result<usize> {
        let ranges = compact::block_ranges(self.inner.opts.retention_ms);
        let mut merges = 0;
        // Bounded: every merge removes at least one block.
        for _ in 0..1024 {
            let blocks = self.blocks();
            let metas: Vec<_> = blocks.iter().map(|b| b.meta().clone()).collect();
            let plan = compact::plan(&metas, &ranges);
            if plan.len() < 2 {
                break;
            }
            let inputs: Vec<Arc<Block>> = blocks.iter().filter(|b| plan.contains(&b.meta().ulid)).cloned().collect();
            let started = Instant::now();
            let merged = match compact::compact(&self.inner.dir, &inputs) {
                Ok(m) => m,
                Err(e) => {
                    StorageMetrics::add(&self.inner.metrics.compactions_failed, 1);
                    return Err(e);
                }
            };
            let new_block = match merged {
                Some(meta) => Some(Arc::new(Block::open(&self.inner.dir.join(meta.ulid.to_string()))?)),
                None => None,
            };
            self.publish_blocks(
                |list| {
                    if let Some(b) = new_block {
                        list.push(b);
                    }
                },
                &plan,
            );
            for b in &inputs {
                retention::delete_block(b.dir())?;
            }
            StorageMetrics::add(&self.inner.metrics.compactions, 1);
            StorageMetrics::add(&self.inner.metrics.compaction_millis, started.elapsed().as_millis() as u64);
            merges += 1;
        }
        Ok(merges)
    }

    /// Deletes whole blocks past the time and size retention. Returns blocks deleted.
    fn apply_retention(&self, now_ms: i64) -> Result<usize> {
        let blocks = self.blocks();
        if blocks.is_empty() {
            return Ok(0);
        }
        let metas: Vec<_> = blocks.iter().map(|b| b.meta().clone()).collect();
        // "Now" is the newest sample (Prometheus measures from the newest block), never
        // earlier than the newest block, and the wall clock only when there is no data at all.
        let newest = metas.iter().map(|m| m.max_time_ms).max().unwrap_or(now_ms);
        let head_max = self.inner.head.max_time();
        let reference = if head_max == i64::MIN { newest } else { newest.max(head_max) };
        let mut doomed = retention::beyond_time_retention(&metas, reference, self.inner.opts.retention_ms);
        if self.inner.opts.retention_bytes > 0 {
            let sized: Vec<_> = blocks.iter().map(|b| (b.meta().clone(), b.size_bytes())).collect();
            let other = dir_size(&self.inner.dir.join("wal")) + dir_size(&self.inner.dir.join("chunks_head"));
            for u in retention::beyond_size_retention(&sized, self.inner.opts.retention_bytes, other) {
                if !doomed.contains(&u) {
                    doomed.push(u);
                }
            }
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        self.publish_blocks(|_| {}, &doomed);
        for b in blocks.iter().filter(|b| doomed.contains(&b.meta().ulid)) {
            retention::delete_block(b.dir())?;
            tracing::info!(ulid = %b.meta().ulid, "deleted block past retention");
        }
        StorageMetrics::add(&self.inner.metrics.blocks_deleted_retention, doomed.len() as u64);
        Ok(doomed.len())
    }

    /// Replaces the published block list: removes `remove`, lets `add` push new blocks, sorts.
    fn publish_blocks(&self, add: impl FnOnce(&mut Vec<Arc<Block>>), remove: &[ulid::Ulid]) {
        {
            let mut guard = self.inner.blocks.write();
            let mut list: Vec<Arc<Block>> =
                guard.iter().filter(|b| !remove.contains(&b.meta().ulid)).cloned().collect();
            add(&mut list);
            list.sort_by_key(|b| b.meta().min_time_ms);
            *guard = Arc::new(list);
        }
        self.publish_block_metrics();
    }

    fn publish_block_metrics(&self) {
        let blocks = self.blocks();
        let bytes: u64 = blocks.iter().map(|b| b.size_bytes()).sum();
        self.inner.metrics.blocks_loaded.store(blocks.len() as u64, Ordering::Relaxed);
        self.inner.metrics.blocks_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Bytes the database uses on disk: blocks, WAL and head chunk files.
    pub fn disk_bytes(&self) -> u64 {
        let blocks: u64 = self.blocks().iter().map(|b| b.size_bytes()).sum();
        blocks + dir_size(&self.inner.dir.join("wal")) + dir_size(&self.inner.dir.join("chunks_head"))
    }

    /// Stops the maintenance thread and makes everything acknowledged durable (WAL fsync).
    /// Idempotent; the database stays readable.
    ///
    /// # Errors
    /// [`StorageError::Io`] from the final WAL sync.
    pub fn close(&self) -> Result<()> {
        *self.inner.stop.lock() = true;
        self.inner.wake.notify_all();
        if let Some(h) = self.inner.worker.lock().take() {
            let _ = h.join();
        }
        self.inner.head.sync_wal()
    }
}

/// A reader over a snapshot of the blocks plus the head. Implements [`Querier`]; blocks that
/// cannot hold data in a call's range are not consulted.
pub struct DbQuerier {
    blocks: Arc<Vec<Arc<Block>>>,
    head: Arc<HeadQuerier>,
}

impl DbQuerier {
    fn sources(&self, mint_ms: i64, maxt_ms: i64) -> Vec<Arc<dyn Querier>> {
        let mut v: Vec<Arc<dyn Querier>> = self
            .blocks
            .iter()
            .filter(|b| b.meta().overlaps(mint_ms, maxt_ms))
            .map(|b| Arc::new(BlockQuerier::new(Arc::clone(b))) as Arc<dyn Querier>)
            .collect();
        v.push(Arc::clone(&self.head) as Arc<dyn Querier>);
        v
    }
}

impl Querier for DbQuerier {
    fn select(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<Series>> {
        MergeQuerier::new(self.sources(mint_ms, maxt_ms)).select(matchers, mint_ms, maxt_ms)
    }

    /// Hints reach the head when it is the only source in range (an instant query, or any
    /// range newer than the blocks: the dashboards' usual case); with blocks too the merge
    /// drops them ([`MergeQuerier::select_with_hints`]).
    fn select_with_hints(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64, hints: &SelectHints) -> Result<Vec<Series>> {
        MergeQuerier::new(self.sources(mint_ms, maxt_ms)).select_with_hints(matchers, mint_ms, maxt_ms, hints)
    }

    fn label_names(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<String>> {
        MergeQuerier::new(self.sources(mint_ms, maxt_ms)).label_names(matchers, mint_ms, maxt_ms)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<String>> {
        MergeQuerier::new(self.sources(mint_ms, maxt_ms)).label_values(name, matchers, mint_ms, maxt_ms)
    }
}

/// Takes an exclusive, non-blocking flock on `<dir>/lock`, so two processes never open one
/// data directory (each would corrupt the other's WAL).
fn lock_dir(dir: &Path) -> Result<File> {
    use std::os::fd::AsRawFd;
    let path = dir.join("lock");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::io(format!("open {}", path.display()), e))?;
    // SAFETY: flock on a valid, owned descriptor; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(StorageError::io(
            format!("lock {} (is another hearth using this data directory?)", path.display()),
            e,
        ));
    }
    Ok(f)
}

/// Total size of the regular files under `dir`, bytes (0 if missing).
fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The wall clock, ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Options for the database tests: defaults, without fsync.
#[cfg(test)]
fn test_options() -> DbOptions {
    use crate::wal::{FsyncPolicy, WalOptions};
    DbOptions {
        head: HeadOptions { wal: WalOptions { fsync: FsyncPolicy::Never, ..WalOptions::default() }, ..HeadOptions::default() },
        ..DbOptions::default()
    }
}

#[cfg(test)]
mod st_tests;

#[cfg(test)]
mod hints_tests;
