//! What the gate writes and prints: the figures as JSON, a new baseline, and the table
//! of ratios against the baseline.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::common::rigs::Figure;

/// Default allowed worsening of a ratio, as a fraction of its baseline (for a ratio the
/// baseline gives no tolerance).
pub const DEFAULT_TOLERANCE: f64 = 0.30;

/// Writes every figure (median, min, max, unit, conditions) to `path` as JSON.
pub fn write_figures(path: &str, figures: &BTreeMap<String, Figure>) {
    let figs: serde_json::Map<String, Value> = figures
        .iter()
        .map(|(k, f)| {
            let min = f.runs.iter().copied().fold(f64::INFINITY, f64::min);
            let max = f.runs.iter().copied().fold(0.0, f64::max);
            (
                k.clone(),
                json!({"median": f.median(), "min": min, "max": max, "unit": f.unit,
                       "conditions": f.conditions}),
            )
        })
        .collect();
    std::fs::write(
        path,
        serde_json::to_string_pretty(&Value::Object(figs)).expect("json"),
    )
    .expect("write the figures");
}

/// Rewrites the baseline at `path` with the `measured` ratios, keeping `old`'s tolerances.
pub fn write_baseline(path: &str, old: &Value, measured: &[(&str, f64, &str, bool)]) {
    let mut ratios = serde_json::Map::new();
    for &(name, value, what, gated) in measured {
        let tol = old["ratios"][name]["tolerance"]
            .as_f64()
            .unwrap_or(DEFAULT_TOLERANCE);
        ratios.insert(
            name.into(),
            json!({"value": (value * 1000.0).round() / 1000.0, "tolerance": tol,
                   "gated": gated, "what": what}),
        );
    }
    let doc = json!({
        "note": "Ratios (lower is better) measured by ci/bench-gate; rewrite with \
                 ci/bench-gate --update after a deliberate performance change.",
        "ratios": ratios,
    });
    std::fs::write(
        path,
        serde_json::to_string_pretty(&doc).expect("json") + "\n",
    )
    .expect("write the baseline");
    println!("bench-gate: baseline written to {path}");
}

/// Prints the table of `measured` ratios against `old`'s; returns how many gated ones are
/// worse than their limit (none counted when `update`).
pub fn compare(old: &Value, measured: &[(&str, f64, &str, bool)], update: bool) -> usize {
    println!(
        "{:<28} {:>9} {:>9} {:>6} {:>9}  status",
        "ratio", "baseline", "measured", "tol", "limit"
    );
    let mut failed = 0;
    for &(name, value, _, gated) in measured {
        let base = old["ratios"][name]["value"].as_f64();
        let tol = old["ratios"][name]["tolerance"]
            .as_f64()
            .unwrap_or(DEFAULT_TOLERANCE);
        let (b, limit, status) = match base {
            Some(b) => {
                let limit = b * (1.0 + tol);
                let ok = value <= limit;
                if !ok && gated && !update {
                    failed += 1;
                }
                let status = match (gated, ok) {
                    (false, _) => "info (not gated)",
                    (true, true) => "ok",
                    (true, false) => "WORSE",
                };
                (format!("{b:.3}"), format!("{limit:.3}"), status)
            }
            None => ("-".into(), "-".into(), "new"),
        };
        println!(
            "{name:<28} {b:>9} {value:>9.3} {:>5.0}% {limit:>9}  {status}",
            tol * 100.0
        );
    }
    failed
}
