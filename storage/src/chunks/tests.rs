//! Chunk segment files: round trips, rollover, reopen, torn tails, removal, concurrency,
//! golden bytes.

use std::os::unix::fs::FileExt;

use proptest::prelude::*;

use super::*;
use crate::chunkenc::{encode_floats, ChunkIter, ValueType};

fn small() -> ChunkFilesOptions {
    ChunkFilesOptions { max_segment_bytes: 4096, ..ChunkFilesOptions::default() }
}

fn small_v2() -> ChunkFilesOptions {
    ChunkFilesOptions { max_segment_bytes: 4096, format: RecordFormat::V2 }
}

/// A float chunk with `n` samples starting at `t0`.
fn chunk(t0: i64, n: usize) -> (Encoding, Vec<u8>) {
    let ts: Vec<i64> = (0..n as i64).map(|i| t0 + i * 15_000).collect();
    let vs: Vec<f64> = (0..n).map(|i| (i * i) as f64).collect();
    encode_floats(&ts, &vs)
}

/// An uncompressed chunk (484 bytes for 30 samples), to fill segments quickly.
fn raw_chunk(t0: i64, n: usize) -> (Encoding, Vec<u8>) {
    let ts: Vec<i64> = (0..n as i64).map(|i| t0 + i).collect();
    let vs: Vec<f64> = ts.iter().map(|&t| t as f64).collect();
    (Encoding::Raw, crate::chunkenc::raw::encode(&ts, &vs))
}

fn first_sample(h: &ChunkHandle) -> (i64, f64) {
    let mut it = ChunkIter::new(h.encoding, h.bytes.as_slice());
    assert_eq!(it.next(), ValueType::Float);
    it.at()
}

#[test]
fn append_get_rollover_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    {
        let cf = ChunkFiles::open(dir.path(), small()).unwrap();
        for i in 0..200u64 {
            let t0 = i as i64 * 1_000_000;
            let (enc, b) = chunk(t0, 1 + (i as usize % 50));
            let r = cf.append(i, t0, t0 + 1, enc, &b).unwrap();
            let h = cf.get(r).unwrap();
            assert_eq!(h.bytes.as_slice(), &b[..]);
            assert_eq!(first_sample(&h).0, t0);
            written.push((r, i, enc, b));
        }
        assert!(written.windows(2).all(|w| w[0].0 < w[1].0), "refs grow in write order");
        let segs = cf.segments();
        assert!(segs.len() >= 3, "4 KiB segments roll over: {segs:?}");
        assert!(segs.iter().all(|s| s.size_bytes <= 4096));
        assert_eq!(segs.iter().filter(|s| s.active).count(), 1);
        cf.sync().unwrap();
    }
    // Sealed files are trimmed to their records.
    for e in fs::read_dir(dir.path()).unwrap() {
        let len = e.unwrap().metadata().unwrap().len();
        assert!(len < 4096);
    }
    let cf = ChunkFiles::open(dir.path(), small()).unwrap();
    for (r, series, enc, b) in &written {
        let (meta, h) = cf.get_with_meta(*r).unwrap();
        assert_eq!((meta.series_ref, meta.encoding, h.encoding), (*series, *enc, *enc));
        assert_eq!(h.bytes.as_slice(), &b[..]);
    }
    let mut seen = Vec::new();
    let report = cf
        .iterate_all(|r, meta, data| {
            seen.push((r, meta.series_ref, data.to_vec()));
            Ok(())
        })
        .unwrap();
    assert!(report.corruptions.is_empty(), "{:?}", report.corruptions);
    assert_eq!(report.chunks, 200);
    assert_eq!(seen, written.iter().map(|w| (w.0, w.1, w.3.clone())).collect::<Vec<_>>());
    // The writer starts a new segment after reopening.
    let last_seq = written.last().unwrap().0.seq();
    let (enc, b) = chunk(0, 3);
    let r = cf.append(9, 0, 1, enc, &b).unwrap();
    assert_eq!(r.seq(), last_seq + 1);
    assert_eq!(r.offset() as usize, FILE_HEADER_BYTES);
}

#[test]
fn crash_leaves_zero_tail_and_torn_record_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cf = ChunkFiles::open(dir.path(), ChunkFilesOptions::default()).unwrap();
    let mut refs = Vec::new();
    for i in 0..10 {
        let (enc, b) = chunk(i * 100, 20);
        refs.push(cf.append(i as u64, i * 100, i * 100 + 1, enc, &b).unwrap());
    }
    let path = cf.segments.read().values().next().unwrap().path.clone();
    // A crash: no seal, the preallocated zero tail stays.
    std::mem::forget(cf);
    assert_eq!(fs::metadata(&path).unwrap().len(), DEFAULT_MAX_SEGMENT_BYTES);
    let cf = ChunkFiles::open(dir.path(), ChunkFilesOptions::default()).unwrap();
    let report = cf.iterate_all(|_, _, _| Ok(())).unwrap();
    assert_eq!((report.chunks, report.corruptions.len()), (10, 0), "zero tail is a clean end");
    drop(cf);
    // Tear the 8th record: flip a byte inside its chunk data.
    let f = File::options().write(true).open(&path).unwrap();
    let off = u64::from(refs[7].offset()) + 30;
    f.write_all_at(&[0xAA], off).unwrap();
    let cf = ChunkFiles::open(dir.path(), ChunkFilesOptions::default()).unwrap();
    let mut n = 0;
    let report = cf
        .iterate_all(|r, _, _| {
            assert_eq!(r, refs[n]);
            n += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(report.chunks, 7);
    assert_eq!(report.corrupt_at, vec![refs[7]]);
    match &report.corruptions[..] {
        [StorageError::Corruption { offset, reason, .. }] => {
            assert_eq!(*offset, u64::from(refs[7].offset()));
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected one corruption, got {other:?}"),
    }
    assert!(matches!(cf.get(refs[7]), Err(StorageError::Corruption { .. })));
    assert!(cf.get(refs[6]).is_ok());
}

#[test]
fn callback_error_stops_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    let cf = ChunkFiles::open(dir.path(), small()).unwrap();
    for i in 0..5 {
        cf.append(i, 0, 1, Encoding::Raw, &[1, 2, 3]).unwrap();
    }
    let mut calls = 0;
    let res = cf.iterate_all(|_, _, _| {
        calls += 1;
        Err(StorageError::Closed)
    });
    assert!(matches!(res, Err(StorageError::Closed)));
    assert_eq!(calls, 1);
}

#[test]
fn removal_by_seq_and_time_keeps_handed_out_chunks_readable() {
    let dir = tempfile::tempdir().unwrap();
    let cf = ChunkFiles::open(dir.path(), small()).unwrap();
    let mut refs = Vec::new();
    for i in 0..100 {
        let (enc, b) = raw_chunk(i * 1000, 30);
        refs.push(cf.append(1, i * 1000, i * 1000 + 999, enc, &b).unwrap());
    }
    let held = cf.get(refs[0]).unwrap();
    let before = cf.segments();
    // Time: drop segments whose chunks all end before t = 40_000.
    let removed = cf.truncate_before(40_000).unwrap();
    assert!(removed > 0);
    let first_kept = refs.iter().find(|r| cf.get(**r).is_ok()).unwrap();
    let idx = refs.iter().position(|r| r == first_kept).unwrap();
    assert!(idx <= 40, "chunk {idx} onwards kept");
    assert!(idx > 0);
    assert_eq!(first_sample(&held).0, 0, "a chunk handed out before removal is still readable");
    // Sequence: everything but the active segment.
    let active = before.iter().find(|s| s.active).unwrap().seq;
    cf.remove_files_before(u32::MAX).unwrap();
    assert_eq!(cf.segments().iter().map(|s| s.seq).collect::<Vec<_>>(), vec![active]);
    assert!(cf.get(*refs.last().unwrap()).is_ok());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn truncate_before_scans_reopened_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cf = ChunkFiles::open(dir.path(), small()).unwrap();
        for i in 0..60 {
            let (enc, b) = chunk(i * 1000, 30);
            cf.append(1, i * 1000, i * 1000 + 999, enc, &b).unwrap();
        }
    }
    let cf = ChunkFiles::open(dir.path(), small()).unwrap();
    let n = cf.segments().len();
    assert_eq!(cf.truncate_before(i64::MIN).unwrap(), 0);
    assert_eq!(cf.truncate_before(i64::MAX).unwrap(), n, "no active segment after reopen");
}

#[test]
fn bad_input_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cf = ChunkFiles::open(dir.path(), small()).unwrap();
    assert!(cf.append(1, 0, 0, Encoding::Raw, &[]).is_err(), "empty chunk");
    assert!(cf.append(1, 0, 0, Encoding::Raw, &[7; 5000]).is_err(), "larger than a segment");
    assert!(ChunkFiles::open(dir.path(), ChunkFilesOptions { max_segment_bytes: 10, ..small() }).is_err());
    for r in [ChunkRef(0), ChunkRef::new(1, 3), ChunkRef::new(1, 4000), ChunkRef::new(77, 8)] {
        assert!(matches!(cf.get(r), Err(StorageError::Corruption { .. })), "{r:?}");
    }
}

#[test]
fn foreign_and_future_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = record::file_header(RecordFormat::V1).to_vec();
    h[4] = 3;
    fs::write(dir.path().join("000001"), &h).unwrap();
    assert!(matches!(ChunkFiles::open(dir.path(), small()), Err(StorageError::UnsupportedVersion { version: 3, .. })));
    fs::write(dir.path().join("000001"), b"nonsense").unwrap();
    assert!(matches!(ChunkFiles::open(dir.path(), small()), Err(StorageError::Corruption { .. })));
    // Unrelated names and leftover temporary files are not segments.
    fs::remove_file(dir.path().join("000001")).unwrap();
    fs::write(dir.path().join("000002.tmp"), b"partial").unwrap();
    fs::write(dir.path().join("notes"), b"x").unwrap();
    let cf = ChunkFiles::open(dir.path(), small()).unwrap();
    assert!(cf.segments().is_empty());
    assert!(!dir.path().join("000002.tmp").exists());
}

#[test]
fn golden_file_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cf = ChunkFiles::open(dir.path(), small()).unwrap();
    let r = cf.append(0x0102, -1, 1_700_000_000_000, Encoding::DecimalFloat, &[0xAB, 0xCD]).unwrap();
    assert_eq!(r, ChunkRef(0x0000_0001_0000_0008));
    cf.seal().unwrap();
    let b = fs::read(dir.path().join("000001")).unwrap();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    assert_eq!(
        hex,
        concat!(
            "4852544301000000",   // magic, version 1, padding
            "0201000000000000",   // series_ref
            "ffffffffffffffff",   // min_t_ms = -1
            "0068e5cf8b010000",   // max_t_ms
            "02", "02", "abcd",   // encoding, len, bytes
            "273f4aaf"            // crc32c
        )
    );
}

#[test]
fn golden_file_bytes_v2() {
    let dir = tempfile::tempdir().unwrap();
    let cf = ChunkFiles::open(dir.path(), small_v2()).unwrap();
    let r = cf.append(0x0102, -1, 1_700_000_000_000, Encoding::DecimalFloat, &[0xAB, 0xCD]).unwrap();
    assert_eq!(r, ChunkRef(0x0000_0001_0000_0008));
    let r2 = cf.append(7, 0, 0, Encoding::Raw, &[0x01]).unwrap();
    assert_eq!(r2, ChunkRef(0x0000_0001_0000_0010), "a 2-byte chunk takes 8 bytes in all");
    cf.seal().unwrap();
    let b = fs::read(dir.path().join("000001")).unwrap();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let crc1 = crc32c::crc32c(&[0x02, 0x02, 0xAB, 0xCD]).to_le_bytes();
    let crc2 = crc32c::crc32c(&[0x00, 0x01, 0x01]).to_le_bytes();
    let hx = |c: [u8; 4]| c.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(
        hex,
        format!(
            "{}{}{}{}{}",
            "4852544302000000", // magic, version 2, padding
            "0202abcd",         // encoding, len, bytes
            hx(crc1),           // crc32c of the record's preceding bytes
            "000101",           // Raw, len 1, byte
            hx(crc2),
        )
    );
    assert_eq!(hx(crc1), "862271e9", "the checksum itself is pinned");
}

#[test]
fn v2_files_round_trip_through_bounds_and_refuse_meta_calls() {
    let dir = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    {
        let cf = ChunkFiles::open(dir.path(), small_v2()).unwrap();
        for i in 0..120u64 {
            let t0 = i as i64 * 1_000_000;
            let (enc, b) = if i % 2 == 0 { chunk(t0, 1 + (i as usize % 50)) } else { raw_chunk(t0, 1 + (i as usize % 30)) };
            let r = cf.append(i, t0, t0 + 1, enc, &b).unwrap();
            written.push((r, t0, enc, b));
        }
        assert!(cf.segments().len() >= 2, "4 KiB segments roll over");
        cf.sync().unwrap();
    }
    let cf = ChunkFiles::open(dir.path(), small()).unwrap();
    for (r, t0, enc, b) in &written {
        let h = cf.get_with_bounds(*r, *t0, t0 + 5).unwrap();
        assert_eq!((h.min_t_ms, h.max_t_ms, h.encoding), (*t0, t0 + 5, *enc));
        assert_eq!(h.bytes.as_slice(), &b[..]);
        assert_eq!(first_sample(&h).0, *t0);
        assert!(matches!(cf.get(*r), Err(StorageError::UnsupportedVersion { version: 2, .. })));
    }
    assert!(matches!(cf.iterate_all(|_, _, _| Ok(())), Err(StorageError::UnsupportedVersion { version: 2, .. })));
    assert_eq!(cf.truncate_before(i64::MAX).unwrap(), 0, "version 2 files hold no time bounds to truncate by");
    // A flipped byte inside a chunk is a checksum error, not a panic or wrong data.
    let (r, ..) = written[3];
    let path = dir.path().join(format!("{:06}", r.seq()));
    drop(cf);
    let f = File::options().write(true).open(&path).unwrap();
    f.write_all_at(&[0x55], u64::from(r.offset()) + 4).unwrap();
    let cf = ChunkFiles::open(dir.path(), small()).unwrap();
    match cf.get_with_bounds(r, 0, 1) {
        Err(StorageError::Corruption { reason, .. }) => assert!(reason.contains("checksum"), "{reason}"),
        other => panic!("expected a checksum error, got {other:?}"),
    }
    assert!(cf.get_with_bounds(written[2].0, 0, 1).is_ok());
}

#[test]
fn v1_files_read_through_bounds_too() {
    let dir = tempfile::tempdir().unwrap();
    let cf = ChunkFiles::open(dir.path(), small()).unwrap();
    let (enc, b) = chunk(5_000, 10);
    let r = cf.append(3, 5_000, 140_000, enc, &b).unwrap();
    let h = cf.get_with_bounds(r, 5_000, 140_000).unwrap();
    assert_eq!((h.encoding, h.bytes.as_slice()), (enc, &b[..]));
    assert_eq!(cf.get(r).unwrap().max_t_ms, 140_000);
}

#[test]
fn readers_run_concurrently_with_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let cf = ChunkFiles::open(dir.path(), small()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(ChunkRef, i64)>();
    std::thread::scope(|s| {
        let cf = &cf;
        s.spawn(move || {
            for i in 0..2000i64 {
                let (enc, b) = chunk(i * 10_000_000, 1 + (i as usize % 100));
                let r = cf.append(i as u64, i, i, enc, &b).unwrap();
                tx.send((r, i * 10_000_000)).unwrap();
            }
        });
        s.spawn(move || {
            let mut n = 0;
            for (r, t0) in rx {
                let h = cf.get(r).unwrap();
                assert_eq!(first_sample(&h).0, t0);
                n += 1;
            }
            assert_eq!(n, 2000);
        });
    });
    assert!(cf.segments().len() > 3);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(11), ..ProptestConfig::default() })]

    /// Arbitrary bytes after a valid header never panic the walk or `get`.
    #[test]
    fn prop_garbage_segments_never_panic(body in prop::collection::vec(any::<u8>(), 0..600), offs in prop::collection::vec(0u32..700, 1..8)) {
        for format in [RecordFormat::V1, RecordFormat::V2] {
            let dir = tempfile::tempdir().unwrap();
            let mut b = record::file_header(format).to_vec();
            b.extend_from_slice(&body);
            fs::write(dir.path().join("000003"), &b).unwrap();
            let cf = ChunkFiles::open(dir.path(), small()).unwrap();
            match format {
                RecordFormat::V1 => {
                    let report = cf.iterate_all(|_, _, _| Ok(())).unwrap();
                    prop_assert!(report.chunks <= body.len() as u64 / 30 + 1);
                }
                RecordFormat::V2 => {
                    let walk = cf.iterate_all(|_, _, _| Ok(()));
                    let refused = matches!(walk, Err(StorageError::UnsupportedVersion { version: 2, .. }));
                    prop_assert!(refused, "version 2 files cannot be replayed");
                }
            }
            for &o in &offs {
                let _ = cf.get(ChunkRef::new(3, o));
                let _ = cf.get_with_bounds(ChunkRef::new(3, o), 0, 1);
            }
        }
    }
}
