//! `meta.json`: what a block holds, in Prometheus' `tsdb/block.go` `BlockMeta` shape.
//!
//! ```json
//! {"ulid": "01J...", "minTime": 0, "maxTime": 7200000,
//!  "stats": {"numSamples": 120, "numSeries": 1, "numChunks": 1},
//!  "compaction": {"level": 1, "sources": ["01J..."], "parents": []},
//!  "version": 1}
//! ```
//!
//! Times are ms since the epoch; `minTime` is inclusive and `maxTime` exclusive, as in
//! Prometheus (a block cut from the head for `[0, 2h)` has `maxTime` = 7200000). `version` is
//! the block format version ([`BLOCK_VERSION`]); a reader refuses other versions.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::error::{Result, StorageError};

/// Name of the metadata file inside a block directory.
pub const META_FILENAME: &str = "meta.json";
/// The block format version written by this build (meta.json + index v1 + chunks).
pub const BLOCK_VERSION: u32 = 1;

/// Counts of what a block holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    /// Samples (floats and histograms).
    pub num_samples: u64,
    /// Series.
    pub num_series: u64,
    /// Chunks.
    pub num_chunks: u64,
}

/// Compaction lineage of a block.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockCompaction {
    /// 1 for a block cut from the head; a merge produces max(level of its inputs) + 1.
    pub level: u32,
    /// ULIDs of the level-1 blocks whose data this block holds (sorted).
    #[serde(with = "ulid_list")]
    pub sources: Vec<Ulid>,
    /// ULIDs of the blocks merged into this one (empty for a head block).
    #[serde(default, with = "ulid_list")]
    pub parents: Vec<Ulid>,
}

/// The content of `meta.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    /// The block's id; also its directory name.
    #[serde(with = "ulid_str")]
    pub ulid: Ulid,
    /// Inclusive lower time bound, ms since the epoch.
    #[serde(rename = "minTime")]
    pub min_time_ms: i64,
    /// Exclusive upper time bound, ms since the epoch.
    #[serde(rename = "maxTime")]
    pub max_time_ms: i64,
    /// Counts.
    pub stats: BlockStats,
    /// Lineage.
    pub compaction: BlockCompaction,
    /// Block format version.
    pub version: u32,
}

impl BlockMeta {
    /// True if the block holds data in the inclusive range `[mint_ms, maxt_ms]`.
    pub fn overlaps(&self, mint_ms: i64, maxt_ms: i64) -> bool {
        self.min_time_ms <= maxt_ms && mint_ms < self.max_time_ms
    }

    /// Reads and checks `<dir>/meta.json`.
    ///
    /// # Errors
    /// [`StorageError::Io`] if unreadable, [`StorageError::Corruption`] if not valid JSON of
    /// this shape, [`StorageError::UnsupportedVersion`] for another version.
    pub fn read(dir: &Path) -> Result<BlockMeta> {
        let path = dir.join(META_FILENAME);
        let bytes = fs::read(&path).map_err(|e| StorageError::io(format!("read {}", path.display()), e))?;
        let meta: BlockMeta = serde_json::from_slice(&bytes).map_err(|e| StorageError::Corruption {
            path: path.clone(),
            offset: e.column() as u64,
            reason: format!("invalid meta.json: {e}"),
        })?;
        if meta.version != BLOCK_VERSION {
            return Err(StorageError::UnsupportedVersion { path, version: u8::try_from(meta.version).unwrap_or(u8::MAX) });
        }
        Ok(meta)
    }

    /// Writes `<dir>/meta.json` and fsyncs it.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(META_FILENAME);
        let ctx = || format!("write {}", path.display());
        let json = serde_json::to_vec_pretty(self).map_err(|e| StorageError::io(ctx(), e.into()))?;
        let mut f = fs::File::create(&path).map_err(|e| StorageError::io(ctx(), e))?;
        f.write_all(&json).map_err(|e| StorageError::io(ctx(), e))?;
        f.sync_all().map_err(|e| StorageError::io(ctx(), e))
    }
}

/// ULIDs as their 26-character Crockford base32 strings (Prometheus' meta.json form).
mod ulid_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use ulid::Ulid;

    pub fn serialize<S: Serializer>(u: &Ulid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&u.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ulid, D::Error> {
        let s = String::deserialize(d)?;
        Ulid::from_string(&s).map_err(serde::de::Error::custom)
    }
}

mod ulid_list {
    use serde::{Deserialize, Deserializer, Serializer};
    use ulid::Ulid;

    pub fn serialize<S: Serializer>(us: &[Ulid], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(us.iter().map(|u| u.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ulid>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter().map(|s| Ulid::from_string(s).map_err(serde::de::Error::custom)).collect()
    }
}
