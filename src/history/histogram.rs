//! The latency histogram of a rollup row: fixed, log-spaced buckets, so
//! rows of any granularity add element by element and p50/p95/p99 come
//! from the sums.
//!
//! Bucket 0 holds runs under 1 ms; bucket `i` (1 ≤ i ≤ 38) holds
//! `[2^((i-1)/2), 2^(i/2))` ms (half an octave: an estimate is at most a
//! factor √2 off, and interpolation brings it much closer); bucket 39 holds
//! everything from 2^19 ms (8.7 minutes; the longest timeout is 10).

/// Number of buckets; `latency_histogram` arrays have exactly this length.
pub const BUCKETS: usize = 40;

/// Lower bound (ms) of bucket `i`; bucket 0 starts at 0.
pub fn lower_ms(i: usize) -> f64 {
    if i == 0 {
        0.0
    } else {
        2f64.powf((i as f64 - 1.0) / 2.0)
    }
}

/// Upper bound (ms) of bucket `i`; the last bucket is given the width of
/// the one before it, so an estimate stays finite.
pub fn upper_ms(i: usize) -> f64 {
    2f64.powf(i as f64 / 2.0)
}

/// The bucket of a run that took `total_ms`. NaN and negatives count as 0.
pub fn index(total_ms: f64) -> usize {
    if total_ms.is_nan() || total_ms < 1.0 {
        return 0;
    }
    // 2·log2(t) + 1, floored: t in [2^((i-1)/2), 2^(i/2)) ⇔ i - 1 ≤ 2·log2(t) < i.
    let i = ((2.0 * total_ms.log2()).floor() + 1.0).clamp(1.0, (BUCKETS - 1) as f64);
    // Guard the boundaries against rounding in log2.
    let mut i = i as usize;
    while i > 1 && total_ms < lower_ms(i) {
        i -= 1;
    }
    while i < BUCKETS - 1 && total_ms >= upper_ms(i) {
        i += 1;
    }
    i
}

/// The `q`-quantile (0 < q ≤ 1) of the runs counted in `histogram`, in ms:
/// the bucket holding the ⌈q·n⌉-th run, interpolated geometrically inside
/// it (linearly in bucket 0). `None` when it counts nothing.
pub fn quantile(histogram: &[i64], q: f64) -> Option<f64> {
    let n: i64 = histogram.iter().map(|c| (*c).max(0)).sum();
    if n == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as i64).max(1);
    let mut seen = 0i64;
    for (i, count) in histogram.iter().enumerate() {
        let count = (*count).max(0);
        if count == 0 {
            continue;
        }
        if seen + count >= rank {
            // Position of the rank inside the bucket, in (0, 1].
            let f = (rank - seen) as f64 / count as f64;
            let (lo, hi) = (lower_ms(i), upper_ms(i));
            return Some(if i == 0 { hi * f } else { lo * (hi / lo).powf(f) });
        }
        seen += count;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_boundaries() {
        assert_eq!(index(0.0), 0);
        assert_eq!(index(0.999), 0);
        assert_eq!(index(1.0), 1);
        assert_eq!(index(1.41), 1);
        assert_eq!(index(std::f64::consts::SQRT_2), 2);
        assert_eq!(index(2.0), 3);
        assert_eq!(index(100.0), 14); // [90.5, 128)
        assert_eq!(index(f64::NAN), 0);
        assert_eq!(index(-5.0), 0);
        assert_eq!(index(600_000.0), BUCKETS - 1);
        assert_eq!(index(f64::INFINITY), BUCKETS - 1);
    }

    #[test]
    fn quantiles_of_an_empty_histogram_are_none() {
        assert_eq!(quantile(&[0; BUCKETS], 0.5), None);
    }

    #[test]
    fn quantiles_land_in_the_right_bucket() {
        let mut h = [0i64; BUCKETS];
        // 90 runs at ~100 ms, 10 at ~1000 ms.
        h[index(100.0)] += 90;
        h[index(1000.0)] += 10;
        let p50 = quantile(&h, 0.5).unwrap();
        assert!((90.5..128.0).contains(&p50), "{p50}");
        let p95 = quantile(&h, 0.95).unwrap();
        assert!((724.0..1025.0).contains(&p95), "{p95}");
        let p99 = quantile(&h, 0.99).unwrap();
        assert!(p99 >= p95);
    }

    proptest! {
        #[test]
        fn every_value_lies_in_its_bucket(t in 0.0f64..2_000_000.0) {
            let i = index(t);
            prop_assert!(t >= lower_ms(i));
            if i < BUCKETS - 1 {
                prop_assert!(t < upper_ms(i));
            }
        }

        #[test]
        fn an_estimate_is_within_a_bucket_of_the_true_quantile(
            values in proptest::collection::vec(1.0f64..100_000.0, 1..200), q in 0.01f64..1.0
        ) {
            let mut h = [0i64; BUCKETS];
            for v in &values {
                h[index(*v)] += 1;
            }
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let rank = ((q * values.len() as f64).ceil() as usize).max(1);
            let truth = sorted[rank - 1];
            let estimate = quantile(&h, q).unwrap();
            prop_assert!(estimate <= truth * std::f64::consts::SQRT_2 + 1e-9 && estimate >= truth / std::f64::consts::SQRT_2 - 1e-9,
                "truth {} estimate {}", truth, estimate);
        }

        #[test]
        fn quantiles_are_monotonic(counts in proptest::collection::vec(0i64..50, BUCKETS)) {
            let a = quantile(&counts, 0.5);
            let b = quantile(&counts, 0.95);
            let c = quantile(&counts, 0.99);
            if let (Some(a), Some(b), Some(c)) = (a, b, c) {
                prop_assert!(a <= b && b <= c);
            }
        }
    }
}
