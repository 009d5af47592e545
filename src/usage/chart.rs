//! The usage page's data (docs/spec.md §10): requests per bucket and per key over 24 hours
//! (hourly buckets), 7 days or 30 days (daily buckets), as a stacked bar chart drawn on the
//! server (SVG geometry computed here, markup in `templates/settings_usage.html`), the same
//! numbers as a table for screen readers, and as CSV. Also each key's requests in the last
//! 24 hours for the key list. Built on [`super::ops::report`].

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::ops::{self, Granularity, UsageQuery};
use crate::clock::{Timestamp, rfc3339};
use crate::db::DbConnection;
use crate::db::schema::api_keys;
use crate::error::OpError;
use crate::orgs::Actor;

/// `1 request`, `2 requests`.
fn plural(n: i64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// How many keys get a series of their own; the rest are summed as "Other keys".
pub const MAX_SERIES: usize = 5;

/// Series colours (Okabe–Ito, distinguishable with colour-vision deficiencies); the last
/// is "Other keys".
const COLOURS: [&str; MAX_SERIES + 1] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#8a8a8a",
];

/// Chart geometry, in SVG user units (the SVG scales to the page width).
pub const WIDTH: i64 = 720;
pub const HEIGHT: i64 = 260;
pub const LEFT: i64 = 56;
pub const RIGHT: i64 = 8;
const TOP: i64 = 12;
const BOTTOM: i64 = 28;

/// The page's period: `24h` (24 hourly buckets), `7d` or `30d` (daily buckets), each
/// ending with the current hour or day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Day,
    Week,
    Month,
}

impl Range {
    pub const ALL: [Range; 3] = [Range::Day, Range::Week, Range::Month];

    /// `range=` of the page and the CSV: `24h`, `7d` (default) or `30d`; anything else is
    /// a 400 naming `range`.
    pub fn parse(v: Option<&str>) -> Result<Self, OpError> {
        match v {
            None | Some("") | Some("7d") => Ok(Self::Week),
            Some("24h") => Ok(Self::Day),
            Some("30d") => Ok(Self::Month),
            Some(_) => Err(OpError::invalid("range must be 24h, 7d or 30d.")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "24h",
            Self::Week => "7d",
            Self::Month => "30d",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::Day => "last 24 hours",
            Self::Week => "last 7 days",
            Self::Month => "last 30 days",
        }
    }
    pub fn granularity(self) -> Granularity {
        match self {
            Self::Day => Granularity::Hour,
            Self::Week | Self::Month => Granularity::Day,
        }
    }
    fn buckets(self) -> i64 {
        match self {
            Self::Day => 24,
            Self::Week => 7,
            Self::Month => 30,
        }
    }
    /// The report of this range at `now`: whole buckets, the last holding `now`.
    pub fn query(self, now: Timestamp) -> Result<UsageQuery, OpError> {
        let g = self.granularity();
        let end = g.floor(now) + g.seconds();
        UsageQuery::new(end - self.buckets() * g.seconds(), end, g, None)
    }
}

/// One series: a key (or "Other keys") with its total and colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// `None` for "Other keys".
    pub key_id: Option<String>,
    pub name: String,
    pub total: i64,
    pub colour: &'static str,
}

/// One bucket: its label, and the requests of each series (in [`UsageView::series`]
/// order) and in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub start: String,
    pub label: String,
    pub counts: Vec<i64>,
    pub total: i64,
}

/// One drawn rectangle of the stacked bars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
    pub colour: &'static str,
    /// The tooltip (`<title>`): bucket, series and count.
    pub title: String,
}

/// A horizontal grid line with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    pub y: i64,
    pub value: i64,
}

/// An x-axis label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XLabel {
    pub x: i64,
    pub text: String,
}

/// Everything the usage page shows.
#[derive(Debug, Clone)]
pub struct UsageView {
    pub range: Range,
    pub series: Vec<Series>,
    pub buckets: Vec<Bucket>,
    pub total: i64,
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
    pub x_labels: Vec<XLabel>,
    /// The chart's text description (`<desc>`).
    pub description: String,
}

/// Names of all the organization's keys, revoked ones included (usage outlives keys).
pub fn key_names(conn: &mut DbConnection, org_id: &str) -> QueryResult<BTreeMap<String, String>> {
    Ok(api_keys::table
        .filter(api_keys::org_id.eq(org_id))
        .select((api_keys::id, api_keys::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect())
}

/// Requests per key over the 24 hourly buckets ending with the current hour (the key list).
pub fn last_24_hours(
    conn: &mut DbConnection,
    actor: &Actor,
    now: Timestamp,
) -> Result<BTreeMap<String, i64>, OpError> {
    let mut per_key = BTreeMap::new();
    for p in ops::report(conn, actor, &Range::Day.query(now)?)? {
        *per_key.entry(p.key_id).or_insert(0) += p.count;
    }
    Ok(per_key)
}

/// The CSV download: `start,key_id,key_name,code,count`, one line per bucket, key and
/// code, RFC 4180 quoting; a name that a spreadsheet would run as a formula is prefixed
/// with `'`.
pub fn csv(
    conn: &mut DbConnection,
    actor: &Actor,
    range: Range,
    now: Timestamp,
) -> Result<String, OpError> {
    let names = key_names(conn, &actor.org_id)?;
    let mut out = String::from("start,key_id,key_name,code,count\r\n");
    for p in ops::report(conn, actor, &range.query(now)?)? {
        let name = names.get(&p.key_id).map(String::as_str).unwrap_or("");
        out.push_str(&format!(
            "{},{},{},{},{}\r\n",
            p.start,
            csv_field(&p.key_id),
            csv_field(name),
            csv_field(&p.code),
            p.count
        ));
    }
    Ok(out)
}

fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// The page's view of `range` at `now`.
pub fn view(
    conn: &mut DbConnection,
    actor: &Actor,
    range: Range,
    now: Timestamp,
) -> Result<UsageView, OpError> {
    let q = range.query(now)?;
    let points = ops::report(conn, actor, &q)?;
    let names = key_names(conn, &actor.org_id)?;
    let counts: Vec<(Timestamp, String, i64)> = points
        .into_iter()
        .map(|p| (p.start_epoch, p.key_id, p.count))
        .collect();
    Ok(build(range, q.start, &counts, &names))
}

/// Lays out the chart from `(bucket start, key id, count)` triples.
pub fn build(
    range: Range,
    start: Timestamp,
    counts: &[(Timestamp, String, i64)],
    names: &BTreeMap<String, String>,
) -> UsageView {
    let g = range.granularity();
    let n = range.buckets();
    // Keys by total, largest first (ties by id); the first MAX_SERIES get their own series.
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    for (_, k, c) in counts {
        *totals.entry(k.as_str()).or_insert(0) += c;
    }
    let mut order: Vec<(&str, i64)> = totals.into_iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let own = order.len().min(MAX_SERIES);
    let mut series: Vec<Series> = order
        .iter()
        .take(own)
        .zip(COLOURS)
        .map(|((id, total), colour)| Series {
            key_id: Some((*id).to_string()),
            name: names.get(*id).cloned().unwrap_or_else(|| (*id).to_string()),
            total: *total,
            colour,
        })
        .collect();
    if order.len() > own {
        series.push(Series {
            key_id: None,
            name: format!("Other keys ({})", order.len() - own),
            total: order.iter().skip(own).map(|(_, t)| t).sum(),
            colour: COLOURS[MAX_SERIES],
        });
    }
    let index_of = |key: &str| {
        series
            .iter()
            .position(|s| s.key_id.as_deref() == Some(key))
            .unwrap_or(own)
    };
    let mut buckets: Vec<Bucket> = (0..n)
        .map(|i| {
            let t = start + i * g.seconds();
            Bucket {
                start: rfc3339(t),
                label: bucket_label(range, t),
                counts: vec![0; series.len()],
                total: 0,
            }
        })
        .collect();
    for (t, k, c) in counts {
        let i = (t - start).div_euclid(g.seconds());
        let s = index_of(k);
        if let Some(b) = usize::try_from(i).ok().and_then(|i| buckets.get_mut(i)) {
            if let Some(slot) = b.counts.get_mut(s) {
                *slot += c;
            }
            b.total += c;
        }
    }
    let total: i64 = buckets.iter().map(|b| b.total).sum();
    let max = buckets.iter().map(|b| b.total).max().unwrap_or(0);
    let top = nice_ceiling(max);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let plot_w = WIDTH - LEFT - RIGHT;
    let slot = plot_w / n;
    let bar_w = (slot * 7 / 10).max(2);
    let y_of = |v: i64| TOP + plot_h - v * plot_h / top;
    let mut bars = Vec::new();
    for (i, b) in (0..).zip(&buckets) {
        let x = LEFT + i * slot + (slot - bar_w) / 2;
        let mut below = 0;
        for (s, c) in series.iter().zip(&b.counts) {
            if *c == 0 {
                continue;
            }
            let (y0, y1) = (y_of(below), y_of(below + c));
            bars.push(Bar {
                x,
                y: y1,
                width: bar_w,
                height: (y0 - y1).max(1),
                colour: s.colour,
                title: format!("{}: {} — {}", b.label, s.name, plural(*c, "request")),
            });
            below += c;
        }
    }
    let ticks = [0, top / 2, top]
        .into_iter()
        .map(|v| Tick {
            y: y_of(v),
            value: v,
        })
        .collect();
    let every = match range {
        Range::Day => 4,
        Range::Week => 1,
        Range::Month => 5,
    };
    let x_labels = (0..)
        .zip(&buckets)
        .filter(|(i, _)| (n - 1 - i) % every == 0)
        .map(|(i, b)| XLabel {
            x: LEFT + i * slot + slot / 2,
            text: b.label.clone(),
        })
        .collect();
    let busiest = buckets.iter().max_by_key(|b| b.total);
    let description = match busiest {
        Some(b) if total > 0 => format!(
            "{} in the {}, {}; the busiest was {} with {}. {} made requests. The table below lists every value.",
            plural(total, "request"),
            range.label(),
            if g == Granularity::Hour {
                "hour by hour"
            } else {
                "day by day"
            },
            b.label,
            b.total,
            plural(order.len() as i64, "key"),
        ),
        _ => format!("No requests in the {}.", range.label()),
    };
    UsageView {
        range,
        series,
        buckets,
        total,
        bars,
        ticks,
        x_labels,
        description,
    }
}

/// `14:00` for an hour, `11-29` (month-day) for a day, UTC.
fn bucket_label(range: Range, t: Timestamp) -> String {
    let s = rfc3339(t);
    let part = match range {
        Range::Day => s.get(11..16),
        Range::Week | Range::Month => s.get(5..10),
    };
    part.unwrap_or(&s).to_string()
}

/// The smallest of 1, 2, 5 × 10^k at least `v` (and at least 1): the chart's top line.
fn nice_ceiling(v: i64) -> i64 {
    let mut unit = 1;
    loop {
        for m in [1, 2, 5] {
            if m * unit >= v {
                return m * unit;
            }
        }
        unit *= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::DAY;

    #[test]
    fn ranges_cover_whole_buckets_ending_with_now() {
        let now = crate::clock::parse_rfc3339("2026-11-29T22:41:07Z").expect("a timestamp");
        let q = Range::Day.query(now).expect("the day query");
        assert_eq!(rfc3339(q.start), "2026-11-28T23:00:00Z");
        assert_eq!(rfc3339(q.end), "2026-11-29T23:00:00Z");
        let q = Range::Month.query(now).expect("the month query");
        assert_eq!(rfc3339(q.start), "2026-10-31T00:00:00Z");
        assert_eq!(rfc3339(q.end), "2026-11-30T00:00:00Z");
        assert_eq!(Range::parse(None).expect("the default range"), Range::Week);
        assert!(
            Range::parse(Some("1y"))
                .unwrap_err()
                .to_string()
                .contains("range")
        );
    }

    #[test]
    fn bars_stack_per_key_and_small_keys_are_grouped() {
        let start = 0;
        let names: BTreeMap<String, String> = [("a".to_string(), "Alpha".to_string())]
            .into_iter()
            .collect();
        let mut counts = vec![(0, "a".to_string(), 10), (DAY, "a".to_string(), 40)];
        for k in 0..6 {
            counts.push((DAY, format!("k{k}"), 1));
        }
        let v = build(Range::Week, start, &counts, &names);
        assert_eq!(v.buckets.len(), 7);
        assert_eq!(v.total, 56);
        assert_eq!(v.series.len(), MAX_SERIES + 1);
        assert_eq!(v.series[0].name, "Alpha");
        assert_eq!(v.series[0].total, 50);
        assert_eq!(v.series[MAX_SERIES].name, "Other keys (2)");
        assert_eq!(v.buckets[1].total, 46);
        assert_eq!(v.buckets[1].counts[MAX_SERIES], 2);
        assert_eq!(v.ticks.last().expect("a tick").value, 50);
        // The tallest stack (46) ends where 46 of the top line's 50 are; bars never leave
        // the plot.
        let plot = HEIGHT - TOP - BOTTOM;
        let highest = v.bars.iter().map(|b| b.y).min().expect("a bar");
        assert_eq!(highest, TOP + plot - 46 * plot / 50);
        assert!(
            v.bars
                .iter()
                .all(|b| b.y >= TOP && b.y + b.height <= HEIGHT - BOTTOM + 1)
        );
        assert!(v.description.contains("56 requests"));
    }

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(50), 50);
        assert_eq!(nice_ceiling(51), 100);
        assert_eq!(nice_ceiling(101), 200);
    }
}
