//! Which registered sessions have no MSRP connection bound, and since when: the focus asks
//! (control `idle`) for those past its limits and ends their SIP dialogs, so that a place in a
//! conference is never held by a participant who cannot be reached (a client that never connected,
//! or one killed without a BYE).
//!
//! Sans-IO: time comes in as `now`. Every operation is O(log n) in the sessions waiting, and a
//! query costs O(log n + k) for k sessions reported, whatever the number of live sessions.
use chat_alias_proto::control::IdleReason;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Liveness {
    /// Session → since when it has been without a connection, and why.
    waiting: HashMap<String, (Instant, IdleReason)>,
    never_bound: BTreeSet<(Instant, String)>,
    gone: BTreeSet<(Instant, String)>,
    /// Sessions whose connection closed at a moment the caller had no clock for (a connection's
    /// end is reported without one); stamped by the next call that has the time. The error is at
    /// most the interval between such calls (the relay's timer runs several times a second).
    unstamped: HashSet<String>,
}

impl Liveness {
    fn set(&mut self, kind: IdleReason) -> &mut BTreeSet<(Instant, String)> {
        match kind {
            IdleReason::NeverBound => &mut self.never_bound,
            IdleReason::Gone => &mut self.gone,
        }
    }

    fn insert(&mut self, now: Instant, session: &str, kind: IdleReason) {
        self.remove(session);
        self.waiting.insert(session.to_string(), (now, kind));
        self.set(kind).insert((now, session.to_string()));
    }

    fn remove(&mut self, session: &str) {
        self.unstamped.remove(session);
        if let Some((since, kind)) = self.waiting.remove(session) {
            self.set(kind).remove(&(since, session.to_string()));
        }
    }

    /// A session was registered (its first join): it has not bound yet.
    pub fn registered(&mut self, now: Instant, session: &str) {
        self.stamp(now);
        self.insert(now, session, IdleReason::NeverBound);
    }

    /// A connection bound the session.
    pub fn bound(&mut self, session: &str) {
        self.remove(session);
    }

    /// The session's connection went away while the session stays registered.
    pub fn unbound(&mut self, session: &str) {
        self.remove(session);
        self.unstamped.insert(session.to_string());
    }

    /// The session left: nothing more to watch.
    pub fn forget(&mut self, session: &str) {
        self.remove(session);
    }

    /// Gives the sessions unbound without a clock the time `now`.
    pub fn stamp(&mut self, now: Instant) {
        for s in std::mem::take(&mut self.unstamped) {
            self.insert(now, &s, IdleReason::Gone);
        }
    }

    /// At most `max` sessions past their limit, oldest first within each reason (never bound
    /// first): (session, reason, how long without a connection).
    pub fn overdue(
        &mut self,
        now: Instant,
        bind_timeout: Duration,
        gone_timeout: Duration,
        max: usize,
    ) -> Vec<(String, IdleReason, Duration)> {
        self.stamp(now);
        let mut out = Vec::new();
        for (set, limit, kind) in [
            (&self.never_bound, bind_timeout, IdleReason::NeverBound),
            (&self.gone, gone_timeout, IdleReason::Gone),
        ] {
            for (since, s) in set.iter() {
                let idle = now.saturating_duration_since(*since);
                if out.len() >= max || idle < limit {
                    break;
                }
                out.push((s.clone(), kind, idle));
            }
        }
        out
    }

    /// Sessions being watched.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiting.len() + self.unstamped.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn names(v: &[(String, IdleReason, Duration)]) -> Vec<(&str, IdleReason)> {
        v.iter().map(|(s, k, _)| (s.as_str(), *k)).collect()
    }

    #[test]
    fn never_bound_is_reported_after_the_bind_timeout_only() {
        let t0 = Instant::now();
        let mut l = Liveness::default();
        l.registered(t0, "a");
        l.registered(t0 + S, "b");
        assert!(l.overdue(t0 + 29 * S, 30 * S, 60 * S, 10).is_empty());
        let got = l.overdue(t0 + 30 * S, 30 * S, 60 * S, 10);
        assert_eq!(names(&got), vec![("a", IdleReason::NeverBound)]);
        assert_eq!(got[0].2, 30 * S);
        // Asking changes nothing; a bound session is never reported.
        l.bound("b");
        let got = l.overdue(t0 + 100 * S, 30 * S, 60 * S, 10);
        assert_eq!(names(&got), vec![("a", IdleReason::NeverBound)]);
        l.forget("a");
        assert!(l.overdue(t0 + 100 * S, 30 * S, 60 * S, 10).is_empty());
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn gone_counts_from_the_first_clock_after_the_close_and_a_rebind_clears_it() {
        let t0 = Instant::now();
        let mut l = Liveness::default();
        l.registered(t0, "a");
        l.registered(t0, "b");
        l.bound("a");
        l.bound("b");
        l.unbound("a");
        l.unbound("b");
        l.stamp(t0 + 10 * S);
        // b reconnects in time.
        l.bound("b");
        assert!(l.overdue(t0 + 69 * S, 30 * S, 60 * S, 10).is_empty());
        let got = l.overdue(t0 + 70 * S, 30 * S, 60 * S, 10);
        assert_eq!(names(&got), vec![("a", IdleReason::Gone)]);
        // A rebind of a after the limit also clears it.
        l.bound("a");
        assert!(l.overdue(t0 + 200 * S, 30 * S, 60 * S, 10).is_empty());
    }

    #[test]
    fn answers_are_bounded_and_oldest_first() {
        let t0 = Instant::now();
        let mut l = Liveness::default();
        for i in 0..100u32 {
            l.registered(
                t0 + Duration::from_millis(u64::from(i)),
                &format!("s{i:03}"),
            );
        }
        let got = l.overdue(t0 + 60 * S, 30 * S, 60 * S, 5);
        assert_eq!(
            got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
            vec!["s000", "s001", "s002", "s003", "s004"]
        );
        // Unbound without a clock and bound again before any clock: never reported.
        l.registered(t0, "x");
        l.bound("x");
        l.unbound("x");
        l.bound("x");
        assert!(l
            .overdue(t0 + 1000 * S, 3000 * S, S, 1000)
            .iter()
            .all(|g| g.0 != "x"));
    }
}
