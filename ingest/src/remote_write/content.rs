//! Content negotiation (remote-write 2.0 spec, "Content-Type" and "Content-Encoding").
//!
//! - `application/x-protobuf` with no `proto` parameter means 1.0 (`prometheus.WriteRequest`),
//!   for backward compatibility;
//! - `proto=prometheus.WriteRequest` is 1.0, `proto=io.prometheus.write.v2.Request` is 2.0;
//! - anything else is 415. The media type and parameter name are case-insensitive (RFC 9110),
//!   whitespace around `;` and `=` is ignored, a quoted parameter value is unquoted.
//! - Content-Encoding must be `snappy` (block format). A missing Content-Type or
//!   Content-Encoding header is taken as the 1.0 default / snappy, as Prometheus' receiver does
//!   ("don't break yolo 1.0 clients").

use super::error::IngestError;

/// The bare media type of every remote-write body.
pub const MEDIA_TYPE: &str = "application/x-protobuf";
/// Content-Type of remote-write 1.0 requests.
pub const CONTENT_TYPE_V1: &str = "application/x-protobuf;proto=prometheus.WriteRequest";
/// Content-Type of remote-write 2.0 requests.
pub const CONTENT_TYPE_V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
/// The only Content-Encoding remote-write uses.
pub const CONTENT_ENCODING: &str = "snappy";
/// Header the 2.0 spec asks receivers to answer with: float samples written.
pub const HEADER_SAMPLES_WRITTEN: &str = "X-Prometheus-Remote-Write-Samples-Written";
/// Header: native histogram samples written.
pub const HEADER_HISTOGRAMS_WRITTEN: &str = "X-Prometheus-Remote-Write-Histograms-Written";
/// Header: exemplars written.
pub const HEADER_EXEMPLARS_WRITTEN: &str = "X-Prometheus-Remote-Write-Exemplars-Written";

/// Which remote-write protobuf message a body holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtoVersion {
    /// Remote-write 1.0, `prometheus.WriteRequest`.
    V1,
    /// Remote-write 2.0, `io.prometheus.write.v2.Request`.
    V2,
}

impl ProtoVersion {
    /// The canonical Content-Type for this version.
    pub fn content_type(self) -> &'static str {
        match self {
            ProtoVersion::V1 => CONTENT_TYPE_V1,
            ProtoVersion::V2 => CONTENT_TYPE_V2,
        }
    }
}

/// Picks the protobuf message from the request's `Content-Type` and checks its
/// `Content-Encoding` (`None` when a header is absent).
///
/// # Errors
/// [`IngestError::UnsupportedMediaType`] or [`IngestError::UnsupportedEncoding`] (415).
pub fn negotiate(content_type: Option<&str>, content_encoding: Option<&str>) -> Result<ProtoVersion, IngestError> {
    if let Some(enc) = content_encoding {
        if !enc.trim().eq_ignore_ascii_case(CONTENT_ENCODING) {
            return Err(IngestError::UnsupportedEncoding { content_encoding: enc.to_string() });
        }
    }
    let Some(ct) = content_type else {
        return Ok(ProtoVersion::V1);
    };
    let unsupported = || IngestError::UnsupportedMediaType { content_type: ct.to_string() };
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(MEDIA_TYPE) {
        return Err(unsupported());
    }
    let mut version = ProtoVersion::V1;
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let Some((k, v)) = p.split_once('=') else {
            return Err(unsupported());
        };
        if !k.trim().eq_ignore_ascii_case("proto") {
            continue;
        }
        let v = v.trim();
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
        version = match v {
            "prometheus.WriteRequest" => ProtoVersion::V1,
            "io.prometheus.write.v2.Request" => ProtoVersion::V2,
            _ => return Err(unsupported()),
        };
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_content_types() {
        assert_eq!(negotiate(Some("application/x-protobuf"), Some("snappy")), Ok(ProtoVersion::V1));
        assert_eq!(negotiate(Some(CONTENT_TYPE_V1), Some("snappy")), Ok(ProtoVersion::V1));
        assert_eq!(negotiate(Some(CONTENT_TYPE_V2), Some("snappy")), Ok(ProtoVersion::V2));
        assert_eq!(
            negotiate(Some("Application/X-Protobuf; proto=\"io.prometheus.write.v2.Request\""), None),
            Ok(ProtoVersion::V2)
        );
        assert_eq!(negotiate(None, None), Ok(ProtoVersion::V1));
    }

    #[test]
    fn unsupported_is_415() {
        for ct in [
            "application/json",
            "application/x-protobuf;proto=io.prometheus.write.v3.Request",
            "application/x-protobuf;garbage",
            "",
        ] {
            let e = negotiate(Some(ct), Some("snappy")).unwrap_err();
            assert!(matches!(e, IngestError::UnsupportedMediaType { .. }), "{ct}");
            assert_eq!(e.http_status(), 415);
        }
        let e = negotiate(Some(CONTENT_TYPE_V2), Some("gzip")).unwrap_err();
        assert_eq!(e, IngestError::UnsupportedEncoding { content_encoding: "gzip".into() });
        assert_eq!(e.http_status(), 415);
    }
}
