//! A tiny SVG writer for the benchmark plots: stacked line-chart panels
//! sharing one time axis, and a horizontal bar chart. Enough for reports
//! that a browser or GitHub renders; no plotting crate needed.

use std::fmt::Write;

pub const COLORS: [&str; 9] =
    ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"];

pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

impl Series {
    pub fn new(name: impl Into<String>, color: &'static str, points: Vec<(f64, f64)>) -> Series {
        Series { name: name.into(), color, points, dashed: false }
    }

    pub fn dashed(mut self) -> Series {
        self.dashed = true;
        self
    }
}

pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
    /// Horizontal reference lines (value, label), e.g. a target.
    pub hlines: Vec<(f64, String)>,
    /// Fixed upper bound of the y axis (otherwise from the data).
    pub y_max: Option<f64>,
}

pub struct Figure {
    pub title: String,
    pub x_label: String,
    pub panels: Vec<Panel>,
    /// Vertical markers across all panels (x, label), e.g. load steps.
    pub vlines: Vec<(f64, String)>,
    pub width: f64,
    pub panel_height: f64,
}

/// A "nice" tick step (1, 2 or 5 × 10^k) for about `n` ticks over `range`.
fn tick_step(range: f64, n: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / n;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm < 1.5 {
        1.0
    } else if norm < 3.0 {
        2.0
    } else if norm < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Figure {
    pub fn render(&self) -> String {
        let (left, right, top, gap) = (70.0, 20.0, 40.0, 50.0);
        let plot_w = self.width - left - right;
        let height = top + self.panels.len() as f64 * (self.panel_height + gap) + 10.0;
        let (mut x_min, mut x_max) = (f64::INFINITY, f64::NEG_INFINITY);
        for p in &self.panels {
            for s in &p.series {
                for (x, _) in &s.points {
                    x_min = x_min.min(*x);
                    x_max = x_max.max(*x);
                }
            }
        }
        if !x_min.is_finite() {
            (x_min, x_max) = (0.0, 1.0);
        }
        if x_max <= x_min {
            x_max = x_min + 1.0;
        }
        let sx = |x: f64| left + (x - x_min) / (x_max - x_min) * plot_w;
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" viewBox="0 0 {w} {height}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="{tx}" y="22" font-size="15" text-anchor="middle" font-weight="bold">{title}</text>
"#,
            w = self.width,
            tx = self.width / 2.0,
            title = esc(&self.title)
        );
        for (i, panel) in self.panels.iter().enumerate() {
            let y0 = top + i as f64 * (self.panel_height + gap) + 15.0;
            let h = self.panel_height;
            let data_max = panel
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .chain(panel.hlines.iter().map(|h| h.0))
                .filter(|v| v.is_finite())
                .fold(0.0f64, f64::max);
            let y_max = panel.y_max.unwrap_or(if data_max > 0.0 { data_max * 1.08 } else { 1.0 });
            let sy = |v: f64| y0 + h - (v.clamp(0.0, y_max) / y_max) * h;
            let _ = writeln!(
                out,
                r##"<text x="{left}" y="{ty}" font-size="12" font-weight="bold">{t}</text>
<rect x="{left}" y="{y0}" width="{plot_w}" height="{h}" fill="none" stroke="#999"/>"##,
                ty = y0 - 5.0,
                t = esc(&panel.title)
            );
            let step = tick_step(y_max, 4.0);
            let mut v = 0.0;
            while v <= y_max + 1e-9 {
                let y = sy(v);
                let _ = writeln!(
                    out,
                    r##"<line x1="{left}" x2="{x2}" y1="{y}" y2="{y}" stroke="#eee"/><text x="{tx}" y="{ty}" text-anchor="end">{l}</text>"##,
                    x2 = left + plot_w,
                    tx = left - 4.0,
                    ty = y + 4.0,
                    l = fmt_tick(v)
                );
                v += step;
            }
            let xstep = tick_step(x_max - x_min, 10.0);
            let mut x = (x_min / xstep).ceil() * xstep;
            while x <= x_max + 1e-9 {
                let px = sx(x);
                let _ = writeln!(
                    out,
                    r##"<line x1="{px}" x2="{px}" y1="{y1}" y2="{y2}" stroke="#999"/><text x="{px}" y="{ty}" text-anchor="middle">{l}</text>"##,
                    y1 = y0 + h,
                    y2 = y0 + h + 4.0,
                    ty = y0 + h + 15.0,
                    l = fmt_tick(x)
                );
                x += xstep;
            }
            for (x, label) in &self.vlines {
                let px = sx(*x);
                let _ = writeln!(
                    out,
                    r##"<line x1="{px}" x2="{px}" y1="{y0}" y2="{y2}" stroke="#555" stroke-dasharray="3,3"/><text x="{tx}" y="{ty}" fill="#555" font-size="9">{l}</text>"##,
                    y2 = y0 + h,
                    tx = px + 2.0,
                    ty = y0 + 10.0,
                    l = esc(label)
                );
            }
            for (v, label) in &panel.hlines {
                let y = sy(*v);
                let _ = writeln!(
                    out,
                    r##"<line x1="{left}" x2="{x2}" y1="{y}" y2="{y}" stroke="#000" stroke-dasharray="6,3"/><text x="{tx}" y="{ty}" font-size="9">{l}</text>"##,
                    x2 = left + plot_w,
                    tx = left + 4.0,
                    ty = y - 3.0,
                    l = esc(label)
                );
            }
            for s in &panel.series {
                if s.points.is_empty() {
                    continue;
                }
                let pts: Vec<String> = s
                    .points
                    .iter()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(x, v)| format!("{:.1},{:.1}", sx(*x), sy(*v)))
                    .collect();
                let _ = writeln!(
                    out,
                    r#"<polyline fill="none" stroke="{c}" stroke-width="1.5"{d} points="{p}"/>"#,
                    c = s.color,
                    d = if s.dashed { r#" stroke-dasharray="5,3""# } else { "" },
                    p = pts.join(" ")
                );
                // Few points (load steps): mark each one.
                if pts.len() <= 30 {
                    for p in &pts {
                        if let Some((x, y)) = p.split_once(',') {
                            let _ =
                                writeln!(out, r#"<circle cx="{x}" cy="{y}" r="2.5" fill="{}"/>"#, s.color);
                        }
                    }
                }
            }
            // Legend, top right inside the panel.
            for (k, s) in panel.series.iter().enumerate() {
                let ly = y0 + 12.0 + k as f64 * 13.0;
                let lx = left + plot_w - 230.0;
                let _ = writeln!(
                    out,
                    r#"<line x1="{lx}" x2="{x2}" y1="{y}" y2="{y}" stroke="{c}" stroke-width="2"{d}/><text x="{tx}" y="{ty}">{n}</text>"#,
                    x2 = lx + 18.0,
                    y = ly - 3.0,
                    c = s.color,
                    d = if s.dashed { r#" stroke-dasharray="5,3""# } else { "" },
                    tx = lx + 22.0,
                    ty = ly,
                    n = esc(&s.name)
                );
            }
        }
        let _ = writeln!(
            out,
            r#"<text x="{x}" y="{y}" text-anchor="middle">{l}</text></svg>"#,
            x = left + plot_w / 2.0,
            y = height - 2.0,
            l = esc(&self.x_label)
        );
        out
    }
}

/// Horizontal bars (label, value) with the value printed at each bar's end.
pub fn bar_chart(title: &str, unit: &str, bars: &[(String, f64)]) -> String {
    let (left, right, top, bar_h, gap) = (300.0, 110.0, 40.0, 22.0, 10.0);
    let width = 830.0;
    let plot_w = width - left - right;
    let height = top + bars.len() as f64 * (bar_h + gap) + 20.0;
    let max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1e-12);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{tx}" y="22" font-size="14" text-anchor="middle" font-weight="bold">{t}</text>"#,
        tx = width / 2.0,
        t = esc(title)
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = top + i as f64 * (bar_h + gap);
        let w = value / max * plot_w;
        let _ = writeln!(
            out,
            r#"<text x="{lx}" y="{ty}" text-anchor="end">{l}</text><rect x="{left}" y="{y}" width="{w:.1}" height="{bar_h}" fill="{c}"/><text x="{vx}" y="{ty}">{v} {unit}</text>"#,
            lx = left - 6.0,
            ty = y + bar_h * 0.7,
            l = esc(label),
            c = COLORS[i % COLORS.len()],
            vx = left + w + 5.0,
            v = fmt_value(*value),
            unit = esc(unit)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
