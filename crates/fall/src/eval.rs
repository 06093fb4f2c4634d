//! `vigil fall-eval`: scores the shipped detector and the SisFall baselines on a folder.
//!
//! Every trial is streamed through a fresh detector as the pendant would; a fall trial is
//! detected if the detector fires anywhere in it, an activity trial is a false alarm if it
//! fires at all. Nothing here tunes: the detector runs with [`FallParams::SHIPPED`] and the
//! baselines with their shipped thresholds.
//!
//! Trials can be scored as another sensor would have read them ([`Condition`]: rate, per-axis
//! clipping, timestamp jitter, noise, a stuck axis); the baselines C8 and C9 see the same
//! conditioned samples, so each table compares like with like.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::baseline::{self, Baseline};
use super::condition::{self, Condition, ConditionError};
use super::detector::{Assessment, FallDetector, FallParams};
use super::sisfall::{self, Trial, TrialKind};
use super::{resample, FallError};

/// Arguments of `vigil fall-eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Folder holding SisFall trials (subject folders with Dnn_*/Fnn_* files), searched
    /// recursively; the subject is the folder holding each file.
    #[arg(long)]
    pub data: PathBuf,
    /// Write one CSV row per trial: trial,fired,score.
    #[arg(long)]
    pub outcomes: Option<PathBuf>,
    /// Write the ROC curves of the detector and both baselines as SVG.
    #[arg(long)]
    pub roc: Option<PathBuf>,
    /// Run the detector at this sample rate (50–200 Hz; trials are resampled to it).
    #[arg(long, default_value_t = 200)]
    pub rate: u16,
    /// Saturate each axis at ± this many g, as a sensor with that range would.
    #[arg(long)]
    pub clip: Option<f32>,
    /// Jitter each sample time by up to ± this many ms (values interpolated from the trace).
    #[arg(long, default_value_t = 0.0)]
    pub jitter: f32,
    /// Add Gaussian noise of this standard deviation (mg) to each axis.
    #[arg(long, default_value_t = 0.0)]
    pub noise: f32,
    /// Freeze one axis at its first reading (x when no axis is named).
    #[arg(long, num_args = 0..=1, default_missing_value = "x", value_parser = condition::parse_axis)]
    pub stuck_axis: Option<usize>,
    /// Seed of the jitter and noise.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Several conditions, separated by `;`, each like `rate=50,clip=2,jitter=5,noise=10,stuck=x`;
    /// one table each. Replaces the single-condition options above.
    #[arg(long)]
    pub conditions: Option<String>,
}

impl EvalArgs {
    /// Arguments scoring `data` at 200 Hz with no other condition.
    pub fn new(data: PathBuf) -> Self {
        EvalArgs {
            data,
            outcomes: None,
            roc: None,
            rate: 200,
            clip: None,
            jitter: 0.0,
            noise: 0.0,
            stuck_axis: None,
            seed: 1,
            conditions: None,
        }
    }

    /// The conditions asked for, in order.
    pub fn condition_list(&self) -> Result<Vec<Condition>, FallError> {
        let list = match &self.conditions {
            Some(text) => text
                .split(';')
                .filter(|c| !c.trim().is_empty())
                .map(|c| {
                    c.parse::<Condition>().map(|c| Condition {
                        seed: if c.seed == Condition::default().seed {
                            self.seed
                        } else {
                            c.seed
                        },
                        ..c
                    })
                })
                .collect::<Result<Vec<_>, ConditionError>>()?,
            None => vec![Condition {
                rate_hz: self.rate,
                clip_g: self.clip,
                jitter_ms: self.jitter,
                noise_mg: self.noise,
                stuck_axis: self.stuck_axis,
                seed: self.seed,
            }],
        };
        if list.is_empty() {
            return Err(FallError::Data("--conditions holds no condition".into()));
        }
        for c in &list {
            c.validate()?;
        }
        Ok(list)
    }
}

/// The detector's verdict on one trial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrialScore {
    /// Highest decision value of any impact judged (−∞ when none was).
    pub score: f32,
    /// Falls reported in the trial.
    pub falls: usize,
}

/// Streams a trial through a fresh detector at `rate_hz`.
pub fn score_trial(
    trial: &Trial,
    rate_hz: u16,
    params: FallParams,
) -> Result<TrialScore, FallError> {
    let mut detector = FallDetector::with_params(rate_hz, params)?;
    let mut result = TrialScore {
        score: f32::NEG_INFINITY,
        falls: 0,
    };
    for s in resample(&trial.samples, trial.rate_hz, rate_hz) {
        if let Some(a) = detector.push(s) {
            result.score = result.score.max(a.score);
            result.falls += usize::from(a.is_fall);
        }
    }
    Ok(result)
}

/// Every impact the detector judges in a trial (for tuning).
pub fn assessments(
    trial: &Trial,
    rate_hz: u16,
    params: FallParams,
) -> Result<Vec<Assessment>, FallError> {
    let mut detector = FallDetector::with_params(rate_hz, params)?;
    Ok(resample(&trial.samples, trial.rate_hz, rate_hz)
        .filter_map(|s| detector.push(s))
        .collect())
}

/// Sensitivity, specificity and friends of one method at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Metrics {
    /// Fall trials.
    pub falls: usize,
    /// Fall trials detected.
    pub detected: usize,
    /// Activity trials.
    pub activities: usize,
    /// Activity trials with a false alarm.
    pub false_alarms: usize,
    /// Hours of activity recordings.
    pub activity_hours: f64,
}

impl Metrics {
    /// Counts `fired` per trial.
    pub fn count(trials: &[Trial], fired: impl Fn(usize) -> bool) -> Metrics {
        let mut m = Metrics::default();
        for (i, t) in trials.iter().enumerate() {
            if t.kind.is_fall() {
                m.falls += 1;
                m.detected += usize::from(fired(i));
            } else {
                m.activities += 1;
                m.false_alarms += usize::from(fired(i));
                m.activity_hours += t.duration_s() / 3600.0;
            }
        }
        m
    }

    /// Detected falls / falls.
    pub fn sensitivity(&self) -> f64 {
        ratio(self.detected, self.falls)
    }

    /// Quiet activities / activities.
    pub fn specificity(&self) -> f64 {
        ratio(self.activities - self.false_alarms, self.activities)
    }

    /// (SE + SP) / 2.
    pub fn balanced_accuracy(&self) -> f64 {
        (self.sensitivity() + self.specificity()) / 2.0
    }

    /// Activity trials with a false alarm per hour of activity recordings.
    pub fn false_alarms_per_hour(&self) -> f64 {
        if self.activity_hours > 0.0 {
            self.false_alarms as f64 / self.activity_hours
        } else {
            0.0
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

/// A ROC curve from per-trial scores (higher = more fall-like).
#[derive(Debug, Clone, PartialEq)]
pub struct Roc {
    /// (false positive rate, true positive rate, threshold) from strictest to loosest.
    pub points: Vec<(f64, f64, f64)>,
}

impl Roc {
    /// Builds the curve; a trial fires when its score is at or above the threshold.
    /// Pairs beyond the shorter of the two slices are ignored.
    pub fn new(scores: &[f64], is_fall: &[bool]) -> Roc {
        let mut pairs: Vec<(f64, bool)> = scores
            .iter()
            .copied()
            .zip(is_fall.iter().copied())
            .collect();
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let falls = pairs.iter().filter(|p| p.1).count().max(1) as f64;
        let adls = pairs.iter().filter(|p| !p.1).count().max(1) as f64;
        let mut points = vec![(0.0, 0.0, f64::INFINITY)];
        let (mut tp, mut fp) = (0.0, 0.0);
        let mut rest = pairs.as_slice();
        while let Some(&(threshold, _)) = rest.first() {
            let tied = rest.iter().take_while(|p| p.0 == threshold).count().max(1);
            let (group, next) = rest.split_at(tied.min(rest.len()));
            for &(_, fall) in group {
                if fall {
                    tp += 1.0;
                } else {
                    fp += 1.0;
                }
            }
            points.push((fp / adls, tp / falls, threshold));
            rest = next;
        }
        Roc { points }
    }

    /// Area under the curve.
    pub fn auc(&self) -> f64 {
        self.points
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum()
    }

    /// Best specificity among thresholds whose sensitivity is at least `min_se`,
    /// with that threshold.
    pub fn specificity_at(&self, min_se: f64) -> (f64, f64) {
        self.points
            .iter()
            .filter(|p| p.1 >= min_se - 1e-12 && p.2.is_finite())
            .map(|p| (1.0 - p.0, p.2))
            .fold(
                (0.0, f64::NAN),
                |best, p| if p.0 > best.0 { p } else { best },
            )
    }
}

/// Streams a trial, as the sensor of `condition` reads it, through a fresh detector.
pub fn score_conditioned(
    trial: &Trial,
    condition: &Condition,
    params: FallParams,
) -> Result<(TrialScore, [f64; 2]), FallError> {
    let samples = condition.apply(trial);
    let mut detector = FallDetector::with_params(condition.rate_hz, params)?;
    let mut result = TrialScore {
        score: f32::NEG_INFINITY,
        falls: 0,
    };
    for &s in &samples {
        if let Some(a) = detector.push(s) {
            result.score = result.score.max(a.score);
            result.falls += usize::from(a.is_fall);
        }
    }
    Ok((result, baseline::peak_features(&samples, condition.rate_hz)))
}

/// Scores every trial under a condition with the detector and the baselines.
pub fn score_all_under(
    trials: &[Trial],
    condition: &Condition,
    params: FallParams,
) -> Result<Vec<Scored>, FallError> {
    score_all_with_progress(trials, condition, params, &indicatif::ProgressBar::hidden())
}

/// [`score_all_under`], advancing `bar` by one for each trial scored.
fn score_all_with_progress(
    trials: &[Trial],
    condition: &Condition,
    params: FallParams,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<Scored>, FallError> {
    trials
        .iter()
        .inspect(|_| bar.inc(1))
        .map(|t| {
            let (detector, baselines) = score_conditioned(t, condition, params)?;
            Ok(Scored {
                detector,
                baselines,
            })
        })
        .collect()
}

/// Everything computed for one trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The detector.
    pub detector: TrialScore,
    /// Peak C8 and C9 over the trial.
    pub baselines: [f64; 2],
}

/// Scores every trial with the detector (given parameters) and the baselines.
pub fn score_all(
    trials: &[Trial],
    rate_hz: u16,
    params: FallParams,
) -> Result<Vec<Scored>, FallError> {
    trials
        .iter()
        .map(|t| {
            Ok(Scored {
                detector: score_trial(t, rate_hz, params)?,
                baselines: baseline::peak_features(&t.samples, t.rate_hz),
            })
        })
        .collect()
}

/// One row of the summary table.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodSummary {
    /// Method name.
    pub name: String,
    /// At its shipped threshold.
    pub metrics: Metrics,
    /// ROC over the scored trials.
    pub roc: Roc,
}

/// Formats the summary table (Markdown).
pub fn summary_table(rows: &[MethodSummary]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| method | SE | SP | BA | FA/h | SP@SE≥99% (thr) | SP@SE=100% | AUC |\n|---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let m = &r.metrics;
        let (sp99, thr99) = r.roc.specificity_at(0.99);
        let (sp100, _) = r.roc.specificity_at(1.0);
        let _ = writeln!(
            out,
            "| {} | {:.2}% ({}/{}) | {:.2}% ({}/{}) | {:.2}% | {:.2} | {:.2}% ({:.3}) | {:.2}% | {:.4} |",
            r.name,
            100.0 * m.sensitivity(),
            m.detected,
            m.falls,
            100.0 * m.specificity(),
            m.activities - m.false_alarms,
            m.activities,
            100.0 * m.balanced_accuracy(),
            m.false_alarms_per_hour(),
            100.0 * sp99,
            thr99,
            100.0 * sp100,
            r.roc.auc()
        );
    }
    out
}

/// Per-code table: how often each method fired on each activity or fall type.
pub fn per_kind_table(trials: &[Trial], fired: &[[bool; 3]], falls: bool) -> String {
    let mut groups: BTreeMap<TrialKind, (usize, [usize; 3])> = BTreeMap::new();
    for (t, f) in trials.iter().zip(fired) {
        if t.kind.is_fall() != falls {
            continue;
        }
        let g = groups.entry(t.kind).or_default();
        g.0 += 1;
        for (count, &fired) in g.1.iter_mut().zip(f) {
            *count += usize::from(fired);
        }
    }
    let what = if falls { "detected" } else { "false alarms" };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| code | {} | trials | detector {what} | C8 {what} | C9 {what} |\n|---|---|---|---|---|---|",
        if falls { "fall" } else { "activity" }
    );
    for (kind, (n, c)) in groups {
        let _ = writeln!(
            out,
            "| {} | {} | {n} | {} ({:.0}%) | {} ({:.0}%) | {} ({:.0}%) |",
            kind.code(),
            kind.description(),
            c[0],
            100.0 * ratio(c[0], n),
            c[1],
            100.0 * ratio(c[1], n),
            c[2],
            100.0 * ratio(c[2], n)
        );
    }
    out
}

/// Draws ROC curves as an SVG (full curve, and a zoom on high sensitivity).
pub fn roc_svg(curves: &[(&str, &Roc)], title: &str) -> String {
    const COLOURS: [&str; 6] = [
        "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    ];
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="860" height="460" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="430" y="20" text-anchor="middle" font-size="14">{}</text>"#,
        escape(title)
    );
    // Two panels: full range, and FPR 0–0.3 × TPR 0.7–1.
    let panels = [
        (50.0, (0.0, 1.0), (0.0, 1.0), "ROC"),
        (470.0, (0.0, 0.3), (0.7, 1.0), "zoom"),
    ];
    for (left, (x0, x1), (y0, y1), name) in panels {
        let (top, size) = (40.0, 360.0);
        let px = |x: f64| left + (x.clamp(x0, x1) - x0) / (x1 - x0) * size;
        let py = |y: f64| top + size - (y.clamp(y0, y1) - y0) / (y1 - y0) * size;
        let _ = writeln!(
            svg,
            r#"<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="none" stroke="black"/>"#
        );
        for i in 0..=5 {
            let fx = x0 + (x1 - x0) * f64::from(i) / 5.0;
            let fy = y0 + (y1 - y0) * f64::from(i) / 5.0;
            let _ = writeln!(
                svg,
                r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#ddd"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4:.2}</text>"##,
                px(fx),
                top,
                top + size,
                top + size + 15.0,
                fx
            );
            let _ = writeln!(
                svg,
                r##"<line x1="{0}" y1="{1:.1}" x2="{2}" y2="{1:.1}" stroke="#ddd"/><text x="{3}" y="{4:.1}" text-anchor="end">{5:.2}</text>"##,
                left,
                py(fy),
                left + size,
                left - 4.0,
                py(fy) + 4.0,
                fy
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">false positive rate (1 − specificity) — {name}</text>"#,
            left + size / 2.0,
            top + size + 32.0
        );
        let _ = writeln!(
            svg,
            r##"<line x1="{}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#999" stroke-dasharray="4 3"/>"##,
            left,
            py(0.99),
            left + size,
            py(0.99)
        );
        for (k, (label, roc)) in curves.iter().enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            let mut path = String::new();
            // Staircase through the points, clipped to the panel.
            for (i, p) in roc.points.iter().enumerate() {
                let _ = write!(
                    path,
                    "{}{:.1},{:.1} ",
                    if i == 0 { "M" } else { "L" },
                    px(p.0),
                    py(p.1)
                );
            }
            let _ = writeln!(
                svg,
                r#"<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.6"/>"#
            );
            if name == "ROC" {
                let _ = writeln!(
                    svg,
                    r#"<text x="{}" y="{}" fill="{colour}">{} (AUC {:.4})</text>"#,
                    left + size * 0.35,
                    top + size - 60.0 + 16.0 * k as f64,
                    escape(label),
                    roc.auc()
                );
            }
        }
    }
    let _ = writeln!(
        svg,
        r#"<text x="12" y="220" text-anchor="middle" transform="rotate(-90 12 220)">true positive rate (sensitivity)</text>"#
    );
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The full report on a set of scored trials, with the given thresholds.
pub fn report(
    trials: &[Trial],
    scored: &[Scored],
    detector_threshold: f32,
    baseline_thresholds: [f64; 2],
) -> (String, [MethodSummary; 3], Vec<[bool; 3]>) {
    let fired: Vec<[bool; 3]> = scored
        .iter()
        .map(|s| {
            [
                s.detector.score >= detector_threshold,
                s.baselines[0] >= baseline_thresholds[0],
                s.baselines[1] >= baseline_thresholds[1],
            ]
        })
        .collect();
    let is_fall: Vec<bool> = trials.iter().map(|t| t.kind.is_fall()).collect();
    let method = |k: usize, name: String, scores: Vec<f64>| MethodSummary {
        name,
        metrics: Metrics::count(trials, |i| fired[i][k]),
        roc: Roc::new(&scores, &is_fall),
    };
    let rows = [
        method(
            0,
            "Vigil detector".into(),
            scored.iter().map(|s| f64::from(s.detector.score)).collect(),
        ),
        method(
            1,
            format!("C8 (thr {:.3} g)", baseline_thresholds[0]),
            scored.iter().map(|s| s.baselines[0]).collect(),
        ),
        method(
            2,
            format!("C9 (thr {:.3} g)", baseline_thresholds[1]),
            scored.iter().map(|s| s.baselines[1]).collect(),
        ),
    ];
    let subjects: std::collections::BTreeSet<&str> =
        trials.iter().map(|t| t.subject.as_str()).collect();
    let mut text = String::new();
    let m = &rows[0].metrics;
    let _ = writeln!(
        text,
        "{} trials ({} falls, {} activities, {:.2} h of activities) from {} subjects: {}\n",
        trials.len(),
        m.falls,
        m.activities,
        m.activity_hours,
        subjects.len(),
        subjects.into_iter().collect::<Vec<_>>().join(" ")
    );
    text.push_str(&summary_table(&rows));
    text.push_str("\nFalls by type:\n\n");
    text.push_str(&per_kind_table(trials, &fired, true));
    text.push_str("\nActivities:\n\n");
    text.push_str(&per_kind_table(trials, &fired, false));
    (text, rows, fired)
}

/// `vigil fall-eval`.
pub fn run(args: &EvalArgs) -> Result<(), FallError> {
    let conditions = args.condition_list()?;
    let paths = sisfall::find_trials(&args.data)?;
    if paths.is_empty() {
        return Err(FallError::NoTrials {
            path: args.data.clone(),
        });
    }
    // What it is waiting for, on a terminal (hidden when the output is piped).
    let style = indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} ({eta} left)")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    let bar = indicatif::ProgressBar::new(paths.len() as u64).with_style(style.clone());
    bar.set_message("reading trials");
    let trials = paths
        .iter()
        .inspect(|_| bar.inc(1))
        .map(|p| sisfall::load_trial(p))
        .collect::<Result<Vec<_>, _>>()?;
    bar.finish_and_clear();
    let thresholds = [
        Baseline::C8.shipped_threshold(),
        Baseline::C9.shipped_threshold(),
    ];
    let several = conditions.len() > 1;
    let mut detector_curves: Vec<(String, Roc)> = Vec::new();
    for condition in &conditions {
        let params = FallParams::for_sensor(&condition.sensor());
        let bar = indicatif::ProgressBar::new(trials.len() as u64).with_style(style.clone());
        bar.set_message(format!("scoring, sensor {condition}"));
        let scored = score_all_with_progress(&trials, condition, params, &bar)?;
        bar.finish_and_clear();
        let (text, rows, _) = report(&trials, &scored, params.threshold, thresholds);
        println!(
            "## {condition}\n\nVigil fall detector (shipped parameters for ±{} g, state {} bytes) and SisFall baselines on {}, sensor {condition}\n",
            condition.sensor().range_g,
            FallDetector::state_size(),
            args.data.display()
        );
        print!("{text}");
        let falls_reported: usize = scored
            .iter()
            .zip(&trials)
            .filter(|(_, t)| !t.kind.is_fall())
            .map(|(s, _)| s.detector.falls)
            .sum();
        println!("\nDetector fall events in activity recordings: {falls_reported}\n");
        if let Some(path) = &args.outcomes {
            let path = per_condition(path, condition, several);
            write_outcomes(&path, &trials, &scored, params.threshold)?;
        }
        if let Some(path) = &args.roc {
            let svg = roc_svg(
                &[
                    (&rows[0].name, &rows[0].roc),
                    (&rows[1].name, &rows[1].roc),
                    (&rows[2].name, &rows[2].roc),
                ],
                &format!(
                    "Fall detection on {}, sensor {condition}",
                    args.data.display()
                ),
            );
            write_file(&per_condition(path, condition, several), &svg)?;
        }
        detector_curves.push((format!("Vigil detector, {condition}"), rows[0].roc.clone()));
    }
    if let (Some(path), true) = (&args.roc, several) {
        // One more picture: the detector's curve under every condition, side by side.
        let curves: Vec<(&str, &Roc)> = detector_curves
            .iter()
            .map(|(name, roc)| (name.as_str(), roc))
            .collect();
        let svg = roc_svg(
            &curves,
            &format!(
                "Vigil detector per sensor condition on {}",
                args.data.display()
            ),
        );
        write_file(path, &svg)?;
    }
    Ok(())
}

/// `roc.svg` as `roc-rate=50,clip=2.svg` when several conditions share one output name.
pub fn per_condition(path: &Path, condition: &Condition, several: bool) -> PathBuf {
    if !several {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{condition}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{condition}"),
    };
    path.with_file_name(name)
}

/// Writes `trial,fired,score` per trial (score −inf when no impact was judged).
pub fn write_outcomes(
    path: &Path,
    trials: &[Trial],
    scored: &[Scored],
    threshold: f32,
) -> Result<(), FallError> {
    let mut csv = String::from("trial,fired,score\n");
    for (t, s) in trials.iter().zip(scored) {
        let _ = writeln!(
            csv,
            "{},{},{}",
            t.id(),
            u8::from(s.detector.score >= threshold),
            if s.detector.score.is_finite() {
                format!("{:.4}", s.detector.score)
            } else {
                "-inf".into()
            }
        );
    }
    write_file(path, &csv)
}

/// Writes a text file.
pub fn write_file(path: &Path, text: &str) -> Result<(), FallError> {
    std::fs::write(path, text).map_err(|error| FallError::Write {
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_of_perfect_scores_has_unit_area_and_specificity() {
        let roc = Roc::new(&[0.9, 0.8, 0.1, 0.2], &[true, true, false, false]);
        assert!((roc.auc() - 1.0).abs() < 1e-12);
        assert_eq!(roc.specificity_at(0.99).0, 1.0);
    }

    #[test]
    fn roc_of_reversed_scores_has_zero_area() {
        let roc = Roc::new(&[0.1, 0.2, 0.9, 0.8], &[true, true, false, false]);
        assert!(roc.auc().abs() < 1e-12);
        assert_eq!(roc.specificity_at(1.0).0, 0.0);
    }

    #[test]
    fn roc_handles_ties_and_negative_infinity() {
        let roc = Roc::new(
            &[f64::NEG_INFINITY, 0.5, 0.5, f64::NEG_INFINITY],
            &[true, true, false, false],
        );
        // At 0.5: TPR 0.5, FPR 0.5; at −∞ everything fires.
        assert!((roc.auc() - 0.5).abs() < 1e-12);
        assert_eq!(roc.specificity_at(0.5).0, 0.5);
    }
}
