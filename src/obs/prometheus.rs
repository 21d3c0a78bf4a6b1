//! The counters in the Prometheus text exposition format (version 0.0.4), for
//! `--metrics-path` and the statistics page's `?format=prometheus`.

use std::fmt::Write as _;

use super::stats::{Snapshot, DURATION_BUCKETS_US};

/// Writes metric families into the exposition text.
struct Exposition(String);

impl Exposition {
    /// One family: its HELP and TYPE lines, then `name{labels} value` per sample.
    fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
        let s = &mut self.0;
        let _ = write!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for (labels, v) in samples {
            let _ = writeln!(s, "{name}{labels} {v}");
        }
    }

    /// A family with one unlabelled sample.
    fn one(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.metric(name, kind, help, &[("", value)]);
    }
}

impl Snapshot {
    /// The Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut out = Exposition(String::with_capacity(6144));
        self.traffic(&mut out);
        self.pool(&mut out);
        self.per_reactor(&mut out);
        self.compression(&mut out);
        self.tls(&mut out);
        self.lifetime(&mut out);
        self.histogram(&mut out);
        out.0
    }

    /// Responses, bytes and connections.
    fn traffic(&self, out: &mut Exposition) {
        let c = &self.by_class;
        out.metric(
            "hearth_requests_total",
            "counter",
            "Responses sent, by status class.",
            &[
                ("{code=\"1xx\"}", c[0]),
                ("{code=\"2xx\"}", c[1]),
                ("{code=\"3xx\"}", c[2]),
                ("{code=\"4xx\"}", c[3]),
                ("{code=\"5xx\"}", c[4]),
            ],
        );
        out.one(
            "hearth_bytes_sent_total",
            "counter",
            "Bytes written to clients, heads included.",
            self.bytes_sent,
        );
        out.one(
            "hearth_connections_active",
            "gauge",
            "Open client connections.",
            self.active as u64,
        );
        out.metric(
            "hearth_connections",
            "gauge",
            "Open client connections by state.",
            &[
                ("{state=\"reading\"}", self.reading as u64),
                ("{state=\"writing\"}", self.writing as u64),
                ("{state=\"waiting\"}", self.waiting as u64),
            ],
        );
        out.one(
            "hearth_connections_accepted_total",
            "counter",
            "Connections accepted.",
            self.accepted,
        );
        out.one(
            "hearth_connections_handled_total",
            "counter",
            "Connections accepted and served (not refused at --max-conns).",
            self.handled,
        );
    }

    /// The work queue and the workers.
    fn pool(&self, out: &mut Exposition) {
        out.one(
            "hearth_queue_depth",
            "gauge",
            "Connections waiting in the work queue for a worker.",
            self.queue_depth as u64,
        );
        out.one(
            "hearth_workers_busy",
            "gauge",
            "Worker threads serving connections now.",
            self.busy as u64,
        );
        out.one(
            "hearth_workers",
            "gauge",
            "Worker threads.",
            self.workers as u64,
        );
    }

    /// One sample per reactor.
    fn per_reactor(&self, out: &mut Exposition) {
        let labels: Vec<String> = (0..self.reactors.len())
            .map(|i| format!("{{reactor=\"{i}\"}}"))
            .collect();
        let per = |f: fn(&(usize, usize, u64)) -> u64| -> Vec<(&str, u64)> {
            labels
                .iter()
                .zip(&self.reactors)
                .map(|(l, r)| (l.as_str(), f(r)))
                .collect()
        };
        out.metric(
            "hearth_reactor_connections",
            "gauge",
            "Open connections held by each reactor.",
            &per(|r| r.0 as u64),
        );
        out.metric(
            "hearth_reactor_accepted_total",
            "counter",
            "Connections accepted by each reactor since start.",
            &per(|r| r.2),
        );
        out.metric(
            "hearth_reactor_timers",
            "gauge",
            "Entries in each reactor's timer heap.",
            &per(|r| r.1 as u64),
        );
    }

    /// The cache of variants compressed on the fly.
    fn compression(&self, out: &mut Exposition) {
        let z = &self.compress;
        let families: [(&str, &str, &str, u64); 6] = [
            (
                "hearth_compress_cache_hits_total",
                "counter",
                "Compressed responses served from the cache.",
                z.hits,
            ),
            (
                "hearth_compress_cache_misses_total",
                "counter",
                "Compressible responses that found no cached variant.",
                z.misses,
            ),
            (
                "hearth_compressions_total",
                "counter",
                "Variants compressed on the fly.",
                z.compressions,
            ),
            (
                "hearth_compress_cache_evictions_total",
                "counter",
                "Variants dropped from the cache (size limit or changed file).",
                z.evictions,
            ),
            (
                "hearth_compress_cache_bytes",
                "gauge",
                "Bytes of compressed variants in the cache.",
                z.bytes,
            ),
            (
                "hearth_compress_cache_entries",
                "gauge",
                "Compressed variants in the cache.",
                z.entries,
            ),
        ];
        for (name, kind, help, value) in families {
            out.one(name, kind, help, value);
        }
    }

    /// TLS handshakes by protocol version, and failures.
    fn tls(&self, out: &mut Exposition) {
        out.metric(
            "hearth_tls_handshakes_total",
            "counter",
            "TLS handshakes completed, by protocol version.",
            &[
                ("{version=\"1.2\"}", self.tls_handshakes[0]),
                ("{version=\"1.3\"}", self.tls_handshakes[1]),
            ],
        );
        out.one(
            "hearth_tls_failures_total",
            "counter",
            "TLS connections ended by a failed handshake, a bad record or plain HTTP.",
            self.tls_failures,
        );
    }

    /// Configuration generations and uptime.
    fn lifetime(&self, out: &mut Exposition) {
        out.one(
            "hearth_config_generation",
            "gauge",
            "Configurations in force since start (1, plus one per successful reload).",
            self.config_generation,
        );
        out.one(
            "hearth_config_reloads_failed_total",
            "counter",
            "Reloads that failed and left the running configuration in place.",
            self.reloads_failed,
        );
        out.one(
            "hearth_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            self.uptime_s,
        );
    }

    /// The request-duration histogram, with cumulative buckets.
    fn histogram(&self, out: &mut Exposition) {
        let s = &mut out.0;
        let name = "hearth_request_duration_seconds";
        let _ = write!(
            s,
            "# HELP {name} Time from a complete request head to the last byte of its response.\n\
             # TYPE {name} histogram\n"
        );
        let mut cumulative = 0;
        for (i, n) in self.durations.buckets.iter().enumerate() {
            cumulative += n;
            let le = DURATION_BUCKETS_US
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |us| (*us as f64 / 1e6).to_string());
            let _ = writeln!(s, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = write!(
            s,
            "{name}_sum {}\n{name}_count {cumulative}\n",
            self.durations.sum_us as f64 / 1e6
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::obs::stats::Stats;

    #[test]
    fn histogram_buckets_and_exposition() {
        let stats = Stats::default();
        stats.durations.observe(Duration::from_micros(100));
        stats.durations.observe(Duration::from_micros(500));
        stats.durations.observe(Duration::from_millis(3));
        stats.durations.observe(Duration::from_secs(60));
        stats.response(200);
        let text = stats.snapshot(0, 2, vec![(1, 2, 3)]).prometheus();
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix} missing in\n{text}"))
                .to_string()
        };
        assert_eq!(
            line("hearth_request_duration_seconds_bucket{le=\"0.0005\"}"),
            "hearth_request_duration_seconds_bucket{le=\"0.0005\"} 2"
        );
        assert!(line("hearth_request_duration_seconds_bucket{le=\"0.005\"}").ends_with(" 3"));
        assert!(line("hearth_request_duration_seconds_bucket{le=\"+Inf\"}").ends_with(" 4"));
        assert!(line("hearth_request_duration_seconds_count").ends_with(" 4"));
        assert!(line("hearth_requests_total{code=\"2xx\"}").ends_with(" 1"));
        assert!(line("hearth_reactor_accepted_total{reactor=\"0\"}").ends_with(" 3"));
        assert!(line("hearth_reactor_timers{reactor=\"0\"}").ends_with(" 2"));
        assert!(line("hearth_tls_handshakes_total{version=\"1.3\"}").ends_with(" 0"));
        assert!(line("hearth_tls_failures_total").ends_with(" 0"));
        assert!(text.contains("# TYPE hearth_requests_total counter\n"));
        // Every sample has a HELP and a TYPE.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {base} ")), "{l}");
            assert!(text.contains(&format!("# HELP {base} ")), "{l}");
        }
    }
}
