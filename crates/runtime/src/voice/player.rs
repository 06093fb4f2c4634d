//! The prompt queue and mixer, sans IO: prompts go in, blocks of speaker samples come out.
//!
//! Rules (DESIGN §3, issue 7):
//! - alarm prompts play at once and never wait for quiet hours;
//! - an alarm prompt cuts a technical warning that is playing; the warning is played again
//!   from its start once no alarm prompt is waiting;
//! - technical warnings wait while quiet hours last, and yield to every alarm prompt;
//! - prompts of one urgency play in the order asked for; a prompt already waiting is not
//!   queued twice (the core repeats prompts during long windows);
//! - the configured volume applies, but alarm prompts never play below [`ALARM_MIN_VOLUME`]:
//!   the person on the floor must hear the unit.
//!
//! The audio device's callback (or the simulated speaker) calls [`Player::render`] with the
//! local time of day; the player reports what it started, finished and cut as [`PlayerEvent`]s
//! with the sample offset inside the block, so timelines are sample-accurate.

use std::collections::VecDeque;
use std::sync::Arc;

use super::catalogue::PromptSet;
use super::pcm;
use crate::config::QuietHours;
use crate::core::{Prompt, Urgency};

/// The lowest volume (%) alarm prompts play at, whatever the configured volume.
pub const ALARM_MIN_VOLUME: u8 = 60;

/// Silence between two prompts, in milliseconds.
pub const GAP_MS: u32 = 400;

/// Something the player did, at `offset` samples into the block being rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlayerEvent {
    /// Sample offset within the rendered block.
    pub offset: usize,
    /// What happened.
    pub kind: PlayerEventKind,
}

/// What the player did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlayerEventKind {
    /// A prompt started, in this language (`"tone"` for the stand-in signal).
    Started {
        /// The prompt.
        prompt: Prompt,
        /// Language of the audio played.
        language: String,
    },
    /// A prompt played to its end.
    Finished {
        /// The prompt.
        prompt: Prompt,
    },
    /// A prompt was cut off by a more urgent one (it will be played again).
    Cut {
        /// The prompt cut.
        prompt: Prompt,
        /// The prompt that cut it.
        by: Prompt,
    },
    /// A technical warning is held back until quiet hours end.
    Deferred {
        /// The prompt held back.
        prompt: Prompt,
    },
}

struct Playing {
    prompt: Prompt,
    samples: Arc<[f32]>,
    position: usize,
    gain: f32,
}

/// The prompt queue and mixer for one speaker.
pub struct Player {
    prompts: PromptSet,
    volume: u8,
    quiet_hours: Option<QuietHours>,
    alarm_queue: VecDeque<Prompt>,
    technical_queue: VecDeque<Prompt>,
    current: Option<Playing>,
    gap_left: usize,
    deferred_reported: bool,
    events: Vec<PlayerEvent>,
    pending_cut: Option<(Prompt, Prompt)>,
}

impl Player {
    /// A player for `prompts` (already at the speaker's rate).
    pub fn new(prompts: PromptSet, volume: u8, quiet_hours: Option<QuietHours>) -> Player {
        Player {
            prompts,
            volume,
            quiet_hours,
            alarm_queue: VecDeque::new(),
            technical_queue: VecDeque::new(),
            current: None,
            gap_left: 0,
            deferred_reported: false,
            events: Vec::new(),
            pending_cut: None,
        }
    }

    /// The speaker's sample rate.
    pub fn rate(&self) -> u32 {
        self.prompts.rate()
    }

    /// The configured language.
    pub fn language(&self) -> &str {
        self.prompts.language()
    }

    /// Asks for a prompt. An alarm prompt cuts a technical warning at once.
    pub fn enqueue(&mut self, prompt: Prompt) {
        let queue = match prompt.urgency() {
            Urgency::Alarm => &mut self.alarm_queue,
            Urgency::Technical => &mut self.technical_queue,
        };
        if queue.contains(&prompt) {
            return;
        }
        queue.push_back(prompt);
        if prompt.urgency() == Urgency::Alarm {
            if let Some(playing) = &self.current {
                if playing.prompt.urgency() == Urgency::Technical {
                    let cut = playing.prompt;
                    self.current = None;
                    self.gap_left = 0;
                    if !self.technical_queue.contains(&cut) {
                        self.technical_queue.push_front(cut);
                    }
                    self.pending_cut = Some((cut, prompt));
                }
            }
        }
    }

    /// Drops every technical warning waiting or playing (the warnings were silenced remotely).
    pub fn clear_technical(&mut self) {
        self.technical_queue.clear();
        if self
            .current
            .as_ref()
            .is_some_and(|p| p.prompt.urgency() == Urgency::Technical)
        {
            self.current = None;
        }
    }

    /// Whether a prompt is sounding now (the microphone hears it: listening ignores it).
    pub fn is_speaking(&self) -> bool {
        self.current.is_some()
    }

    /// Whether nothing is playing or waiting to play.
    pub fn is_idle(&self) -> bool {
        self.current.is_none() && self.alarm_queue.is_empty() && self.technical_queue.is_empty()
    }

    /// Prompts waiting, alarm ones first.
    pub fn waiting(&self) -> Vec<Prompt> {
        self.alarm_queue
            .iter()
            .chain(self.technical_queue.iter())
            .copied()
            .collect()
    }

    /// Fills `out` (mono, at [`Player::rate`]) with the next samples; `minute_of_day` is the
    /// local time (0–1439) used for quiet hours.
    pub fn render(&mut self, out: &mut [f32], minute_of_day: u16) {
        let mut at = 0;
        if let Some((prompt, by)) = self.pending_cut.take() {
            self.events.push(PlayerEvent {
                offset: 0,
                kind: PlayerEventKind::Cut { prompt, by },
            });
        }
        while at < out.len() {
            if self.current.is_none() {
                if self.gap_left > 0 {
                    let n = self.gap_left.min(out.len() - at);
                    out[at..at + n].fill(0.0);
                    self.gap_left -= n;
                    at += n;
                    continue;
                }
                if !self.start_next(at, minute_of_day) {
                    out[at..].fill(0.0);
                    break;
                }
            }
            let Some(playing) = self.current.as_mut() else {
                continue;
            };
            let left = playing.samples.len().saturating_sub(playing.position);
            let n = left.min(out.len() - at);
            let src = playing
                .samples
                .get(playing.position..playing.position + n)
                .unwrap_or(&[]);
            for (o, s) in out[at..at + n].iter_mut().zip(src) {
                *o = s * playing.gain;
            }
            playing.position += n;
            at += n;
            if playing.position >= playing.samples.len() {
                let prompt = playing.prompt;
                self.current = None;
                self.gap_left = (self.rate() as usize * GAP_MS as usize) / 1000;
                self.events.push(PlayerEvent {
                    offset: at,
                    kind: PlayerEventKind::Finished { prompt },
                });
            }
        }
    }

    /// Takes the events of the blocks rendered since the last call.
    pub fn take_events(&mut self) -> Vec<PlayerEvent> {
        std::mem::take(&mut self.events)
    }

    fn start_next(&mut self, offset: usize, minute_of_day: u16) -> bool {
        let quiet = self
            .quiet_hours
            .is_some_and(|q| q.contains(minute_of_day % 1440));
        let prompt = if let Some(p) = self.alarm_queue.pop_front() {
            p
        } else if let Some(&p) = self.technical_queue.front() {
            if quiet {
                if !self.deferred_reported {
                    self.deferred_reported = true;
                    self.events.push(PlayerEvent {
                        offset,
                        kind: PlayerEventKind::Deferred { prompt: p },
                    });
                }
                return false;
            }
            self.technical_queue.pop_front();
            p
        } else {
            return false;
        };
        self.deferred_reported = false;
        let volume = match prompt.urgency() {
            Urgency::Alarm => self.volume.max(ALARM_MIN_VOLUME),
            Urgency::Technical => self.volume,
        };
        let Some(audio) = self.prompts.get(prompt) else {
            return false;
        };
        self.events.push(PlayerEvent {
            offset,
            kind: PlayerEventKind::Started {
                prompt,
                language: audio.language.clone(),
            },
        });
        self.current = Some(Playing {
            prompt,
            samples: audio.samples.clone(),
            position: 0,
            gain: pcm::volume_gain(volume),
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 16_000;

    fn player(volume: u8, quiet: Option<QuietHours>) -> Player {
        Player::new(PromptSet::tones(RATE), volume, quiet)
    }

    /// Renders `seconds` in 10 ms blocks; returns the events and the samples.
    fn run(p: &mut Player, seconds: f32, minute: u16) -> (Vec<PlayerEventKind>, Vec<f32>) {
        let mut all = Vec::new();
        let mut block = vec![0.0; RATE as usize / 100];
        for _ in 0..(seconds * 100.0) as usize {
            p.render(&mut block, minute);
            all.extend_from_slice(&block);
        }
        (p.take_events().into_iter().map(|e| e.kind).collect(), all)
    }

    fn started(events: &[PlayerEventKind]) -> Vec<Prompt> {
        events
            .iter()
            .filter_map(|e| match e {
                PlayerEventKind::Started { prompt, .. } => Some(*prompt),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn prompts_play_in_order_with_a_gap() {
        let mut p = player(100, None);
        p.enqueue(Prompt::AlarmRaised);
        p.enqueue(Prompt::CallingCentre);
        let (events, samples) = run(&mut p, 5.0, 600);
        assert_eq!(
            started(&events),
            [Prompt::AlarmRaised, Prompt::CallingCentre]
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, PlayerEventKind::Finished { .. }))
                .count(),
            2
        );
        assert!(p.is_idle());
        assert!(pcm::rms_dbfs(&samples) > -30.0);
    }

    /// What holds a call's loudspeaker audio: a prompt playing, not one held for quiet hours.
    #[test]
    fn speaking_is_a_prompt_playing_not_one_held_back() {
        let mut p = player(
            100,
            Some(QuietHours {
                start_min: 0,
                end_min: 1439,
            }),
        );
        p.enqueue(Prompt::MainsLost);
        run(&mut p, 0.2, 600);
        assert!(!p.is_idle(), "the warning waits");
        assert!(!p.is_speaking(), "but nothing is spoken");
        p.enqueue(Prompt::HelpComing);
        run(&mut p, 0.1, 600);
        assert!(p.is_speaking());
        run(&mut p, 6.0, 600);
        assert!(!p.is_speaking());
    }

    #[test]
    fn an_alarm_prompt_cuts_a_technical_warning_which_plays_again_afterwards() {
        let mut p = player(100, None);
        p.enqueue(Prompt::MainsLost);
        let (first, _) = run(&mut p, 0.2, 600);
        assert_eq!(started(&first), [Prompt::MainsLost]);
        p.enqueue(Prompt::FallDetected);
        let (rest, _) = run(&mut p, 5.0, 600);
        assert_eq!(
            rest[0],
            PlayerEventKind::Cut {
                prompt: Prompt::MainsLost,
                by: Prompt::FallDetected
            }
        );
        assert_eq!(started(&rest), [Prompt::FallDetected, Prompt::MainsLost]);
    }

    #[test]
    fn an_alarm_prompt_does_not_cut_another_alarm_prompt() {
        let mut p = player(100, None);
        p.enqueue(Prompt::PreAlarm);
        run(&mut p, 0.2, 600);
        p.enqueue(Prompt::HeardYou);
        let (events, _) = run(&mut p, 5.0, 600);
        assert!(!events
            .iter()
            .any(|e| matches!(e, PlayerEventKind::Cut { .. })));
        assert_eq!(started(&events), [Prompt::HeardYou]);
    }

    #[test]
    fn alarm_prompts_go_before_waiting_technical_ones() {
        let mut p = player(100, None);
        p.enqueue(Prompt::NoNetwork);
        p.enqueue(Prompt::BaseBatteryLow);
        p.enqueue(Prompt::Cancelled);
        let (events, _) = run(&mut p, 6.0, 600);
        assert_eq!(
            started(&events),
            [Prompt::Cancelled, Prompt::NoNetwork, Prompt::BaseBatteryLow]
        );
    }

    #[test]
    fn technical_warnings_wait_for_quiet_hours_to_end_and_alarms_do_not() {
        let quiet = QuietHours {
            start_min: 22 * 60,
            end_min: 7 * 60,
        };
        let mut p = player(100, Some(quiet));
        p.enqueue(Prompt::PendantBatteryLow);
        let (night, samples) = run(&mut p, 3.0, 3 * 60);
        assert_eq!(
            night,
            [PlayerEventKind::Deferred {
                prompt: Prompt::PendantBatteryLow
            }]
        );
        assert!(samples.iter().all(|&s| s == 0.0));
        p.enqueue(Prompt::HelpComing);
        let (alarm, _) = run(&mut p, 3.0, 3 * 60);
        assert_eq!(started(&alarm), [Prompt::HelpComing]);
        let (morning, _) = run(&mut p, 3.0, 7 * 60);
        assert_eq!(started(&morning), [Prompt::PendantBatteryLow]);
    }

    #[test]
    fn a_prompt_already_waiting_is_not_queued_twice() {
        let mut p = player(100, None);
        p.enqueue(Prompt::AlarmRaised);
        p.enqueue(Prompt::PreAlarm);
        p.enqueue(Prompt::PreAlarm);
        assert_eq!(p.waiting(), [Prompt::AlarmRaised, Prompt::PreAlarm]);
        // Once it is playing, asking again repeats it.
        let (first, _) = run(&mut p, 1.7, 600);
        assert_eq!(started(&first), [Prompt::AlarmRaised, Prompt::PreAlarm]);
        p.enqueue(Prompt::PreAlarm);
        let (second, _) = run(&mut p, 4.0, 600);
        assert_eq!(started(&second), [Prompt::PreAlarm]);
    }

    #[test]
    fn volume_scales_technical_prompts_and_alarm_prompts_keep_a_floor() {
        let level = |volume: u8, prompt: Prompt| {
            let mut p = player(volume, None);
            p.enqueue(prompt);
            pcm::rms_dbfs(&run(&mut p, 0.2, 600).1)
        };
        let full = level(100, Prompt::MainsLost);
        let half = level(50, Prompt::MainsLost);
        assert!((full - half - 20.0).abs() < 0.1, "{full} {half}");
        assert_eq!(level(0, Prompt::MainsLost), -120.0);
        let alarm_at_zero = level(0, Prompt::AlarmRaised);
        let alarm_at_floor = level(ALARM_MIN_VOLUME, Prompt::AlarmRaised);
        assert!((alarm_at_zero - alarm_at_floor).abs() < 0.01);
        assert!(alarm_at_zero > -40.0);
    }

    #[test]
    fn silencing_drops_technical_warnings_only() {
        let mut p = player(100, None);
        p.enqueue(Prompt::MainsLost);
        p.enqueue(Prompt::NoNetwork);
        run(&mut p, 0.1, 600);
        p.enqueue(Prompt::StillTrying);
        p.clear_technical();
        let (events, _) = run(&mut p, 3.0, 600);
        assert_eq!(started(&events), [Prompt::StillTrying]);
    }
}
