//! The AT command engine: one command in flight over a serial port, each with its own timeout,
//! responses matched to their command, unsolicited result codes broadcast as events.
//!
//! `serialport` is blocking, so a writer thread bridges it into tokio; the serial port is read
//! by a task the reactor wakes when bytes arrive (test doubles are read on a thread); the
//! engine itself is one task owning the line discipline. Callers talk to it through
//! [`AtClient`]: dropping a [`AtClient::send`] future is safe (the command finishes or times out
//! inside the engine; a command still queued when its caller went away is never sent).
//!
//! Real modules answer late: after a timeout the command's final result is still owed, so the
//! next command waits behind a synchronising `AT` whose OK proves the late answers are drained
//! (TS 27.007 §5.1: one final result per command line). Only when that `AT` goes unanswered too
//! is the module unresponsive.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use super::at::{self, FinalResult, Urc};
use super::ModemError;

/// Ctrl-Z: ends SMS text or PDU after the `> ` prompt (TS 27.005 §3.5.1).
pub const CTRL_Z: u8 = 0x1A;
/// ESC: aborts sending at the prompt.
pub const ESC: u8 = 0x1B;

/// A command line as it may appear in logs and errors: PINs and passwords cut out.
pub fn redact(line: &str) -> String {
    let upper = line.trim_start().to_ascii_uppercase();
    for secret in ["AT+CPIN=", "AT+CPWD=", "AT+CLCK="] {
        if upper.starts_with(secret) {
            return format!("{secret}<secret>");
        }
    }
    line.to_string()
}

/// Longest partial line kept; a modem that floods bytes without line ends is cut here.
const MAX_LINE: usize = 4096;

/// One AT command and how to wait for it.
#[derive(Clone, Debug)]
pub struct Command {
    /// The command line without the trailing CR, e.g. `AT+CSQ`.
    pub line: String,
    /// How long to wait for the final result.
    pub timeout: Duration,
    /// Prefix of the information lines that answer it (`+CREG:`); such lines are taken as the
    /// response, not as URCs, while this command runs.
    pub prefix: Option<String>,
    /// Text or PDU to send after the `> ` prompt, followed by Ctrl-Z.
    pub body: Option<String>,
    /// `ATD`/`ATA`: `NO CARRIER`, `BUSY`, `NO ANSWER` end this command.
    pub call_setup: bool,
}

impl Command {
    /// A command with the given timeout.
    pub fn new(line: impl Into<String>, timeout: Duration) -> Command {
        Command {
            line: line.into(),
            timeout,
            prefix: None,
            body: None,
            call_setup: false,
        }
    }

    /// Information lines starting with `prefix` belong to this command.
    pub fn expect(mut self, prefix: &str) -> Command {
        self.prefix = Some(prefix.to_string());
        self
    }

    /// Sends `body` after the `> ` prompt, then Ctrl-Z.
    pub fn with_body(mut self, body: impl Into<String>) -> Command {
        self.body = Some(body.into());
        self
    }

    /// Marks a call set-up command (`ATD`, `ATA`).
    pub fn call_setup(mut self) -> Command {
        self.call_setup = true;
        self
    }
}

/// The information lines of a command that ended with `OK`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// Lines between the command and its final result, in order.
    pub lines: Vec<String>,
}

impl Response {
    /// The first line starting with `prefix`.
    pub fn line(&self, prefix: &str) -> Option<&str> {
        self.lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .map(String::as_str)
    }
}

struct Request {
    command: Command,
    reply: oneshot::Sender<Result<Response, ModemError>>,
}

/// A handle on the AT engine: send commands, subscribe to URCs. Cheap to clone.
#[derive(Clone)]
pub struct AtClient {
    tx: mpsc::Sender<Request>,
    urcs: broadcast::Sender<Urc>,
}

impl AtClient {
    /// Sends `command` and waits for its final result. `OK` gives the response lines; any
    /// other final result is [`ModemError::Rejected`]; silence is [`ModemError::Timeout`].
    pub async fn send(&self, command: Command) -> Result<Response, ModemError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { command, reply })
            .await
            .map_err(|_| ModemError::EngineStopped)?;
        rx.await.map_err(|_| ModemError::EngineStopped)?
    }

    /// Unsolicited result codes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Urc> {
        self.urcs.subscribe()
    }

    /// Whether the engine task is still running.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// Opens the serial device and starts the engine on the current tokio runtime.
///
/// If the device goes away (a USB module re-enumerates after a power cycle), the reader
/// reopens the same path until it is back; commands meanwhile time out and the modem
/// supervisor recovers.
pub fn open(path: &str, baud: u32) -> Result<AtClient, ModemError> {
    let port = open_port(path, baud)?;
    let writer = port.try_clone_native().map_err(|source| ModemError::Port {
        port: path.to_string(),
        source,
    })?;
    let writer: SharedWriter = Arc::new(Mutex::new(Box::new(writer)));
    let (bytes_tx, bytes_rx) = mpsc::channel::<Vec<u8>>(64);
    spawn_port_reader(path.to_string(), baud, port, bytes_tx, writer.clone());
    let out = spawn_shared_writer(writer);
    Ok(start(bytes_rx, out))
}

type SharedWriter = Arc<Mutex<Box<dyn Write + Send>>>;

/// How often a vanished serial device is looked for again.
const REOPEN_INTERVAL: Duration = Duration::from_millis(200);

fn open_port(path: &str, baud: u32) -> Result<serialport::TTYPort, ModemError> {
    serialport::new(path, baud)
        .timeout(Duration::from_millis(50))
        .open_native()
        .map_err(|source| ModemError::Port {
            port: path.to_string(),
            source,
        })
}

/// Reads the port as a task woken by the reactor when bytes arrive (no polling: an idle modem
/// costs no wakeups); when the device is lost, reopens `path` and hands the writer thread the
/// new port. Stops when the engine has gone.
fn spawn_port_reader(
    path: String,
    baud: u32,
    port: serialport::TTYPort,
    tx: mpsc::Sender<Vec<u8>>,
    writer: SharedWriter,
) {
    tokio::spawn(async move {
        let mut port = Some(port);
        loop {
            if let Some(p) = port.take() {
                match watch_port(&path, p, &tx).await {
                    Watch::EngineGone => return,
                    Watch::Lost => {}
                }
            }
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(REOPEN_INTERVAL) => {}
            }
            let Ok(p) = open_port(&path, baud) else {
                continue;
            };
            let Ok(w) = p.try_clone_native() else {
                continue;
            };
            *crate::sync::lock(&writer) = Box::new(w);
            tracing::info!(port = %path, "serial device reopened");
            port = Some(p);
        }
    });
}

enum Watch {
    EngineGone,
    Lost,
}

/// Hands what `port` reads to the engine until the device is lost or the engine stops.
async fn watch_port(
    path: &str,
    mut port: serialport::TTYPort,
    tx: &mpsc::Sender<Vec<u8>>,
) -> Watch {
    // The reader never waits inside `read`: the reactor says when bytes are there. The
    // writer's clone keeps its own timeout.
    if let Err(e) = serialport::SerialPort::set_timeout(&mut port, Duration::ZERO) {
        tracing::warn!(port = %path, error = %e, "serial device lost; reopening");
        return Watch::Lost;
    }
    // SAFETY: the `TTYPort` owns its descriptor and closes it only when dropped, which
    // happens after `AsyncFd` has deregistered it; nothing else replaces or closes it.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(port, tokio::io::Interest::READABLE)
    };
    let mut port = match registered {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(port = %path, error = %e, "serial device cannot be watched; reopening");
            return Watch::Lost;
        }
    };
    let mut buf = [0u8; 1024];
    loop {
        let mut guard = tokio::select! {
            () = tx.closed() => return Watch::EngineGone,
            g = port.readable_mut() => match g {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(port = %path, error = %e, "serial device lost; reopening");
                    return Watch::Lost;
                }
            },
        };
        let read = guard.try_io(|p| match p.get_mut().read(&mut buf) {
            // Readiness that had nothing to give (or a signal): wait for the next.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) =>
            {
                Err(std::io::ErrorKind::WouldBlock.into())
            }
            r => r,
        });
        match read {
            Err(_would_block) => continue,
            Ok(Ok(n)) if n > 0 => {
                if tx.send(buf.get(..n).unwrap_or(&[]).to_vec()).await.is_err() {
                    return Watch::EngineGone;
                }
            }
            Ok(Ok(_)) => {
                tracing::warn!(port = %path, "serial device hung up; reopening");
                return Watch::Lost;
            }
            Ok(Err(e)) => {
                tracing::warn!(port = %path, error = %e, "serial device lost; reopening");
                return Watch::Lost;
            }
        }
    }
}

fn spawn_shared_writer(writer: SharedWriter) -> std::sync::mpsc::Sender<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        while let Ok(bytes) = rx.recv() {
            let mut w = crate::sync::lock(&writer);
            if let Err(e) = w.write_all(&bytes).and_then(|()| w.flush()) {
                tracing::debug!(error = %e, "serial write failed");
            }
        }
    });
    tx
}

/// Starts the engine over any byte stream pair (the serial port, or a test double).
/// `reader` should return `TimedOut`/`WouldBlock` periodically so its thread can notice shutdown.
pub fn spawn(reader: Box<dyn Read + Send>, writer: Box<dyn Write + Send>) -> AtClient {
    let (bytes_tx, bytes_rx) = mpsc::channel::<Vec<u8>>(64);
    spawn_reader(reader, bytes_tx);
    let out = spawn_writer(writer);
    start(bytes_rx, out)
}

fn start(bytes_rx: mpsc::Receiver<Vec<u8>>, out: std::sync::mpsc::Sender<Vec<u8>>) -> AtClient {
    let (tx, rx) = mpsc::channel(16);
    let (urcs, _) = broadcast::channel(256);
    let engine = Engine {
        rx,
        bytes: bytes_rx,
        out,
        urcs: urcs.clone(),
        buf: Vec::new(),
        inflight: None,
        owed: 0,
        unsynced: false,
    };
    tokio::spawn(engine.run());
    AtClient { tx, urcs }
}

/// Reads the port on its own thread and hands chunks to the engine.
pub fn spawn_reader(mut reader: Box<dyn Read + Send>, tx: mpsc::Sender<Vec<u8>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        let mut failing = false;
        loop {
            if tx.is_closed() {
                return;
            }
            match reader.read(&mut buf) {
                Ok(0) => std::thread::sleep(Duration::from_millis(20)),
                Ok(n) => {
                    failing = false;
                    if tx
                        .blocking_send(buf.get(..n).unwrap_or(&[]).to_vec())
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "serial read failed");
                        failing = true;
                    }
                    // A pty whose other side is closed reports EIO; wait rather than spin.
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
        }
    });
}

/// Writes to the port on its own thread so a stalled UART never blocks the runtime.
pub fn spawn_writer(mut writer: Box<dyn Write + Send>) -> std::sync::mpsc::Sender<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        while let Ok(bytes) = rx.recv() {
            if let Err(e) = writer.write_all(&bytes).and_then(|()| writer.flush()) {
                tracing::warn!(error = %e, "serial write failed");
            }
        }
    });
    tx
}

#[derive(PartialEq, Eq)]
enum Phase {
    /// Waiting for the `> ` prompt before sending the body.
    Prompt,
    /// Waiting for the final result.
    Final,
}

struct Inflight {
    command: Command,
    reply: oneshot::Sender<Result<Response, ModemError>>,
    deadline: Instant,
    phase: Phase,
    lines: Vec<String>,
    /// Set on a synchronising `AT`: the command that goes out once it is answered.
    then: Option<Request>,
}

/// How long a synchronising `AT` may take before the module counts as unresponsive.
const SYNC_TIMEOUT: Duration = Duration::from_secs(3);

struct Engine {
    rx: mpsc::Receiver<Request>,
    bytes: mpsc::Receiver<Vec<u8>>,
    out: std::sync::mpsc::Sender<Vec<u8>>,
    urcs: broadcast::Sender<Urc>,
    buf: Vec<u8>,
    inflight: Option<Inflight>,
    /// Final results still owed by commands that timed out: when they arrive late they are
    /// discarded, never credited to a later command.
    owed: usize,
    /// A command timed out: the next one waits for a synchronising `AT` to be answered.
    unsynced: bool,
}

impl Engine {
    async fn run(mut self) {
        loop {
            let deadline = self.inflight.as_ref().map(|i| i.deadline);
            tokio::select! {
                req = self.rx.recv(), if self.inflight.is_none() => {
                    let Some(req) = req else { return };
                    self.start(req);
                }
                chunk = self.bytes.recv() => {
                    let Some(chunk) = chunk else {
                        if let Some(i) = self.inflight.take() {
                            let _ = i.reply.send(Err(ModemError::EngineStopped));
                        }
                        return;
                    };
                    self.feed(&chunk);
                }
                () = sleep_until_opt(deadline) => self.timeout(),
            }
        }
    }

    fn start(&mut self, req: Request) {
        if req.reply.is_closed() {
            // The caller gave up before its turn: never send a command nobody waits for.
            return;
        }
        if self.unsynced {
            // Drain whatever a timed-out command still owes before anything new goes out.
            tracing::debug!(owed = self.owed, "AT synchronising after a timeout");
            let _ = self.out.send(b"AT\r".to_vec());
            let (reply, _) = oneshot::channel();
            self.inflight = Some(Inflight {
                deadline: Instant::now() + SYNC_TIMEOUT,
                command: Command::new("AT", SYNC_TIMEOUT),
                reply,
                phase: Phase::Final,
                lines: Vec::new(),
                then: Some(req),
            });
            return;
        }
        tracing::trace!(command = %redact(&req.command.line), "AT >");
        let mut bytes = req.command.line.clone().into_bytes();
        bytes.push(b'\r');
        let _ = self.out.send(bytes);
        let phase = if req.command.body.is_some() {
            Phase::Prompt
        } else {
            Phase::Final
        };
        self.inflight = Some(Inflight {
            deadline: Instant::now() + req.command.timeout,
            command: req.command,
            reply: req.reply,
            phase,
            lines: Vec::new(),
            then: None,
        });
    }

    /// A final result arrived for the synchronising `AT` in flight (or a stale one before it).
    fn synced(&mut self, result: FinalResult) {
        if self.owed > 0 {
            self.owed -= 1;
            if let Some(i) = self.inflight.as_mut() {
                // Remembered: a module that answers is responsive even if it owed less.
                i.lines.push(String::new());
            }
            tracing::debug!(result = ?result, "AT late answer discarded");
            return;
        }
        let Some(i) = self.inflight.take() else {
            return;
        };
        self.unsynced = false;
        if let Some(req) = i.then {
            self.start(req);
        }
    }

    fn timeout(&mut self) {
        let Some(i) = self.inflight.take() else {
            return;
        };
        if let Some(req) = i.then {
            self.owed = 0;
            if !i.lines.is_empty() {
                // It answered, only less than a timed-out command was thought to owe (an
                // SMS aborted with ESC may or may not end with a result): in step now.
                self.unsynced = false;
                self.start(req);
                return;
            }
            // Synchronisation failed: the module is unresponsive, not merely slow. The next
            // command (the caller's recovery, `AT+CFUN=1,1`) goes out as it is.
            self.unsynced = false;
            tracing::debug!("AT synchronisation timed out");
            let _ = req.reply.send(Err(ModemError::Timeout {
                command: redact(&req.command.line),
                timeout_ms: SYNC_TIMEOUT.as_millis() as u64,
            }));
            return;
        }
        self.owed += 1;
        self.unsynced = true;
        if i.phase == Phase::Prompt {
            // Abort a half-started SMS so the modem returns to command mode.
            let _ = self.out.send(vec![ESC]);
        }
        tracing::debug!(command = %redact(&i.command.line), "AT timeout");
        let _ = i.reply.send(Err(ModemError::Timeout {
            command: redact(&i.command.line),
            timeout_ms: i.command.timeout.as_millis() as u64,
        }));
    }

    fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        loop {
            if self.take_prompt() {
                continue;
            }
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\r' || b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(line.get(..pos).unwrap_or(&[]))
                    .trim()
                    .to_string();
                if !text.is_empty() {
                    self.line(text);
                }
                continue;
            }
            break;
        }
        self.check_prompt();
        if self.buf.len() > MAX_LINE {
            tracing::warn!(
                bytes = self.buf.len(),
                "discarding unterminated modem output"
            );
            self.buf.clear();
        }
    }

    /// Takes a `> ` prompt at the start of the buffer, whatever follows it in the same read.
    fn take_prompt(&mut self) -> bool {
        let Some(i) = self.inflight.as_ref() else {
            return false;
        };
        if i.phase != Phase::Prompt {
            return false;
        }
        let start = self
            .buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(self.buf.len());
        if self.buf.get(start) != Some(&b'>') || self.buf.len() == start + 1 {
            return false;
        }
        let end = if self.buf.get(start + 1) == Some(&b' ') {
            start + 2
        } else {
            start + 1
        };
        self.buf.drain(..end);
        self.send_body();
        true
    }

    fn send_body(&mut self) {
        let Some(i) = self.inflight.as_mut() else {
            return;
        };
        let mut body = i.command.body.clone().unwrap_or_default().into_bytes();
        body.push(CTRL_Z);
        let _ = self.out.send(body);
        i.phase = Phase::Final;
    }

    fn check_prompt(&mut self) {
        let Some(i) = self.inflight.as_mut() else {
            return;
        };
        if i.phase != Phase::Prompt || !self.buf.starts_with(b">") {
            return;
        }
        self.buf.clear();
        self.send_body();
    }

    fn line(&mut self, text: String) {
        tracing::trace!(line = %redact(&text), "AT <");
        if self.inflight.is_none() && self.owed > 0 {
            if let Some(result) = at::parse_final(&text) {
                if !result.is_call_progress() {
                    // The late final result of a timed-out command, before the
                    // synchronising `AT` went out.
                    self.owed -= 1;
                    tracing::debug!(result = ?result, "AT late answer discarded");
                    return;
                }
            }
        }
        if let Some(i) = self.inflight.as_mut() {
            // Echo of our own command (modem still in ATE1) or of the SMS body.
            if text == i.command.line
                || i.command
                    .body
                    .as_deref()
                    .is_some_and(|b| text.trim_end_matches(char::from(CTRL_Z)) == b)
            {
                return;
            }
            if let Some(result) = at::parse_final(&text) {
                if result.is_call_progress() && !i.command.call_setup {
                    self.urc(text);
                    return;
                }
                if i.then.is_some() {
                    self.synced(result);
                    return;
                }
                if let Some(i) = self.inflight.take() {
                    if i.phase == Phase::Prompt && result == FinalResult::Ok {
                        // OK without a prompt is not a sent SMS.
                        let _ = i.reply.send(Err(ModemError::Rejected {
                            command: redact(&i.command.line),
                            result: FinalResult::Error,
                        }));
                        return;
                    }
                    let reply = if result == FinalResult::Ok {
                        Ok(Response { lines: i.lines })
                    } else {
                        Err(ModemError::Rejected {
                            command: redact(&i.command.line),
                            result,
                        })
                    };
                    let _ = i.reply.send(reply);
                }
                return;
            }
            if at::is_unsolicited_registration(&text) {
                self.urc(text);
                return;
            }
            let mine = i
                .command
                .prefix
                .as_deref()
                .is_some_and(|p| text.starts_with(p));
            if mine {
                i.lines.push(text);
                return;
            }
            if at::parse_urc(&text).is_none() {
                // Unprefixed lines (ATI text, the PDU after +CMGR) belong to the command.
                i.lines.push(text);
                return;
            }
        }
        self.urc(text);
    }

    fn urc(&mut self, text: String) {
        let urc = at::parse_urc(&text)
            .or_else(|| match at::parse_final(&text) {
                Some(FinalResult::NoCarrier) => Some(Urc::NoCarrier),
                Some(FinalResult::Busy) => Some(Urc::Busy),
                Some(FinalResult::NoAnswer) => Some(Urc::NoAnswer),
                _ => None,
            })
            .unwrap_or(Urc::Other(text));
        if urc == Urc::Rdy {
            // The module rebooted: whatever was in flight is lost with its state.
            self.owed = 0;
            self.unsynced = false;
            if let Some(i) = self.inflight.take() {
                let (command, reply) = match i.then {
                    Some(req) => (req.command, req.reply),
                    None => (i.command, i.reply),
                };
                let _ = reply.send(Err(ModemError::NotReady(format!(
                    "module restarted during `{}`",
                    redact(&command.line)
                ))));
            }
        }
        if let Urc::Other(t) = &urc {
            tracing::debug!(line = %t.chars().take(60).collect::<String>(), "unsolicited line");
        }
        let _ = self.urcs.send(urc);
    }
}

/// Fuzz entry: the line discipline over arbitrary modem output, with an SMS command (prompt,
/// body, prefix) in flight. Must never panic; needs no runtime.
pub fn fuzz_feed(data: &[u8]) {
    let (_tx, rx) = mpsc::channel(1);
    let (_btx, bytes) = mpsc::channel(1);
    let (out, _out_rx) = std::sync::mpsc::channel();
    let (urcs, _keep) = broadcast::channel(16);
    let mut e = Engine {
        rx,
        bytes,
        out,
        urcs,
        buf: Vec::new(),
        inflight: None,
        owed: 0,
        unsynced: false,
    };
    let (reply, _r) = oneshot::channel();
    e.inflight = Some(Inflight {
        command: Command::new("AT+CMGS=23", Duration::from_secs(1))
            .expect("+CMGS:")
            .with_body("0011000B916407281553F80000A70AE8329BFD4697D9EC37"),
        reply,
        deadline: Instant::now(),
        phase: Phase::Prompt,
        lines: Vec::new(),
        then: None,
    });
    for chunk in data.chunks(7) {
        e.feed(chunk);
    }
    e.timeout();
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
