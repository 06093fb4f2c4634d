//! The base unit's own inputs and outputs on the Raspberry Pi's GPIO (rppal): the cancel and
//! help buttons, the mains-present input and the status LED.

use std::time::Duration;

use rppal::gpio::{Gpio, InputPin, Level, OutputPin, Trigger};
use tokio::sync::mpsc;

use crate::config;
use crate::core::{BaseButton, Input};

/// GPIO failures.
#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    /// The GPIO controller or a pin could not be opened.
    #[error("GPIO {what}: {source}")]
    Pin {
        /// Which pin or function.
        what: String,
        /// rppal's error.
        source: rppal::gpio::Error,
    },
}

/// The claimed pins; interrupts stop when this is dropped.
pub struct BasePins {
    _inputs: Vec<InputPin>,
    led: Option<OutputPin>,
}

/// Debounce for mechanical buttons.
const DEBOUNCE: Duration = Duration::from_millis(30);

impl BasePins {
    /// Claims the configured pins and sends what happens on them to `inputs`. The current
    /// mains state is sent at once, so a unit that starts on battery reports it.
    pub fn open(pins: &config::Gpio, inputs: mpsc::Sender<Input>) -> Result<BasePins, GpioError> {
        let err = |what: &str| {
            let what = what.to_string();
            move |source| GpioError::Pin { what, source }
        };
        let gpio = Gpio::new().map_err(err("controller"))?;
        let mut claimed = Vec::new();
        for (pin, button) in [
            (pins.cancel_button, BaseButton::Cancel),
            (pins.help_button, BaseButton::Help),
        ] {
            let Some(pin) = pin else { continue };
            let mut input = gpio
                .get(pin)
                .map_err(err(&format!("{button:?} button (GPIO {pin})")))?
                .into_input_pullup();
            let tx = inputs.clone();
            input
                .set_async_interrupt(Trigger::FallingEdge, Some(DEBOUNCE), move |_| {
                    let _ = tx.blocking_send(Input::Button(button));
                })
                .map_err(err(&format!("{button:?} button interrupt (GPIO {pin})")))?;
            claimed.push(input);
        }
        if let Some(pin) = pins.mains_present {
            let mut input = gpio
                .get(pin)
                .map_err(err(&format!("mains input (GPIO {pin})")))?
                .into_input();
            let present = input.read() == Level::High;
            let _ = inputs.try_send(Input::Mains { present });
            let tx = inputs.clone();
            input
                .set_async_interrupt(Trigger::Both, Some(DEBOUNCE), move |event| {
                    let present = event.trigger == Trigger::RisingEdge;
                    let _ = tx.blocking_send(Input::Mains { present });
                })
                .map_err(err(&format!("mains interrupt (GPIO {pin})")))?;
            claimed.push(input);
        }
        let led = match pins.led {
            Some(pin) => Some(
                gpio.get(pin)
                    .map_err(err(&format!("LED (GPIO {pin})")))?
                    .into_output_high(),
            ),
            None => None,
        };
        Ok(BasePins {
            _inputs: claimed,
            led,
        })
    }

    /// Lights the LED steadily (running) or turns it off (stopping).
    pub fn set_led(&mut self, on: bool) {
        if let Some(led) = &mut self.led {
            if on {
                led.set_high();
            } else {
                led.set_low();
            }
        }
    }
}
