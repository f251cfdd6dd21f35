//! User metrics: counters and distributions, as Beam's `Metrics`.
//!
//! A DoFn updates them through its context (`ctx.inc_counter`,
//! `ctx.update_distribution`); each worker keeps local cells and merges them
//! into the run's [`Metrics`] at the end of every bundle, so updating a
//! metric costs no lock. Results are keyed by the transform's label and the
//! metric's name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Count, sum, minimum and maximum of the values a distribution saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DistributionResult {
    /// How many values.
    pub count: i64,
    /// Their sum.
    pub sum: i64,
    /// The smallest.
    pub min: i64,
    /// The largest.
    pub max: i64,
}

impl DistributionResult {
    fn of(v: i64) -> Self {
        DistributionResult {
            count: 1,
            sum: v,
            min: v,
            max: v,
        }
    }

    fn merge(&mut self, o: &DistributionResult) {
        self.count += o.count;
        self.sum = self.sum.saturating_add(o.sum);
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// The mean, if any value was seen.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }
}

/// A metric's key: the transform's label and the metric's name.
pub type MetricKey = (String, String);

/// Final metric values of a run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MetricResults {
    /// Counters.
    pub counters: BTreeMap<String, i64>,
    /// Distributions.
    pub distributions: BTreeMap<String, DistributionResult>,
}

impl MetricResults {
    /// A counter by transform label and name.
    pub fn counter(&self, step: &str, name: &str) -> Option<i64> {
        self.counters.get(&format!("{step}/{name}")).copied()
    }

    /// A distribution by transform label and name.
    pub fn distribution(&self, step: &str, name: &str) -> Option<DistributionResult> {
        self.distributions.get(&format!("{step}/{name}")).copied()
    }
}

/// The run's merged metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<MetricResults>,
}

impl Metrics {
    pub(crate) fn merge(&self, local: &mut LocalMetrics) {
        if local.counters.is_empty() && local.distributions.is_empty() {
            return;
        }
        let Ok(mut m) = self.inner.lock() else { return };
        for (name, v) in local.counters.drain() {
            *m.counters
                .entry(format!("{}/{name}", local.step))
                .or_default() += v;
        }
        for (name, d) in local.distributions.drain() {
            m.distributions
                .entry(format!("{}/{name}", local.step))
                .and_modify(|x| x.merge(&d))
                .or_insert(d);
        }
    }

    /// A snapshot of the values.
    pub fn results(&self) -> MetricResults {
        self.inner.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// A worker's metric cells for one transform.
#[derive(Debug, Default)]
pub(crate) struct LocalMetrics {
    pub step: String,
    counters: HashMap<String, i64>,
    distributions: HashMap<String, DistributionResult>,
}

impl LocalMetrics {
    pub fn new(step: &str) -> Self {
        LocalMetrics {
            step: step.to_string(),
            ..Default::default()
        }
    }

    pub fn inc(&mut self, name: &str, n: i64) {
        if let Some(c) = self.counters.get_mut(name) {
            *c += n;
        } else {
            self.counters.insert(name.to_string(), n);
        }
    }

    pub fn update(&mut self, name: &str, v: i64) {
        if let Some(d) = self.distributions.get_mut(name) {
            d.merge(&DistributionResult::of(v));
        } else {
            self.distributions
                .insert(name.to_string(), DistributionResult::of(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_cells_merge_into_the_run() {
        let m = Metrics::default();
        let mut a = LocalMetrics::new("Parse");
        a.inc("bad", 2);
        a.update("len", 5);
        a.update("len", 1);
        m.merge(&mut a);
        let mut b = LocalMetrics::new("Parse");
        b.inc("bad", 1);
        b.update("len", 9);
        m.merge(&mut b);
        let r = m.results();
        assert_eq!(r.counter("Parse", "bad"), Some(3));
        let d = r.distribution("Parse", "len").unwrap();
        assert_eq!((d.count, d.sum, d.min, d.max), (3, 15, 1, 9));
        assert_eq!(d.mean(), Some(5.0));
    }
}
