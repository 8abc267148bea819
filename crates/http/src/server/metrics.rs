//! A small Prometheus registry: the handful of series the server exports do not
//! justify a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The server's counters and histograms, rendered in the Prometheus text format.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    requests: BTreeMap<(String, &'static str), u64>,
    latency: BTreeMap<String, Histogram>,
    tokens_counted: BTreeMap<&'static str, u64>,
    trimmed_messages: u64,
    trimmed_turns: u64,
    model_latency: BTreeMap<String, Histogram>,
    model_calls: BTreeMap<(String, String), u64>,
    model_tokens: BTreeMap<(String, &'static str), u64>,
    class: BTreeMap<i64, ClassCounters>,
}

/// What a class used through this process.
#[derive(Debug, Default)]
struct ClassCounters {
    runs: u64,
    calls: BTreeMap<String, u64>,
    tokens_in: u64,
    tokens_out: u64,
    cost: f64,
    refusals: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        self.count += 1;
        self.sum += secs;
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i] += 1;
        }
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of `name{label="value"}`.
    fn render(&self, w: &mut String, name: &str, label: &str, value: &str) {
        let value = escape(value);
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(self.buckets) {
            cumulative += n;
            let _ = writeln!(
                w,
                "{name}_bucket{{{label}=\"{value}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            w,
            "{name}_bucket{{{label}=\"{value}\",le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(w, "{name}_sum{{{label}=\"{value}\"}} {}", self.sum);
        let _ = writeln!(w, "{name}_count{{{label}=\"{value}\"}} {}", self.count);
    }
}

impl Metrics {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic elsewhere cannot leave counters half-written: keep counting.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one finished request.
    pub fn observe_request(&self, route: &str, code: &'static str, elapsed: Duration) {
        let mut r = self.registry();
        *r.requests.entry((route.to_string(), code)).or_default() += 1;
        match r.latency.get_mut(route) {
            Some(h) => h,
            None => r.latency.entry(route.to_string()).or_default(),
        }
        .observe(elapsed);
    }

    /// Records tokens counted by an endpoint (`sliding`, `tokenize`, `route`).
    pub fn add_tokens(&self, endpoint: &'static str, tokens: usize) {
        *self.registry().tokens_counted.entry(endpoint).or_default() += tokens as u64;
    }

    /// Records one practice model call: its latency, its outcome (`ok` or the
    /// error kind: `timeout`, `rate_limited`, `upstream_5xx`, ...) and the
    /// provider's token counts.
    pub fn observe_model_call(
        &self,
        model: &str,
        elapsed: Duration,
        outcome: &str,
        tokens_in: u64,
        tokens_out: u64,
    ) {
        let mut r = self.registry();
        r.model_latency
            .entry(model.to_string())
            .or_default()
            .observe(elapsed);
        *r.model_calls
            .entry((model.to_string(), outcome.to_string()))
            .or_default() += 1;
        *r.model_tokens.entry((model.to_string(), "in")).or_default() += tokens_in;
        *r.model_tokens
            .entry((model.to_string(), "out"))
            .or_default() += tokens_out;
    }

    /// Records one stored run of a class: one call per model with its outcome
    /// (`ok` or the error kind), tokens and cost.
    pub fn observe_class_run<'a>(
        &self,
        class_id: i64,
        calls: impl IntoIterator<Item = (&'a str, u64, u64, f64)>,
    ) {
        let mut r = self.registry();
        let class = r.class.entry(class_id).or_default();
        class.runs += 1;
        for (outcome, tokens_in, tokens_out, cost) in calls {
            *class.calls.entry(outcome.to_string()).or_default() += 1;
            class.tokens_in += tokens_in;
            class.tokens_out += tokens_out;
            class.cost += cost;
        }
    }

    /// Records a run of a class refused by a budget `limit`.
    pub fn observe_budget_refusal(&self, class_id: i64, limit: &'static str) {
        *self
            .registry()
            .class
            .entry(class_id)
            .or_default()
            .refusals
            .entry(limit)
            .or_default() += 1;
    }

    /// Records what one sliding-window call removed.
    pub fn add_trimmed(&self, messages: usize, turns: usize) {
        let mut r = self.registry();
        r.trimmed_messages += messages as u64;
        r.trimmed_turns += turns as u64;
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let r = self.registry();
        let mut out = String::new();
        let w = &mut out;
        header(
            w,
            "sluice_http_requests_total",
            "counter",
            "Requests by route and envelope status code.",
        );
        for ((route, code), n) in &r.requests {
            let _ = writeln!(
                w,
                "sluice_http_requests_total{{route=\"{}\",code=\"{code}\"}} {n}",
                escape(route)
            );
        }
        header(
            w,
            "sluice_http_request_duration_seconds",
            "histogram",
            "Request latency by route.",
        );
        for (route, h) in &r.latency {
            h.render(w, "sluice_http_request_duration_seconds", "route", route);
        }
        header(
            w,
            "sluice_tokens_counted_total",
            "counter",
            "Prompt tokens counted: kept tokens for the sliding window, all for chat-tokenize, \
             query plus history for the router.",
        );
        for (endpoint, n) in &r.tokens_counted {
            let _ = writeln!(
                w,
                "sluice_tokens_counted_total{{endpoint=\"{endpoint}\"}} {n}"
            );
        }
        header(
            w,
            "sluice_trimmed_messages_total",
            "counter",
            "Messages removed by the sliding window.",
        );
        let _ = writeln!(w, "sluice_trimmed_messages_total {}", r.trimmed_messages);
        header(
            w,
            "sluice_trimmed_turns_total",
            "counter",
            "Whole turns removed by the sliding window.",
        );
        let _ = writeln!(w, "sluice_trimmed_turns_total {}", r.trimmed_turns);
        header(
            w,
            "sluice_practice_model_duration_seconds",
            "histogram",
            "Wall time of practice model calls (retries included), by model.",
        );
        for (model, h) in &r.model_latency {
            h.render(w, "sluice_practice_model_duration_seconds", "model", model);
        }
        header(
            w,
            "sluice_practice_model_calls_total",
            "counter",
            "Practice model calls by model and outcome (ok, or the upstream error kind).",
        );
        for ((model, outcome), n) in &r.model_calls {
            let _ = writeln!(
                w,
                "sluice_practice_model_calls_total{{model=\"{}\",outcome=\"{}\"}} {n}",
                escape(model),
                escape(outcome)
            );
        }
        header(
            w,
            "sluice_practice_model_tokens_total",
            "counter",
            "Tokens the providers reported, by model and direction (in: prompt, out: completion).",
        );
        for ((model, direction), n) in &r.model_tokens {
            let _ = writeln!(
                w,
                "sluice_practice_model_tokens_total{{model=\"{}\",direction=\"{direction}\"}} {n}",
                escape(model)
            );
        }
        render_classes(w, &r.class);
        out
    }
}

/// The per-class series: runs, calls by outcome, tokens, cost, refusals.
fn render_classes(w: &mut String, classes: &BTreeMap<i64, ClassCounters>) {
    header(
        w,
        "sluice_class_runs_total",
        "counter",
        "Practice runs stored, by class.",
    );
    for (class, c) in classes {
        let _ = writeln!(w, "sluice_class_runs_total{{class=\"{class}\"}} {}", c.runs);
    }
    header(
        w,
        "sluice_class_calls_total",
        "counter",
        "Model calls of practice runs, by class and outcome (ok, or the error kind).",
    );
    for (class, c) in classes {
        for (outcome, n) in &c.calls {
            let _ = writeln!(
                w,
                "sluice_class_calls_total{{class=\"{class}\",outcome=\"{}\"}} {n}",
                escape(outcome)
            );
        }
    }
    header(
        w,
        "sluice_class_tokens_total",
        "counter",
        "Tokens the providers reported for a class's runs (in: prompt, out: completion).",
    );
    for (class, c) in classes {
        for (direction, n) in [("in", c.tokens_in), ("out", c.tokens_out)] {
            let _ = writeln!(
                w,
                "sluice_class_tokens_total{{class=\"{class}\",direction=\"{direction}\"}} {n}"
            );
        }
    }
    header(
        w,
        "sluice_class_cost_total",
        "counter",
        "Cost of a class's runs, from the models' prices (input_price_per_million, output_price_per_million).",
    );
    for (class, c) in classes {
        let _ = writeln!(w, "sluice_class_cost_total{{class=\"{class}\"}} {}", c.cost);
    }
    header(
        w,
        "sluice_class_budget_refusals_total",
        "counter",
        "Runs refused before any model call because a budget limit would be passed, by class and limit.",
    );
    for (class, c) in classes {
        for (limit, n) in &c.refusals {
            let _ = writeln!(
                w,
                "sluice_class_budget_refusals_total{{class=\"{class}\",limit=\"{limit}\"}} {n}"
            );
        }
    }
}

fn header(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {help}");
    let _ = writeln!(w, "# TYPE {name} {kind}");
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe_request("/a", "20000", Duration::from_micros(300));
        m.observe_request("/a", "40001", Duration::from_millis(3));
        m.observe_request("/a", "20000", Duration::from_secs(60));
        let text = m.render();
        assert!(text.contains("sluice_http_requests_total{route=\"/a\",code=\"20000\"} 2"));
        assert!(text.contains("sluice_http_requests_total{route=\"/a\",code=\"40001\"} 1"));
        assert!(text.contains("_bucket{route=\"/a\",le=\"0.0005\"} 1\n"));
        assert!(text.contains("_bucket{route=\"/a\",le=\"0.005\"} 2\n"));
        assert!(text.contains("_bucket{route=\"/a\",le=\"10\"} 2\n"));
        assert!(text.contains("_bucket{route=\"/a\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("sluice_http_request_duration_seconds_count{route=\"/a\"} 3\n"));
    }

    #[test]
    fn model_calls_are_counted_by_outcome() {
        let m = Metrics::default();
        m.observe_model_call("gpt", Duration::from_millis(200), "ok", 10, 5);
        m.observe_model_call("gpt", Duration::from_secs(3), "timeout", 0, 0);
        let text = m.render();
        assert!(text.contains("sluice_practice_model_calls_total{model=\"gpt\",outcome=\"ok\"} 1"));
        assert!(
            text.contains("sluice_practice_model_calls_total{model=\"gpt\",outcome=\"timeout\"} 1")
        );
        assert!(
            text.contains("sluice_practice_model_tokens_total{model=\"gpt\",direction=\"in\"} 10")
        );
        assert!(text.contains(
            "sluice_practice_model_duration_seconds_bucket{model=\"gpt\",le=\"0.25\"} 1\n"
        ));
        assert!(text.contains("sluice_practice_model_duration_seconds_count{model=\"gpt\"} 2\n"));
    }

    #[test]
    fn class_runs_are_counted_per_class() {
        let m = Metrics::default();
        m.observe_class_run(3, [("ok", 10, 5, 0.25), ("timeout", 0, 0, 0.0)]);
        m.observe_class_run(3, [("ok", 1, 1, 0.5)]);
        m.observe_budget_refusal(4, "tokens_per_day");
        let text = m.render();
        assert!(
            text.contains("sluice_class_runs_total{class=\"3\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("sluice_class_calls_total{class=\"3\",outcome=\"ok\"} 2\n"));
        assert!(text.contains("sluice_class_calls_total{class=\"3\",outcome=\"timeout\"} 1\n"));
        assert!(text.contains("sluice_class_tokens_total{class=\"3\",direction=\"in\"} 11\n"));
        assert!(text.contains("sluice_class_cost_total{class=\"3\"} 0.75\n"));
        assert!(text.contains(
            "sluice_class_budget_refusals_total{class=\"4\",limit=\"tokens_per_day\"} 1\n"
        ));
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
