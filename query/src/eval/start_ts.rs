//! Start-timestamp rules of the counter functions (Prometheus `promql/functions.go`:
//! `isStartTimestampReset`, `checkStartTimeOverlap`). A start timestamp (ST) is ms since the
//! epoch, 0 = unknown; see [`storage::Appender::append_st`]. Windows carry them in
//! [`super::selector::Window::float_sts`] / `hist_sts`, empty for series without them.

/// The start timestamp of point `i` of a window's ST column (0 when the column is empty).
#[inline]
pub(crate) fn st_at(sts: &[i64], i: usize) -> i64 {
    sts.get(i).copied().unwrap_or(0)
}

/// True if the current sample's start timestamp marks a counter reset since the previous
/// sample: the ST is known, plausible (before the sample) and after the previous sample, or
/// equal to the previous sample's timestamp while the previous sample had a known ST of its
/// own (a delta series; a cumulative series with an unknown start, ST == previous t with the
/// previous ST unknown, is no reset).
#[inline]
pub(crate) fn is_st_reset(prev_st: i64, prev_t: i64, cur_st: i64, cur_t: i64) -> bool {
    if cur_st == 0 || cur_st >= cur_t || cur_st < prev_t {
        return false;
    }
    if cur_st > prev_t {
        return true;
    }
    // cur_st == prev_t. A previous ST after its own sample is invalid: treat it as unknown.
    if prev_st > prev_t {
        return false;
    }
    prev_st != 0 && prev_st != prev_t
}

/// True if the current sample's start timestamp overlaps the previous sample: known, before
/// the previous sample's timestamp, and not the previous sample's own ST (so neither a delta
/// series, ST == previous t, nor a cumulative one, ST == previous ST).
#[inline]
pub(crate) fn st_overlaps(prev_st: i64, prev_t: i64, cur_st: i64) -> bool {
    cur_st != 0 && cur_st < prev_t && cur_st != prev_st
}

/// The warning for [`st_overlaps`], once per series and window.
pub(crate) fn overlap_warning(name: &str) -> String {
    format!("sample has start time that overlaps with previous sample timestamp for metric {name:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_rules() {
        // Unknown, invalid (after t) and OTel "unknown start" (== t) are no resets.
        assert!(!is_st_reset(0, 10, 0, 20));
        assert!(!is_st_reset(0, 10, 25, 20));
        assert!(!is_st_reset(0, 10, 20, 20));
        // Before the previous sample (cumulative): no reset; after it: reset.
        assert!(!is_st_reset(5, 10, 5, 20));
        assert!(is_st_reset(5, 10, 15, 20));
        // == previous t: a delta (previous ST known) is a reset, an unknown start is not,
        // nor is an invalid previous ST.
        assert!(is_st_reset(5, 10, 10, 20));
        assert!(!is_st_reset(0, 10, 10, 20));
        assert!(!is_st_reset(10, 10, 10, 20));
        assert!(!is_st_reset(70, 10, 10, 20));
    }

    #[test]
    fn overlap_rules() {
        assert!(!st_overlaps(5, 10, 10), "delta");
        assert!(!st_overlaps(5, 10, 5), "cumulative");
        assert!(!st_overlaps(5, 10, 0), "unknown");
        assert!(st_overlaps(5, 10, 7));
        assert_eq!(
            overlap_warning("counter_total"),
            "sample has start time that overlaps with previous sample timestamp for metric \"counter_total\""
        );
    }
}
