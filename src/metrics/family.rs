//! Labelled metric families whose children a scrape writes straight from their atomics.
//!
//! `prometheus::Registry::gather` turns every child of a `MetricVec` into a protobuf `Metric` on each scrape
//! (label names and values cloned into fresh strings) and then sorts them: about 1 µs per series, which was
//! 95 % of the cost of encoding 10 000 series (benches/RESULTS.md). A [`Family`] keeps its children sorted by
//! label value as they are created, each with its label text (`{model="gpt-4o"`) rendered once, so a scrape
//! only reads each child's value and copies bytes. The children are the prometheus crate's atomic
//! `IntCounter` and `IntGauge`, used standalone, and [`Hist`]; the output is byte for byte what the crate's
//! `TextEncoder` writes for the same family (tests below and in `expo`).
//!
//! A family has one label (all the exporter's labelled families do) or none (one histogram).

use std::sync::{Arc, PoisonError, RwLock};

use prometheus::proto::{LabelPair, MetricFamily, MetricType};
use prometheus::{Gauge, IntCounter, IntGauge};

use crate::config::NativeConfig;
use crate::metrics::hist::{Hist, Snapshot};
use crate::metrics::protobuf::Labels;
use crate::metrics::{expo, openmetrics, protobuf, unix_now, Format};

/// Buffers a scrape reuses while it writes families.
#[derive(Default)]
pub struct Scratch {
    pub labels: Vec<u8>,
    pub snap: Snapshot,
    pub hex: Vec<u8>,
}

/// A metric type a [`Family`] can hold.
pub trait Child: prometheus::core::Metric + Clone + Send + Sync + 'static {
    const KIND: MetricType;
    /// Writes the child's lines; `labels` is its label text.
    fn write(&self, name: &str, labels: &[u8], out: &mut Vec<u8>);
    /// Its OpenMetrics lines; `family` is the OpenMetrics family name, `created` when the series appeared.
    fn write_om(&self, family: &str, labels: &[u8], created: f64, s: &mut Scratch, out: &mut Vec<u8>);
    /// Its protobuf `Metric` message.
    fn write_pb(&self, labels: &Labels<'_>, created: f64, s: &mut Scratch, out: &mut Vec<u8>);
}

impl Child for IntCounter {
    const KIND: MetricType = MetricType::COUNTER;
    fn write(&self, name: &str, labels: &[u8], out: &mut Vec<u8>) {
        expo::value_line(name, labels, self.get() as f64, out);
    }
    fn write_om(&self, family: &str, labels: &[u8], created: f64, _: &mut Scratch, out: &mut Vec<u8>) {
        openmetrics::counter(family, labels, self.get() as f64, created, out);
    }
    fn write_pb(&self, labels: &Labels<'_>, created: f64, _: &mut Scratch, out: &mut Vec<u8>) {
        protobuf::counter(labels, self.get() as f64, created, out);
    }
}

impl Child for IntGauge {
    const KIND: MetricType = MetricType::GAUGE;
    fn write(&self, name: &str, labels: &[u8], out: &mut Vec<u8>) {
        expo::value_line(name, labels, self.get() as f64, out);
    }
    fn write_om(&self, family: &str, labels: &[u8], _: f64, _: &mut Scratch, out: &mut Vec<u8>) {
        openmetrics::gauge(family, labels, self.get() as f64, out);
    }
    fn write_pb(&self, labels: &Labels<'_>, _: f64, _: &mut Scratch, out: &mut Vec<u8>) {
        protobuf::gauge(labels, self.get() as f64, out);
    }
}

impl Child for Gauge {
    const KIND: MetricType = MetricType::GAUGE;
    fn write(&self, name: &str, labels: &[u8], out: &mut Vec<u8>) {
        expo::value_line(name, labels, self.get(), out);
    }
    fn write_om(&self, family: &str, labels: &[u8], _: f64, _: &mut Scratch, out: &mut Vec<u8>) {
        openmetrics::gauge(family, labels, self.get(), out);
    }
    fn write_pb(&self, labels: &Labels<'_>, _: f64, _: &mut Scratch, out: &mut Vec<u8>) {
        protobuf::gauge(labels, self.get(), out);
    }
}

impl Child for Hist {
    const KIND: MetricType = MetricType::HISTOGRAM;
    fn write(&self, name: &str, labels: &[u8], out: &mut Vec<u8>) {
        Hist::write(self, name, labels, out);
    }
    fn write_om(&self, family: &str, labels: &[u8], created: f64, s: &mut Scratch, out: &mut Vec<u8>) {
        self.read(&mut s.snap);
        openmetrics::histogram(family, labels, &s.snap, created, out);
    }
    fn write_pb(&self, labels: &Labels<'_>, created: f64, s: &mut Scratch, out: &mut Vec<u8>) {
        self.read(&mut s.snap);
        protobuf::histogram(labels, &s.snap, created, &mut s.hex, out);
    }
}

struct Entry<T> {
    value: String,
    labels: Vec<u8>,
    metric: T,
    /// Unix seconds when the series was created (OpenMetrics `_created`).
    created: f64,
}

struct Inner<T> {
    name: String,
    help: String,
    /// `None` for a family of one unlabelled metric.
    label: Option<String>,
    make: Box<dyn Fn() -> T + Send + Sync>,
    /// Sorted by label value, as `Registry::gather` sorts.
    children: RwLock<Vec<Entry<T>>>,
}

/// What a rich histogram keeps besides its classic buckets (both off: a classic histogram).
#[derive(Clone, Copy, Debug, Default)]
pub struct Rich {
    pub exemplars: bool,
    pub native: Option<NativeConfig>,
}

/// A family with one label. Cloning is cheap (shared).
pub struct Family<T: Child> {
    inner: Arc<Inner<T>>,
}

impl<T: Child> Clone for Family<T> {
    fn clone(&self) -> Self {
        Family { inner: Arc::clone(&self.inner) }
    }
}

impl Family<IntCounter> {
    pub fn counter(name: &str, help: &str, label: &str) -> Result<Self, prometheus::Error> {
        Self::of_plain(name, help, label, IntCounter::new)
    }
}

impl Family<IntGauge> {
    pub fn gauge(name: &str, help: &str, label: &str) -> Result<Self, prometheus::Error> {
        Self::of_plain(name, help, label, IntGauge::new)
    }
}

impl Family<Gauge> {
    pub fn float_gauge(name: &str, help: &str, label: &str) -> Result<Self, prometheus::Error> {
        Self::of_plain(name, help, label, Gauge::new)
    }
}

impl Family<Hist> {
    pub fn histogram(name: &str, help: &str, label: &str, buckets: &[f64]) -> Result<Self, prometheus::Error> {
        Self::histogram_with(name, help, Some(label), buckets, Rich::default())
    }

    /// A family of histograms with exemplars and/or native buckets.
    pub fn rich_histogram(
        name: &str,
        help: &str,
        label: &str,
        b: &[f64],
        rich: Rich,
    ) -> Result<Self, prometheus::Error> {
        Self::histogram_with(name, help, Some(label), b, rich)
    }

    /// A family of one histogram without labels, and that histogram.
    pub fn unlabelled_histogram(
        name: &str,
        help: &str,
        buckets: &[f64],
        rich: Rich,
    ) -> Result<(Self, Hist), prometheus::Error> {
        let f = Self::histogram_with(name, help, None, buckets, rich)?;
        let h = f.get("");
        Ok((f, h))
    }

    fn histogram_with(
        name: &str,
        help: &str,
        label: Option<&str>,
        b: &[f64],
        rich: Rich,
    ) -> Result<Self, prometheus::Error> {
        // The name and help checks of the crate's metrics, then the buckets'.
        IntGauge::new(name, help)?;
        Hist::new(b)?;
        let b = b.to_vec();
        Ok(Self::new(name, help, label, move || {
            Hist::rich(&b, rich.exemplars, rich.native).expect("checked at construction")
        }))
    }
}

impl<T: Child> Family<T> {
    /// A family of a metric type the crate builds from a name and help alone (counters, gauges): `make` is
    /// checked once here, so creating a child later cannot fail.
    fn of_plain(
        name: &str,
        help: &str,
        label: &str,
        make: fn(String, String) -> Result<T, prometheus::Error>,
    ) -> Result<Self, prometheus::Error> {
        let (n, h) = (name.to_string(), help.to_string());
        make(n.clone(), h.clone())?;
        Ok(Self::new(name, help, Some(label), move || make(n.clone(), h.clone()).expect("checked at construction")))
    }

    fn new(name: &str, help: &str, label: Option<&str>, make: impl Fn() -> T + Send + Sync + 'static) -> Self {
        Family {
            inner: Arc::new(Inner {
                name: name.into(),
                help: help.into(),
                label: label.map(String::from),
                make: Box::new(make),
                children: RwLock::new(Vec::new()),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The child with this label value, created (at zero) on first use. An unlabelled family has one child,
    /// whatever the value.
    pub fn get(&self, value: &str) -> T {
        let value = if self.inner.label.is_some() { value } else { "" };
        {
            let children = self.inner.children.read().unwrap_or_else(PoisonError::into_inner);
            if let Ok(i) = children.binary_search_by(|e| e.value.as_str().cmp(value)) {
                return children[i].metric.clone();
            }
        }
        let mut children = self.inner.children.write().unwrap_or_else(PoisonError::into_inner);
        match children.binary_search_by(|e| e.value.as_str().cmp(value)) {
            Ok(i) => children[i].metric.clone(),
            Err(i) => {
                let metric = (self.inner.make)();
                let mut labels = Vec::new();
                if let Some(label) = &self.inner.label {
                    expo::one_label_text(label, value, &mut labels);
                }
                let created = unix_now();
                children.insert(i, Entry { value: value.into(), labels, metric: metric.clone(), created });
                metric
            }
        }
    }

    /// Removes the child with this label value; whether there was one.
    pub fn remove(&self, value: &str) -> bool {
        let mut children = self.inner.children.write().unwrap_or_else(PoisonError::into_inner);
        match children.binary_search_by(|e| e.value.as_str().cmp(value)) {
            Ok(i) => {
                children.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// How many children there are.
    pub fn len(&self) -> usize {
        self.inner.children.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the exposition needs of a family, whatever its child type.
pub trait Exposed: Send + Sync {
    fn name(&self) -> &str;
    /// Writes the family in the text format; nothing when it has no children (as `Registry::gather` skips it).
    fn encode(&self, out: &mut Vec<u8>);
    /// Writes the family in OpenMetrics or protobuf; nothing when it has no children.
    fn encode_as(&self, format: Format, s: &mut Scratch, out: &mut Vec<u8>);
    /// The family as the prometheus crate's protobuf (the slow path, for comparing with its `TextEncoder`);
    /// `None` when it has no children.
    fn collect(&self) -> Option<MetricFamily>;
}

impl<T: Child> Exposed for Family<T> {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let children = self.inner.children.read().unwrap_or_else(PoisonError::into_inner);
        if children.is_empty() {
            return;
        }
        expo::header(&self.inner.name, &self.inner.help, T::KIND, out);
        for e in children.iter() {
            e.metric.write(&self.inner.name, &e.labels, out);
        }
    }

    fn encode_as(&self, format: Format, s: &mut Scratch, out: &mut Vec<u8>) {
        let children = self.inner.children.read().unwrap_or_else(PoisonError::into_inner);
        if children.is_empty() {
            return;
        }
        let (name, help) = (self.inner.name.as_str(), self.inner.help.as_str());
        match format {
            Format::Text => {
                drop(children);
                self.encode(out)
            }
            Format::OpenMetrics => {
                openmetrics::header(name, help, T::KIND, out);
                let family = openmetrics::family_name(name, T::KIND);
                for e in children.iter() {
                    e.metric.write_om(family, &e.labels, e.created, s, out);
                }
            }
            Format::Protobuf => {
                let mark = protobuf::begin_family(name, help, T::KIND, out);
                for e in children.iter() {
                    let labels = Labels::One(self.inner.label.as_deref().map(|l| (l, e.value.as_str())));
                    e.metric.write_pb(&labels, e.created, s, out);
                }
                protobuf::end_family(mark, out);
            }
        }
    }

    fn collect(&self) -> Option<MetricFamily> {
        let children = self.inner.children.read().unwrap_or_else(PoisonError::into_inner);
        if children.is_empty() {
            return None;
        }
        let mut mf = MetricFamily::default();
        mf.set_name(self.inner.name.clone());
        mf.set_help(self.inner.help.clone());
        mf.set_field_type(T::KIND);
        for e in children.iter() {
            let mut m = e.metric.metric();
            if let Some(label) = &self.inner.label {
                let mut lp = LabelPair::default();
                lp.set_name(label.clone());
                lp.set_value(e.value.clone());
                m.set_label(vec![lp]);
            }
            mf.mut_metric().push(m);
        }
        Some(mf)
    }
}

/// The families of an exposition, sorted by name. Cloning is cheap (shared).
#[derive(Clone, Default)]
pub struct Families {
    list: Arc<RwLock<Vec<Arc<dyn Exposed>>>>,
}

/// A family name registered twice.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("metric family {0:?} is registered twice")]
pub struct DuplicateFamily(pub String);

impl Families {
    /// Adds a family (kept in name order).
    pub fn register(&self, f: impl Exposed + 'static) -> Result<(), DuplicateFamily> {
        let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
        match list.binary_search_by(|e| e.name().cmp(f.name())) {
            Ok(_) => Err(DuplicateFamily(f.name().to_string())),
            Err(i) => {
                list.insert(i, Arc::new(f));
                Ok(())
            }
        }
    }

    /// Whether a family of this name is registered.
    pub fn contains(&self, name: &str) -> bool {
        let list = self.list.read().unwrap_or_else(PoisonError::into_inner);
        list.binary_search_by(|e| e.name().cmp(name)).is_ok()
    }

    /// Writes `others` (sorted by name, as `Registry::gather` returns them) and these families, merged in name
    /// order, into `out` (not cleared).
    pub fn encode_with(&self, others: &[MetricFamily], out: &mut Vec<u8>) -> Result<(), expo::ExpoError> {
        let list = self.list.read().unwrap_or_else(PoisonError::into_inner);
        let mut scratch = Vec::with_capacity(256);
        let mut rest = others;
        for f in list.iter() {
            while let Some((first, tail)) = rest.split_first() {
                if first.name() >= f.name() {
                    break;
                }
                expo::encode_family(first, &mut scratch, out)?;
                rest = tail;
            }
            f.encode(out);
        }
        for mf in rest {
            expo::encode_family(mf, &mut scratch, out)?;
        }
        Ok(())
    }

    /// Writes `others` (sorted by name) and these families, merged in name order, in `format` (not
    /// cleared); `created` stamps the counters and histograms of `others` (the process start). OpenMetrics
    /// ends with `# EOF`.
    pub fn encode_as(
        &self,
        others: &[MetricFamily],
        format: Format,
        created: f64,
        s: &mut Scratch,
        out: &mut Vec<u8>,
    ) -> Result<(), expo::ExpoError> {
        if format == Format::Text {
            return self.encode_with(others, out);
        }
        let list = self.list.read().unwrap_or_else(PoisonError::into_inner);
        let other = |mf: &MetricFamily, s: &mut Scratch, out: &mut Vec<u8>| match format {
            Format::OpenMetrics => openmetrics::encode_family(mf, created, &mut s.labels, out),
            _ => protobuf::encode_family(mf, created, &mut s.snap, out),
        };
        let mut rest = others;
        for f in list.iter() {
            while let Some((first, tail)) = rest.split_first() {
                if first.name() >= f.name() {
                    break;
                }
                other(first, s, out)?;
                rest = tail;
            }
            f.encode_as(format, s, out);
        }
        for mf in rest {
            other(mf, s, out)?;
        }
        if format == Format::OpenMetrics {
            out.extend_from_slice(openmetrics::EOF);
        }
        Ok(())
    }

    /// `others` and these families as protobufs, merged in name order (the slow path).
    pub fn collect_with(&self, others: Vec<MetricFamily>) -> Vec<MetricFamily> {
        let list = self.list.read().unwrap_or_else(PoisonError::into_inner);
        let mut all = others;
        all.extend(list.iter().filter_map(|f| f.collect()));
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::expo::reference;
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

    /// The same children in a `Family` and in the crate's `MetricVec`: the same bytes.
    #[test]
    fn families_write_what_the_crate_writes_for_the_same_vecs() {
        let reg = Registry::new();
        let ours = Families::default();
        let cv = IntCounterVec::new(Opts::new("c_total", "counts \\ \"q\"\nx"), &["k"]).unwrap();
        let cf = Family::counter("c_total", "counts \\ \"q\"\nx", "k").unwrap();
        // Out of order, with values that need escaping and that sort differently as numbers.
        for (k, v) in [("b", 3), ("a\"\\\n", 1), ("10", 7), ("2", 0), ("", 5)] {
            cv.with_label_values(&[k]).inc_by(v);
            cf.get(k).inc_by(v);
        }
        let gv = IntGaugeVec::new(Opts::new("g", "gauges"), &["partition"]).unwrap();
        let gf = Family::gauge("g", "gauges", "partition").unwrap();
        for (k, v) in [("0", -4), ("31", i64::MAX), ("7", 0)] {
            gv.with_label_values(&[k]).set(v);
            gf.get(k).set(v);
        }
        let b = [0.5, 1.0, 10.0];
        let hv = HistogramVec::new(HistogramOpts::new("h", "hist").buckets(b.to_vec()), &["model"]).unwrap();
        let hf = Family::histogram("h", "hist", "model", &b).unwrap();
        for (k, v) in [("gpt-4", 0.3), ("claude", 5.0), ("gpt-4", 50.0), ("claude", f64::NAN)] {
            hv.with_label_values(&[k]).observe(v);
            hf.get(k).observe(v);
        }
        let hp = prometheus::Histogram::with_opts(HistogramOpts::new("hp", "plain").buckets(vec![])).unwrap();
        let (hpf, hp_ours) = Family::unlabelled_histogram("hp", "plain", &[], Rich::default()).unwrap();
        for v in [0.001, 0.3, 7.0, 1e9, f64::NAN, -1.0] {
            hp.observe(v);
            hp_ours.observe(v);
        }
        assert_eq!(hpf.get("ignored").get_sample_count(), 6, "an unlabelled family has one child");
        reg.register(Box::new(hp)).unwrap();
        ours.register(hpf).unwrap();
        let empty = Family::counter("empty_total", "never used", "k").unwrap();
        reg.register(Box::new(cv)).unwrap();
        reg.register(Box::new(gv)).unwrap();
        reg.register(Box::new(hv)).unwrap();
        for f in [&cf as &dyn Exposed, &gf, &hf, &empty] {
            assert!(!f.name().is_empty());
        }
        ours.register(cf.clone()).unwrap();
        ours.register(gf).unwrap();
        ours.register(hf).unwrap();
        ours.register(empty).unwrap();
        let mut out = Vec::new();
        ours.encode_with(&[], &mut out).unwrap();
        let want = reference(&reg.gather());
        assert_eq!(String::from_utf8(out).unwrap(), want);
        assert_eq!(reference(&ours.collect_with(Vec::new())), want);
        assert!(want.contains("c_total{k=\"10\"} 7\nc_total{k=\"2\"} 0\n"), "{want}");

        assert_eq!(cf.len(), 5);
        assert!(cf.remove("b"));
        assert!(!cf.remove("b"));
        assert_eq!(cf.len(), 4);
        assert_eq!(cf.get("10").get(), 7, "get returns the existing child");
        assert_eq!(ours.register(Family::counter("g", "again", "x").unwrap()), Err(DuplicateFamily("g".into())));
    }

    /// Families merged with gathered ones come out in name order.
    #[test]
    fn merge_keeps_name_order() {
        let reg = Registry::new();
        for n in ["a", "m", "z"] {
            reg.register(Box::new(IntGauge::new(n, "x").unwrap())).unwrap();
        }
        let ours = Families::default();
        for n in ["b", "n", "zz", "_0"] {
            let f = Family::gauge(n, "y", "l").unwrap();
            f.get("v").set(1);
            ours.register(f).unwrap();
        }
        let mut out = Vec::new();
        ours.encode_with(&reg.gather(), &mut out).unwrap();
        let names: Vec<&str> =
            std::str::from_utf8(&out).unwrap().lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
        assert_eq!(names, ["_0 gauge", "a gauge", "b gauge", "m gauge", "n gauge", "z gauge", "zz gauge"]);
        assert_eq!(String::from_utf8(out).unwrap(), reference(&ours.collect_with(reg.gather())));
        assert!(Family::histogram("bad", "x", "l", &[2.0, 1.0]).is_err(), "buckets must increase");
    }
}
