//! Keeping the registry in step with the module's alias table, sans-IO: the resync that rebuilds
//! it after a restart (`chat_alias.sessions`, paged) and the periodic convergence check
//! (`chat_alias.missing`) that closes sessions the module no longer has. Also where every answer
//! from the module's focus socket comes in ([`Switch::handle_focus_reply`]) and is routed to the
//! question it answers, by id.
//!
//! Both are questions like the NICKNAME ones: the switch emits [`Action::QueryFocus`], the driver
//! sends it and feeds back the [`Reply`] (or [`Switch::handle_focus_unreachable`] when it could
//! not be sent); deadlines are part of [`Switch::poll_timeout`] and run in
//! [`Switch::handle_timeout`].
use super::{Action, AskId, Outlet, Switch};
use chat_alias_proto::control::focus_socket::{Question, Reply, SessionRecord, MAX_CHECK};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Records asked per `chat_alias.sessions` page (the most the module sends in one datagram).
pub const PAGE: u64 = chat_alias_proto::control::focus_socket::MAX_PAGE as u64;
/// Each page starts this many records before the end of the previous one: participants who left
/// between two pages shift the listing, and re-reading a few known sessions is harmless.
pub const OVERLAP: u64 = 4;
/// Sessions asked about in one `chat_alias.missing` question (the module answers at most that).
pub const CHECK_BATCH: usize = MAX_CHECK;
/// How often the relay asks the module which of its sessions the alias table still has: a
/// session the module no longer has (a leave lost in transit, a restarted Kamailio) is closed
/// within two periods.
pub const CHECK_EVERY: Duration = Duration::from_secs(4);
/// The shortest time a resync page or a convergence batch is waited for, whatever
/// `focus_timeout` says (a page is bigger than a NICKNAME answer).
pub const MIN_SYNC_TIMEOUT: Duration = Duration::from_secs(1);

/// A resync in progress.
#[derive(Debug)]
pub(super) struct Resync {
    /// The page asked and until when its answer is awaited.
    id: AskId,
    offset: u64,
    deadline: Instant,
    added: usize,
    /// The sessions that left while it runs: a page read before the leave must not bring them
    /// back.
    left: HashSet<String>,
}

/// A convergence round in progress: the batch awaiting its answer and the sessions still to ask
/// about.
#[derive(Debug)]
pub(super) struct Check {
    id: AskId,
    asked: HashSet<String>,
    rest: Vec<(String, String)>,
    deadline: Instant,
    closed: usize,
}

/// The registry's side of the module's state: the resync and convergence rounds, and when the
/// next round starts.
#[derive(Debug, Default)]
pub(super) struct Sync {
    resync: Option<Resync>,
    check: Option<Check>,
    next_check: Option<Instant>,
}

impl Sync {
    /// The next deadline of either round (and the next round's start).
    pub(super) fn deadline(&self) -> Option<Instant> {
        [
            self.resync.as_ref().map(|r| r.deadline),
            self.check.as_ref().map(|c| c.deadline),
            self.next_check,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A session left (control `leave`, or closed by a convergence check).
    pub(super) fn left(&mut self, session: &str) {
        if let Some(r) = self.resync.as_mut() {
            r.left.insert(session.to_string());
        }
    }
}

impl<O: Outlet> Switch<O> {
    fn sync_timeout(&self) -> Duration {
        self.cfg.focus_timeout.max(MIN_SYNC_TIMEOUT)
    }

    fn query_focus(&mut self, question: Question) -> AskId {
        let id = self.next_ask;
        self.next_ask += 1;
        self.actions.push_back(Action::QueryFocus { id, question });
        id
    }

    /// Whether a resync is running.
    pub fn resyncing(&self) -> bool {
        self.sync.resync.is_some()
    }

    /// Rebuilds the registry from the module's alias table (a restarted relay knows nobody): at
    /// start-up and on the first control connection (Kamailio may start after the relay).
    /// Nothing happens without a focus socket or while a resync runs.
    pub fn handle_resync_request(&mut self, now: Instant) {
        if !self.cfg.focus_socket || self.sync.resync.is_some() {
            return;
        }
        self.arm_check(now);
        let id = self.query_focus(Question::Sessions {
            offset: 0,
            limit: PAGE,
        });
        tracing::debug!(id, "resync: asking the focus for its sessions");
        self.sync.resync = Some(Resync {
            id,
            offset: 0,
            deadline: now + self.sync_timeout(),
            added: 0,
            left: HashSet::new(),
        });
    }

    fn arm_check(&mut self, now: Instant) {
        if self.cfg.focus_socket && self.sync.next_check.is_none() {
            self.sync.next_check = Some(now + CHECK_EVERY);
        }
    }

    /// An answer from the module's focus socket, matched to its question by id: a NICKNAME
    /// verdict, a resync page, or a convergence batch. Answers to questions that are not
    /// awaited (late, unknown) are dropped.
    pub fn handle_focus_reply(&mut self, now: Instant, reply: Reply) {
        let id = reply.id;
        if self.asked.contains_key(&id) {
            return self.handle_focus_answer(now, id, reply.nickname());
        }
        if self.sync.resync.as_ref().is_some_and(|r| r.id == id) {
            return self.on_page(now, &reply);
        }
        if self.sync.check.as_ref().is_some_and(|c| c.id == id) {
            return self.on_missing(now, &reply);
        }
        tracing::debug!(id, "late or unknown answer from the focus; ignored");
    }

    /// The driver could not send question `id` (no reply socket, the focus socket is gone, its
    /// buffer is full): a NICKNAME is answered 500 at once, a resync or convergence round ends.
    pub fn handle_focus_unreachable(&mut self, now: Instant, id: AskId, why: String) {
        if self.asked.contains_key(&id) {
            return self.handle_focus_answer(
                now,
                id,
                chat_alias_proto::control::focus_socket::NicknameVerdict::Failed(why),
            );
        }
        if self.sync.resync.as_ref().is_some_and(|r| r.id == id) {
            tracing::info!(why = %why, "focus not reachable; registry not rebuilt (retried on the first control connection)");
            self.sync.resync = None;
        } else if self.sync.check.as_ref().is_some_and(|c| c.id == id) {
            tracing::debug!(why = %why, "focus not reachable; convergence check skipped");
            self.sync.check = None;
        }
    }

    /// A resync page arrived: registers what it lists and asks for the next one, until a page is
    /// short.
    fn on_page(&mut self, now: Instant, reply: &Reply) {
        let Some(mut st) = self.sync.resync.take() else {
            return;
        };
        match reply.sessions() {
            Ok((page, n)) => {
                st.added += self.restore(now, &st.left, page);
                if n < PAGE {
                    tracing::info!(restored = st.added, "registry rebuilt from the focus");
                    return;
                }
                st.offset += n - OVERLAP;
                st.id = self.query_focus(Question::Sessions {
                    offset: st.offset,
                    limit: PAGE,
                });
                st.deadline = now + self.sync_timeout();
                self.sync.resync = Some(st);
            }
            Err(e) => tracing::warn!(error = %e, "resync refused by the focus"),
        }
    }

    /// Registers what a page lists, never overriding a session the relay knows (a live `join`
    /// registered it) and never bringing back one that left while the resync ran. Returns how
    /// many were registered.
    fn restore(&mut self, now: Instant, left: &HashSet<String>, page: Vec<SessionRecord>) -> usize {
        let mut added = 0;
        for r in page {
            if left.contains(&r.session) || self.registry.get(&r.session).is_some() {
                continue;
            }
            let session = r.session.clone();
            match self.join_at(now, r) {
                Ok(()) => {
                    tracing::info!(session = %session, "participant restored from the focus");
                    added += 1;
                }
                Err(e) => {
                    tracing::warn!(session = %session, error = %e, "cannot restore a session")
                }
            }
        }
        added
    }

    /// Starts a convergence round over every registered session, one batch at a time.
    fn begin_check(&mut self, now: Instant) {
        let mut st = Check {
            id: 0,
            asked: HashSet::new(),
            rest: self.registry.sessions(),
            deadline: now,
            closed: 0,
        };
        if self.ask_check(now, &mut st) {
            self.sync.check = Some(st);
        }
    }

    /// Asks about the next batch of `st`; false when the round is over.
    fn ask_check(&mut self, now: Instant, st: &mut Check) -> bool {
        if st.rest.is_empty() {
            return false;
        }
        let at = st.rest.len().saturating_sub(CHECK_BATCH);
        let batch = st.rest.split_off(at);
        st.asked = batch.iter().map(|(_, s)| s.clone()).collect();
        st.id = self.query_focus(Question::Missing { sessions: batch });
        st.deadline = now + self.sync_timeout();
        true
    }

    /// A convergence batch was answered: closes what the answer names, but only sessions of the
    /// batch asked (nothing else can be judged by this answer). Session ids are fresh random
    /// values per join, and the module puts a participant in its table before telling the
    /// relay, so a session asked about and missing from the table is gone for good. An error
    /// answer closes nothing and ends the round.
    fn on_missing(&mut self, now: Instant, reply: &Reply) {
        let Some(mut st) = self.sync.check.take() else {
            return;
        };
        let Some(missing) = reply.missing() else {
            tracing::debug!(answer = %reply.body(), "convergence check refused by the focus");
            return;
        };
        for s in missing.into_iter().filter(|s| st.asked.contains(s)) {
            if let Some(p) = self.leave(&s) {
                tracing::info!(session = %s, conference = %p.conference, "session unknown to the focus closed");
                st.closed += 1;
            }
        }
        if self.ask_check(now, &mut st) {
            self.sync.check = Some(st);
        } else if st.closed > 0 {
            tracing::info!(
                closed = st.closed,
                "sessions the focus no longer has were closed"
            );
        }
    }

    /// The resync and convergence timers due at `now`: an unanswered page ends the resync, an
    /// unanswered batch ends the round, and a new round starts every [`CHECK_EVERY`] (unless
    /// one of either kind runs).
    pub(super) fn sync_timeout_due(&mut self, now: Instant) {
        if self.sync.resync.as_ref().is_some_and(|r| now >= r.deadline) {
            tracing::warn!("the focus did not answer a resync request; registry not rebuilt");
            self.sync.resync = None;
        }
        if self.sync.check.as_ref().is_some_and(|c| now >= c.deadline) {
            tracing::debug!("the focus did not answer a convergence check; asked again later");
            self.sync.check = None;
        }
        self.arm_check(now);
        if self.sync.next_check.is_some_and(|t| now >= t) {
            self.sync.next_check = Some(now + CHECK_EVERY);
            if self.sync.check.is_none() && self.sync.resync.is_none() {
                self.begin_check(now);
            }
        }
    }
}

#[cfg(test)]
mod tests;
