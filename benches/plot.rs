//! Draws the README's plot of round-trip latency against payload size from the figures
//! the gate records: `ci/bench-gate --full --figures figures.json`, then
//! `cargo bench --bench plot -- figures.json docs/roundtrip.png [--peers FILE] [--font F]`.
//!
//! With `--peers FILE` (the figures of `cargo bench --features peers --bench peers --
//! --in-turn --figures FILE`) it adds iceoryx2's spinning round trip, and takes the floor
//! and our spinning round trip from that run too, so that the three were measured in turn.
//!
//! Without arguments (as when `cargo bench` runs every bench) it prints how to use it.

use std::error::Error;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use serde_json::Value;

const SIZES: [u64; 4] = [64, 4096, 65536, 1 << 20];
const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// (figure name prefix, legend, colour, dashed = same-core).
const SERIES: [(&str, &str, RGBColor, bool); 8] = [
    (
        "shm_spin_diff",
        "shmval handle, receiver spins (diff-core)",
        RGBColor(0, 114, 178),
        false,
    ),
    (
        "shm_block_diff",
        "shmval handle, receiver blocks (diff-core)",
        RGBColor(86, 180, 233),
        false,
    ),
    (
        "shm_block_same",
        "shmval handle, receiver blocks (same-core)",
        RGBColor(86, 180, 233),
        true,
    ),
    (
        "pipe2_diff",
        "pipe(2), bytes copied (diff-core)",
        RGBColor(213, 94, 0),
        false,
    ),
    (
        "pipe2_same",
        "pipe(2), bytes copied (same-core)",
        RGBColor(213, 94, 0),
        true,
    ),
    (
        "uds_diff",
        "Unix socket, bytes copied (diff-core)",
        RGBColor(0, 158, 115),
        false,
    ),
    (
        "uds_same",
        "Unix socket, bytes copied (same-core)",
        RGBColor(0, 158, 115),
        true,
    ),
    (
        "iox2_spin_diff",
        "iceoryx2, payload written per hop, receiver spins (diff-core)",
        RGBColor(204, 121, 167),
        false,
    ),
];

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let (mut pos, mut peers, mut font) = (Vec::new(), None, DEFAULT_FONT.to_string());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--peers" => peers = args.next(),
            "--font" => font = args.next().unwrap_or(font),
            _ => pos.push(a),
        }
    }
    let [figures, out, rest @ ..] = &pos[..] else {
        eprintln!(
            "usage: cargo bench --bench plot -- FIGURES.json OUT.png [--peers FILE] [--font F]"
        );
        return;
    };
    // The font may also come third, as it did before `--font`.
    let font = rest.first().cloned().unwrap_or(font);
    if let Err(e) = draw(figures, out, peers.as_deref(), &font) {
        eprintln!("plot: {e}");
        std::process::exit(1);
    }
}

fn draw(figures: &str, out: &str, peers: Option<&str>, font: &str) -> Result<(), Box<dyn Error>> {
    let bytes: &'static [u8] = Box::leak(
        std::fs::read(font)
            .map_err(|e| format!("cannot read the font {font}: {e}"))?
            .into_boxed_slice(),
    );
    register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| "not a font")?;
    let mut figs: Value = serde_json::from_str(&std::fs::read_to_string(figures)?)?;
    if let (Some(path), Value::Object(map)) = (peers, &mut figs) {
        match serde_json::from_str(&std::fs::read_to_string(path)?)? {
            Value::Object(more) => map.extend(more),
            _ => return Err(format!("{path}: not a JSON object").into()),
        }
    }
    let median = |name: &str| figs[name]["median"].as_f64();

    let root = BitMapBackend::new(out, (1000, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Round trip between two processes against payload size (medians)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((32f64..2.0e6).log_scale(), (30f64..5.0e6).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("payload (bytes)")
        .y_desc("round trip (ns)")
        .x_label_formatter(&|x| human(*x, "B"))
        .y_label_formatter(&|y| human_ns(*y))
        .label_style(("sans-serif", 15))
        .draw()?;
    for (prefix, label, colour, dashed) in SERIES {
        let points: Vec<(f64, f64)> = SIZES
            .iter()
            .filter_map(|s| median(&format!("{prefix}_{s}")).map(|m| (*s as f64, m)))
            .collect();
        if points.is_empty() {
            continue;
        }
        let style = colour.stroke_width(if dashed { 1 } else { 3 });
        let series = chart.draw_series(LineSeries::new(points.clone(), style))?;
        series
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        chart.draw_series(points.iter().map(|p| {
            if dashed {
                Circle::new(*p, 4, colour.stroke_width(1))
            } else {
                Circle::new(*p, 4, colour.filled())
            }
        }))?;
    }
    for (name, label) in [
        (
            "floor_cacheline_diff",
            "floor: cache-line ping-pong (diff-core)",
        ),
        (
            "floor_futex_same",
            "floor: futex wake ping-pong (same-core)",
        ),
    ] {
        if let Some(m) = median(name) {
            let style = BLACK.mix(0.5).stroke_width(1);
            chart
                .draw_series(LineSeries::new([(32.0, m), (2.0e6, m)], style))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    println!("wrote {out}");
    Ok(())
}

/// Axis labels sit at powers of ten: decimal prefixes read cleanly there.
fn human(x: f64, unit: &str) -> String {
    match x {
        x if x >= 1e6 => format!("{:.0} M{unit}", x / 1e6),
        x if x >= 1e3 => format!("{:.0} k{unit}", x / 1e3),
        x => format!("{x:.0} {unit}"),
    }
}

fn human_ns(y: f64) -> String {
    match y {
        y if y >= 1e6 => format!("{:.0} ms", y / 1e6),
        y if y >= 1e3 => format!("{:.0} us", y / 1e3),
        y => format!("{y:.0} ns"),
    }
}
