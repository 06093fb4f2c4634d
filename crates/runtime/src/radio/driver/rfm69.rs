//! HopeRF RFM69HCW (Semtech SX1231H) in FSK packet mode, over an `embedded-hal` SPI device,
//! a reset line and the DIO0 interrupt line. Register names and sequences follow the SX1231H
//! datasheet (Rev. 2, §6 register map, §4.2 packet mode, §7.2.2 manual reset); the settings
//! and wiring are explained in `hw/radio.md`.

use std::sync::mpsc;
use std::time::Duration;

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_hal::spi::{Operation, SpiDevice};
use tracing::{debug, info, warn};

use super::{Received, Transceiver};
use crate::config::{Band, RadioDriver};
use crate::radio::duty::{airtime, BIT_RATE};
use crate::radio::RadioError;

/// SX1231 register addresses (datasheet §6).
pub mod reg {
    /// FIFO read/write access.
    pub const FIFO: u8 = 0x00;
    /// Operating mode.
    pub const OP_MODE: u8 = 0x01;
    /// Data mode and modulation.
    pub const DATA_MODUL: u8 = 0x02;
    /// Bit rate, MSB.
    pub const BITRATE_MSB: u8 = 0x03;
    /// Bit rate, LSB.
    pub const BITRATE_LSB: u8 = 0x04;
    /// Frequency deviation, MSB.
    pub const FDEV_MSB: u8 = 0x05;
    /// Frequency deviation, LSB.
    pub const FDEV_LSB: u8 = 0x06;
    /// Carrier frequency, MSB.
    pub const FRF_MSB: u8 = 0x07;
    /// Carrier frequency, middle byte.
    pub const FRF_MID: u8 = 0x08;
    /// Carrier frequency, LSB (the change takes effect when this is written).
    pub const FRF_LSB: u8 = 0x09;
    /// AFC control (low-beta AFC).
    pub const AFC_CTRL: u8 = 0x0B;
    /// Silicon version, 0x24 for the SX1231H.
    pub const VERSION: u8 = 0x10;
    /// PA selection and output power.
    pub const PA_LEVEL: u8 = 0x11;
    /// Over-current protection.
    pub const OCP: u8 = 0x13;
    /// LNA settings.
    pub const LNA: u8 = 0x18;
    /// Channel filter bandwidth.
    pub const RX_BW: u8 = 0x19;
    /// Channel filter bandwidth during AFC.
    pub const AFC_BW: u8 = 0x1A;
    /// AFC/FEI control.
    pub const AFC_FEI: u8 = 0x1E;
    /// RSSI measurement control.
    pub const RSSI_CONFIG: u8 = 0x23;
    /// RSSI value, −value/2 dBm.
    pub const RSSI_VALUE: u8 = 0x24;
    /// DIO0–DIO3 mapping.
    pub const DIO_MAPPING1: u8 = 0x25;
    /// Mode and RX flags.
    pub const IRQ_FLAGS1: u8 = 0x27;
    /// FIFO and packet flags.
    pub const IRQ_FLAGS2: u8 = 0x28;
    /// RSSI trigger level for RX.
    pub const RSSI_THRESH: u8 = 0x29;
    /// Preamble length, MSB.
    pub const PREAMBLE_MSB: u8 = 0x2C;
    /// Preamble length, LSB.
    pub const PREAMBLE_LSB: u8 = 0x2D;
    /// Sync word control.
    pub const SYNC_CONFIG: u8 = 0x2E;
    /// First sync word byte.
    pub const SYNC_VALUE1: u8 = 0x2F;
    /// Second sync word byte.
    pub const SYNC_VALUE2: u8 = 0x30;
    /// Third sync word byte.
    pub const SYNC_VALUE3: u8 = 0x31;
    /// Packet format, whitening, CRC, address filter.
    pub const PACKET_CONFIG1: u8 = 0x37;
    /// Maximum payload length in variable-length mode.
    pub const PAYLOAD_LENGTH: u8 = 0x38;
    /// FIFO threshold and TX start condition.
    pub const FIFO_THRESH: u8 = 0x3C;
    /// RX restart, AES.
    pub const PACKET_CONFIG2: u8 = 0x3D;
    /// PA1 test register (high-power mode).
    pub const TEST_PA1: u8 = 0x5A;
    /// PA2 test register (high-power mode).
    pub const TEST_PA2: u8 = 0x5C;
    /// Fading margin improvement.
    pub const TEST_DAGC: u8 = 0x6F;
}

/// Silicon version the driver expects in RegVersion.
pub const CHIP_VERSION: u8 = 0x24;
/// Longest payload the packet engine is set to accept (RegPayloadLength).
pub const MAX_PAYLOAD: u8 = 64;

const WRITE: u8 = 0x80;
const MODE_READY: u8 = 0x80;
const PACKET_SENT: u8 = 0x08;
const PAYLOAD_READY: u8 = 0x04;
const FIFO_OVERRUN: u8 = 0x10;
const RSSI_START: u8 = 0x01;
const RSSI_DONE: u8 = 0x02;
/// DIO0 = PayloadReady in RX (RegDioMapping1 bits 7–6 = 01).
pub const DIO0_PAYLOAD_READY: u8 = 0x40;
/// DIO0 = PacketSent in TX (RegDioMapping1 bits 7–6 = 00).
pub const DIO0_PACKET_SENT: u8 = 0x00;

/// Operating modes (RegOpMode bits 4–2; sequencer on, listen off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Sleep: lowest power, FIFO lost.
    Sleep = 0x00,
    /// Standby: oscillator on; where configuration and FIFO filling happen.
    Standby = 0x04,
    /// Frequency synthesiser on.
    Synth = 0x08,
    /// Transmit.
    Tx = 0x0C,
    /// Receive.
    Rx = 0x10,
}

/// Fixed sync word ("-\xD4V"): shared by every Vigil pendant and base.
pub const SYNC_WORD: [u8; 3] = [0x2D, 0xD4, 0x56];

/// The configuration registers written after reset, in order, for `band`.
///
/// FXOSC = 32 MHz, Fstep = FXOSC / 2^19 = 61.035 Hz.
/// * Bit rate 32 MHz / 0x1A0B = 4799.76 bit/s; Fdev 39 × Fstep = 2.38 kHz (β ≈ 1, GFSK BT 1.0).
/// * RxBw 10.4 kHz single-side (mant 24, exp 5); AFC bandwidth 25 kHz (mant 20, exp 4).
/// * Variable-length packets, whitening, CRC-16 on, no address filter, 4-byte preamble,
///   3-byte sync word, PA1 at +10 dBm (10 mW, the band's limit with a 0 dBi antenna).
pub fn register_settings(band: Band) -> Vec<(u8, u8)> {
    let frf: u32 = match band {
        Band::Eu869 => 0xD9_4D9A, // 869.2125 MHz
        Band::Eu868 => 0xD9_1333, // 868.3 MHz
        Band::Us915 => 0xE4_C000, // 915.0 MHz
    };
    let bitrate = (32_000_000 / BIT_RATE) as u16;
    vec![
        (reg::DATA_MODUL, 0x01), // packet mode, FSK, Gaussian BT = 1.0
        (reg::BITRATE_MSB, (bitrate >> 8) as u8),
        (reg::BITRATE_LSB, bitrate as u8),
        (reg::FDEV_MSB, 0x00),
        (reg::FDEV_LSB, 0x27),
        (reg::FRF_MSB, (frf >> 16) as u8),
        (reg::FRF_MID, (frf >> 8) as u8),
        (reg::FRF_LSB, frf as u8),
        (reg::AFC_CTRL, 0x20),      // AfcLowBetaOn: modulation index below 2
        (reg::PA_LEVEL, 0x40 | 28), // PA1 on PA_BOOST, Pout = -18 + 28 = +10 dBm
        (reg::OCP, 0x1A),           // default 95 mA limit: fine below +18 dBm
        (reg::TEST_PA1, 0x55),      // normal mode (not +20 dBm)
        (reg::TEST_PA2, 0x70),
        (reg::LNA, 0x88),         // 200 ohm input, AGC
        (reg::RX_BW, 0x55),       // DccFreq 010, mant 24, exp 5: 10.4 kHz
        (reg::AFC_BW, 0x4C),      // DccFreq 010, mant 20, exp 4: 25.0 kHz
        (reg::AFC_FEI, 0x0C),     // AFC at every RX start, cleared first
        (reg::RSSI_THRESH, 0xE4), // -114 dBm (datasheet recommended)
        (reg::PREAMBLE_MSB, 0x00),
        (reg::PREAMBLE_LSB, 0x04),
        (reg::SYNC_CONFIG, 0x90), // sync on, 3 bytes, no tolerated errors
        (reg::SYNC_VALUE1, SYNC_WORD[0]),
        (reg::SYNC_VALUE2, SYNC_WORD[1]),
        (reg::SYNC_VALUE3, SYNC_WORD[2]),
        (reg::PACKET_CONFIG1, 0xD0), // variable length, whitening, CRC on, drop bad CRC
        (reg::PAYLOAD_LENGTH, MAX_PAYLOAD),
        (reg::FIFO_THRESH, 0x8F), // start TX as soon as the FIFO is not empty
        (reg::PACKET_CONFIG2, 0x02), // AutoRxRestartOn, chip AES off (AES-GCM is ours)
        (reg::TEST_DAGC, 0x20),   // improved fading margin with AfcLowBetaOn
    ]
}

/// Waits for the DIO0 line to rise.
pub trait Interrupt: Send {
    /// Blocks up to `timeout`; true if DIO0 rose (or is high), or the wait was woken.
    fn wait(&mut self, timeout: Duration) -> Result<bool, RadioError>;
    /// A way for another thread to end a [`Interrupt::wait`] at once, if the line has one.
    fn waker(&self) -> Option<super::Waker> {
        None
    }
}

/// The RFM69 driver.
pub struct Rfm69<SPI, RST, IRQ, D> {
    spi: SPI,
    reset: RST,
    irq: IRQ,
    delay: D,
    mode: Mode,
}

fn bus<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> RadioError {
    move |e| RadioError::Bus(format!("{what}: {e:?}"))
}

impl<SPI, RST, IRQ, D> Rfm69<SPI, RST, IRQ, D>
where
    SPI: SpiDevice,
    RST: OutputPin,
    IRQ: Interrupt,
    D: DelayNs,
{
    /// Resets the chip, checks it is an SX1231, writes the settings for `band` and starts
    /// receiving.
    pub fn new(spi: SPI, reset: RST, irq: IRQ, delay: D, band: Band) -> Result<Self, RadioError> {
        let mut radio = Rfm69 {
            spi,
            reset,
            irq,
            delay,
            mode: Mode::Standby,
        };
        radio.hard_reset()?;
        let version = radio.read(reg::VERSION)?;
        if version != CHIP_VERSION {
            return Err(RadioError::Chip(format!(
                "RegVersion is {version:#04x}, expected {CHIP_VERSION:#04x}: check the wiring \
                 (MISO/MOSI/SCK/NSS) and that the module is an RFM69HCW"
            )));
        }
        // The chip starts in standby after reset; say so explicitly and wait for it.
        radio.set_mode(Mode::Standby)?;
        for (r, v) in register_settings(band) {
            radio.write(r, v)?;
        }
        // Read back the registers a bad SPI link would garble (others hold read-only bits).
        let check = [
            reg::BITRATE_MSB,
            reg::BITRATE_LSB,
            reg::FRF_MSB,
            reg::FRF_MID,
            reg::FRF_LSB,
        ];
        let check = check
            .iter()
            .chain(&[reg::SYNC_VALUE1, reg::SYNC_VALUE2, reg::SYNC_VALUE3]);
        for (r, v) in register_settings(band)
            .into_iter()
            .filter(|(r, _)| check.clone().any(|c| c == r))
        {
            let got = radio.read(r)?;
            if got != v {
                return Err(RadioError::Chip(format!(
                    "register {r:#04x} reads {got:#04x} after writing {v:#04x}"
                )));
            }
        }
        radio.start_rx()?;
        info!(?band, "RFM69 ready");
        Ok(radio)
    }

    /// The mode the driver last set.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Datasheet §7.2.2: RESET high for at least 100 µs, release, wait 5 ms.
    fn hard_reset(&mut self) -> Result<(), RadioError> {
        self.reset.set_high().map_err(bus("reset line"))?;
        self.delay.delay_us(100);
        self.reset.set_low().map_err(bus("reset line"))?;
        self.delay.delay_ms(5);
        self.mode = Mode::Standby;
        Ok(())
    }

    fn read(&mut self, r: u8) -> Result<u8, RadioError> {
        let mut b = [0u8];
        self.spi
            .transaction(&mut [Operation::Write(&[r & 0x7F]), Operation::Read(&mut b)])
            .map_err(bus("SPI read"))?;
        Ok(b[0])
    }

    fn write(&mut self, r: u8, v: u8) -> Result<(), RadioError> {
        self.spi.write(&[r | WRITE, v]).map_err(bus("SPI write"))
    }

    fn set_mode(&mut self, mode: Mode) -> Result<(), RadioError> {
        self.write(reg::OP_MODE, mode as u8)?;
        // ModeReady is set within about 1 ms (TS_OSC + TS_FS); allow 50 ms.
        for _ in 0..500 {
            if self.read(reg::IRQ_FLAGS1)? & MODE_READY != 0 {
                self.mode = mode;
                return Ok(());
            }
            self.delay.delay_us(100);
        }
        Err(RadioError::Chip(format!(
            "ModeReady never set after asking for {mode:?}"
        )))
    }

    fn start_rx(&mut self) -> Result<(), RadioError> {
        self.write(reg::DIO_MAPPING1, DIO0_PAYLOAD_READY)?;
        self.set_mode(Mode::Rx)
    }

    fn clear_fifo(&mut self) -> Result<(), RadioError> {
        // Writing FifoOverrun clears the FIFO (RegIrqFlags2 bit 4).
        self.write(reg::IRQ_FLAGS2, FIFO_OVERRUN)
    }
}

impl<SPI, RST, IRQ, D> Transceiver for Rfm69<SPI, RST, IRQ, D>
where
    SPI: SpiDevice + Send,
    RST: OutputPin + Send,
    IRQ: Interrupt,
    D: DelayNs + Send,
{
    fn receive(&mut self, timeout: Duration) -> Result<Option<Received>, RadioError> {
        if self.mode != Mode::Rx {
            self.start_rx()?;
        }
        self.irq.wait(timeout)?;
        // Check the flag rather than trusting the edge: an edge can be missed, a flag cannot.
        if self.read(reg::IRQ_FLAGS2)? & PAYLOAD_READY == 0 {
            return Ok(None);
        }
        let rssi = -(i16::from(self.read(reg::RSSI_VALUE)?) / 2);
        let len = self.read(reg::FIFO)?;
        if len == 0 || len > MAX_PAYLOAD {
            warn!(len, "impossible packet length in FIFO; cleared");
            self.clear_fifo()?;
            return Ok(None);
        }
        let mut bytes = vec![0u8; usize::from(len)];
        self.spi
            .transaction(&mut [Operation::Write(&[reg::FIFO]), Operation::Read(&mut bytes)])
            .map_err(bus("SPI FIFO read"))?;
        debug!(len, rssi, "frame received");
        // AutoRxRestartOn restarts reception once the FIFO is empty.
        Ok(Some(Received {
            bytes,
            rssi_dbm: Some(rssi),
        }))
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), RadioError> {
        let len = u8::try_from(frame.len())
            .ok()
            .filter(|l| (1..=MAX_PAYLOAD).contains(l))
            .ok_or(RadioError::Frame(
                crate::radio::frame::FrameError::TooLong { len: frame.len() },
            ))?;
        // Leave RX first so a frame arriving now cannot mix into the FIFO we fill.
        self.set_mode(Mode::Standby)?;
        self.clear_fifo()?;
        let mut burst = Vec::with_capacity(frame.len() + 2);
        burst.extend_from_slice(&[reg::FIFO | WRITE, len]);
        burst.extend_from_slice(frame);
        self.spi.write(&burst).map_err(bus("SPI FIFO write"))?;
        self.write(reg::DIO_MAPPING1, DIO0_PACKET_SENT)?;
        self.set_mode(Mode::Tx)?;
        let limit = airtime(frame.len(), BIT_RATE) * 2 + Duration::from_millis(50);
        let deadline = std::time::Instant::now() + limit;
        // A wake for the worker's mail is no PacketSent: wait on until the flag or the limit.
        let sent = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let rose = self.irq.wait(left)?;
            if self.read(reg::IRQ_FLAGS2)? & PACKET_SENT != 0 {
                break true;
            }
            if !rose || left.is_zero() {
                break false;
            }
        };
        self.set_mode(Mode::Standby)?;
        self.start_rx()?;
        if sent {
            Ok(())
        } else {
            Err(RadioError::Chip(
                "PacketSent never set: frame not sent".into(),
            ))
        }
    }

    fn waker(&self) -> Option<super::Waker> {
        self.irq.waker()
    }

    fn channel_rssi(&mut self) -> Result<i16, RadioError> {
        if self.mode != Mode::Rx {
            self.start_rx()?;
        }
        self.write(reg::RSSI_CONFIG, RSSI_START)?;
        for _ in 0..100 {
            if self.read(reg::RSSI_CONFIG)? & RSSI_DONE != 0 {
                return Ok(-(i16::from(self.read(reg::RSSI_VALUE)?) / 2));
            }
            self.delay.delay_us(50);
        }
        Err(RadioError::Chip("RssiDone never set".into()))
    }
}

/// DIO0 through the GPIO character device: a thread blocks on rising-edge events, and the
/// radio worker blocks on them (or on its mail, through the waker) instead of polling.
pub struct CdevInterrupt {
    events: mpsc::Receiver<()>,
    wake: mpsc::SyncSender<()>,
}

impl CdevInterrupt {
    /// Requests rising-edge events on `line` of `chip`.
    pub fn new(
        chip: &mut linux_embedded_hal::gpio_cdev::Chip,
        line: u32,
    ) -> Result<CdevInterrupt, RadioError> {
        use linux_embedded_hal::gpio_cdev::{EventRequestFlags, LineRequestFlags};
        let mut handle = chip
            .get_line(line)
            .and_then(|l| {
                l.events(
                    LineRequestFlags::INPUT,
                    EventRequestFlags::RISING_EDGE,
                    "vigil-dio0",
                )
            })
            .map_err(bus("DIO0 line"))?;
        let (tx, rx) = mpsc::sync_channel(16);
        let tx_wake = tx.clone();
        std::thread::Builder::new()
            .name("rfm69-dio0".into())
            .spawn(move || {
                while handle.get_event().is_ok() {
                    if tx.try_send(()).is_err() && tx.send(()).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| RadioError::io("starting the DIO0 thread", e))?;
        Ok(CdevInterrupt {
            events: rx,
            wake: tx_wake,
        })
    }
}

impl Interrupt for CdevInterrupt {
    fn wait(&mut self, timeout: Duration) -> Result<bool, RadioError> {
        match self.events.recv_timeout(timeout) {
            Ok(()) => Ok(true),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(false),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(RadioError::Bus("DIO0 event thread stopped".into()))
            }
        }
    }

    fn waker(&self) -> Option<super::Waker> {
        let wake = self.wake.clone();
        // A full queue already ends the wait.
        Some(std::sync::Arc::new(move || {
            let _ = wake.try_send(());
        }))
    }
}

/// Opens the RFM69 described by the configuration: spidev at 1 MHz, mode 0, the reset line as
/// output (low), DIO0 as rising-edge interrupt.
pub fn open(driver: &RadioDriver, band: Band) -> Result<Box<dyn Transceiver>, RadioError> {
    use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
    use linux_embedded_hal::spidev::{SpiModeFlags, SpidevOptions};
    use linux_embedded_hal::{CdevPin, Delay, SpidevDevice};
    let RadioDriver::Rfm69 {
        spi,
        gpio_chip,
        irq_line,
        reset_line,
    } = driver
    else {
        return Err(RadioError::Usage(
            "the configured radio is not an RFM69".into(),
        ));
    };
    let mut dev = SpidevDevice::open(spi).map_err(|e| {
        let hint = match e.inner().kind() {
            std::io::ErrorKind::NotFound => format!(
                "no SPI device at {} (radio.spi): is the transceiver fitted and SPI enabled \
                 (`dtparam=spi=on` in /boot/firmware/config.txt)?",
                spi.display()
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "permission denied on {} (radio.spi): add the service's user to the group \
                 that owns it (`usermod -aG spi vigil`)",
                spi.display()
            ),
            _ => format!("opening {} (radio.spi)", spi.display()),
        };
        RadioError::io(
            hint,
            std::io::Error::new(e.inner().kind(), e.inner().to_string()),
        )
    })?;
    let options = SpidevOptions::new()
        .bits_per_word(8)
        .max_speed_hz(1_000_000)
        .mode(SpiModeFlags::SPI_MODE_0)
        .build();
    dev.configure(&options)
        .map_err(|e| RadioError::io(format!("configuring {}", spi.display()), e))?;
    let mut chip = Chip::new(gpio_chip).map_err(bus("opening the GPIO chip"))?;
    let reset = chip
        .get_line(*reset_line)
        .and_then(|l| l.request(LineRequestFlags::OUTPUT, 0, "vigil-rfm69-reset"))
        .and_then(CdevPin::new)
        .map_err(bus("reset line"))?;
    let irq = CdevInterrupt::new(&mut chip, *irq_line)?;
    Ok(Box::new(Rfm69::new(dev, reset, irq, Delay, band)?))
}

pub mod mock;

#[cfg(test)]
mod tests {
    use super::mock::{MockChip, Op};
    use super::*;

    fn radio(
        chip: &MockChip,
    ) -> Rfm69<mock::MockBus, mock::MockReset, mock::MockIrq, mock::MockDelay> {
        let (bus, reset, irq, delay) = chip.parts();
        Rfm69::new(bus, reset, irq, delay, Band::Eu869).unwrap()
    }

    #[test]
    fn init_follows_the_datasheet_sequence() {
        let chip = MockChip::new();
        let r = radio(&chip);
        assert_eq!(r.mode(), Mode::Rx);
        assert!(chip.violations().is_empty(), "{:?}", chip.violations());
        let log = chip.log();
        // Reset pulse first, then the version read, before any write.
        assert_eq!(&log[..2], &[Op::Reset(true), Op::Reset(false)]);
        assert_eq!(log[2], Op::Read(reg::VERSION, CHIP_VERSION));
        // Every setting landed in the chip.
        for (r, v) in register_settings(Band::Eu869) {
            assert_eq!(chip.register(r), v, "register {r:#04x}");
        }
        assert_eq!(
            [
                chip.register(reg::FRF_MSB),
                chip.register(reg::FRF_MID),
                chip.register(reg::FRF_LSB)
            ],
            [0xD9, 0x4D, 0x9A]
        );
        assert_eq!(chip.register(reg::DIO_MAPPING1), DIO0_PAYLOAD_READY);
    }

    #[test]
    fn wrong_chip_version_is_a_clear_error() {
        let chip = MockChip::new();
        chip.set_version(0x00);
        let (bus, reset, irq, delay) = chip.parts();
        let err = Rfm69::new(bus, reset, irq, delay, Band::Eu869)
            .err()
            .unwrap();
        assert!(err.to_string().contains("check the wiring"), "{err}");
    }

    /// DIO0 woken for the worker's mail before the chip sets PacketSent.
    struct WokenFirst(mock::MockIrq, bool);

    impl Interrupt for WokenFirst {
        fn wait(&mut self, timeout: Duration) -> Result<bool, RadioError> {
            if std::mem::take(&mut self.1) {
                return Ok(true);
            }
            self.0.wait(timeout)
        }
    }

    #[test]
    fn a_wake_during_transmission_is_not_taken_for_packet_sent() {
        let chip = MockChip::new();
        let (bus, reset, irq, delay) = chip.parts();
        let mut r = Rfm69::new(bus, reset, WokenFirst(irq, true), delay, Band::Eu869).unwrap();
        r.transmit(&[1, 2, 3, 4]).unwrap();
        assert_eq!(chip.transmitted(), vec![vec![1, 2, 3, 4]]);
    }

    #[test]
    fn transmit_fills_fifo_in_standby_then_sends_and_returns_to_rx() {
        let chip = MockChip::new();
        let mut r = radio(&chip);
        r.transmit(&[1, 2, 3, 4]).unwrap();
        assert_eq!(chip.transmitted(), vec![vec![1, 2, 3, 4]]);
        assert_eq!(r.mode(), Mode::Rx);
        assert_eq!(chip.register(reg::DIO_MAPPING1), DIO0_PAYLOAD_READY);
        assert!(chip.violations().is_empty(), "{:?}", chip.violations());
        assert!(r.transmit(&[0; 65]).is_err());
        assert!(r.transmit(&[]).is_err());
    }

    #[test]
    fn receive_reads_length_payload_and_rssi() {
        let chip = MockChip::new();
        let mut r = radio(&chip);
        assert_eq!(r.receive(Duration::from_millis(1)).unwrap(), None);
        chip.on_air(vec![9, 8, 7], -73);
        let got = r.receive(Duration::from_millis(1)).unwrap().unwrap();
        assert_eq!(got.bytes, vec![9, 8, 7]);
        assert_eq!(got.rssi_dbm, Some(-73));
        assert_eq!(r.receive(Duration::from_millis(1)).unwrap(), None);
        assert!(chip.violations().is_empty(), "{:?}", chip.violations());
    }

    #[test]
    fn channel_rssi_uses_rssi_start_and_done() {
        let chip = MockChip::new();
        let mut r = radio(&chip);
        chip.set_channel_rssi(-61);
        assert_eq!(r.channel_rssi().unwrap(), -61);
        assert!(chip.violations().is_empty(), "{:?}", chip.violations());
    }

    #[test]
    fn the_mock_catches_a_driver_that_skips_the_sequence() {
        // Writing the FIFO while receiving breaks the datasheet's rule: the mock must say so.
        let chip = MockChip::new();
        let (mut bus, _, _, _) = chip.parts();
        let _ = radio(&chip);
        bus.write(&[reg::FIFO | 0x80, 1, 0xAA]).unwrap();
        assert!(!chip.violations().is_empty());
    }
}
