//! `crustctl bench chart`: the latency distributions of bench/compare.sh's results file as an
//! SVG box chart, crustd against containerd.
//!
//! The input is the results JSON bench/compare.sh writes: `runs`, each with `daemon`,
//! `workload` and the bench `report`, whose `rpcs` hold every sample. The samples of all
//! rounds are pooled per workload, RPC and daemon; each pool is one row: whiskers from min to
//! max, the box from the 25th to the 75th percentile, a bar at the median, on a logarithmic
//! axis of milliseconds. Text is left to the SVG viewer (`<text>` elements, no font files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

/// The daemons, in the order of the rows and with their colours.
const DAEMONS: [(&str, RGBColor); 2] = [
    ("crustd", RGBColor(0xd9, 0x5f, 0x02)),
    ("containerd", RGBColor(0x1f, 0x77, 0xb4)),
];
const WIDTH: u32 = 1100;
const ROW_HEIGHT: u32 = 18;

#[derive(Args, Debug)]
pub struct ChartArgs {
    /// bench/compare.sh's results JSON
    #[arg(long, value_name = "results.json")]
    pub input: PathBuf,
    /// The SVG to write
    #[arg(long, value_name = "FILE.svg")]
    pub output: PathBuf,
    /// The chart's title
    #[arg(long, default_value = "CRI latency per RPC, crustd vs containerd")]
    pub title: String,
}

/// One workload's RPC: its name and the pooled samples (ms) of each daemon of [`DAEMONS`].
#[derive(Debug, Default, PartialEq)]
struct Group {
    name: String,
    samples: [Vec<f64>; 2],
}

pub fn run(args: ChartArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("read {}", args.input.display()))?;
    let results: Value =
        serde_json::from_str(&text).with_context(|| format!("parse {}", args.input.display()))?;
    let groups = groups(&results).with_context(|| format!("{}", args.input.display()))?;
    draw(&groups, &args.title, &args.output)
}

/// The groups of `results`, in the order they first appear; samples that are not positive
/// numbers are left out (a log axis has no place for them).
fn groups(results: &Value) -> Result<Vec<Group>> {
    let Some(runs) = results.get("runs").and_then(Value::as_array) else {
        bail!("no runs array: not a bench/compare.sh results file");
    };
    let mut order: Vec<String> = Vec::new();
    let mut pools: BTreeMap<String, Group> = BTreeMap::new();
    for run in runs {
        let daemon = run.get("daemon").and_then(Value::as_str).unwrap_or("");
        let Some(d) = DAEMONS.iter().position(|(name, _)| *name == daemon) else {
            continue;
        };
        let workload = run.get("workload").and_then(Value::as_str).unwrap_or("?");
        let rpcs = run
            .pointer("/report/rpcs")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for rpc in rpcs {
            let name = format!(
                "{workload}/{}",
                rpc.get("rpc").and_then(Value::as_str).unwrap_or("?")
            );
            let samples = rpc
                .get("samples_ms")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let group = pools.entry(name.clone()).or_insert_with(|| {
                order.push(name.clone());
                Group {
                    name,
                    ..Default::default()
                }
            });
            group.samples[d].extend(
                samples
                    .iter()
                    .filter_map(Value::as_f64)
                    .filter(|v| *v > 0.0),
            );
        }
    }
    let groups: Vec<Group> = order
        .iter()
        .filter_map(|name| pools.remove(name))
        .filter(|g| g.samples.iter().any(|s| !s.is_empty()))
        .collect();
    if groups.is_empty() {
        bail!("no latency samples of crustd or containerd in the runs");
    }
    Ok(groups)
}

/// The `q`-th quantile (0..=1) of the ascending `sorted`, by nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let rank = (q * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// min, p25, median, p75, max of `samples` (not empty).
fn five_numbers(samples: &[f64]) -> [f64; 5] {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    [
        sorted[0],
        quantile(&sorted, 0.25),
        quantile(&sorted, 0.5),
        quantile(&sorted, 0.75),
        sorted[sorted.len() - 1],
    ]
}

fn draw(groups: &[Group], title: &str, output: &Path) -> Result<()> {
    let rows = groups.len() * DAEMONS.len();
    let height = 110 + ROW_HEIGHT * u32::try_from(rows).unwrap_or(u32::MAX / 64);
    let root = SVGBackend::new(output, (WIDTH, height)).into_drawing_area();
    draw_on(&root, groups, title).map_err(|e| anyhow::anyhow!("drawing the chart: {e}"))?;
    root.present()
        .map_err(|e| anyhow::anyhow!("write {}: {e}", output.display()))?;
    Ok(())
}

fn draw_on(
    root: &DrawingArea<SVGBackend, Shift>,
    groups: &[Group],
    title: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let all = groups.iter().flat_map(|g| g.samples.iter().flatten());
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let (lo, hi) = (lo / 1.5, (hi * 1.5).max(lo * 2.0));
    let rows = (groups.len() * DAEMONS.len()) as f64;

    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(250)
        .build_cartesian_2d((lo..hi).log_scale(), rows..0.0)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 15))
        .x_desc("ms (log scale); whiskers min to max, box p25 to p75, bar at the median")
        .draw()?;

    for (k, (daemon, colour)) in DAEMONS.iter().enumerate() {
        let boxes: Vec<(f64, [f64; 5])> = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| !g.samples[k].is_empty())
            .map(|(i, g)| ((i * DAEMONS.len() + k) as f64, five_numbers(&g.samples[k])))
            .collect();
        let colour = *colour;
        chart
            .draw_series(boxes.iter().map(|(row, [_, p25, _, p75, _])| {
                Rectangle::new(
                    [(*p25, row + 0.2), (*p75, row + 0.8)],
                    colour.mix(0.35).filled(),
                )
            }))?
            .label(*daemon)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled()));
        chart.draw_series(boxes.iter().map(|(row, [min, _, _, _, max])| {
            PathElement::new(vec![(*min, row + 0.5), (*max, row + 0.5)], colour)
        }))?;
        chart.draw_series(boxes.iter().map(|(row, [_, _, median, _, _])| {
            PathElement::new(
                vec![(*median, row + 0.1), (*median, row + 0.9)],
                colour.stroke_width(3),
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;

    // the rows' names left of the axis, the group's name on its first row
    let style = TextStyle::from(("sans-serif", 15).into_font())
        .pos(Pos::new(HPos::Right, VPos::Center))
        .color(&BLACK);
    for (i, g) in groups.iter().enumerate() {
        for (k, (daemon, _)) in DAEMONS.iter().enumerate() {
            let row = (i * DAEMONS.len() + k) as f64 + 0.5;
            let (x, y) = chart.backend_coord(&(lo, row));
            let label = if k == 0 {
                format!("{}  {daemon}", g.name)
            } else {
                (*daemon).to_string()
            };
            root.draw(&Text::new(label, (x - 6, y), style.clone()))?;
        }
        if i > 0 {
            let row = (i * DAEMONS.len()) as f64;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(lo, row), (hi, row)],
                BLACK.mix(0.15),
            )))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results() -> Value {
        serde_json::json!({
            "runs": [
                {"round": 1, "daemon": "crustd", "workload": "pods", "report": {"rpcs": [
                    {"rpc": "RunPodSandbox", "samples_ms": [10.0, 12.0, 11.0]},
                    {"rpc": "StopPodSandbox", "samples_ms": [1.0, 0.0]}]}},
                {"round": 1, "daemon": "containerd", "workload": "pods", "report": {"rpcs": [
                    {"rpc": "RunPodSandbox", "samples_ms": [300.0, 200.0]}]}},
                {"round": 2, "daemon": "crustd", "workload": "pods", "report": {"rpcs": [
                    {"rpc": "RunPodSandbox", "samples_ms": [13.0]}]}},
                {"round": 1, "daemon": "crustd", "workload": "pull", "report": {"rpcs": [
                    {"rpc": "PullImage", "samples_ms": [2000.0]}]}},
                {"round": 1, "daemon": "cri-o", "workload": "pods", "report": {"rpcs": [
                    {"rpc": "RunPodSandbox", "samples_ms": [1.0]}]}}
            ]
        })
    }

    #[test]
    fn samples_are_pooled_per_workload_rpc_and_daemon() {
        let g = groups(&results()).unwrap();
        let names: Vec<&str> = g.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "pods/RunPodSandbox",
                "pods/StopPodSandbox",
                "pull/PullImage"
            ]
        );
        assert_eq!(g[0].samples[0], [10.0, 12.0, 11.0, 13.0], "both rounds");
        assert_eq!(g[0].samples[1], [300.0, 200.0]);
        assert_eq!(g[1].samples[0], [1.0], "0 has no place on a log axis");
        assert!(g[2].samples[1].is_empty());

        let e = groups(&serde_json::json!({"rounds": 1})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no runs array: not a bench/compare.sh results file"
        );
        let e = groups(&serde_json::json!({"runs": []})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no latency samples of crustd or containerd in the runs"
        );
    }

    #[test]
    fn five_number_summary() {
        assert_eq!(
            five_numbers(&[5.0, 1.0, 4.0, 2.0, 3.0, 6.0, 8.0, 7.0]),
            [1.0, 2.0, 4.0, 6.0, 8.0]
        );
        assert_eq!(five_numbers(&[3.0]), [3.0; 5]);
    }

    #[test]
    fn svg_has_a_row_per_daemon_and_rpc() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("results.json");
        std::fs::write(&input, results().to_string()).unwrap();
        let output = dir.path().join("chart.svg");
        run(ChartArgs {
            input,
            output: output.clone(),
            title: "test chart".into(),
        })
        .unwrap();
        let svg = std::fs::read_to_string(&output).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        assert!(svg.contains("test chart"));
        // the SVG backend writes each text on a line of its own
        let texts = |t: &str| svg.lines().filter(|l| l.trim() == t).count();
        assert_eq!(texts("pods/RunPodSandbox  crustd"), 1);
        assert_eq!(texts("pull/PullImage  crustd"), 1);
        assert_eq!(texts("containerd"), 4, "3 rows and the legend");
        // the boxes: crustd's three and containerd's one (its only group)
        assert_eq!(svg.matches("opacity=\"0.35\" fill=\"#D95F02\"").count(), 3);
        assert_eq!(svg.matches("opacity=\"0.35\" fill=\"#1F77B4\"").count(), 1);

        let e = run(ChartArgs {
            input: dir.path().join("missing.json"),
            output,
            title: String::new(),
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("read "), "{e}");
    }
}
