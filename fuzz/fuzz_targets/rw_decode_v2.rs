//! Fuzz target: a remote-write 2.0 body (as the HTTP server receives it: snappy-compressed)
//! through decode and ingest into a no-op appender. Must never panic; counts must agree.
//! The first input byte chooses whether the rest is sent as is or snappy-compressed first, so
//! the fuzzer also reaches the protobuf walker without having to learn snappy.
#![no_main]

use ingest::remote_write::{encode, Decoder, Limits, NoopAppender, ProtoVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let compressed;
    let body = if mode & 1 == 0 {
        rest
    } else {
        compressed = encode::compress(rest);
        &compressed
    };
    let limits = Limits { max_decompressed_bytes: 1 << 20, created_timestamp_zero_ingestion: mode & 2 != 0, ..Limits::default() };
    let mut decoder = Decoder::new();
    let mut app = NoopAppender::default();
    if let Ok(report) = decoder
        .decode(ProtoVersion::V2, body, &limits)
        .and_then(|r| r.ingest(&mut app, &limits, 1_700_000_000_000))
    {
        let written = report.samples_written + report.histograms_written + report.created_timestamp_zeros_written;
        assert_eq!(written, app.samples + app.histograms);
        assert_eq!(report.exemplars_written, app.exemplars);
    }
});
