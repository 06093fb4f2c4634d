//! Real speaker and microphone through cpal (ALSA on the base unit). Feature `alsa`.
//!
//! Devices are found by the name cpal shows for them (`vigil` logs the list when a configured
//! name is not there), or the host's defaults. Streams run in 32-bit float or 16-bit integer,
//! whichever the device offers, at the device's own rate; prompts are resampled to it on load.
//! A missing speaker is an error for the caller to report; a missing microphone only means
//! listening windows end as unclear. Stream errors are logged and reported to the engine,
//! never fatal.

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, SupportedStreamConfig};
use tracing::{info, warn};

use super::{lock, AudioBackend, Rates, SharedEngine, VoiceError};

/// Which way audio flows through a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Playback.
    Output,
    /// Capture.
    Input,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Output => "output",
            Direction::Input => "input",
        }
    }
}

/// Names of the devices that can play (or capture).
pub fn device_names(direction: Direction) -> Vec<String> {
    let host = cpal::default_host();
    let devices = match direction {
        Direction::Output => host.output_devices().map(|d| d.collect::<Vec<_>>()),
        Direction::Input => host.input_devices().map(|d| d.collect::<Vec<_>>()),
    };
    devices
        .map(|d| {
            d.iter()
                .map(|d| match d.id() {
                    Ok(id) => format!("{id} ({d})"),
                    Err(_) => d.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `device` is the one configured as `name`: its id (`alsa:hw:CARD=Device,DEV=0`),
/// the id without the host (`hw:CARD=Device,DEV=0`, what `aplay -L` shows), or its name.
fn is_named(device: &cpal::Device, name: &str) -> bool {
    if device.to_string() == name {
        return true;
    }
    device.id().is_ok_and(|id| {
        let id = id.to_string();
        id == name || id.split_once(':').is_some_and(|(_, pcm)| pcm == name)
    })
}

/// The device called `name`, or the default one.
pub fn find_device(name: Option<&str>, direction: Direction) -> Result<cpal::Device, VoiceError> {
    let host = cpal::default_host();
    let found = match (name, direction) {
        (None, Direction::Output) => host.default_output_device(),
        (None, Direction::Input) => host.default_input_device(),
        (Some(n), Direction::Output) => host
            .output_devices()
            .ok()
            .and_then(|mut d| d.find(|d| is_named(d, n))),
        (Some(n), Direction::Input) => host
            .input_devices()
            .ok()
            .and_then(|mut d| d.find(|d| is_named(d, n))),
    };
    found.ok_or_else(|| {
        let available = device_names(direction);
        VoiceError::NoDevice {
            direction: direction.as_str(),
            name: name.map_or("(default)".to_string(), |n| format!("`{n}`")),
            available: if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            },
        }
    })
}

fn device_error(device: &cpal::Device, direction: Direction, e: impl ToString) -> VoiceError {
    VoiceError::Device {
        direction: direction.as_str(),
        name: device.to_string(),
        reason: e.to_string(),
    }
}

/// A stream configuration in f32 or i16, at `rate` if given (else the device's default rate).
fn choose_config(
    device: &cpal::Device,
    direction: Direction,
    rate: Option<u32>,
) -> Result<SupportedStreamConfig, VoiceError> {
    let default = match direction {
        Direction::Output => device.default_output_config(),
        Direction::Input => device.default_input_config(),
    }
    .map_err(|e| device_error(device, direction, e))?;
    let rate = rate.unwrap_or(default.sample_rate());
    let usable = |f: SampleFormat| matches!(f, SampleFormat::F32 | SampleFormat::I16);
    if usable(default.sample_format()) && default.sample_rate() == rate {
        return Ok(default);
    }
    let ranges: Vec<_> = match direction {
        Direction::Output => device
            .supported_output_configs()
            .map(|r| r.collect())
            .map_err(|e| device_error(device, direction, e))?,
        Direction::Input => device
            .supported_input_configs()
            .map(|r| r.collect())
            .map_err(|e| device_error(device, direction, e))?,
    };
    let mut candidates: Vec<_> = ranges
        .into_iter()
        .filter(|r| usable(r.sample_format()))
        .filter_map(|r| r.try_with_sample_rate(rate))
        .collect();
    // Prefer float, then fewer channels.
    candidates.sort_by_key(|c| (c.sample_format() != SampleFormat::F32, c.channels()));
    candidates.into_iter().next().ok_or_else(|| {
        device_error(
            device,
            direction,
            format!("no 16-bit or float configuration at {rate} Hz"),
        )
    })
}

pub use super::pcm::push_bounded;

/// Builds and starts a playback stream on `name` (or the default) at `rate` (or the device's
/// rate); `fill` writes mono samples, copied to every channel.
pub fn output_stream(
    name: Option<&str>,
    rate: u32,
    fill: impl FnMut(&mut [f32]) + Send + 'static,
) -> Result<cpal::Stream, VoiceError> {
    let device = find_device(name, Direction::Output)?;
    let config = choose_config(&device, Direction::Output, Some(rate))?;
    build_output(
        &device,
        &config,
        fill,
        |e| warn!(error = %e, "call audio playback stream failed"),
    )
}

/// Builds and starts a capture stream on `name` (or the default) at `rate`; `take` receives
/// mono samples (channels averaged).
pub fn input_stream(
    name: Option<&str>,
    rate: u32,
    take: impl FnMut(&[f32]) + Send + 'static,
) -> Result<cpal::Stream, VoiceError> {
    let device = find_device(name, Direction::Input)?;
    let config = choose_config(&device, Direction::Input, Some(rate))?;
    build_input(
        &device,
        &config,
        take,
        |e| warn!(error = %e, "call audio capture stream failed"),
    )
}

fn build_output(
    device: &cpal::Device,
    config: &SupportedStreamConfig,
    mut fill: impl FnMut(&mut [f32]) + Send + 'static,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, VoiceError> {
    let channels = usize::from(config.channels().max(1));
    let mut mono: Vec<f32> = Vec::new();
    let stream_config = config.config();
    let stream = match config.sample_format() {
        SampleFormat::I16 => device.build_output_stream::<i16, _, _>(
            stream_config,
            move |data, _| {
                mono.resize(data.len() / channels, 0.0);
                fill(&mut mono);
                for (frame, &s) in data.chunks_mut(channels).zip(&mono) {
                    frame.fill(super::pcm::to_i16(s));
                }
            },
            on_error,
            None,
        ),
        _ => device.build_output_stream::<f32, _, _>(
            stream_config,
            move |data, _| {
                mono.resize(data.len() / channels, 0.0);
                fill(&mut mono);
                for (frame, &s) in data.chunks_mut(channels).zip(&mono) {
                    frame.fill(s.clamp(-1.0, 1.0));
                }
            },
            on_error,
            None,
        ),
    }
    .map_err(|e| device_error(device, Direction::Output, e))?;
    stream
        .play()
        .map_err(|e| device_error(device, Direction::Output, e))?;
    Ok(stream)
}

fn build_input(
    device: &cpal::Device,
    config: &SupportedStreamConfig,
    mut take: impl FnMut(&[f32]) + Send + 'static,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, VoiceError> {
    let channels = usize::from(config.channels().max(1));
    let mut mono: Vec<f32> = Vec::new();
    let stream_config = config.config();
    let stream = match config.sample_format() {
        SampleFormat::I16 => device.build_input_stream::<i16, _, _>(
            stream_config,
            move |data, _| {
                mono.clear();
                mono.extend(data.chunks(channels).map(|f| {
                    f.iter().map(|&s| f32::from(s) / 32768.0).sum::<f32>() / f.len() as f32
                }));
                take(&mono);
            },
            on_error,
            None,
        ),
        _ => device.build_input_stream::<f32, _, _>(
            stream_config,
            move |data, _| {
                mono.clear();
                mono.extend(
                    data.chunks(channels)
                        .map(|f| f.iter().sum::<f32>() / f.len() as f32),
                );
                take(&mono);
            },
            on_error,
            None,
        ),
    }
    .map_err(|e| device_error(device, Direction::Input, e))?;
    stream
        .play()
        .map_err(|e| device_error(device, Direction::Input, e))?;
    Ok(stream)
}

/// The base unit's speaker and microphone.
pub struct CpalAudio {
    output_name: Option<String>,
    input_name: Option<String>,
    output: Option<(cpal::Device, SupportedStreamConfig)>,
    input: Option<(cpal::Device, SupportedStreamConfig)>,
    streams: Vec<cpal::Stream>,
}

impl CpalAudio {
    /// The configured devices (None = the default).
    pub fn new(output_device: Option<String>, input_device: Option<String>) -> CpalAudio {
        CpalAudio {
            output_name: output_device,
            input_name: input_device,
            output: None,
            input: None,
            streams: Vec::new(),
        }
    }
}

impl AudioBackend for CpalAudio {
    fn describe(&self) -> String {
        format!(
            "speaker {}, microphone {}",
            self.output_name.as_deref().unwrap_or("(default)"),
            self.input_name.as_deref().unwrap_or("(default)")
        )
    }

    fn open(&mut self) -> Result<Rates, VoiceError> {
        let out = find_device(self.output_name.as_deref(), Direction::Output)?;
        let out_config = choose_config(&out, Direction::Output, None)?;
        let output = out_config.sample_rate();
        info!(device = %out, rate = output, channels = out_config.channels(), "speaker");
        self.output = Some((out, out_config));
        let input = match find_device(self.input_name.as_deref(), Direction::Input)
            .and_then(|d| choose_config(&d, Direction::Input, None).map(|c| (d, c)))
        {
            Ok((dev, config)) => {
                let rate = config.sample_rate();
                info!(device = %dev, rate, "microphone");
                self.input = Some((dev, config));
                Some(rate)
            }
            Err(e) => {
                warn!(error = %e, "no microphone: listening windows will end as unclear");
                None
            }
        };
        Ok(Rates { output, input })
    }

    fn start(&mut self, engine: SharedEngine) -> Result<(), VoiceError> {
        let Some((device, config)) = &self.output else {
            return Err(VoiceError::Device {
                direction: "output",
                name: self.describe(),
                reason: "not opened".into(),
            });
        };
        let (render, failed) = (engine.clone(), engine.clone());
        let stream = build_output(
            device,
            config,
            move |out| lock(&render).render(out),
            move |e| lock(&failed).playback_failed(&e.to_string()),
        )?;
        self.streams.push(stream);
        if let Some((device, config)) = &self.input {
            let (capture, failed) = (engine.clone(), engine.clone());
            match build_input(
                device,
                config,
                move |mic| lock(&capture).capture(mic),
                move |e| lock(&failed).capture_failed(&e.to_string()),
            ) {
                Ok(s) => self.streams.push(s),
                Err(e) => {
                    warn!(error = %e, "microphone stream failed: listening windows will end as unclear")
                }
            }
        }
        Ok(())
    }
}
