//! The modem's power key: the hard path to recover a module that stopped answering.
//!
//! SIMCom SIM7600 and Quectel EC25 toggle power on a PWRKEY pulse of ≥ 500 ms; a hung module is
//! switched off by one pulse and on by the next. On the Pi the key is a GPIO line driving the
//! module's PWRKEY through a transistor (active high at the GPIO).

use std::time::Duration;

use super::ModemError;

/// A line that presses and releases the modem's power key.
pub trait PowerKey: Send + Sync {
    /// Press (true) or release (false) the key.
    fn set_pressed(&self, pressed: bool) -> Result<(), ModemError>;
}

/// How long to hold the key for one toggle.
pub const PULSE: Duration = Duration::from_millis(600);

/// Presses the key for `hold`, then releases it.
pub async fn pulse(key: &dyn PowerKey, hold: Duration) -> Result<(), ModemError> {
    key.set_pressed(true)?;
    tokio::time::sleep(hold).await;
    key.set_pressed(false)
}

/// The power key on a Raspberry Pi GPIO (BCM numbering) via `rppal`.
pub struct GpioPowerKey {
    pin: std::sync::Mutex<rppal::gpio::OutputPin>,
}

impl GpioPowerKey {
    /// Claims BCM pin `bcm` as an output, released (low).
    pub fn new(bcm: u8) -> Result<GpioPowerKey, ModemError> {
        let gpio = rppal::gpio::Gpio::new().map_err(|e| ModemError::PowerKey(e.to_string()))?;
        let pin = gpio
            .get(bcm)
            .map_err(|e| ModemError::PowerKey(format!("BCM {bcm}: {e}")))?
            .into_output_low();
        Ok(GpioPowerKey {
            pin: std::sync::Mutex::new(pin),
        })
    }
}

impl PowerKey for GpioPowerKey {
    fn set_pressed(&self, pressed: bool) -> Result<(), ModemError> {
        let mut pin = self
            .pin
            .lock()
            .map_err(|_| ModemError::PowerKey("GPIO lock poisoned".into()))?;
        if pressed {
            pin.set_high();
        } else {
            pin.set_low();
        }
        Ok(())
    }
}
