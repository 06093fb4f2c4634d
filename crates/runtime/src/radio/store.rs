//! Where the radio keeps what must survive a restart: each pendant's last accepted counter
//! (so a restart does not reopen replay) and the keys agreed by pairing.
//!
//! The trait is narrow and synchronous on purpose: the journal implements it on SQLite, tests
//! use [`MemoryStore`], and the command-line tools use [`FileStore`] until a journal exists.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::frame::PendantKey;
use super::RadioError;
use crate::core::DeviceId;

/// Durable per-pendant radio state.
pub trait PendantStore {
    /// The last counter accepted from `pendant`, if any was ever accepted.
    fn last_counter(&self, pendant: DeviceId) -> Result<Option<u32>, RadioError>;
    /// Records `counter` as the last accepted from `pendant`; durable when it returns.
    fn save_counter(&mut self, pendant: DeviceId, counter: u32) -> Result<(), RadioError>;
    /// Every key agreed by pairing.
    fn paired_keys(&self) -> Result<Vec<(DeviceId, PendantKey)>, RadioError>;
    /// Stores a newly paired pendant's key (replacing an older one) and forgets its counter,
    /// since a new key starts a new counter sequence.
    fn save_paired_key(&mut self, pendant: DeviceId, key: &PendantKey) -> Result<(), RadioError>;
    /// Records that `pendant`'s counter jumped from `last` to `next`: frames between them were
    /// never heard (lost, or jammed). Kept for the installer and the centre's questions.
    fn note_gap(&mut self, pendant: DeviceId, last: u32, next: u32) -> Result<(), RadioError> {
        let _ = (pendant, last, next);
        Ok(())
    }
}

/// An in-memory store, for tests.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    counters: BTreeMap<DeviceId, u32>,
    keys: BTreeMap<DeviceId, PendantKey>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl PendantStore for MemoryStore {
    fn last_counter(&self, pendant: DeviceId) -> Result<Option<u32>, RadioError> {
        Ok(self.counters.get(&pendant).copied())
    }

    fn save_counter(&mut self, pendant: DeviceId, counter: u32) -> Result<(), RadioError> {
        self.counters.insert(pendant, counter);
        Ok(())
    }

    fn paired_keys(&self) -> Result<Vec<(DeviceId, PendantKey)>, RadioError> {
        Ok(self.keys.iter().map(|(id, k)| (*id, k.clone())).collect())
    }

    fn save_paired_key(&mut self, pendant: DeviceId, key: &PendantKey) -> Result<(), RadioError> {
        self.keys.insert(pendant, key.clone());
        self.counters.remove(&pendant);
        Ok(())
    }
}

impl<S: PendantStore + ?Sized> PendantStore for Box<S> {
    fn last_counter(&self, pendant: DeviceId) -> Result<Option<u32>, RadioError> {
        (**self).last_counter(pendant)
    }
    fn save_counter(&mut self, pendant: DeviceId, counter: u32) -> Result<(), RadioError> {
        (**self).save_counter(pendant, counter)
    }
    fn paired_keys(&self) -> Result<Vec<(DeviceId, PendantKey)>, RadioError> {
        (**self).paired_keys()
    }
    fn save_paired_key(&mut self, pendant: DeviceId, key: &PendantKey) -> Result<(), RadioError> {
        (**self).save_paired_key(pendant, key)
    }
}

/// A small text file store (`counter <id> <n>` and `key <id> <hex>` lines), rewritten
/// atomically (write, fsync, rename) on every change. File mode 0600: it holds keys.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    inner: MemoryStore,
}

impl FileStore {
    /// Opens the store at `path`, creating it empty if it does not exist.
    pub fn open(path: &Path) -> Result<FileStore, RadioError> {
        let mut inner = MemoryStore::new();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for (n, line) in text.lines().enumerate() {
                    let bad = || {
                        RadioError::Store(format!("{}:{}: unreadable line", path.display(), n + 1))
                    };
                    let parts: Vec<&str> = line.split_whitespace().collect();
                    match parts.as_slice() {
                        [] => {}
                        ["counter", id, c] => {
                            let id: DeviceId = id.parse().map_err(|_| bad())?;
                            inner.counters.insert(id, c.parse().map_err(|_| bad())?);
                        }
                        ["key", id, k] => {
                            let id: DeviceId = id.parse().map_err(|_| bad())?;
                            inner
                                .keys
                                .insert(id, PendantKey::from_hex(k).map_err(|_| bad())?);
                        }
                        _ => return Err(bad()),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RadioError::io(format!("reading {}", path.display()), e)),
        }
        Ok(FileStore {
            path: path.to_path_buf(),
            inner,
        })
    }

    fn write(&self) -> Result<(), RadioError> {
        let mut text = String::new();
        for (id, key) in &self.inner.keys {
            text.push_str(&format!("key {id} {}\n", key.to_hex()));
        }
        for (id, c) in &self.inner.counters {
            text.push_str(&format!("counter {id} {c}\n"));
        }
        let tmp = self.path.with_extension("tmp");
        let ctx = |what: &str| format!("{what} {}", tmp.display());
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .map_err(|e| RadioError::io(ctx("creating"), e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| RadioError::io(ctx("writing"), e))?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| RadioError::io(format!("replacing {}", self.path.display()), e))
    }
}

impl PendantStore for FileStore {
    fn last_counter(&self, pendant: DeviceId) -> Result<Option<u32>, RadioError> {
        self.inner.last_counter(pendant)
    }

    fn save_counter(&mut self, pendant: DeviceId, counter: u32) -> Result<(), RadioError> {
        self.inner.save_counter(pendant, counter)?;
        self.write()
    }

    fn paired_keys(&self) -> Result<Vec<(DeviceId, PendantKey)>, RadioError> {
        self.inner.paired_keys()
    }

    fn save_paired_key(&mut self, pendant: DeviceId, key: &PendantKey) -> Result<(), RadioError> {
        self.inner.save_paired_key(pendant, key)?;
        self.write()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_survives_reopening_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("radio.state");
        let mut s = FileStore::open(&path).unwrap();
        s.save_paired_key(DeviceId(0xAB), &PendantKey::new([9; 32]))
            .unwrap();
        s.save_counter(DeviceId(0xAB), 41).unwrap();
        let s = FileStore::open(&path).unwrap();
        assert_eq!(s.last_counter(DeviceId(0xAB)).unwrap(), Some(41));
        assert_eq!(
            s.paired_keys().unwrap(),
            vec![(DeviceId(0xAB), PendantKey::new([9; 32]))]
        );
        std::fs::write(&path, "key zz 00\n").unwrap();
        assert!(FileStore::open(&path).is_err());
    }

    #[test]
    fn pairing_anew_forgets_the_old_counter() {
        let mut s = MemoryStore::new();
        s.save_counter(DeviceId(1), 500).unwrap();
        s.save_paired_key(DeviceId(1), &PendantKey::new([1; 32]))
            .unwrap();
        assert_eq!(s.last_counter(DeviceId(1)).unwrap(), None);
    }
}
