//! Prost messages generated at build time (`build.rs`: prost-build over `protox`) from the
//! `.proto` files in `ingest/proto/`. Used by the encoder ([`super::encode`]) and as the
//! reference decoder in tests; the hot decode path walks the wire format itself
//! ([`super::decode`]).

/// Remote-write 1.0: package `prometheus` (`WriteRequest`, `TimeSeries`, `MetricMetadata`...).
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// Remote-write 2.0: package `io.prometheus.write.v2` (`Request`, `TimeSeries`, `Metadata`...).
#[allow(missing_docs, clippy::all)]
pub mod v2 {
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.write.v2.rs"));
}
