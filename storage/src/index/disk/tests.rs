//! Golden layout, corruption and model tests of the on-disk index.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use roaring::RoaringBitmap;

use super::*;
use crate::error::StorageError;
use crate::index::tests::{arb_labels, arb_matcher, check_reader};
use crate::index::IndexReader;
use crate::labels::Labels;

fn write_read(sets: &[(Labels, Vec<ChunkMeta>)]) -> (Vec<u8>, DiskIndex) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index");
    let mut w = IndexWriter::new();
    for (l, c) in sets {
        w.add_series(l, c);
    }
    let size = w.write(&path).expect("write");
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(size, bytes.len() as u64);
    let ix = DiskIndex::open(Arc::new(bytes.clone()), &path).expect("open");
    (bytes, ix)
}

fn golden_series() -> Vec<(Labels, Vec<ChunkMeta>)> {
    vec![
        (
            Labels::from_pairs([("__name__", "up"), ("job", "a")]),
            vec![ChunkMeta { min_t_ms: 1000, max_t_ms: 2000, chunk_ref: 8 }],
        ),
        (
            Labels::from_pairs([("__name__", "up"), ("job", "b")]),
            vec![
                ChunkMeta { min_t_ms: 3000, max_t_ms: 3500, chunk_ref: 300 },
                ChunkMeta { min_t_ms: 1000, max_t_ms: 2500, chunk_ref: 40 },
            ],
        ),
    ]
}

/// The exact bytes of the two-series index of `golden_series`. A change here is a format
/// change: add a version instead.
const GOLDEN_HEX: &str = concat!(
    "58444948010500000008000000090000000a0000000d0000000f0000005f5f6e616d655f5f61626a6f627570fca9dc1c",
    "0200000014000000000000001f00000000000000020004030101d00fe80708020004030202d00fdc0b28e807f403ac02",
    "6fb3b5973a300000010000000000010010000000000001003a30000001000000000000001000000000003a3000000100",
    "000000000000100000000100e1f642750300000000000000040000000000000000000000140000000300000001000000",
    "140000000000000012000000030000000200000026000000000000001200000061adc58d020000000000000000000000",
    "01000000030000000100000002000000f888cbe105000000000000002700000000000000300000000000000030000000",
    "0000000064000000000000003800000000000000a0000000000000004000000000000000e4000000000000001c000000",
    "000000008f7893ec0158444948",
);

#[test]
fn golden_layout() {
    let (bytes, ix) = write_read(&golden_series());
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, GOLDEN_HEX, "index bytes");
    // The same bytes, field by field. Header: magic, version.
    assert_eq!(&bytes[..5], &[0x58, 0x44, 0x49, 0x48, 1]);
    // Symbols: count 5, ends 8 9 10 13 15, then "__name__" "a" "b" "job" "up", crc.
    assert_eq!(&bytes[5..9], &5u32.to_le_bytes());
    assert_eq!(&bytes[9 + 16..9 + 20], &15u32.to_le_bytes());
    assert_eq!(&bytes[29..44], b"__name__abjobup");
    let sym_end = 5 + 4 + 5 * 4 + 15;
    assert_eq!(&bytes[sym_end..sym_end + 4], &crc32c::crc32c(&bytes[5..sym_end]).to_le_bytes());
    // Series section: count, two u64 offsets, entries.
    let s = &bytes[sym_end + 4..];
    assert_eq!(&s[..4], &2u32.to_le_bytes());
    assert_eq!(u64::from_le_bytes(s[4..12].try_into().expect("8")), 20, "first entry after the offsets");
    let e0 = &s[20..];
    // 2 labels: (__name__=0, up=4), (job=3, a=1); 1 chunk: min 1000 zigzag, 1000, ref 8.
    assert_eq!(&e0[..11], &[2, 0, 4, 3, 1, 1, 0xd0, 0x0f, 0xe8, 0x07, 8]);
    let second = u64::from_le_bytes(s[12..20].try_into().expect("8")) as usize;
    assert_eq!(second, 31);
    // Chunks sorted by min_t: (1000..2500, 40) then (3000 = 2500 + 500 ..3500, 300).
    assert_eq!(&s[second..second + 16], &[2, 0, 4, 3, 2, 2, 0xd0, 0x0f, 0xdc, 0x0b, 40, 0xe8, 0x07, 0xf4, 0x03, 0xac]);
    // Footer.
    assert_eq!(&bytes[bytes.len() - 5..], &[1, 0x58, 0x44, 0x49, 0x48]);
    assert_eq!(bytes.len(), 349, "total size");
    // And it reads back.
    assert_eq!(ix.num_series(), 2);
    assert_eq!(ix.label_names().expect("names"), vec!["__name__", "job"]);
    assert_eq!(ix.postings("job", "b").expect("p").iter().collect::<Vec<_>>(), vec![1]);
    let (l, c) = ix.series(1).expect("series");
    assert_eq!(l, golden_series()[1].0);
    assert_eq!(c[0], ChunkMeta { min_t_ms: 1000, max_t_ms: 2500, chunk_ref: 40 });
    assert_eq!(c[1], ChunkMeta { min_t_ms: 3000, max_t_ms: 3500, chunk_ref: 300 });
}

#[test]
fn every_flipped_byte_is_a_typed_error() {
    let (bytes, _) = write_read(&golden_series());
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= bit;
            match DiskIndex::open(Arc::new(b), Path::new("index")) {
                Err(StorageError::Corruption { .. }) | Err(StorageError::UnsupportedVersion { .. }) => {}
                Err(e) => panic!("byte {i}: unexpected error {e}"),
                Ok(_) => panic!("byte {i} bit {bit:#x}: corruption not detected"),
            }
        }
    }
    for len in [0, 4, 50, bytes.len() - 1] {
        assert!(DiskIndex::open(Arc::new(bytes[..len].to_vec()), Path::new("index")).is_err(), "truncated to {len}");
    }
}

#[test]
fn newer_version_is_refused() {
    let (mut bytes, _) = write_read(&golden_series());
    bytes[4] = 2;
    assert!(matches!(
        DiskIndex::open(Arc::new(bytes), Path::new("index")),
        Err(StorageError::UnsupportedVersion { version: 2, .. })
    ));
}

#[test]
fn empty_index_round_trips() {
    let (_, ix) = write_read(&[]);
    assert_eq!(ix.num_series(), 0);
    assert!(ix.label_names().expect("names").is_empty());
    assert!(ix.all_postings().expect("all").is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(11), ..ProptestConfig::default() })]

    #[test]
    fn disk_index_matches_model(
        sets in proptest::collection::btree_set(arb_labels(), 0..40),
        matchers in proptest::collection::vec(proptest::collection::vec(arb_matcher(), 0..4), 1..8),
    ) {
        let sets: Vec<Labels> = sets.into_iter().collect();
        let with_chunks: Vec<(Labels, Vec<ChunkMeta>)> = sets
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), vec![ChunkMeta { min_t_ms: i as i64, max_t_ms: i as i64 * 2, chunk_ref: i as u64 }]))
            .collect();
        let (_, ix) = write_read(&with_chunks);
        check_reader(&ix, &sets, &RoaringBitmap::new(), &matchers);
        for (i, (l, c)) in with_chunks.iter().enumerate() {
            let (rl, rc) = ix.series(i as u32).expect("series");
            prop_assert_eq!(&rl, l);
            prop_assert_eq!(&rc, c);
        }
    }
}
