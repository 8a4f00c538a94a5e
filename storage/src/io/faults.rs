//! `Faults`: deterministic fault injection and operation counters for one `IoEngine`.
//!
//! Every engine carries a `Faults` handle ([`IoEngine::faults`](super::IoEngine::faults));
//! with no rule set it only counts. Rules are counter-based, never random: "the nth
//! write from now" means the nth `write_at` (or `write_at_and_sync`) issued after the
//! rule is set, counting from 1. A rule applies to the io_uring path and to the blocking
//! fallback alike, because the engine consults it before choosing a path.
//!
//! Invariants:
//! - Counters only grow, by exactly one per operation issued (a `write_at_and_sync`
//!   counts one write and one sync), whether or not a fault fires.
//! - A failed write touches no byte on disk; a torn write lands exactly its prefix.
//! - At most one rule per operation kind; setting one replaces the previous one.
//!
//! Owned by the engine's shard thread (`!Send`); clones share one state.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// What a fired rule does to one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Fail with this errno before touching the disk.
    Fail(i32),
    /// Write only this many leading bytes, then fail with EIO (a crash mid-write).
    Tear(usize),
}

#[derive(Clone, Copy, Debug)]
struct Rule {
    /// Counter value (1-based, absolute) of the first operation it hits.
    first: u64,
    /// Hits every operation from `first` on, not only `first`.
    sticky: bool,
    action: Action,
}

impl Rule {
    fn hits(&self, n: u64) -> bool {
        n == self.first || (self.sticky && n > self.first)
    }
}

#[derive(Default)]
struct Kind {
    issued: u64,
    rule: Option<Rule>,
    delay: Option<Duration>,
}

impl Kind {
    fn next(&mut self) -> Decision {
        self.issued += 1;
        Decision {
            action: self.rule.filter(|r| r.hits(self.issued)).map(|r| r.action),
            delay: self.delay,
        }
    }

    fn set(&mut self, nth: u64, sticky: bool, action: Action) {
        self.rule = Some(Rule {
            first: self.issued + nth.max(1),
            sticky,
            action,
        });
    }
}

/// The engine's verdict on one operation.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Decision {
    pub action: Option<Action>,
    /// Hold the completion back this long after the operation finishes.
    pub delay: Option<Duration>,
}

impl Decision {
    pub async fn finish<T>(self, result: std::io::Result<T>) -> std::io::Result<T> {
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        result
    }
}

#[derive(Default)]
struct State {
    writes: Kind,
    syncs: Kind,
    reads: Kind,
}

/// Handle on an engine's fault rules and counters. Cheap to clone.
#[derive(Clone, Default)]
pub struct Faults(Rc<RefCell<State>>);

impl Faults {
    /// Fails the `nth` write from now (1 = the next one) with `errno`, once.
    pub fn fail_write(&self, nth: u64, errno: i32) {
        self.0
            .borrow_mut()
            .writes
            .set(nth, false, Action::Fail(errno));
    }

    /// Fails every write from the `nth` from now on with `errno` (a full disk).
    pub fn fail_writes_from(&self, nth: u64, errno: i32) {
        self.0
            .borrow_mut()
            .writes
            .set(nth, true, Action::Fail(errno));
    }

    /// Tears the `nth` write from now: only its first `at_byte` bytes reach the file,
    /// then it fails with EIO.
    pub fn tear_write(&self, nth: u64, at_byte: usize) {
        self.0
            .borrow_mut()
            .writes
            .set(nth, false, Action::Tear(at_byte));
    }

    /// Fails the `nth` fsync/fdatasync from now with `errno`, once.
    pub fn fail_sync(&self, nth: u64, errno: i32) {
        self.0
            .borrow_mut()
            .syncs
            .set(nth, false, Action::Fail(errno));
    }

    /// Fails every sync from the `nth` from now on with `errno`.
    pub fn fail_syncs_from(&self, nth: u64, errno: i32) {
        self.0
            .borrow_mut()
            .syncs
            .set(nth, true, Action::Fail(errno));
    }

    /// Fails the `nth` read from now with `errno`, once.
    pub fn fail_read(&self, nth: u64, errno: i32) {
        self.0
            .borrow_mut()
            .reads
            .set(nth, false, Action::Fail(errno));
    }

    /// Delays every later write's completion by `d` (None: no delay).
    pub fn delay_writes(&self, d: Option<Duration>) {
        self.0.borrow_mut().writes.delay = d;
    }

    /// Delays every later sync's completion by `d` (None: no delay).
    pub fn delay_syncs(&self, d: Option<Duration>) {
        self.0.borrow_mut().syncs.delay = d;
    }

    /// Delays every later read's completion by `d` (None: no delay).
    pub fn delay_reads(&self, d: Option<Duration>) {
        self.0.borrow_mut().reads.delay = d;
    }

    /// Drops every rule and delay (space returns, the disk heals). Counters stay.
    pub fn clear(&self) {
        let st = &mut *self.0.borrow_mut();
        for k in [&mut st.writes, &mut st.syncs, &mut st.reads] {
            k.rule = None;
            k.delay = None;
        }
    }

    /// Writes issued so far (`write_at` and `write_at_and_sync` calls).
    pub fn writes(&self) -> u64 {
        self.0.borrow().writes.issued
    }

    /// fsync/fdatasync operations issued so far.
    pub fn syncs(&self) -> u64 {
        self.0.borrow().syncs.issued
    }

    /// Reads issued so far (`read_at` calls).
    pub fn reads(&self) -> u64 {
        self.0.borrow().reads.issued
    }

    pub(crate) fn on_write(&self) -> Decision {
        self.0.borrow_mut().writes.next()
    }

    pub(crate) fn on_sync(&self) -> Decision {
        self.0.borrow_mut().syncs.next()
    }

    pub(crate) fn on_read(&self) -> Decision {
        self.0.borrow_mut().reads.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_count_from_when_they_are_set() {
        let f = Faults::default();
        assert!(f.on_write().action.is_none());
        f.fail_write(2, libc::EIO);
        assert!(f.on_write().action.is_none());
        assert_eq!(f.on_write().action, Some(Action::Fail(libc::EIO)));
        assert!(f.on_write().action.is_none(), "once");
        f.fail_writes_from(1, libc::ENOSPC);
        for _ in 0..3 {
            assert_eq!(f.on_write().action, Some(Action::Fail(libc::ENOSPC)));
        }
        f.clear();
        assert!(f.on_write().action.is_none());
        assert_eq!((f.writes(), f.syncs(), f.reads()), (8, 0, 0));
        f.tear_write(1, 10);
        assert_eq!(f.on_write().action, Some(Action::Tear(10)));
        f.delay_reads(Some(Duration::from_millis(5)));
        assert_eq!(f.on_read().delay, Some(Duration::from_millis(5)));
        assert!(f.on_sync().delay.is_none());
    }
}
