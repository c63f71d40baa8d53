//! Per-deployment request metrics in the Prometheus exposition format (OpenMetrics text,
//! which Prometheus scrapes): request counts by status, failures, and a latency histogram.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;

use crate::now_s;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: String,
    pub deployment: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    pub endpoint: String,
    pub deployment: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs to about 26 s, doubling.
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<DeploymentLabels, Counter>,
    mirrored: Family<DeploymentLabels, Counter>,
    latency: Family<DeploymentLabels, Histogram, fn() -> Histogram>,
    ready: Family<DeploymentLabels, Gauge>,
    /// Kept across a deployment's updates: its traffic chart goes on.
    recent: Mutex<std::collections::HashMap<DeploymentLabels, Arc<RecentRequests>>>,
    /// Encoding takes the registry's locks; one scrape at a time.
    encode_lock: Mutex<()>,
}

/// The metrics of one deployment, resolved once so a request touches no map.
#[derive(Clone)]
pub struct DeploymentMetrics {
    labels: DeploymentLabels,
    requests: Family<RequestLabels, Counter>,
    /// Counters of the statuses requests usually end with.
    common: Vec<(u16, Counter)>,
    errors: Counter,
    mirrored: Counter,
    latency: Histogram,
    pub ready_instances: Gauge,
    /// The last two minutes, second by second, for the studio's charts.
    pub recent: Arc<RecentRequests>,
}

/// Seconds kept by [`RecentRequests`].
pub const RECENT_SECONDS: usize = 120;

/// Requests, errors and latency per second over the last [`RECENT_SECONDS`], in a ring of
/// atomic slots (a slot from an older second is reset by the first request that reuses it).
#[derive(Default)]
pub struct RecentRequests {
    slots: Vec<Slot>,
    pub total: AtomicU64,
    pub errors: AtomicU64,
    pub latency_us: AtomicU64,
}

#[derive(Default)]
struct Slot {
    second: AtomicI64,
    count: AtomicU64,
    errors: AtomicU64,
    latency_us: AtomicU64,
}

/// One second of a deployment's traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecondStats {
    /// Epoch seconds.
    pub second: i64,
    pub requests: u64,
    pub errors: u64,
    pub mean_latency_ms: f64,
}

impl RecentRequests {
    pub fn new() -> RecentRequests {
        RecentRequests { slots: (0..RECENT_SECONDS).map(|_| Slot::default()).collect(), ..Default::default() }
    }

    fn record(&self, error: bool, seconds: f64) {
        let us = (seconds * 1e6) as u64;
        self.total.fetch_add(1, Ordering::Relaxed);
        self.latency_us.fetch_add(us, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let now = now_s();
        let slot = &self.slots[now.rem_euclid(RECENT_SECONDS as i64) as usize];
        let seen = slot.second.load(Ordering::Relaxed);
        if seen != now && slot.second.compare_exchange(seen, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            slot.count.store(0, Ordering::Relaxed);
            slot.errors.store(0, Ordering::Relaxed);
            slot.latency_us.store(0, Ordering::Relaxed);
        }
        slot.count.fetch_add(1, Ordering::Relaxed);
        slot.latency_us.fetch_add(us, Ordering::Relaxed);
        if error {
            slot.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every second of the window, oldest first (seconds without requests count zero).
    pub fn seconds(&self) -> Vec<SecondStats> {
        let now = now_s();
        (now - RECENT_SECONDS as i64 + 1..=now)
            .map(|sec| {
                let slot = &self.slots[sec.rem_euclid(RECENT_SECONDS as i64) as usize];
                if slot.second.load(Ordering::Relaxed) != sec {
                    return SecondStats { second: sec, requests: 0, errors: 0, mean_latency_ms: 0.0 };
                }
                let n = slot.count.load(Ordering::Relaxed);
                let lat = slot.latency_us.load(Ordering::Relaxed);
                SecondStats {
                    second: sec,
                    requests: n,
                    errors: slot.errors.load(Ordering::Relaxed),
                    mean_latency_ms: if n == 0 { 0.0 } else { lat as f64 / n as f64 / 1000.0 },
                }
            })
            .collect()
    }
}

const COMMON_STATUSES: [u16; 7] = [200, 400, 408, 415, 429, 500, 503];
/// Statuses of requests that reach no deployment.
const UNROUTED_STATUSES: [u16; 3] = [401, 404, 503];

impl DeploymentMetrics {
    /// Records one request: its status and how long it took.
    pub fn observe(&self, status: u16, seconds: f64) {
        match self.common.iter().find(|(s, _)| *s == status) {
            Some((_, c)) => {
                c.inc();
            }
            None => {
                self.requests
                    .get_or_create(&RequestLabels {
                        endpoint: self.labels.endpoint.clone(),
                        deployment: self.labels.deployment.clone(),
                        status: status.to_string(),
                    })
                    .inc();
            }
        }
        let error = status >= 500 || status == 408 || status == 429;
        if error {
            self.errors.inc();
        }
        self.latency.observe(seconds);
        self.recent.record(error, seconds);
    }

    pub fn mirrored(&self) {
        self.mirrored.inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<DeploymentLabels, Counter>::default();
        let mirrored = Family::<DeploymentLabels, Counter>::default();
        let latency = Family::<DeploymentLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let ready = Family::<DeploymentLabels, Gauge>::default();
        registry.register("kiln_endpoint_requests", "Scoring requests answered, by status", requests.clone());
        registry.register(
            "kiln_endpoint_request_errors",
            "Scoring requests that failed on the server's side (5xx, timeouts, too many requests)",
            errors.clone(),
        );
        registry.register(
            "kiln_endpoint_mirrored_requests",
            "Copies of requests sent as mirror traffic",
            mirrored.clone(),
        );
        registry.register(
            "kiln_endpoint_request_duration_seconds",
            "Time from a scoring request's arrival to its answer",
            latency.clone(),
        );
        registry.register("kiln_deployment_ready_instances", "Instances of a deployment ready to score", ready.clone());
        Metrics {
            registry,
            requests,
            errors,
            mirrored,
            latency,
            ready,
            recent: Mutex::new(std::collections::HashMap::new()),
            encode_lock: Mutex::new(()),
        }
    }

    pub fn deployment(&self, endpoint: &str, deployment: &str) -> DeploymentMetrics {
        let labels = DeploymentLabels { endpoint: endpoint.to_string(), deployment: deployment.to_string() };
        let common = COMMON_STATUSES
            .iter()
            .map(|s| {
                let l = RequestLabels {
                    endpoint: endpoint.to_string(),
                    deployment: deployment.to_string(),
                    status: s.to_string(),
                };
                (*s, self.requests.get_or_create(&l).clone())
            })
            .collect();
        DeploymentMetrics {
            requests: self.requests.clone(),
            common,
            errors: self.errors.get_or_create(&labels).clone(),
            mirrored: self.mirrored.get_or_create(&labels).clone(),
            latency: self.latency.get_or_create(&labels).clone(),
            ready_instances: self.ready.get_or_create(&labels).clone(),
            recent: self
                .recent
                .lock()
                .map(|mut m| m.entry(labels.clone()).or_insert_with(|| Arc::new(RecentRequests::new())).clone())
                .unwrap_or_else(|_| Arc::new(RecentRequests::new())),
            labels,
        }
    }

    /// Forgets a deleted deployment's series.
    pub fn remove(&self, endpoint: &str, deployment: &str) {
        let labels = DeploymentLabels { endpoint: endpoint.to_string(), deployment: deployment.to_string() };
        self.errors.remove(&labels);
        self.mirrored.remove(&labels);
        self.latency.remove(&labels);
        self.ready.remove(&labels);
        if let Ok(mut m) = self.recent.lock() {
            m.remove(&labels);
        }
        for s in COMMON_STATUSES {
            self.requests.remove(&RequestLabels {
                endpoint: endpoint.to_string(),
                deployment: deployment.to_string(),
                status: s.to_string(),
            });
        }
    }

    /// Forgets a deleted endpoint's series of requests that reached no deployment.
    pub fn remove_endpoint(&self, endpoint: &str) {
        for s in UNROUTED_STATUSES {
            self.requests.remove(&RequestLabels {
                endpoint: endpoint.to_string(),
                deployment: String::new(),
                status: s.to_string(),
            });
        }
    }

    /// Counts a request that reached no deployment (refused, or nowhere to go).
    pub fn unrouted(&self, endpoint: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_string(),
                deployment: String::new(),
                status: status.to_string(),
            })
            .inc();
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let _guard = self.encode_lock.lock();
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_latencies_are_exposed_per_deployment() {
        let m = Metrics::new();
        let blue = m.deployment("ep", "blue");
        blue.observe(200, 0.001);
        blue.observe(200, 0.002);
        blue.observe(404, 0.0001);
        blue.observe(503, 0.5);
        m.unrouted("ep", 401);
        let text = m.encode();
        assert!(
            text.contains(r#"kiln_endpoint_requests_total{endpoint="ep",deployment="blue",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kiln_endpoint_requests_total{endpoint="ep",deployment="blue",status="404"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"kiln_endpoint_requests_total{endpoint="ep",deployment="",status="401"} 1"#), "{text}");
        assert!(text.contains(r#"kiln_endpoint_request_errors_total{endpoint="ep",deployment="blue"} 1"#), "{text}");
        assert!(
            text.contains(r#"kiln_endpoint_request_duration_seconds_count{endpoint="ep",deployment="blue"} 4"#),
            "{text}"
        );
        m.remove("ep", "blue");
        assert!(!m.encode().contains("deployment=\"blue\",status=\"200\""));
    }
}
