//! NICKNAME (RFC 7701 §7): the checks that need no focus, the question to the module's focus
//! socket, its verdict (or the timeout, 500) passed on to the requester, and the display name the
//! switch then enforces in CPIM From.
use super::*;

impl<O: Outlet> Switch<O> {
    /// Questions to the focus not answered yet (neither by the focus nor by the timeout).
    pub fn focus_pending(&self) -> usize {
        self.asked.values().filter(|a| a.answer.is_some()).count()
    }

    /// The focus's answer to question `id` (or the driver's verdict that none will come).
    ///
    /// A 200 changes the display name the relay enforces in CPIM From to the one the focus
    /// recorded — even when the NICKNAME can no longer be answered (connection gone, or already
    /// answered 500 on the timeout): the focus's table changed, and the relay must agree with it.
    /// 403, 424 and 425 are passed on; anything else (404 unknown session, other codes, no
    /// usable answer) is logged and answered 500. Answers for a connection that is gone are
    /// dropped, as are answers to unknown or forgotten questions.
    /// (`_now`: answers need no clock; the parameter keeps the inputs uniform.)
    pub fn handle_focus_answer(&mut self, _now: Instant, id: AskId, outcome: NicknameVerdict) {
        let Some(a) = self.asked.remove(&id) else {
            tracing::info!(id, outcome = ?outcome, "focus answer to an unknown or expired question; ignored");
            return;
        };
        let code = match outcome {
            NicknameVerdict::Named(name) => {
                if self.registry.set_display_name(&a.session, name.clone()) {
                    tracing::info!(session = %a.session, nickname = ?name, "nickname set by the focus");
                } else {
                    tracing::info!(session = %a.session, "nickname set by the focus for a session that left");
                }
                200
            }
            NicknameVerdict::Refused { code, message } => match code {
                403 | 424 | 425 => code,
                _ => {
                    Metrics::add(&self.metrics.focus_failures, 1);
                    tracing::warn!(session = %a.session, code, message = %message, "the focus refused a NICKNAME with an unexpected code; answering 500");
                    500
                }
            },
            NicknameVerdict::Failed(why) => {
                Metrics::add(&self.metrics.focus_failures, 1);
                tracing::warn!(session = %a.session, why = %why, "no usable answer from the focus; answering 500");
                500
            }
        };
        let Some(ans) = a.answer else {
            tracing::warn!(session = %a.session, code, "late focus answer (the NICKNAME was already answered 500)");
            return;
        };
        if !self.conns.contains_key(&a.conn) {
            tracing::debug!(conn = a.conn, session = %a.session, code, "focus answer for a connection that is gone; dropped");
            return;
        }
        if code != 200 {
            tracing::info!(conn = a.conn, tid = %ans.tid, code, "NICKNAME refused");
        }
        self.respond(a.conn, &ans.tid, ans.reply, &ans.to, &ans.from, code);
    }

    /// NICKNAME questions past their deadline: answered 500, then remembered for
    /// [`LATE_ANSWER_WINDOW`] (a late 200 still renames), then forgotten.
    pub(super) fn nickname_timeouts_due(&mut self, now: Instant) {
        let due: Vec<AskId> = self
            .asked
            .iter()
            .filter(|(_, a)| now >= a.deadline)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let Some(a) = self.asked.get_mut(&id) else {
                continue;
            };
            let Some(ans) = a.answer.take() else {
                self.asked.remove(&id);
                continue;
            };
            a.deadline = now + LATE_ANSWER_WINDOW;
            let (conn, session) = (a.conn, a.session.clone());
            Metrics::add(&self.metrics.focus_failures, 1);
            tracing::warn!(conn, session = %session, id, "the focus did not answer a NICKNAME in time; answering 500");
            if self.conns.contains_key(&conn) {
                self.respond(conn, &ans.tid, ans.reply, &ans.to, &ans.from, 500);
            }
        }
    }

    /// Asks the focus to decide a NICKNAME whose end-line arrived; the answer waits in
    /// [`Switch::asked`] until [`Switch::handle_focus_answer`] or the deadline.
    pub(super) fn ask_nickname(
        &mut self,
        now: Instant,
        conn: ConnId,
        answer: PendingAnswer,
        session: String,
        conference: String,
        nickname: String,
    ) {
        let id = self.next_ask;
        self.next_ask += 1;
        let tid = answer.tid.clone();
        self.asked.insert(
            id,
            Asked {
                conn,
                session: session.clone(),
                answer: Some(answer),
                deadline: now + self.cfg.focus_timeout,
            },
        );
        Metrics::add(&self.metrics.focus_requests, 1);
        tracing::debug!(conn, tid = %tid, id, session = %session, "asking the focus for a nickname");
        self.actions.push_back(Action::AskFocus(NicknameAsk {
            id,
            conn,
            transaction_id: tid,
            session,
            conference,
            nickname,
        }));
    }

    /// NICKNAME (RFC 7701 §7): what needs no focus is checked here (403 nicknames not
    /// negotiated or no focus, 424 missing, malformed or over-long Use-Nickname); the rest — the
    /// name's validity by the group's rules and whether it is free — is the focus's decision,
    /// asked at the request's end-line.
    pub(super) fn on_nickname(&mut self, conn: ConnId, head: &RequestHead) {
        let Some(session) = self.session_of(conn).map(str::to_string) else {
            return self.refuse_current(conn, refuse(481, "not bound"));
        };
        let Some(p) = self.registry.get(&session) else {
            return self.refuse_current(conn, refuse(481, "not registered"));
        };
        let advertised = p
            .chatroom
            .iter()
            .any(|t| t.eq_ignore_ascii_case("nickname") || t.eq_ignore_ascii_case("nicknames"));
        if !advertised {
            return self.refuse_current(conn, refuse(403, "nicknames not negotiated"));
        }
        if !self.cfg.focus_socket {
            return self.refuse_current(conn, refuse(403, "nicknames need the focus"));
        }
        let conference = p.conference.clone();
        let Some(nick) = head.use_nickname.clone() else {
            return self.refuse_current(conn, refuse(424, "missing or malformed Use-Nickname"));
        };
        if nick.len() > MAX_NICKNAME_OCTETS {
            return self.refuse_current(conn, refuse(424, "nickname over 1023 octets"));
        }
        if nick.chars().any(char::is_control) {
            return self.refuse_current(conn, refuse(424, "control character in nickname"));
        }
        let waiting = self
            .asked
            .values()
            .filter(|a| a.conn == conn && a.answer.is_some())
            .count();
        if waiting >= MAX_FOCUS_ASKS_PER_CONNECTION {
            return self.refuse_current(conn, refuse(500, "too many NICKNAME requests pending"));
        }
        self.set_rx(
            conn,
            RxWhat::AskFocus {
                session,
                conference,
                nickname: nick,
            },
        );
    }
}
