//! [`Db::snapshot`]: a consistent copy of the database as plain blocks, as Prometheus'
//! `DB.Snapshot(dir, withHead)` (behind `POST /api/v1/admin/tsdb/snapshot`) makes it.
//!
//! # What is written
//! ```text
//! <dir>/<ULID>/   one per persisted block: every file hard-linked (copied only where the
//!                 filesystem refuses links, e.g. across devices)
//! <dir>/<ULID>/   with the head: the head's whole time range written as one more level-1
//!                 block through BlockWriter (index included; open chunks as of now)
//! ```
//! The result is a directory a `Db` (or a block reader) opens like a data directory without a
//! WAL. Blocks are immutable, so links share their bytes with the live data at no cost; a
//! block later deleted by compaction or retention stays readable through the snapshot's links.
//!
//! # Consistency
//! The snapshot holds the maintenance lock throughout: no head compaction, block merge or
//! retention runs meanwhile, so every linked block is still on disk and the head has not been
//! truncated into a block that was not linked. Appends continue: the head block holds what was
//! committed when its series were read. As in Prometheus, a head range that overlaps a block
//! (possible only after a crash between writing a block and truncating the head) is written
//! as is; readers deduplicate overlapping blocks.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use crate::block::{BlockMeta, BlockWriter};
use crate::error::{Result, StorageError};

use super::Db;

/// What [`Db::snapshot`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotStats {
    /// Persisted blocks linked into the snapshot.
    pub blocks_linked: usize,
    /// Files hard-linked.
    pub files_linked: usize,
    /// Files copied because a hard link was refused.
    pub files_copied: usize,
    /// The block written from the head (`None` without `with_head`, or for an empty head).
    pub head_block: Option<BlockMeta>,
}

impl Db {
    /// Writes a snapshot of the database into `dir` (created if missing; an existing block
    /// directory of the same ULID in it is an error): every persisted block hard-linked, and
    /// with `with_head` the head's data `[head min time, head max time]` as one more block.
    /// See the module doc for layout and consistency. Semantics of Prometheus
    /// `tsdb.DB.Snapshot`.
    ///
    /// # Errors
    /// [`StorageError::Io`] if a directory cannot be created or a file linked or copied;
    /// errors of the head read or the block writer. A failed snapshot may leave a partial
    /// `dir` behind (the live database is untouched).
    pub fn snapshot(&self, dir: &Path, with_head: bool) -> Result<SnapshotStats> {
        let _maintenance = self.inner.maintenance.lock();
        fs::create_dir_all(dir).map_err(|e| StorageError::io(format!("create {}", dir.display()), e))?;
        let mut stats = SnapshotStats { blocks_linked: 0, files_linked: 0, files_copied: 0, head_block: None };
        for b in self.blocks().iter() {
            let dst = dir.join(b.meta().ulid.to_string());
            link_tree(b.dir(), &dst, &mut stats)?;
            stats.blocks_linked += 1;
        }
        if with_head {
            stats.head_block = self.write_head_snapshot(dir)?;
        }
        Ok(stats)
    }

    /// Writes the whole head as a block into `dir`; `None` when the head holds no sample.
    fn write_head_snapshot(&self, dir: &Path) -> Result<Option<BlockMeta>> {
        let head = &self.inner.head;
        let (mint, maxt) = (head.min_time(), head.max_time());
        if mint > maxt {
            return Ok(None);
        }
        let series = head.series_chunks(mint, maxt)?;
        if series.is_empty() {
            return Ok(None);
        }
        // A block's max time is exclusive.
        let mut w = BlockWriter::create(dir, mint, maxt.saturating_add(1))?;
        for s in &series {
            w.add_series(&s.labels, &s.chunks)?;
        }
        let meta = w.finish()?;
        tracing::info!(ulid = %meta.ulid, mint, maxt, series = series.len(), dir = %dir.display(), "wrote the head into a snapshot");
        Ok(Some(meta))
    }
}

/// Recreates the directory tree `src` at `dst` (which must not exist), hard-linking every
/// regular file and copying it where linking is refused.
fn link_tree(src: &Path, dst: &Path, stats: &mut SnapshotStats) -> Result<()> {
    fs::create_dir(dst).map_err(|e| StorageError::io(format!("create {}", dst.display()), e))?;
    let entries = fs::read_dir(src).map_err(|e| StorageError::io(format!("read {}", src.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(format!("read {}", src.display()), e))?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| StorageError::io(format!("stat {}", from.display()), e))?;
        if kind.is_dir() {
            link_tree(&from, &to, stats)?;
        } else if kind.is_file() {
            match fs::hard_link(&from, &to) {
                Ok(()) => stats.files_linked += 1,
                // EXDEV (cross-device) and filesystems without links: copy instead.
                Err(e) if matches!(e.kind(), ErrorKind::CrossesDevices | ErrorKind::Unsupported | ErrorKind::PermissionDenied) => {
                    fs::copy(&from, &to).map_err(|e| StorageError::io(format!("copy {} to {}", from.display(), to.display()), e))?;
                    stats.files_copied += 1;
                }
                Err(e) => return Err(StorageError::io(format!("link {} to {}", from.display(), to.display()), e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::api::{Appender, Querier};
    use crate::chunkenc::ValueType;
    use crate::db::DbOptions;
    use crate::labels::Labels;
    use crate::matcher::Matcher;

    const HOUR_MS: i64 = 3_600_000;

    fn labels(i: usize) -> Labels {
        Labels::from_pairs([("__name__", "m".to_string()), ("i", i.to_string())])
    }

    /// Appends `series` series with a sample every 15 s in `[from_ms, to_ms)`.
    fn fill(db: &Db, series: usize, from_ms: i64, to_ms: i64) {
        let mut t = from_ms;
        while t < to_ms {
            let mut app = db.appender();
            for i in 0..series {
                app.append_labels(&labels(i), t, (t / 15_000 + i as i64) as f64).unwrap();
            }
            app.commit().unwrap();
            t += 15_000;
        }
    }

    /// Every float sample of every series `m` of `db`, sorted by labels.
    fn read_all(db: &Db) -> Vec<(Labels, Vec<(i64, f64)>)> {
        let m = Matcher::equal("__name__", "m");
        let mut out: Vec<_> = db
            .querier()
            .select(&[m], i64::MIN, i64::MAX)
            .unwrap()
            .into_iter()
            .map(|s| {
                let mut it = s.iter();
                let mut v = Vec::new();
                while it.next() == ValueType::Float {
                    v.push(it.at());
                }
                (s.labels, v)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn snapshot_links_blocks_and_persists_the_head() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let db = Db::open(&data, DbOptions::default()).unwrap();
        // 5 h of data: maintenance cuts the oldest 2 h ranges into blocks, the rest stays in
        // the head.
        fill(&db, 20, 0, 5 * HOUR_MS);
        db.maintain(5 * HOUR_MS).unwrap();
        let blocks = db.blocks();
        assert!(!blocks.is_empty(), "maintenance wrote blocks");
        let live_samples = read_all(&db);
        assert_eq!(live_samples.len(), 20);

        let snap = tmp.path().join("snap");
        let stats = db.snapshot(&snap, true).unwrap();
        assert_eq!(stats.blocks_linked, blocks.len());
        assert!(stats.files_linked >= 3 * blocks.len(), "meta.json, index and chunks per block: {stats:?}");
        let head = stats.head_block.clone().expect("the head had data");
        assert!(snap.join(head.ulid.to_string()).join("index").is_file());
        // Linked, not copied: the same inode as the live block's index.
        let b0 = &blocks[0];
        let live = fs::metadata(b0.dir().join("index")).unwrap();
        let linked = fs::metadata(snap.join(b0.meta().ulid.to_string()).join("index")).unwrap();
        assert_eq!(live.ino(), linked.ino());

        // The snapshot, opened as a database, holds every sample the live database does.
        db.close().unwrap();
        drop(db);
        let snap_db = Db::open(&snap, DbOptions::default()).unwrap();
        let got = read_all(&snap_db);
        snap_db.close().unwrap();
        assert_eq!(got.len(), 20);
        assert_eq!(got, live_samples);
        assert_eq!(got[0].1.len(), (5 * HOUR_MS / 15_000) as usize);
    }

    #[test]
    fn snapshot_without_head_has_only_blocks() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open(tmp.path().join("data"), DbOptions::default()).unwrap();
        fill(&db, 3, 0, HOUR_MS);
        let snap = tmp.path().join("snap");
        let stats = db.snapshot(&snap, false).unwrap();
        assert_eq!(stats, SnapshotStats { blocks_linked: 0, files_linked: 0, files_copied: 0, head_block: None });
        assert_eq!(fs::read_dir(&snap).unwrap().count(), 0);
        // The same with the head: one block holding the hour.
        let stats = db.snapshot(&tmp.path().join("snap2"), true).unwrap();
        let head = stats.head_block.unwrap();
        assert_eq!((head.min_time_ms, head.max_time_ms), (0, HOUR_MS - 15_000 + 1));
        assert_eq!(head.stats.num_series, 3);
        assert_eq!(head.stats.num_samples, 3 * (HOUR_MS / 15_000) as u64);
    }

    #[test]
    fn snapshot_of_an_empty_database_is_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open(tmp.path().join("data"), DbOptions::default()).unwrap();
        let stats = db.snapshot(&tmp.path().join("snap"), true).unwrap();
        assert_eq!(stats.head_block, None);
        assert_eq!(stats.blocks_linked, 0);
    }
}
