//! SisFall trial files: the original 9-column form and the 3-column ADXL345 form.
//!
//! SisFall: A. Sucerquia, J. D. López, J. F. Vargas-Bonilla, "SisFall: A Fall and Movement
//! Dataset", Sensors 17(1):198, 2017. Each line is one sample at 200 Hz. The original files
//! carry 9 comma-separated columns (ADXL345 x,y,z; ITG3200 gyro x,y,z; MMA8451Q x,y,z), each
//! line ending in `;` and CRLF; the reduced files carry the ADXL345 columns only. The ADXL345
//! is set to 13 bit over ±16 g, so g = raw × 32 / 8192.

use std::path::{Path, PathBuf};

use super::FallError;

/// Sample rate of every SisFall recording.
pub const SISFALL_RATE_HZ: u16 = 200;

/// g per ADXL345 count (13 bit, ±16 g).
const ADXL345_G_PER_COUNT: f32 = 32.0 / 8192.0;

/// What a trial records: an activity of daily living or a fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrialKind {
    /// `Dnn`: activity of daily living.
    Activity(u8),
    /// `Fnn`: fall.
    Fall(u8),
}

impl TrialKind {
    /// True for a fall trial.
    pub fn is_fall(self) -> bool {
        matches!(self, TrialKind::Fall(_))
    }

    /// The SisFall code, `D07` or `F01`.
    pub fn code(self) -> String {
        match self {
            TrialKind::Activity(n) => format!("D{n:02}"),
            TrialKind::Fall(n) => format!("F{n:02}"),
        }
    }

    /// What the code means, per the SisFall paper's tables of activities and falls.
    pub fn description(self) -> &'static str {
        match self {
            TrialKind::Activity(n) => match n {
                1 => "walking slowly",
                2 => "walking quickly",
                3 => "jogging slowly",
                4 => "jogging quickly",
                5 => "stairs up and down slowly",
                6 => "stairs up and down quickly",
                7 => "sit slowly in half-height chair, get up",
                8 => "sit quickly in half-height chair, get up",
                9 => "sit slowly in low chair, get up",
                10 => "sit quickly in low chair, get up",
                11 => "try to get up, collapse into chair",
                12 => "sitting, lie down slowly, sit up",
                13 => "sitting, lie down quickly, sit up",
                14 => "lying, turn to the side and back",
                15 => "bend at the knees, get up",
                16 => "bend without bending knees, get up",
                17 => "get into a car, sit, get out",
                18 => "stumble while walking",
                19 => "gently jump (reach high object)",
                _ => "activity",
            },
            TrialKind::Fall(n) => match n {
                1 => "forward, slip while walking",
                2 => "backward, slip while walking",
                3 => "lateral, slip while walking",
                4 => "forward, trip while walking",
                5 => "forward, trip while jogging",
                6 => "vertical, fainting while walking",
                7 => "fainting while walking, hands on table",
                8 => "forward, trying to get up",
                9 => "lateral, trying to get up",
                10 => "forward, trying to sit down",
                11 => "backward, trying to sit down",
                12 => "lateral, trying to sit down",
                13 => "forward while sitting, fainting",
                14 => "backward while sitting, fainting",
                15 => "lateral while sitting, fainting",
                _ => "fall",
            },
        }
    }
}

/// One recorded trial: who, what, and the accelerometer samples in g.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// Subject, taken from the folder the file sits in (`SA01`, `SE06`).
    pub subject: String,
    /// File name, `F01_SA01_R01.txt`.
    pub file_name: String,
    /// Activity or fall, from the file name.
    pub kind: TrialKind,
    /// Sample rate in Hz.
    pub rate_hz: u16,
    /// ADXL345 samples `[x, y, z]` in g.
    pub samples: Vec<[f32; 3]>,
}

impl Trial {
    /// `SUBJECT/FILE.txt`, the name used in outcome files.
    pub fn id(&self) -> String {
        format!("{}/{}", self.subject, self.file_name)
    }

    /// Duration in seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate_hz)
    }
}

/// Parses the `Dnn_`/`Fnn_` prefix of a SisFall file name.
pub fn kind_from_file_name(name: &str) -> Option<TrialKind> {
    let bytes = name.as_bytes();
    if bytes.len() < 4 || bytes.get(3) != Some(&b'_') {
        return None;
    }
    let number: u8 = name.get(1..3)?.parse().ok()?;
    match bytes.first() {
        Some(b'D') => Some(TrialKind::Activity(number)),
        Some(b'F') => Some(TrialKind::Fall(number)),
        _ => None,
    }
}

/// Parses the text of one trial file, either form, into samples in g.
///
/// Accepts 3 or 9 comma-separated integer columns per line, an optional trailing `;`, LF or
/// CRLF line ends, spaces around values and blank lines. The first three columns are the
/// ADXL345 axes.
pub fn parse_samples(text: &str) -> Result<Vec<[f32; 3]>, FallError> {
    let mut samples = Vec::with_capacity(text.len() / 12);
    for (index, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim();
        let line = line.strip_suffix(';').unwrap_or(line).trim_end();
        if line.is_empty() {
            continue;
        }
        let line_no = index + 1;
        let mut fields = line.split(',');
        let mut axes = [0f32; 3];
        for axis in &mut axes {
            let field = fields.next().ok_or(FallError::Columns {
                line: line_no,
                found: line.split(',').count(),
            })?;
            let raw: i32 = field.trim().parse().map_err(|_| FallError::Value {
                line: line_no,
                value: field.trim().to_string(),
            })?;
            *axis = raw as f32 * ADXL345_G_PER_COUNT;
        }
        let rest = fields.count();
        if rest != 0 && rest != 6 {
            return Err(FallError::Columns {
                line: line_no,
                found: rest + 3,
            });
        }
        samples.push(axes);
    }
    Ok(samples)
}

/// A trial from its text, named like the file it came from (`F05_SE06_R01.txt`) and recorded
/// by `subject`: for a recording built into the program.
pub fn trial_from_text(subject: &str, file_name: &str, text: &str) -> Result<Trial, FallError> {
    let path = PathBuf::from(subject).join(file_name);
    let kind =
        kind_from_file_name(file_name).ok_or_else(|| FallError::FileName { path: path.clone() })?;
    let samples = parse_samples(text).map_err(|e| FallError::InFile {
        path,
        error: Box::new(e),
    })?;
    Ok(Trial {
        subject: subject.to_string(),
        file_name: file_name.to_string(),
        kind,
        rate_hz: SISFALL_RATE_HZ,
        samples,
    })
}

/// Reads one trial file; the subject is the name of the folder that holds it.
pub fn load_trial(path: &Path) -> Result<Trial, FallError> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| FallError::FileName {
            path: path.to_path_buf(),
        })?
        .to_string();
    let kind = kind_from_file_name(&file_name).ok_or_else(|| FallError::FileName {
        path: path.to_path_buf(),
    })?;
    let subject = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    let text = std::fs::read_to_string(path).map_err(|error| FallError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let samples = parse_samples(&text).map_err(|e| FallError::InFile {
        path: path.to_path_buf(),
        error: Box::new(e),
    })?;
    Ok(Trial {
        subject,
        file_name,
        kind,
        rate_hz: SISFALL_RATE_HZ,
        samples,
    })
}

/// Finds every SisFall trial file (`Dnn_*.txt`, `Fnn_*.txt`) under `dir`, sorted by path.
pub fn find_trials(dir: &Path) -> Result<Vec<PathBuf>, FallError> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|error| FallError::Read {
            path: folder.clone(),
            error,
        })?;
        for entry in entries {
            let entry = entry.map_err(|error| FallError::Read {
                path: folder.clone(),
                error,
            })?;
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "txt")
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(kind_from_file_name)
                    .is_some()
            {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Loads every trial under `dir`.
pub fn load_dir(dir: &Path) -> Result<Vec<Trial>, FallError> {
    let paths = find_trials(dir)?;
    if paths.is_empty() {
        return Err(FallError::NoTrials {
            path: dir.to_path_buf(),
        });
    }
    paths.iter().map(|p| load_trial(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_original_nine_column_lines_with_semicolon_and_crlf() {
        let text = "  -9,-257, -25,  84, 247,  27,-120,-987,  63;\r\n 256,   0,-512,   1,   2,   3,   4,   5,   6;\r\n";
        let samples = parse_samples(text).unwrap();
        assert_eq!(samples.len(), 2);
        assert!((samples[0][1] - (-257.0 / 256.0)).abs() < 1e-6);
        assert_eq!(samples[1], [1.0, 0.0, -2.0]);
    }

    #[test]
    fn parses_three_column_lines() {
        let samples = parse_samples("-9,-257,-25\n0,256,0\n\n").unwrap();
        assert_eq!(
            samples,
            vec![
                [-9.0 / 256.0, -257.0 / 256.0, -25.0 / 256.0],
                [0.0, 1.0, 0.0]
            ]
        );
    }

    #[test]
    fn rejects_wrong_column_counts_and_bad_numbers_with_line_numbers() {
        assert!(matches!(
            parse_samples("1,2\n"),
            Err(FallError::Columns { line: 1, found: 2 })
        ));
        assert!(matches!(
            parse_samples("1,2,3\n1,2,3,4\n"),
            Err(FallError::Columns { line: 2, found: 4 })
        ));
        assert!(matches!(
            parse_samples("1,x,3\n"),
            Err(FallError::Value { line: 1, .. })
        ));
    }

    #[test]
    fn reads_kind_from_file_name() {
        assert_eq!(
            kind_from_file_name("D17_SE15_R01.txt"),
            Some(TrialKind::Activity(17))
        );
        assert_eq!(
            kind_from_file_name("F05_SA01_R05.txt"),
            Some(TrialKind::Fall(5))
        );
        assert_eq!(kind_from_file_name("Readme.txt"), None);
        assert_eq!(kind_from_file_name("F"), None);
    }
}
