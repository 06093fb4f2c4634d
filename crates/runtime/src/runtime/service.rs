//! `vigil run`: the unit as a long-running service — logging, control socket, GPIO,
//! systemd readiness and watchdog, clean shutdown on SIGTERM.

use std::path::Path;
use std::time::Duration;

use tokio::sync::oneshot;

use super::appliance::{self, AudioChoice, Options};
use super::control::{self, ControlRequest};
use crate::config::Config;
use crate::modem::Timing;

/// Failures that keep the service from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The unit could not be put together.
    #[error(transparent)]
    Appliance(#[from] appliance::ApplianceError),
    /// The control socket could not be bound.
    #[error(transparent)]
    Control(#[from] control::ControlError),
    /// The async runtime could not start.
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
    /// Another `vigil run` already serves this data directory.
    #[error("another vigil (process {pid}) is already running on {}; stop it first (`systemctl stop vigil`) or give this one its own data_dir", data_dir.display())]
    AlreadyRunning {
        /// The shared data directory.
        data_dir: std::path::PathBuf,
        /// The process that holds it, as it wrote itself into the lock file.
        pid: String,
    },
    /// The service may not use its data directory.
    #[error("permission denied on {}: the unit runs as user {user}; give it the folder with `chown -R {user}: {}`", data_dir.display(), data_dir.display())]
    DataDirPermission {
        /// The data directory.
        data_dir: std::path::PathBuf,
        /// The user the service runs as.
        user: String,
        /// What was refused.
        #[source]
        source: Box<ServiceError>,
    },
    /// The instance lock in the data directory could not be taken.
    #[error("{}: cannot take the instance lock: {source}", path.display())]
    Lock {
        /// The lock file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Holds `data_dir/vigil.lock` for the life of the service, so two units never deliver the
/// same journal's alarms nor take each other's control socket. The kernel drops the lock when
/// the process ends, however it ends, so a crash never leaves a stale lock behind.
pub struct InstanceLock {
    _file: std::fs::File,
}

impl InstanceLock {
    /// Takes the lock of `data_dir`, or says which process holds it.
    pub fn take(data_dir: &Path) -> Result<InstanceLock, ServiceError> {
        use std::io::{Read, Seek, Write};
        let path = data_dir.join("vigil.lock");
        let lock_error = |source| ServiceError::Lock {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(lock_error)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(lock_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(ServiceError::AlreadyRunning {
                    data_dir: data_dir.to_path_buf(),
                    pid: match pid.trim() {
                        "" => "unknown".to_string(),
                        p => p.to_string(),
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(e)),
        }
        file.set_len(0).map_err(lock_error)?;
        file.rewind().map_err(lock_error)?;
        writeln!(file, "{}", std::process::id()).map_err(lock_error)?;
        Ok(InstanceLock { _file: file })
    }
}

/// How `vigil run` was asked to run.
pub struct RunOptions {
    /// Audio: real devices, simulated to a folder, or none.
    pub audio: AudioChoice,
    /// Fast modem timing (for the simulator).
    pub fast_modem: bool,
}

/// Runs the unit described by the configuration at `path` until SIGTERM or SIGINT.
pub fn run(path: &Path, options: RunOptions) -> Result<(), ServiceError> {
    let config = crate::config::load(path)?;
    for w in &config.warnings {
        tracing::warn!(setting = %w, "configuration works but should be changed");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServiceError::Runtime)?;
    let data_dir = config.data_dir.clone();
    rt.block_on(serve(config, options))
        .map_err(|e| with_permission_hint(e, data_dir))
}

/// A start that failed because the data directory is not the service's: said as such, with
/// the user the unit runs as and the command that fixes it.
fn with_permission_hint(e: ServiceError, data_dir: std::path::PathBuf) -> ServiceError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    let mut denied = false;
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
        {
            denied = true;
            break;
        }
        cause = c.source();
    }
    if !denied {
        return e;
    }
    ServiceError::DataDirPermission {
        data_dir,
        user: current_user(),
        source: Box::new(e),
    }
}

/// The name of the user this process runs as (its uid when it has no name).
fn current_user() -> String {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid).then(|| f[0].to_string())
            })
        })
        .unwrap_or(if uid.is_empty() { "?".into() } else { uid })
}

async fn serve(config: Config, options: RunOptions) -> Result<(), ServiceError> {
    let _instance = InstanceLock::take(&config.data_dir)?;
    let timing = if options.fast_modem {
        Timing::fast()
    } else {
        Timing::real()
    };
    let built = appliance::assemble(
        &config,
        Options {
            audio: options.audio,
            modem_timing: timing,
        },
    )
    .await?;
    let appliance::Appliance { unit, parts } = built;
    let inputs = unit.inputs();
    let control_tx = unit.control();
    let socket = control::serve(&control::socket_path(&config.data_dir), control_tx.clone())?;

    // The base unit's own buttons and mains input. Off a Raspberry Pi there are none: say so
    // and go on, since pendants and routes still work.
    let wants_gpio = config.gpio.cancel_button.is_some()
        || config.gpio.help_button.is_some()
        || config.gpio.mains_present.is_some()
        || config.gpio.led.is_some();
    let mut pins = None;
    if wants_gpio {
        match super::gpio::BasePins::open(&config.gpio, inputs.clone()) {
            Ok(p) => pins = Some(p),
            Err(e) => tracing::error!(error = %e, "base buttons, mains input and LED unavailable"),
        }
    }

    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let watchdog = tokio::spawn(watchdog(control_tx.clone()));
    let signals = tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(());
    });

    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!(
        unit = %config.unit.controller_id,
        pendants = config.pendants.len(),
        routes = config.routes.len(),
        "vigil running"
    );
    let journal = unit
        .run(async {
            let _ = stop_rx.await;
        })
        .await;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!(journal = %journal.path().display(), "stopped; open alarms resume on the next start");
    if let Some(p) = pins.as_mut() {
        p.set_led(false);
    }
    watchdog.abort();
    signals.abort();
    socket.abort();
    let _ = std::fs::remove_file(control::socket_path(&config.data_dir));
    drop(parts);
    // A clean stop leaves the journal whole in its one file (the write-ahead log folded in),
    // so a copy or a check of it sees everything.
    if let Err(e) = journal.checkpoint() {
        tracing::warn!(error = %e, "journal checkpoint at stop failed; the write-ahead log keeps it");
    }
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
}

/// Pings systemd's watchdog only while the unit's loop answers: a hung loop stops the pings,
/// systemd kills and restarts the service, and open alarms resume from the journal.
async fn watchdog(control: tokio::sync::mpsc::Sender<ControlRequest>) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (period / 2).max(Duration::from_millis(500));
    loop {
        tokio::time::sleep(every).await;
        let (tx, rx) = oneshot::channel();
        if control.send(ControlRequest::Status(tx)).await.is_err() {
            return;
        }
        if tokio::time::timeout(every, rx)
            .await
            .is_ok_and(|r| r.is_ok())
        {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
        } else {
            tracing::error!("main loop did not answer: withholding the watchdog ping");
        }
    }
}

/// `vigil status` / `vigil test-call`: asks the running unit.
pub fn ask(path: &Path, command: &str) -> Result<String, ServiceError> {
    let config = crate::config::load(path)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServiceError::Runtime)?;
    Ok(rt.block_on(control::request(&config.data_dir, command))?)
}
