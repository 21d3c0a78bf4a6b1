//! The statistics page as text in the shape of nginx's stub_status, and as JSON
//! (`?format=text`, `?format=json`); `prometheus` writes its third shape.

use std::fmt::Write as _;

use super::stats::Snapshot;

impl Snapshot {
    /// Plain text in the shape of nginx's stub_status, plus the extra counters.
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(512);
        self.text_traffic(&mut s);
        self.text_reactors(&mut s);
        self.text_cache_and_config(&mut s);
        let _ = writeln!(
            s,
            "\ntls_handshakes: tls1.2={} tls1.3={}\ntls_failures: {}",
            self.tls_handshakes[0], self.tls_handshakes[1], self.tls_failures
        );
        s
    }

    /// The stub_status lines (connections, requests), then workers and responses.
    fn text_traffic(&self, s: &mut String) {
        let c = &self.by_class;
        let _ = write!(
            s,
            "Active connections: {}\nserver accepts handled requests\n {} {} {}\nReading: {} Writing: {} Waiting: {}\n\
             uptime_seconds: {}\nqueue_depth: {}\nworkers_busy: {}\nworkers: {}\n\
             responses: 1xx={} 2xx={} 3xx={} 4xx={} 5xx={}\nbytes_sent: {}\n",
            self.active,
            self.accepted,
            self.handled,
            self.requests,
            self.reading,
            self.writing,
            self.waiting,
            self.uptime_s,
            self.queue_depth,
            self.busy,
            self.workers,
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            self.bytes_sent
        );
    }

    /// The reactor count, then one column per reactor: open, accepted, timers.
    fn text_reactors(&self, s: &mut String) {
        let _ = write!(s, "reactors: {}\nreactor_active:", self.reactors.len());
        for (n, _, _) in &self.reactors {
            let _ = write!(s, " {n}");
        }
        s.push_str("\nreactor_accepted:");
        for (_, _, a) in &self.reactors {
            let _ = write!(s, " {a}");
        }
        s.push_str("\nreactor_timers:");
        for (_, t, _) in &self.reactors {
            let _ = write!(s, " {t}");
        }
    }

    /// The compression cache's counters and the configuration's reloads.
    fn text_cache_and_config(&self, s: &mut String) {
        let z = &self.compress;
        let _ = write!(
            s,
            "\ncompress_cache: hits={} misses={} compressions={} bytes={} entries={} evictions={}\n\
             config_generation: {}\nconfig_reloads_failed: {}\n",
            z.hits,
            z.misses,
            z.compressions,
            z.bytes,
            z.entries,
            z.evictions,
            self.config_generation,
            self.reloads_failed
        );
        if let Some(e) = &self.reload_error {
            let _ = writeln!(s, "config_reload_error: {}", one_line(e));
        }
    }

    /// The same as JSON.
    pub fn json(&self) -> String {
        let mut s = String::with_capacity(768);
        s.push('{');
        self.json_traffic(&mut s);
        self.json_reactors(&mut s);
        self.json_cache_config_tls(&mut s);
        s.push_str("}\n");
        s
    }

    /// Uptime, connections, requests, responses by class, bytes, queue and workers.
    fn json_traffic(&self, s: &mut String) {
        let c = &self.by_class;
        let _ = write!(
            s,
            "\"uptime_s\":{},\"connections\":{{\"active\":{},\"reading\":{},\"writing\":{},\"idle\":{},\"total\":{},\"handled\":{}}},\
             \"requests\":{},\"responses\":{{\"1xx\":{},\"2xx\":{},\"3xx\":{},\"4xx\":{},\"5xx\":{}}},\
             \"bytes_sent\":{},\"queue_depth\":{},\"workers_busy\":{},\"workers\":{},",
            self.uptime_s,
            self.active,
            self.reading,
            self.writing,
            self.waiting,
            self.accepted,
            self.handled,
            self.requests,
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            self.bytes_sent,
            self.queue_depth,
            self.busy,
            self.workers,
        );
    }

    /// The reactor count and one array per column: open, accepted, timers.
    fn json_reactors(&self, s: &mut String) {
        let _ = write!(
            s,
            "\"reactors\":{},\"reactor_active\":[{}],\"reactor_accepted\":[{}],\"reactor_timers\":[{}],",
            self.reactors.len(),
            list(self.reactors.iter().map(|r| r.0)),
            list(self.reactors.iter().map(|r| r.2 as usize)),
            list(self.reactors.iter().map(|r| r.1)),
        );
    }

    /// The compression cache, the configuration's reloads and the TLS counters.
    fn json_cache_config_tls(&self, s: &mut String) {
        let z = &self.compress;
        let _ = write!(
            s,
            "\"compress_cache\":{{\"hits\":{},\"misses\":{},\"compressions\":{},\"bytes\":{},\"entries\":{},\"evictions\":{}}},\
             \"config_generation\":{},\"config_reloads_failed\":{},\"config_reload_error\":{},\
             \"tls\":{{\"handshakes_tls12\":{},\"handshakes_tls13\":{},\"failures\":{}}}",
            z.hits,
            z.misses,
            z.compressions,
            z.bytes,
            z.entries,
            z.evictions,
            self.config_generation,
            self.reloads_failed,
            self.reload_error
                .as_deref()
                .map_or_else(|| "null".to_string(), json_string),
            self.tls_handshakes[0],
            self.tls_handshakes[1],
            self.tls_failures,
        );
    }
}

/// `s` on one line, for a line-oriented page.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Numbers joined by commas, for a JSON array.
fn list(items: impl Iterator<Item = usize>) -> String {
    items.map(|n| n.to_string()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
