//! A register-level model of the SX1231 behind a mock SPI bus, reset line, DIO0 line and delay,
//! for testing the driver on a machine without the module.
//!
//! It behaves like the chip where the driver depends on it (ModeReady latency, FIFO, packet
//! engine, RSSI measurement) and records a violation whenever the driver breaks a rule of the
//! datasheet: SPI access before the reset has settled, a short reset pulse, configuration
//! written outside sleep/standby, the FIFO written while receiving or before ModeReady, TX
//! entered with an empty FIFO or a length byte that does not match, a half-written carrier
//! frequency in use, FIFO underrun, RssiStart outside RX.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{ErrorType as PinErrorType, OutputPin};
use embedded_hal::spi::{ErrorType, Operation, SpiDevice};

use super::{reg, Interrupt, Mode, CHIP_VERSION};
use crate::radio::RadioError;

const FIFO_SIZE: usize = 66;

/// One thing the driver did to the chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Reset line driven high (true) or low (false).
    Reset(bool),
    /// A register byte written.
    Write(u8, u8),
    /// A register byte read, with the value returned.
    Read(u8, u8),
}

#[derive(Debug)]
struct State {
    regs: [u8; 0x80],
    version: u8,
    mode: Mode,
    mode_ready: bool,
    fifo: VecDeque<u8>,
    payload_ready: bool,
    packet_sent: bool,
    /// A frame is on air: PacketSent rises once time passes (a wait on DIO0).
    sending: bool,
    rssi_done: bool,
    frf_pending: bool,
    clock_ns: u64,
    reset_high_at: Option<u64>,
    reset_released_at: Option<u64>,
    channel_rssi: i16,
    air: VecDeque<(Vec<u8>, i16)>,
    transmitted: Vec<Vec<u8>>,
    log: Vec<Op>,
    violations: Vec<String>,
}

impl State {
    fn violation(&mut self, v: String) {
        self.violations.push(v);
    }

    fn check_access(&mut self) {
        match self.reset_released_at {
            None => self.violation("SPI access before the reset pulse".into()),
            Some(t) if self.clock_ns.saturating_sub(t) < 5_000_000 => {
                self.violation("SPI access within 5 ms of reset".into())
            }
            _ => {}
        }
    }

    fn dio0(&self) -> bool {
        let mapping = self.regs[usize::from(reg::DIO_MAPPING1)] >> 6;
        match self.mode {
            Mode::Tx => mapping == 0 && self.packet_sent,
            Mode::Rx => mapping == 1 && self.payload_ready,
            _ => false,
        }
    }

    fn write(&mut self, a: u8, v: u8) {
        self.log.push(Op::Write(a, v));
        match a {
            reg::FIFO => {
                if matches!(self.mode, Mode::Rx | Mode::Sleep) {
                    self.violation(format!("FIFO written in {:?}", self.mode));
                }
                if !self.mode_ready {
                    self.violation("FIFO written before ModeReady".into());
                }
                if self.fifo.len() >= FIFO_SIZE {
                    self.violation("FIFO overrun on write".into());
                } else {
                    self.fifo.push_back(v);
                }
            }
            reg::OP_MODE => self.op_mode(v),
            reg::IRQ_FLAGS2 => {
                if v & 0x10 != 0 {
                    self.fifo.clear();
                    self.payload_ready = false;
                }
            }
            reg::RSSI_CONFIG => {
                if v & 0x01 != 0 {
                    if self.mode != Mode::Rx {
                        self.violation("RssiStart outside RX".into());
                    }
                    self.regs[usize::from(reg::RSSI_VALUE)] =
                        (-2 * self.channel_rssi).clamp(0, 255) as u8;
                    self.rssi_done = true;
                }
            }
            reg::DIO_MAPPING1 => self.regs[usize::from(a)] = v,
            _ => {
                if matches!(self.mode, Mode::Rx | Mode::Tx) {
                    self.violation(format!("register {a:#04x} written in {:?}", self.mode));
                }
                match a {
                    reg::FRF_MSB | reg::FRF_MID => self.frf_pending = true,
                    reg::FRF_LSB => self.frf_pending = false,
                    _ => {}
                }
                if let Some(r) = self.regs.get_mut(usize::from(a)) {
                    *r = v;
                }
            }
        }
    }

    fn op_mode(&mut self, v: u8) {
        let mode = match (v >> 2) & 0x07 {
            0 => Mode::Sleep,
            1 => Mode::Standby,
            2 => Mode::Synth,
            3 => Mode::Tx,
            4 => Mode::Rx,
            m => {
                self.violation(format!("reserved mode {m}"));
                return;
            }
        };
        if !self.mode_ready {
            self.violation(format!("mode changed to {mode:?} before ModeReady"));
        }
        if matches!(mode, Mode::Tx | Mode::Rx) && self.frf_pending {
            self.violation("carrier frequency half written (RegFrfLsb not written last)".into());
        }
        if self.mode == Mode::Tx && mode != Mode::Tx {
            self.packet_sent = false;
            self.sending = false;
        }
        if mode == Mode::Sleep {
            self.fifo.clear();
        }
        self.mode = mode;
        self.mode_ready = false;
        if mode == Mode::Tx {
            let Some(len) = self.fifo.pop_front() else {
                self.violation("TX entered with an empty FIFO".into());
                return;
            };
            if usize::from(len) != self.fifo.len() {
                self.violation(format!(
                    "length byte {len} but {} bytes in the FIFO",
                    self.fifo.len()
                ));
            }
            self.transmitted.push(self.fifo.drain(..).collect());
            self.sending = true;
        }
    }

    fn read(&mut self, a: u8) -> u8 {
        let v = match a {
            reg::FIFO => match self.fifo.pop_front() {
                Some(b) => {
                    if self.fifo.is_empty() {
                        self.payload_ready = false;
                    }
                    b
                }
                None => {
                    self.violation("FIFO underrun on read".into());
                    0
                }
            },
            reg::VERSION => self.version,
            reg::IRQ_FLAGS1 => {
                // ModeReady takes a moment: clear on the first look after a change.
                if self.mode_ready {
                    0x80
                } else {
                    self.mode_ready = true;
                    0x00
                }
            }
            reg::IRQ_FLAGS2 => {
                let mut f = 0;
                if !self.fifo.is_empty() {
                    f |= 0x40;
                }
                if self.packet_sent {
                    f |= 0x08;
                }
                if self.payload_ready {
                    f |= 0x04;
                }
                f
            }
            reg::RSSI_CONFIG => {
                if self.rssi_done {
                    0x02
                } else {
                    0x00
                }
            }
            _ => self.regs.get(usize::from(a)).copied().unwrap_or(0),
        };
        self.log.push(Op::Read(a, v));
        v
    }
}

/// The simulated chip; hand its [`MockChip::parts`] to the driver.
#[derive(Clone, Debug)]
pub struct MockChip(Arc<Mutex<State>>);

impl Default for MockChip {
    fn default() -> MockChip {
        MockChip::new()
    }
}

impl MockChip {
    /// A chip powered up, before reset.
    pub fn new() -> MockChip {
        MockChip(Arc::new(Mutex::new(State {
            regs: [0; 0x80],
            version: CHIP_VERSION,
            mode: Mode::Standby,
            mode_ready: true,
            fifo: VecDeque::new(),
            payload_ready: false,
            packet_sent: false,
            sending: false,
            rssi_done: false,
            frf_pending: false,
            clock_ns: 0,
            reset_high_at: None,
            reset_released_at: None,
            channel_rssi: -110,
            air: VecDeque::new(),
            transmitted: Vec::new(),
            log: Vec::new(),
            violations: Vec::new(),
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.0)
    }

    /// SPI device, reset pin, DIO0 line and delay, all wired to this chip.
    pub fn parts(&self) -> (MockBus, MockReset, MockIrq, MockDelay) {
        (
            MockBus(self.clone()),
            MockReset(self.clone()),
            MockIrq(self.clone()),
            MockDelay(self.clone()),
        )
    }

    /// Pretends to be another silicon version.
    pub fn set_version(&self, v: u8) {
        self.state().version = v;
    }

    /// A frame that will arrive while the chip receives.
    pub fn on_air(&self, frame: Vec<u8>, rssi_dbm: i16) {
        self.state().air.push_back((frame, rssi_dbm));
    }

    /// The channel level an RSSI measurement returns.
    pub fn set_channel_rssi(&self, rssi_dbm: i16) {
        self.state().channel_rssi = rssi_dbm;
    }

    /// A register's value.
    pub fn register(&self, r: u8) -> u8 {
        self.state().regs.get(usize::from(r)).copied().unwrap_or(0)
    }

    /// Frames the packet engine sent.
    pub fn transmitted(&self) -> Vec<Vec<u8>> {
        self.state().transmitted.clone()
    }

    /// Everything the driver did.
    pub fn log(&self) -> Vec<Op> {
        self.state().log.clone()
    }

    /// Datasheet rules the driver broke.
    pub fn violations(&self) -> Vec<String> {
        self.state().violations.clone()
    }
}

/// The SPI side of [`MockChip`]: address byte (bit 7 = write), then data bytes; the address
/// increments after each byte except for the FIFO (datasheet §5.2.1).
#[derive(Debug)]
pub struct MockBus(MockChip);

impl ErrorType for MockBus {
    type Error = Infallible;
}

impl SpiDevice for MockBus {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Infallible> {
        let mut s = self.0.state();
        s.check_access();
        let mut addr: Option<(u8, bool)> = None;
        let step = |a: u8| {
            if a == reg::FIFO {
                a
            } else {
                a.wrapping_add(1) & 0x7F
            }
        };
        for op in operations.iter_mut() {
            match op {
                Operation::Write(bytes) => {
                    for &b in bytes.iter() {
                        match addr {
                            None => addr = Some((b & 0x7F, b & 0x80 != 0)),
                            Some((a, true)) => {
                                s.write(a, b);
                                addr = Some((step(a), true));
                            }
                            Some((_, false)) => {
                                s.violation("data written during a read access".into())
                            }
                        }
                    }
                }
                Operation::Read(buf) => {
                    for b in buf.iter_mut() {
                        match addr {
                            Some((a, false)) => {
                                *b = s.read(a);
                                addr = Some((step(a), false));
                            }
                            _ => s.violation("read without a read address".into()),
                        }
                    }
                }
                _ => s.violation("unsupported SPI operation for this driver".into()),
            }
        }
        Ok(())
    }
}

/// The reset line of [`MockChip`].
#[derive(Debug)]
pub struct MockReset(MockChip);

impl PinErrorType for MockReset {
    type Error = Infallible;
}

impl OutputPin for MockReset {
    fn set_high(&mut self) -> Result<(), Infallible> {
        let mut s = self.0.state();
        s.log.push(Op::Reset(true));
        s.reset_high_at = Some(s.clock_ns);
        Ok(())
    }

    fn set_low(&mut self) -> Result<(), Infallible> {
        let mut s = self.0.state();
        s.log.push(Op::Reset(false));
        if let Some(t) = s.reset_high_at.take() {
            if s.clock_ns.saturating_sub(t) < 100_000 {
                s.violation("reset pulse shorter than 100 us".into());
            }
            s.reset_released_at = Some(s.clock_ns);
            s.regs = [0; 0x80];
            s.mode = Mode::Standby;
            s.mode_ready = true;
            s.fifo.clear();
        }
        Ok(())
    }
}

/// The DIO0 line of [`MockChip`]; waiting lets one queued frame arrive.
#[derive(Debug)]
pub struct MockIrq(MockChip);

impl Interrupt for MockIrq {
    fn wait(&mut self, timeout: Duration) -> Result<bool, RadioError> {
        {
            let s = self.0.state();
            if !s.dio0() && s.air.is_empty() {
                drop(s);
                // Nothing will happen: let a little time pass, as a real wait would.
                std::thread::sleep(timeout.min(Duration::from_millis(2)));
            }
        }
        let mut s = self.0.state();
        if s.mode == Mode::Tx && std::mem::take(&mut s.sending) {
            // The frame's airtime passed during the wait.
            s.packet_sent = true;
        }
        if s.dio0() {
            return Ok(true);
        }
        if s.mode == Mode::Rx && !s.payload_ready {
            if let Some((frame, rssi)) = s.air.pop_front() {
                s.fifo.clear();
                s.fifo.push_back(frame.len() as u8);
                s.fifo.extend(frame);
                s.payload_ready = true;
                s.regs[usize::from(reg::RSSI_VALUE)] = (-2 * rssi).clamp(0, 255) as u8;
            }
        }
        Ok(s.dio0())
    }
}

/// A delay that advances the chip's clock instead of sleeping.
#[derive(Debug)]
pub struct MockDelay(MockChip);

impl DelayNs for MockDelay {
    fn delay_ns(&mut self, ns: u32) {
        self.0.state().clock_ns += u64::from(ns);
    }
}
