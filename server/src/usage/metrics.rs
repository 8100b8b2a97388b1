//! The usage queue's counters in Hearth's `/metrics` exposition:
//! `hearth_usage_records_queued_total`, `hearth_usage_records_dropped_total` (queue full: the
//! call was answered but not recorded) and `hearth_usage_records_total` (recorded by the
//! worker).

use std::sync::atomic::Ordering;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

use super::http::UsageSlot;
use crate::metrics::ExtraCollector;

/// Encodes the queue counters of the service in `slot` (nothing until it runs, or when usage
/// analytics are disabled). Register with the server's metrics as an [`ExtraCollector`].
#[derive(Debug, Clone)]
pub struct UsageCollector(pub UsageSlot);

impl ExtraCollector for UsageCollector {
    fn encode(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(svc) = self.0.get() else { return Ok(()) };
        let s = svc.queue().stats();
        // prometheus-client appends `_total` to counter names.
        for (name, help, v) in [
            ("hearth_usage_records_queued", "Calls handed to the usage recording worker", &s.queued),
            ("hearth_usage_records_dropped", "Calls not recorded because the usage queue was full", &s.dropped),
            ("hearth_usage_records", "Calls recorded by the usage worker", &s.recorded),
        ] {
            ConstCounter::new(v.load(Ordering::Relaxed)).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        Ok(())
    }
}
