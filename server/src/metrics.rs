//! `/metrics`: what the node exports, each family with `# HELP` and `# TYPE`,
//! in the OpenMetrics text format that Prometheus scrapes. The figures live
//! where they are kept (media stats, presence, queues, rooms, plugin
//! counters); a scrape reads them into a [`Scrape`] and prometheus-client
//! encodes it. Counters are named without `_total` here: the encoder adds it.

use std::fmt::Write as _;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The content type of what [`Scrape::render`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label value escaped as the text format requires (backslash, quote,
/// line feed): agents' and plugins' names reach labels, and one stray quote
/// would make the whole scrape unreadable. The encoder writes values as given.
#[derive(Debug, Clone)]
struct Escaped(String);

impl EncodeLabelValue for Escaped {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

type Labels = Vec<(&'static str, Escaped)>;

#[derive(Debug)]
enum Value {
    Gauge(i64),
    Counter(u64),
}

#[derive(Debug)]
struct Family {
    name: String,
    help: &'static str,
    samples: Vec<(Labels, Value)>,
}

/// One scrape's figures, grouped into families in the order first given.
#[derive(Debug, Default)]
pub struct Scrape {
    families: Vec<Family>,
}

impl Scrape {
    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &'static str, v: i64) {
        self.sample(name, help, &[], Value::Gauge(v));
    }

    /// A counter without labels (`name` without `_total`).
    pub fn counter(&mut self, name: &str, help: &'static str, v: u64) {
        self.sample(name, help, &[], Value::Counter(v));
    }

    /// One labelled sample of a gauge family.
    pub fn gauge_with(
        &mut self,
        name: &str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        v: i64,
    ) {
        self.sample(name, help, labels, Value::Gauge(v));
    }

    /// One labelled sample of a counter family (`name` without `_total`).
    pub fn counter_with(
        &mut self,
        name: &str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        v: u64,
    ) {
        self.sample(name, help, labels, Value::Counter(v));
    }

    fn sample(
        &mut self,
        name: &str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        v: Value,
    ) {
        let labels = labels
            .iter()
            .map(|(k, v)| (*k, Escaped((*v).to_string())))
            .collect();
        // A family's samples must be together: later ones join the first.
        match self.families.iter_mut().find(|f| f.name == name) {
            Some(f) => f.samples.push((labels, v)),
            None => self.families.push(Family {
                name: name.to_string(),
                help,
                samples: vec![(labels, v)],
            }),
        }
    }

    /// The text Prometheus reads.
    pub fn render(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Writing to a String cannot fail; the families are well formed.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::warn!("encoding /metrics: {e}");
        }
        out
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            let kind = match f.samples.first() {
                Some((_, Value::Counter(_))) => MetricType::Counter,
                _ => MetricType::Gauge,
            };
            let mut family = encoder.encode_descriptor(&f.name, f.help, None, kind)?;
            if let [(labels, v)] = f.samples.as_slice() {
                if labels.is_empty() {
                    // Unlabelled: `name 3`, not `name{} 3`.
                    encode_value(v, family)?;
                    continue;
                }
            }
            for (labels, v) in &f.samples {
                encode_value(v, family.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}

fn encode_value(
    v: &Value,
    to: prometheus_client::encoding::MetricEncoder,
) -> Result<(), std::fmt::Error> {
    match v {
        Value::Gauge(g) => ConstGauge::new(*g).encode(to),
        Value::Counter(c) => ConstCounter::new(*c).encode(to),
    }
}

/// What `fill` exports, as text (for the exporters' own unit tests).
#[cfg(test)]
pub fn render_with(fill: impl FnOnce(&mut Scrape)) -> String {
    let mut s = Scrape::default();
    fill(&mut s);
    s.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_and_type_and_counters_end_in_total() {
        let mut s = Scrape::default();
        s.gauge("hookline_media_legs", "Media legs open now.", 3);
        s.counter("hookline_calls_refused", "Calls refused.", 7);
        s.gauge_with(
            "hookline_queue_waiting",
            "Callers waiting.",
            &[("queue", "a")],
            1,
        );
        s.counter("hookline_other", "Something else.", 1);
        s.gauge_with(
            "hookline_queue_waiting",
            "Callers waiting.",
            &[("queue", "b")],
            2,
        );
        let text = s.render();
        for line in [
            "# HELP hookline_media_legs Media legs open now.",
            "# TYPE hookline_media_legs gauge",
            "hookline_media_legs 3",
            "# TYPE hookline_calls_refused counter",
            "hookline_calls_refused_total 7",
            "hookline_queue_waiting{queue=\"a\"} 1",
            "hookline_queue_waiting{queue=\"b\"} 2",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(line)),
                "{line:?} not in\n{text}"
            );
        }
        // Both queue samples sit under the family's one TYPE line.
        assert_eq!(text.matches("# TYPE hookline_queue_waiting").count(), 1);
        let a = text.find("queue=\"a\"").unwrap();
        let b = text.find("queue=\"b\"").unwrap();
        let other = text.find("hookline_other_total").unwrap();
        assert!(a < b && b < other, "{text}");
    }

    #[test]
    fn hostile_label_values_cannot_break_the_scrape() {
        let mut s = Scrape::default();
        let evil = "x\"} 1\nhookline_active_calls 999\\";
        s.gauge_with("hookline_agents", "Agents.", &[("agent", evil)], 1);
        let text = s.render();
        assert!(
            text.contains(r#"hookline_agents{agent="x\"} 1\nhookline_active_calls 999\\"} 1"#),
            "{text}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("hookline_active_calls")),
            "{text}"
        );
    }
}
