//! Summaries of latency samples: mean, median, p90 and p99 (nearest rank), min, max, and the
//! table the bench subcommands print them in.

use std::time::Duration;

use serde::Serialize;

/// One RPC's latencies, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The RPC's name (`RunPodSandbox`…). First, so scripts can find a summary by it.
    pub rpc: String,
    pub count: usize,
    pub mean_ms: f64,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// Every sample, in the order taken.
    pub samples_ms: Vec<f64>,
}

/// Microseconds, rounded: all a table or a ratio needs.
fn micros(d: Duration) -> u64 {
    u64::try_from((d.as_nanos() + 500) / 1000).unwrap_or(u64::MAX)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1e3
}

/// The `percent`-th percentile by the nearest-rank method: the smallest sample with at least
/// `percent` % of the samples at or below it. `sorted` is ascending and not empty. Integer
/// arithmetic, so that 90 % of 200 is rank 180, not 181 from float noise.
fn nearest_rank(sorted: &[u64], percent: usize) -> u64 {
    let rank = (percent * sorted.len()).div_ceil(100);
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Summary {
    pub fn new(rpc: &str, samples: &[Duration]) -> Self {
        let samples_us: Vec<u64> = samples.iter().copied().map(micros).collect();
        let mut sorted = samples_us.clone();
        sorted.sort_unstable();
        let n = sorted.len();
        let (mean, median, p90, p99, min, max) = if n == 0 {
            (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        } else {
            let total: Duration = samples.iter().sum();
            let mean = ms(micros(total / u32::try_from(n).unwrap_or(u32::MAX)));
            // of an even count, the mean of the middle two (to half a microsecond)
            let median = if n % 2 == 1 {
                ms(sorted[n / 2])
            } else {
                (sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2e3
            };
            (
                mean,
                median,
                ms(nearest_rank(&sorted, 90)),
                ms(nearest_rank(&sorted, 99)),
                ms(sorted[0]),
                ms(sorted[n - 1]),
            )
        };
        Self {
            rpc: rpc.to_owned(),
            count: n,
            mean_ms: mean,
            median_ms: median,
            p90_ms: p90,
            p99_ms: p99,
            min_ms: min,
            max_ms: max,
            samples_ms: samples_us.into_iter().map(ms).collect(),
        }
    }
}

/// The table of `summaries`: one line per RPC, milliseconds.
pub fn table(summaries: &[Summary]) -> String {
    let width = summaries
        .iter()
        .map(|s| s.rpc.len())
        .max()
        .unwrap_or(0)
        .max(18);
    let mut text = format!(
        "{:<width$} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
        "RPC", "N", "MEAN ms", "MEDIAN ms", "P90 ms", "P99 ms", "MIN ms", "MAX ms"
    );
    for s in summaries {
        text.push_str(&format!(
            "{:<width$} {:>5} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3}\n",
            s.rpc, s.count, s.mean_ms, s.median_ms, s.p90_ms, s.p99_ms, s.min_ms, s.max_ms
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn odd_count() {
        let s = Summary::new("RunPodSandbox", &millis(&[30, 10, 20]));
        assert_eq!(s.count, 3);
        assert_eq!(s.median_ms, 20.0);
        assert_eq!(s.mean_ms, 20.0);
        assert_eq!(s.p99_ms, 30.0);
        assert_eq!((s.min_ms, s.max_ms), (10.0, 30.0));
        assert_eq!(s.samples_ms, [30.0, 10.0, 20.0], "kept in order taken");
    }

    #[test]
    fn even_count_and_p99_rank() {
        let s = Summary::new("x", &millis(&[4, 1, 3, 2]));
        assert_eq!(s.median_ms, 2.5);
        assert_eq!(s.mean_ms, 2.5);
        // no float noise: (38.797 + 38.832) / 2
        let s = Summary::new(
            "x",
            &[Duration::from_micros(38_797), Duration::from_micros(38_832)],
        );
        assert_eq!(s.median_ms, 38.8145);
        // 200 samples 1..=200 ms: p99 is the 198th
        let many: Vec<u64> = (1..=200).collect();
        let s = Summary::new("x", &millis(&many));
        assert_eq!(s.p99_ms, 198.0);
        assert_eq!(s.p90_ms, 180.0);
        assert_eq!(s.median_ms, 100.5);
        // 50 samples: the 99th percentile's rank is 50, the largest
        let fifty: Vec<u64> = (1..=50).collect();
        assert_eq!(Summary::new("x", &millis(&fifty)).p99_ms, 50.0);
        // and the 90th's is 45
        assert_eq!(Summary::new("x", &millis(&fifty)).p90_ms, 45.0);
    }

    #[test]
    fn sub_millisecond_and_empty() {
        let s = Summary::new("x", &[Duration::from_micros(1_500)]);
        assert_eq!(s.median_ms, 1.5);
        let s = Summary::new("x", &[]);
        assert_eq!((s.count, s.median_ms, s.p99_ms), (0, 0.0, 0.0));
    }
}
