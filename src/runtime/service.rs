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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServiceError::Runtime)?;
    rt.block_on(serve(config, options))
}

async fn serve(config: Config, options: RunOptions) -> Result<(), ServiceError> {
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
