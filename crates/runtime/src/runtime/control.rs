//! The local control socket: `vigil status` and `vigil test-call` talk to the running unit.
//!
//! A Unix stream socket in the data folder, readable by the service's user only. The client
//! writes one command line (`status`, `test-call`, `pair [replace] [window=S]`,
//! `pair-confirm CODE`); the unit answers with text and closes. `pair` answers line by line
//! while the pairing window is open. Pairing opens the door to the alarm path, so it is taken
//! only from root or the service's own user, not from members of its group.
//!
//! Hardened against a local client that misbehaves: the peer's credentials (SO_PEERCRED) must
//! be root's or the service's own user or group, the command line must come within
//! [`IDLE_TIMEOUT`], at most [`MAX_CONNECTIONS`] are served at once, and accept errors (such as
//! running out of file descriptors) back off instead of spinning.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// How long a client may take to send its command line before it is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many clients are served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 8;
/// The first pause after an accept error; it doubles up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(50);
/// The longest pause after repeated accept errors.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A request from the control socket to the unit's loop.
#[derive(Debug)]
pub enum ControlRequest {
    /// Describe the unit's state.
    Status(oneshot::Sender<String>),
    /// Raise a test report through the real routes.
    TestCall(oneshot::Sender<String>),
    /// Open the radio's pairing window; what happens in it goes out line by line.
    Pair {
        /// A pendant id that already has a key may pair again.
        replace: bool,
        /// Window length asked for (the configured one otherwise); at most 60 s.
        window: Option<Duration>,
        /// Lines for the installer; dropped when the window is over.
        lines: mpsc::Sender<String>,
    },
    /// Play the test prompt at the base, for the installer to listen for.
    PlayCheck(oneshot::Sender<String>),
    /// The installer's test call: call `target`, say the test prompt, measure what comes
    /// back; what happens goes out line by line.
    CallTest {
        /// A `sip:` URI (an echo test line in the centre's domain).
        target: String,
        /// Lines for the installer; dropped when the test is over.
        lines: mpsc::Sender<String>,
    },
    /// The installer confirms the code a pendant shows.
    PairConfirm {
        /// The code typed.
        code: crate::radio::pairing::PairingCode,
        /// The answer.
        reply: oneshot::Sender<String>,
    },
}

/// Control socket failures.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket could not be created or reached.
    #[error("control socket {path}: {source}")]
    Socket {
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The unit did not answer.
    #[error("the unit did not answer on {0}")]
    NoAnswer(PathBuf),
    /// Nothing listens at the socket: the service is stopped (or uses another data_dir).
    #[error("the unit is not running (no control socket at {}); start it with `systemctl start vigil`", .0.display())]
    NotRunning(PathBuf),
    /// The socket is there but this user may not use it.
    #[error("permission denied on {}: the unit answers root and its own user or group only; run this as root (sudo) or as a member of group vigil", .0.display())]
    NotAllowed(PathBuf),
}

/// Where the control socket lives for a data folder.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// Binds the socket (replacing a stale one) and serves requests into `tx` until dropped.
pub fn serve(
    path: &Path,
    tx: mpsc::Sender<ControlRequest>,
) -> Result<tokio::task::JoinHandle<()>, ControlError> {
    let err = |source| ControlError::Socket {
        path: path.to_path_buf(),
        source,
    };
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(err)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    // The service's own user and group: those of the socket it just created.
    let owner = {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).map_err(err)?;
        (m.uid(), m.gid())
    };
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        let mut backoff = ACCEPT_BACKOFF_FIRST;
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => {
                    backoff = ACCEPT_BACKOFF_FIRST;
                    stream
                }
                Err(e) => {
                    tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "control socket: accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            };
            let may_pair = match stream.peer_cred() {
                Ok(c) if allowed(c.uid(), c.gid(), owner) => c.uid() == 0 || c.uid() == owner.0,
                Ok(c) => {
                    tracing::warn!(
                        uid = c.uid(),
                        gid = c.gid(),
                        "control socket: client refused"
                    );
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket: client credentials unknown");
                    continue;
                }
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let _ = answer(stream, tx, may_pair).await;
            });
        }
    }))
}

/// Whether a client with `uid` and `gid` may use the socket of a service running as `owner`
/// (uid, gid): root, or the service's own user or group.
fn allowed(uid: u32, gid: u32, owner: (u32, u32)) -> bool {
    uid == 0 || uid == owner.0 || gid == owner.1
}

async fn answer(
    stream: UnixStream,
    tx: mpsc::Sender<ControlRequest>,
    may_pair: bool,
) -> std::io::Result<()> {
    let (read, write) = stream.into_split();
    let mut line = String::new();
    // A command is one short line; refuse anything longer.
    let mut reader = BufReader::new(read.take(256));
    match tokio::time::timeout(IDLE_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(r) => r?,
        // A client that connects and says nothing is dropped, not waited on forever.
        Err(_) => return Ok(()),
    };
    let (reply_tx, reply_rx) = oneshot::channel();
    let mut words = line.split_whitespace();
    let verb = words.next().unwrap_or("");
    if verb.starts_with("pair") && !may_pair {
        let text = "pairing is for root on the unit (sudo vigil pair) or the service's own user\n";
        return finish(write, text).await;
    }
    if verb == "call-test" {
        // A call opens the home's microphone: only for those who may pair.
        if !may_pair {
            let text = "a test call is for root on the unit (sudo vigil call-test) or the service's own user\n";
            return finish(write, text).await;
        }
        let Some(target) = words.next() else {
            return finish(write, "call-test needs the address to call\n").await;
        };
        let target = target.to_string();
        return stream_lines(&tx, write, |lines| ControlRequest::CallTest {
            target,
            lines,
        })
        .await;
    }
    if verb == "pair" {
        let mut replace = false;
        let mut window = None;
        for w in words {
            match w {
                "replace" => replace = true,
                _ => match w
                    .strip_prefix("window=")
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    Some(s) => window = Some(Duration::from_secs(s)),
                    None => {
                        return finish(write, &format!("unknown pairing option `{w}`\n")).await;
                    }
                },
            }
        }
        let request = |lines| ControlRequest::Pair {
            replace,
            window,
            lines,
        };
        return stream_lines(&tx, write, request).await;
    }
    let request = match verb {
        "status" => Some(ControlRequest::Status(reply_tx)),
        "test-call" => Some(ControlRequest::TestCall(reply_tx)),
        "play-check" => Some(ControlRequest::PlayCheck(reply_tx)),
        "pair-confirm" => match words
            .next()
            .and_then(crate::radio::pairing::PairingCode::parse)
        {
            Some(code) => Some(ControlRequest::PairConfirm {
                code,
                reply: reply_tx,
            }),
            None => return finish(write, "a pairing code is six digits\n").await,
        },
        _ => None,
    };
    let text = match request {
        None => format!(
            "unknown command `{}`; known: status, test-call, call-test, play-check, pair, pair-confirm\n",
            line.trim()
        ),
        Some(r) => {
            if tx.send(r).await.is_err() {
                "the unit is stopping\n".to_string()
            } else {
                reply_rx
                    .await
                    .unwrap_or_else(|_| "the unit is stopping\n".into())
            }
        }
    };
    finish(write, &text).await
}

/// Sends the request `make` builds around a channel of lines, and writes each line the unit
/// sends on it to the client until the unit is done.
async fn stream_lines(
    tx: &mpsc::Sender<ControlRequest>,
    mut write: tokio::net::unix::OwnedWriteHalf,
    make: impl FnOnce(mpsc::Sender<String>) -> ControlRequest,
) -> std::io::Result<()> {
    let (lines, mut rx) = mpsc::channel(16);
    if tx.send(make(lines)).await.is_err() {
        return finish(write, "the unit is stopping\n").await;
    }
    while let Some(l) = rx.recv().await {
        write.write_all(format!("{l}\n").as_bytes()).await?;
    }
    write.shutdown().await
}

/// Writes the answer's last text and closes the connection.
async fn finish(mut write: tokio::net::unix::OwnedWriteHalf, text: &str) -> std::io::Result<()> {
    write.write_all(text.as_bytes()).await?;
    write.shutdown().await
}

/// Sends `command` to the unit running with `data_dir` and returns its answer.
pub async fn request(data_dir: &Path, command: &str) -> Result<String, ControlError> {
    let (path, mut stream) = send_command(data_dir, command).await?;
    let err = |source| ControlError::Socket {
        path: path.clone(),
        source,
    };
    let mut text = String::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_string(&mut text),
    )
    .await;
    match read {
        Ok(Ok(_)) => Ok(text),
        Ok(Err(e)) => Err(err(e)),
        Err(_) => Err(ControlError::NoAnswer(path.clone())),
    }
}

/// Sends `command` to the unit running with `data_dir` and hands each line of its answer to
/// `on_line` as it comes, until the unit closes (or `within` passes).
pub async fn request_lines(
    data_dir: &Path,
    command: &str,
    within: Duration,
    mut on_line: impl FnMut(&str),
) -> Result<(), ControlError> {
    let (path, stream) = send_command(data_dir, command).await?;
    let err = |source| ControlError::Socket {
        path: path.clone(),
        source,
    };
    let mut lines = BufReader::new(stream).lines();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(l))) => on_line(&l),
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => return Err(err(e)),
            Err(_) => return Err(ControlError::NoAnswer(path.clone())),
        }
    }
}

/// Connects to the unit's socket and writes the command line.
async fn send_command(
    data_dir: &Path,
    command: &str,
) -> Result<(PathBuf, UnixStream), ControlError> {
    let path = socket_path(data_dir);
    let mut stream = connect(&path).await?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .await
        .map_err(|source| ControlError::Socket {
            path: path.clone(),
            source,
        })?;
    Ok((path, stream))
}

async fn connect(path: &Path) -> Result<UnixStream, ControlError> {
    UnixStream::connect(path).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ControlError::NotRunning(path.to_path_buf())
        }
        std::io::ErrorKind::PermissionDenied => ControlError::NotAllowed(path.to_path_buf()),
        _ => ControlError::Socket {
            path: path.to_path_buf(),
            source: e,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_and_the_service_user_or_group_may_connect() {
        let owner = (998, 997);
        assert!(allowed(0, 100, owner));
        assert!(allowed(998, 100, owner));
        assert!(allowed(1000, 997, owner));
        assert!(!allowed(1000, 1000, owner));
    }

    #[tokio::test]
    async fn a_silent_client_is_dropped_after_the_idle_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(dir.path());
        let (tx, _rx) = mpsc::channel(1);
        let server = serve(&path, tx).unwrap();
        let mut silent = UnixStream::connect(&path).await.unwrap();
        let mut text = String::new();
        // The paused clock runs ahead while everything waits: an hour passes at once.
        let closed =
            tokio::time::timeout(Duration::from_secs(3600), silent.read_to_string(&mut text)).await;
        assert!(
            matches!(closed, Ok(Ok(0))),
            "the server still holds a silent client: {closed:?}"
        );
        server.abort();
    }

    #[tokio::test]
    async fn at_most_max_connections_are_held_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(dir.path());
        let (tx, _rx) = mpsc::channel(1);
        let server = serve(&path, tx).unwrap();
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            held.push(UnixStream::connect(&path).await.unwrap());
        }
        // One more connects (the kernel's backlog) but is not served until a slot frees.
        let mut extra = UnixStream::connect(&path).await.unwrap();
        extra.write_all(b"bogus\n").await.unwrap();
        let mut text = String::new();
        let early = tokio::time::timeout(IDLE_TIMEOUT / 2, extra.read_to_string(&mut text)).await;
        assert!(early.is_err(), "served beyond the cap: {text:?}");
        drop(held);
        let later = tokio::time::timeout(IDLE_TIMEOUT * 12, extra.read_to_string(&mut text)).await;
        assert!(matches!(later, Ok(Ok(_))), "{later:?}");
        assert!(text.starts_with("unknown command"), "{text:?}");
        server.abort();
    }
}
