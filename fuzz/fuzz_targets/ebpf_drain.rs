//! Fuzz target: ring buffer records of the eBPF HTTP source through Hearth's drain (decode,
//! pairing of responses with their continuations, request line and response header parsing,
//! aggregation). A record's heads carry whatever bytes a client sent to an observed server, or
//! the server answered, so the drain must never panic on them. The input is cut into records of
//! `HttpEvent::SIZE` bytes (the last one short, to reach the length check); the first byte's low
//! bit chooses whether full records get the current layout version, so that the fuzzer reaches
//! the parser rather than the version check alone. Every record must be counted as read, at
//! most one request come out per record, and the groups' counts must add up to the requests.
#![no_main]

use std::time::Instant;

use ebpf::{HttpEvent, HTTP_EVENT_VERSION};
use ingest::ebpf::{Aggregator, EventDrain};
use libfuzzer_sys::fuzz_target;

/// Offset of `version` in the record.
const VERSION_OFFSET: usize = std::mem::offset_of!(HttpEvent, version);

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    // A fixed service name: no /proc lookups of the records' arbitrary pids.
    let mut drain = EventDrain::new(Aggregator::new("fuzz".into(), None), Some("fuzz".into()));
    let mut batch = drain.batch(Instant::now());
    let mut records = 0u64;
    let mut record = [0u8; HttpEvent::SIZE];
    for chunk in rest.chunks(HttpEvent::SIZE) {
        let bytes = if chunk.len() == HttpEvent::SIZE {
            record.copy_from_slice(chunk);
            if mode & 1 == 0 {
                record[VERSION_OFFSET] = HTTP_EVENT_VERSION;
            }
            &record[..]
        } else {
            chunk
        };
        batch.push(bytes);
        records += 1;
    }
    let counts = batch.counts();
    assert_eq!(counts.read, records);
    assert!(counts.requests <= records);
    let grouped: u64 = drain.aggregator().groups().map(|(_, red)| red.duration.count()).sum();
    assert_eq!(grouped, counts.requests);
});
