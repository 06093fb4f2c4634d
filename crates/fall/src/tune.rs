//! `vigil fall-tune`: chooses the detector's weights and the baselines' thresholds on tuning
//! subjects only, then reports on the held-out subjects and by leave-one-subject-out.
//!
//! Splits are by subject, never by trial: a person's trials are either all tuning or all
//! held out. The output is Rust source for [`FallParams::SHIPPED`] and the baseline
//! thresholds; `vigil fall-eval` uses only what is shipped.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use super::condition::Condition;
use super::detector::{features, Evidence, FallParams, FEATURES};
use super::eval::{self, Metrics, Roc, Scored, TrialScore};
use super::sisfall::{self, Trial};
use super::{baseline, FallError};

/// Subjects the shipped parameters were tuned on.
pub const TUNING_SUBJECTS: &[&str] = &[
    "SA01", "SA02", "SA03", "SA04", "SA05", "SA06", "SA07", "SA08", "SA09", "SA10", "SE01", "SE02",
    "SE03", "SE04", "SE06",
];

/// Arguments of `vigil fall-tune`.
#[derive(Debug, Clone, clap::Args)]
pub struct TuneArgs {
    /// Folder holding SisFall trials (all subjects; the split is made here).
    #[arg(long)]
    pub data: PathBuf,
    /// Comma-separated tuning subjects (default: the ones the shipped parameters used).
    #[arg(long, value_delimiter = ',')]
    pub tune_subjects: Vec<String>,
    /// Also run leave-one-subject-out over every subject in the folder.
    #[arg(long)]
    pub loso: bool,
    /// Sample rate to tune at (50–200 Hz).
    #[arg(long, default_value_t = 200)]
    pub rate: u16,
    /// Write the pooled leave-one-subject-out ROC curves as SVG (with --loso).
    #[arg(long)]
    pub roc: Option<PathBuf>,
    /// Write every judged impact's evidence as CSV (for inspection).
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// Tune on every trial as read under each of these sensor conditions (`;`-separated,
    /// like `rate=200;rate=50,clip=2,jitter=5`), so the weights hold across sensors; the
    /// split by subject is unchanged. Replaces --rate.
    #[arg(long)]
    pub conditions: Option<String>,
    /// Count impact peaks up to this many g (8 for SisFall's range, 3 for ±2–4 g sensors).
    #[arg(long, default_value_t = 8.0)]
    pub impact_cap_g: f32,
}

/// L2 penalty on the non-bias weights.
const RIDGE: f32 = 1e-3;
/// Where the descent starts (order of [`features`]): fixed so tuning is reproducible.
const INITIAL_WEIGHTS: [f32; FEATURES] = [-4.0, 1.0, 4.0, 4.0, 3.0, -8.0, 0.0];
/// Gradient steps.
const STEPS: usize = 3000;

/// Evidence of every judged impact per trial, with the lowest trigger level.
struct Candidates {
    impact_cap_g: f32,
    per_trial: Vec<Vec<[f32; FEATURES]>>,
    peaks: Vec<Vec<f32>>,
}

impl Candidates {
    /// `rate` `None`: run each trial at its own rate (conditioned copies).
    fn collect(
        trials: &[Trial],
        rate: Option<u16>,
        trigger_g: f32,
        impact_cap_g: f32,
    ) -> Result<(Self, Vec<Vec<Evidence>>), FallError> {
        let params = FallParams {
            trigger_g,
            impact_cap_g,
            ..FallParams::SHIPPED
        };
        let mut per_trial = Vec::with_capacity(trials.len());
        let mut peaks = Vec::with_capacity(trials.len());
        let mut evidence = Vec::with_capacity(trials.len());
        for t in trials {
            let a = eval::assessments(t, rate.unwrap_or(t.rate_hz), params)?;
            per_trial.push(
                a.iter()
                    .map(|a| features(&a.evidence, impact_cap_g))
                    .collect(),
            );
            peaks.push(a.iter().map(|a| a.evidence.peak_g).collect());
            evidence.push(a.iter().map(|a| a.evidence).collect());
        }
        Ok((
            Candidates {
                impact_cap_g,
                per_trial,
                peaks,
            },
            evidence,
        ))
    }

    /// Trial score: the highest decision value of its impacts at or above `trigger_g`.
    fn score(&self, trial: usize, trigger_g: f32, w: &[f32; FEATURES]) -> (f32, Option<usize>) {
        let mut best = (f32::NEG_INFINITY, None);
        for (k, (f, &peak)) in self.per_trial[trial]
            .iter()
            .zip(&self.peaks[trial])
            .enumerate()
        {
            if peak < trigger_g {
                continue;
            }
            let d: f32 = f.iter().zip(w).map(|(a, b)| a * b).sum();
            if d > best.0 {
                best = (d, Some(k));
            }
        }
        best
    }
}

/// Fits weights on the trials `subset` by subgradient descent on a class-balanced logistic
/// loss of each trial's highest decision value (a fall trial needs one fall-like impact; an
/// activity trial needs none).
fn fit(c: &Candidates, trials: &[Trial], subset: &[usize], trigger_g: f32) -> [f32; FEATURES] {
    let falls = subset
        .iter()
        .filter(|&&i| trials[i].kind.is_fall())
        .count()
        .max(1) as f32;
    let adls = subset
        .iter()
        .filter(|&&i| !trials[i].kind.is_fall())
        .count()
        .max(1) as f32;
    let mut w = INITIAL_WEIGHTS;
    let mut m = [0f32; FEATURES];
    let mut v = [0f32; FEATURES];
    let rate = 0.05f32;
    for step in 1..=STEPS {
        let mut grad = [0f32; FEATURES];
        for &i in subset {
            let (d, k) = c.score(i, trigger_g, &w);
            let Some(k) = k else { continue };
            let y = if trials[i].kind.is_fall() { 1.0 } else { -1.0 };
            let weight = if y > 0.0 { 1.0 / falls } else { 1.0 / adls };
            // d/dd log(1 + exp(−y d)) = −y σ(−y d)
            let g = -y / (1.0 + (y * d).exp()) * weight;
            for (gj, fj) in grad.iter_mut().zip(&c.per_trial[i][k]) {
                *gj += g * fj;
            }
        }
        for j in 1..FEATURES {
            grad[j] += 2.0 * RIDGE * w[j];
        }
        // Adam.
        let (b1, b2) = (0.9f32, 0.999f32);
        for j in 0..FEATURES {
            m[j] = b1 * m[j] + (1.0 - b1) * grad[j];
            v[j] = b2 * v[j] + (1.0 - b2) * grad[j] * grad[j];
            let mh = m[j] / (1.0 - b1.powi(step as i32));
            let vh = v[j] / (1.0 - b2.powi(step as i32));
            w[j] -= rate * mh / (vh.sqrt() + 1e-8);
        }
    }
    w
}

/// The threshold with the best balanced accuracy on `subset` (midway between neighbours).
fn best_threshold(scores: &[f64], trials: &[Trial], subset: &[usize]) -> f64 {
    let sub_scores: Vec<f64> = subset.iter().map(|&i| scores[i]).collect();
    let is_fall: Vec<bool> = subset.iter().map(|&i| trials[i].kind.is_fall()).collect();
    let roc = Roc::new(&sub_scores, &is_fall);
    let mut best = (f64::MIN, 0.0);
    for (k, p) in roc.points.iter().enumerate() {
        if !p.2.is_finite() {
            continue;
        }
        let ba = (p.1 + 1.0 - p.0) / 2.0;
        if ba > best.0 + 1e-12 {
            // Midway to the next lower score, for a margin on both sides.
            let next = roc
                .points
                .get(k + 1)
                .map(|q| q.2)
                .filter(|t| t.is_finite())
                .unwrap_or(p.2 - 0.1);
            best = (ba, (p.2 + next) / 2.0);
        }
    }
    best.1
}

/// Parameters and baseline thresholds tuned on `subset`.
struct Tuned {
    params: FallParams,
    baselines: [f64; 2],
}

fn tune(c: &Candidates, trials: &[Trial], base: &[[f64; 2]], subset: &[usize]) -> Tuned {
    let trigger = FallParams::SHIPPED.trigger_g;
    let w = fit(c, trials, subset, trigger);
    let scores: Vec<f64> = (0..trials.len())
        .map(|i| f64::from(c.score(i, trigger, &w).0))
        .collect();
    let threshold = best_threshold(&scores, trials, subset) as f32;
    let mut baselines = [0.0; 2];
    for (k, b) in baselines.iter_mut().enumerate() {
        let s: Vec<f64> = base.iter().map(|x| x[k]).collect();
        *b = best_threshold(&s, trials, subset);
    }
    Tuned {
        params: FallParams {
            threshold,
            impact_cap_g: c.impact_cap_g,
            ..FallParams::SHIPPED.with_weights(w)
        },
        baselines,
    }
}

fn scored_with(c: &Candidates, base: &[[f64; 2]], i: usize, p: &FallParams) -> Scored {
    let score = c.score(i, p.trigger_g, &p.weights()).0;
    Scored {
        detector: TrialScore {
            score,
            falls: usize::from(score >= p.threshold),
        },
        baselines: base[i],
    }
}

/// `vigil fall-tune`.
pub fn run(args: &TuneArgs) -> Result<(), FallError> {
    let mut trials = sisfall::load_dir(&args.data)?;
    let mut rate = Some(args.rate);
    // The sensor condition each trial was read under (empty: as recorded).
    let mut condition_of: Vec<String> = vec![String::new(); trials.len()];
    if let Some(list) = &args.conditions {
        let conditions = list
            .split(';')
            .filter(|c| !c.trim().is_empty())
            .map(str::parse::<Condition>)
            .collect::<Result<Vec<_>, _>>()?;
        if conditions.is_empty() {
            return Err(FallError::Data("--conditions holds no condition".into()));
        }
        rate = None;
        let mut conditioned = Vec::with_capacity(trials.len() * conditions.len());
        condition_of.clear();
        for c in &conditions {
            c.validate()?;
            for t in &trials {
                // The detector runs each copy at the rate its sensor sampled.
                let at_rate = Trial {
                    rate_hz: c.rate_hz,
                    samples: c.apply(t),
                    ..t.clone()
                };
                conditioned.push(at_rate);
                condition_of.push(c.to_string());
            }
        }
        trials = conditioned;
    }
    let tune_subjects: BTreeSet<String> = if args.tune_subjects.is_empty() {
        TUNING_SUBJECTS.iter().map(|s| s.to_string()).collect()
    } else {
        args.tune_subjects.iter().cloned().collect()
    };
    let trigger = FallParams::SHIPPED.trigger_g;
    let (c, evidence) = Candidates::collect(&trials, rate, trigger, args.impact_cap_g)?;
    let base: Vec<[f64; 2]> = trials
        .iter()
        .map(|t| baseline::peak_features(&t.samples, t.rate_hz))
        .collect();
    if let Some(path) = &args.dump {
        let mut csv = String::from(
            "trial,fall,peak_g,free_fall_ms,min_before_g,velocity_gs,posture_deg,motion_g\n",
        );
        for (t, ev) in trials.iter().zip(&evidence) {
            for e in ev {
                let _ = writeln!(
                    csv,
                    "{},{},{:.3},{},{:.3},{:.3},{:.1},{:.4}",
                    t.id(),
                    u8::from(t.kind.is_fall()),
                    e.peak_g,
                    e.free_fall_ms,
                    e.min_before_g,
                    e.velocity_gs,
                    e.posture_change_deg,
                    e.motion_after_g
                );
            }
        }
        eval::write_file(path, &csv)?;
    }

    let tuning: Vec<usize> = (0..trials.len())
        .filter(|&i| tune_subjects.contains(&trials[i].subject))
        .collect();
    let held: Vec<usize> = (0..trials.len())
        .filter(|&i| !tune_subjects.contains(&trials[i].subject))
        .collect();
    check_classes(&trials, &tuning, "tuning subjects")?;
    let tuned = tune(&c, &trials, &base, &tuning);
    let p = tuned.params;
    println!("Tuned on {} trials of {:?}", tuning.len(), tune_subjects);
    println!("\nShipped constants (crates/fall/src/detector.rs, crates/fall/src/baseline.rs):\n");
    println!(
        "    trigger_g: {:?},\n    bias: {:?},\n    w_peak: {:?},\n    w_free_fall: {:?},\n    w_velocity: {:?},\n    w_posture: {:?},\n    w_motion: {:?},\n    w_impact_posture: {:?},\n    threshold: {:?},\n    impact_cap_g: {:?},",
        p.trigger_g, p.bias, p.w_peak, p.w_free_fall, p.w_velocity, p.w_posture, p.w_motion, p.w_impact_posture, p.threshold, p.impact_cap_g
    );
    println!(
        "    C8_THRESHOLD = {:.4}; C9_THRESHOLD = {:.4};",
        tuned.baselines[0], tuned.baselines[1]
    );

    // One report per subset of the trials, scored with the tuned parameters.
    let report = |name: &str, subset: &[usize]| {
        let sub_trials: Vec<Trial> = subset.iter().map(|&i| trials[i].clone()).collect();
        let sub_scored: Vec<Scored> = subset
            .iter()
            .map(|&i| scored_with(&c, &base, i, &p))
            .collect();
        let (text, _, _) = eval::report(&sub_trials, &sub_scored, p.threshold, tuned.baselines);
        println!("\n## {name}\n\n{text}");
    };
    for (name, subset) in [
        ("Tuning subjects (in-sample)", &tuning),
        ("Held-out subjects", &held),
    ] {
        if !subset.is_empty() {
            report(name, subset);
        }
    }
    let labels: BTreeSet<&String> = condition_of.iter().collect();
    if labels.len() > 1 {
        for label in labels {
            let subset: Vec<usize> = held
                .iter()
                .copied()
                .filter(|&i| condition_of[i] == *label)
                .collect();
            report(&format!("Held-out subjects, sensor {label}"), &subset);
        }
    }

    if args.loso {
        let subjects: BTreeSet<&str> = trials.iter().map(|t| t.subject.as_str()).collect();
        let mut pooled: Vec<Option<(Scored, [bool; 3])>> = vec![None; trials.len()];
        let mut folds = String::new();
        for s in &subjects {
            let train: Vec<usize> = (0..trials.len())
                .filter(|&i| trials[i].subject != *s)
                .collect();
            let test: Vec<usize> = (0..trials.len())
                .filter(|&i| trials[i].subject == *s)
                .collect();
            check_classes(&trials, &train, "leave-one-subject-out training set")?;
            let t = tune(&c, &trials, &base, &train);
            let mut fired = Vec::new();
            for &i in &test {
                let sc = scored_with(&c, &base, i, &t.params);
                let f = [
                    sc.detector.score >= t.params.threshold,
                    sc.baselines[0] >= t.baselines[0],
                    sc.baselines[1] >= t.baselines[1],
                ];
                fired.push((i, f));
                pooled[i] = Some((sc, f));
            }
            let m = Metrics::count(&trials, |i| fired.iter().any(|(j, f)| *j == i && f[0]));
            let (falls, adls) = (
                test.iter().filter(|&&i| trials[i].kind.is_fall()).count(),
                test.iter().filter(|&&i| !trials[i].kind.is_fall()).count(),
            );
            let _ = writeln!(
                folds,
                "| {s} | {}/{falls} | {}/{adls} | {:.3} |",
                m.detected, m.false_alarms, t.params.threshold
            );
        }
        let fired: Vec<[bool; 3]> = pooled
            .iter()
            .map(|p| p.as_ref().map(|x| x.1).unwrap_or_default())
            .collect();
        let scored: Vec<Scored> = pooled
            .into_iter()
            .map(|p| {
                p.map(|x| x.0).unwrap_or(Scored {
                    detector: TrialScore {
                        score: f32::NEG_INFINITY,
                        falls: 0,
                    },
                    baselines: [0.0; 2],
                })
            })
            .collect();
        let is_fall: Vec<bool> = trials.iter().map(|t| t.kind.is_fall()).collect();
        let rows: Vec<eval::MethodSummary> = ["Vigil detector", "C8", "C9"]
            .iter()
            .enumerate()
            .map(|(k, name)| eval::MethodSummary {
                name: (*name).to_string(),
                metrics: Metrics::count(&trials, |i| fired[i][k]),
                roc: Roc::new(
                    &scored
                        .iter()
                        .map(|s| {
                            if k == 0 {
                                f64::from(s.detector.score)
                            } else {
                                s.baselines[k - 1]
                            }
                        })
                        .collect::<Vec<_>>(),
                    &is_fall,
                ),
            })
            .collect();
        if let Some(path) = &args.roc {
            let curves: Vec<(&str, &Roc)> =
                rows.iter().map(|r| (r.name.as_str(), &r.roc)).collect();
            let title = "Fall detection, leave-one-subject-out (pooled)";
            eval::write_file(path, &eval::roc_svg(&curves, title))?;
        }
        println!(
            "\n## Leave-one-subject-out ({} folds, thresholds per fold; ROC pooled)\n",
            subjects.len()
        );
        print!("{}", eval::summary_table(&rows));
        println!(
            "\nFalls by type:\n\n{}",
            eval::per_kind_table(&trials, &fired, true)
        );
        println!(
            "Activities:\n\n{}",
            eval::per_kind_table(&trials, &fired, false)
        );
        println!("Per held-out subject (detector):\n\n| subject | falls detected | activities with false alarm | threshold |\n|---|---|---|---|\n{folds}");
    }
    Ok(())
}

fn check_classes(trials: &[Trial], subset: &[usize], what: &str) -> Result<(), FallError> {
    let falls = subset.iter().filter(|&&i| trials[i].kind.is_fall()).count();
    if falls == 0 || falls == subset.len() {
        return Err(FallError::Data(format!(
            "{what}: need both fall and activity trials to tune"
        )));
    }
    Ok(())
}
