//! Locks that outlive a panic.
//!
//! A thread that panics while it holds a `std::sync::Mutex` poisons it; the data behind it is
//! still whole in every lock the unit uses (maps of waiters, counters, settings). Skipping the
//! work when the lock is poisoned would be silent: an acknowledgement that reaches no waiter,
//! a registration never recorded. So every lock is taken through [`lock`], which goes on
//! with the data as it is.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking over the data of a lock poisoned by a panic.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_gives_its_data() {
        let m = std::sync::Arc::new(Mutex::new(vec![1]));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poisons the lock");
        })
        .join();
        assert!(m.is_poisoned());
        lock(&m).push(2);
        assert_eq!(*lock(&m), vec![1, 2]);
    }
}
