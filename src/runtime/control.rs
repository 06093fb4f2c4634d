//! The local control socket: `vigil status` and `vigil test-call` talk to the running unit.
//!
//! A Unix stream socket in the data folder, readable by the service's user only. The client
//! writes one command line (`status`, `test-call`); the unit answers with text and closes.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// A request from the control socket to the unit's loop.
#[derive(Debug)]
pub enum ControlRequest {
    /// Describe the unit's state.
    Status(oneshot::Sender<String>),
    /// Raise a test report through the real routes.
    TestCall(oneshot::Sender<String>),
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
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = answer(stream, tx).await;
            });
        }
    }))
}

async fn answer(stream: UnixStream, tx: mpsc::Sender<ControlRequest>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    // A command is one short line; refuse anything longer.
    BufReader::new(read.take(256)).read_line(&mut line).await?;
    let (reply_tx, reply_rx) = oneshot::channel();
    let request = match line.trim() {
        "status" => Some(ControlRequest::Status(reply_tx)),
        "test-call" => Some(ControlRequest::TestCall(reply_tx)),
        _ => None,
    };
    let text = match request {
        None => format!(
            "unknown command `{}`; known: status, test-call\n",
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
    write.write_all(text.as_bytes()).await?;
    write.shutdown().await
}

/// Sends `command` to the unit running with `data_dir` and returns its answer.
pub async fn request(data_dir: &Path, command: &str) -> Result<String, ControlError> {
    let path = socket_path(data_dir);
    let err = |source| ControlError::Socket {
        path: path.clone(),
        source,
    };
    let mut stream = UnixStream::connect(&path).await.map_err(err)?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .await
        .map_err(err)?;
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
