//! The join's SIP user agent client, sans-IO (RFC 3261 §17.1 client transactions, §12–§15
//! dialog, ACK and BYE).
//!
//! [`Uac`] takes `now` and whole messages and hands back bytes to send, the next deadline and
//! events, in the four kinds of methods of quinn-proto:
//! - getters: [`Uac::call_id`], [`Uac::is_established`], [`Uac::is_done`];
//! - commands: [`Uac::start`] (send the INVITE), [`Uac::leave`] (BYE, or give up a pending join);
//! - inputs: [`Uac::handle_message`], [`Uac::handle_timeout`];
//! - outputs, to poll after every input or command: [`Uac::poll_transmit`] (datagrams or stream
//!   writes, in order), [`Uac::poll_timeout`], [`Uac::poll_event`].
//!
//! Timers: over UDP the INVITE is retransmitted at T1, 2·T1, 4·T1, … (timer A) until a
//! provisional or final response; the BYE at T1 doubling up to T2 (timer E, T2 after a
//! provisional). Over TCP nothing is retransmitted. Timer B (INVITE) and F (BYE), 64·T1, end the
//! wait with a locally generated 408. RFC 3261 leaves an INVITE in Proceeding without a timer; this
//! client keeps timer B running there too, so a join never waits longer than 64·T1 in all.
//! A 2xx is ACKed end to end (new branch, its own transaction) and re-ACKed whenever it is
//! retransmitted; a non-2xx final response is ACKed within the INVITE transaction (same branch).
use super::message::{SipMessage, StartLine};
use super::Transport;
use crate::identity::Identity;
use crate::random;
use chat_alias_proto::sip as psip;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What the UAC puts in its INVITE (the alias table has its own `JoinRequest`: what the focus
/// learned from such an INVITE).
#[derive(Debug, Clone)]
pub struct InviteParams {
    /// The group URI: Request-URI and To.
    pub group: String,
    /// The From identity: `"alias" <sip:anonymous@anonymous.invalid>` for an anonymous join, the
    /// user's address (and display name) otherwise.
    pub from: Identity,
    /// Adds `Privacy: id` (RFC 3325 §9.3).
    pub privacy: bool,
    /// The P-Asserted-Identity URI, as the trusted network would add it (RFC 3325).
    pub asserted_identity: Option<String>,
    pub transport: Transport,
    /// The local address: Via sent-by and Contact.
    pub local: SocketAddr,
    /// The SDP offer.
    pub offer: String,
    /// RFC 3261 T1 (500 ms) and T2 (4 s).
    pub t1: Duration,
    pub t2: Duration,
}

impl InviteParams {
    pub const T1: Duration = Duration::from_millis(500);
    pub const T2: Duration = Duration::from_secs(4);
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UacEvent {
    /// A 1xx to the INVITE.
    Provisional { code: u16, reason: String },
    /// The 2xx to the INVITE, already ACKed: the dialog is established.
    Answered(SipMessage),
    /// A non-2xx final response to the INVITE (ACKed), or no final response before timer B
    /// (`local`: a 408 generated here).
    Refused {
        code: u16,
        reason: String,
        local: bool,
    },
    /// The final response to our BYE, or none before timer F (`local` 408).
    Left {
        code: u16,
        reason: String,
        local: bool,
    },
    /// The server ended the dialog (its BYE was answered 200).
    EndedByPeer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// INVITE sent, nothing heard.
    Calling,
    /// A provisional response arrived.
    Proceeding,
    Established,
    /// BYE sent.
    Leaving,
    Done,
}

#[derive(Debug)]
struct ByeTx {
    branch: String,
    cseq: u32,
    bytes: Vec<u8>,
    interval: Duration,
    next_retransmit: Option<Instant>,
    deadline: Instant,
}

#[derive(Debug)]
pub struct Uac {
    req: InviteParams,
    call_id: String,
    local_tag: String,
    /// The From header value with the tag.
    from_value: String,
    invite_branch: String,
    invite_bytes: Vec<u8>,
    state: State,
    /// Leave as soon as possible (asked while the join was pending).
    abandon: bool,
    // The dialog (from the 2xx).
    remote_tag: Option<String>,
    to_value: Option<String>,
    remote_target: String,
    route_set: Vec<String>,
    next_cseq: u32,
    /// The ACK sent for the 2xx (re-sent on a retransmitted 2xx) or for a non-2xx.
    ack: Option<Vec<u8>>,
    /// Timer A: next retransmission and current interval.
    timer_a: Option<(Instant, Duration)>,
    timer_b: Option<Instant>,
    bye: Option<ByeTx>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<UacEvent>,
}

const INVITE_CSEQ: u32 = 1;
const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS";

fn hostport(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v) => format!("{}:{}", v.ip(), v.port()),
        SocketAddr::V6(v) => format!("[{}]:{}", v.ip(), v.port()),
    }
}

fn branch() -> String {
    format!("z9hG4bK{}", random::hex::<12>())
}

impl Uac {
    /// Prepares the join. Refuses a From or P-Asserted-Identity that cannot be written into a
    /// header (control characters in the display name, a malformed URI).
    pub fn new(req: InviteParams) -> Result<Uac, String> {
        psip::parse_uri(&req.group).map_err(|e| format!("group {:?}: {e}", req.group))?;
        let local_tag = random::hex::<8>();
        let from_value = format!(
            "{};tag={local_tag}",
            psip::format_name_addr(req.from.display_name.as_deref(), &req.from.uri)
                .map_err(|e| format!("From {}: {e}", req.from))?
        );
        if let Some(pai) = &req.asserted_identity {
            psip::parse_uri(pai).map_err(|e| format!("identity {pai:?}: {e}"))?;
        }
        let mut uac = Uac {
            call_id: random::hex::<16>(),
            local_tag,
            from_value,
            invite_branch: branch(),
            invite_bytes: Vec::new(),
            state: State::Idle,
            abandon: false,
            remote_tag: None,
            to_value: None,
            remote_target: req.group.clone(),
            route_set: Vec::new(),
            next_cseq: INVITE_CSEQ + 1,
            ack: None,
            timer_a: None,
            timer_b: None,
            bye: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            req,
        };
        uac.invite_bytes = uac.invite().to_bytes();
        Ok(uac)
    }

    // ---- getters

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn local_tag(&self) -> &str {
        &self.local_tag
    }

    /// The dialog is up (2xx received and ACKed, no BYE yet).
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Nothing more will happen: refused, timed out, left, or ended by the server.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The INVITE as first sent.
    pub fn invite_bytes(&self) -> &[u8] {
        &self.invite_bytes
    }

    // ---- commands

    /// Sends the INVITE.
    pub fn start(&mut self, now: Instant) {
        if self.state != State::Idle {
            return;
        }
        self.state = State::Calling;
        self.transmits.push_back(self.invite_bytes.clone());
        if !self.req.transport.is_reliable() {
            self.timer_a = Some((now + self.req.t1, self.req.t1));
        }
        self.timer_b = Some(now + 64 * self.req.t1);
    }

    /// Leaves: BYE when established; while the join is pending, waits for its outcome and sends
    /// BYE right after the ACK if it succeeds.
    pub fn leave(&mut self, now: Instant) {
        match self.state {
            State::Established => self.send_bye(now),
            State::Calling | State::Proceeding => self.abandon = true,
            State::Idle => self.state = State::Done,
            State::Leaving | State::Done => {}
        }
    }

    // ---- inputs

    pub fn handle_message(&mut self, now: Instant, msg: SipMessage) {
        match msg.start {
            StartLine::Response { .. } => self.handle_response(now, msg),
            StartLine::Request { .. } => self.handle_request(msg),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((at, interval)) = self.timer_a {
            if at <= now && self.state == State::Calling {
                self.transmits.push_back(self.invite_bytes.clone());
                let next = interval * 2;
                self.timer_a = Some((now + next, next));
            }
        }
        if let Some(at) = self.timer_b {
            if at <= now && matches!(self.state, State::Calling | State::Proceeding) {
                self.timer_a = None;
                self.timer_b = None;
                self.state = State::Done;
                self.events.push_back(UacEvent::Refused {
                    code: 408,
                    reason: format!(
                        "Request Timeout (no final response within {} s)",
                        (64 * self.req.t1).as_secs()
                    ),
                    local: true,
                });
            }
        }
        let t2 = self.req.t2;
        let mut timed_out = false;
        if let Some(b) = &mut self.bye {
            if b.deadline <= now {
                timed_out = true;
            } else if let Some(at) = b.next_retransmit {
                if at <= now {
                    self.transmits.push_back(b.bytes.clone());
                    b.interval = (b.interval * 2).min(t2);
                    b.next_retransmit = Some(now + b.interval);
                }
            }
        }
        if timed_out && self.state == State::Leaving {
            self.bye = None;
            self.state = State::Done;
            self.events.push_back(UacEvent::Left {
                code: 408,
                reason: format!(
                    "Request Timeout (no answer to the BYE within {} s)",
                    (64 * self.req.t1).as_secs()
                ),
                local: true,
            });
        }
    }

    /// The transport reported a fatal error for what was sent (an ICMP port unreachable on UDP,
    /// a TCP connection lost): RFC 3261 §8.1.3.1 treats it as a 503 for the pending request.
    pub fn handle_transport_error(&mut self, why: &str) {
        let reason = format!("Service Unavailable ({why})");
        match self.state {
            State::Calling | State::Proceeding => {
                self.timer_a = None;
                self.timer_b = None;
                self.state = State::Done;
                self.events.push_back(UacEvent::Refused {
                    code: 503,
                    reason,
                    local: true,
                });
            }
            State::Leaving => {
                self.bye = None;
                self.state = State::Done;
                self.events.push_back(UacEvent::Left {
                    code: 503,
                    reason,
                    local: true,
                });
            }
            _ => {}
        }
    }

    // ---- outputs

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if self.state == State::Calling {
            consider(self.timer_a.map(|(at, _)| at));
        }
        if matches!(self.state, State::Calling | State::Proceeding) {
            consider(self.timer_b);
        }
        if let Some(b) = &self.bye {
            consider(b.next_retransmit);
            consider(Some(b.deadline));
        }
        t
    }

    pub fn poll_event(&mut self) -> Option<UacEvent> {
        self.events.pop_front()
    }

    // ---- internals

    fn base_headers(
        &self,
        branch: &str,
        to: &str,
        cseq: u32,
        method: &str,
    ) -> Vec<(String, String)> {
        let mut h = vec![
            (
                "Via".to_string(),
                format!(
                    "SIP/2.0/{} {};branch={branch};rport",
                    self.req.transport.via(),
                    hostport(self.req.local)
                ),
            ),
            ("Max-Forwards".into(), "70".into()),
            ("From".into(), self.from_value.clone()),
            ("To".into(), to.to_string()),
            ("Call-ID".into(), self.call_id.clone()),
            ("CSeq".into(), format!("{cseq} {method}")),
        ];
        if method != "INVITE" {
            for r in &self.route_set {
                h.push(("Route".into(), r.clone()));
            }
        }
        h
    }

    fn contact(&self) -> String {
        let t = match self.req.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        format!("<sip:{};transport={t}>", hostport(self.req.local))
    }

    fn invite(&self) -> SipMessage {
        let to = format!("<{}>", self.req.group);
        let mut headers = self.base_headers(&self.invite_branch, &to, INVITE_CSEQ, "INVITE");
        headers.push(("Contact".into(), self.contact()));
        if let Some(pai) = &self.req.asserted_identity {
            headers.push(("P-Asserted-Identity".into(), format!("<{pai}>")));
        }
        if self.req.privacy {
            headers.push(("Privacy".into(), "id".into()));
        }
        // The focus answers multipart/mixed (message/cpim + SDP) when it changes the identity
        // (RFC 5621 §4.2: a UA MUST parse multipart bodies; the Accept says so explicitly).
        headers.push((
            "Accept".into(),
            "application/sdp, multipart/mixed, message/cpim".into(),
        ));
        headers.push(("Allow".into(), ALLOW.into()));
        headers.push(("Content-Type".into(), "application/sdp".into()));
        SipMessage {
            start: StartLine::Request {
                method: "INVITE".into(),
                uri: self.req.group.clone(),
            },
            headers,
            body: self.req.offer.clone().into_bytes(),
        }
    }

    fn in_dialog(&self, method: &str, cseq: u32, branch: &str) -> SipMessage {
        let to = self
            .to_value
            .clone()
            .unwrap_or_else(|| format!("<{}>", self.req.group));
        let mut headers = self.base_headers(branch, &to, cseq, method);
        if method != "ACK" {
            headers.push(("Contact".into(), self.contact()));
        }
        SipMessage {
            start: StartLine::Request {
                method: method.into(),
                uri: self.remote_target.clone(),
            },
            headers,
            body: Vec::new(),
        }
    }

    fn send_bye(&mut self, now: Instant) {
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        let br = branch();
        let bytes = self.in_dialog("BYE", cseq, &br).to_bytes();
        self.transmits.push_back(bytes.clone());
        let t1 = self.req.t1;
        self.bye = Some(ByeTx {
            branch: br,
            cseq,
            bytes,
            interval: t1,
            next_retransmit: (!self.req.transport.is_reliable()).then_some(now + t1),
            deadline: now + 64 * t1,
        });
        self.state = State::Leaving;
    }

    fn handle_response(&mut self, now: Instant, msg: SipMessage) {
        let (Some(code), Some((cseq, method))) = (msg.code(), msg.cseq()) else {
            return;
        };
        let branch = msg.top_branch().unwrap_or_default().to_string();
        if method.eq_ignore_ascii_case("INVITE") && cseq == INVITE_CSEQ {
            if branch != self.invite_branch || msg.header("Call-ID") != Some(&self.call_id) {
                return;
            }
            self.invite_response(now, code, msg);
        } else if method.eq_ignore_ascii_case("BYE") {
            let Some(b) = &mut self.bye else { return };
            if branch != b.branch || cseq != b.cseq {
                return;
            }
            if code < 200 {
                // Timer E continues at T2 (RFC 3261 §17.1.2.2).
                if b.next_retransmit.is_some() {
                    b.interval = self.req.t2;
                    b.next_retransmit = Some(now + self.req.t2);
                }
                return;
            }
            self.bye = None;
            if self.state == State::Leaving {
                self.state = State::Done;
                self.events.push_back(UacEvent::Left {
                    code,
                    reason: msg.reason().to_string(),
                    local: false,
                });
            }
        }
    }

    fn invite_response(&mut self, now: Instant, code: u16, msg: SipMessage) {
        match code {
            100..=199 => {
                if self.state == State::Calling {
                    self.state = State::Proceeding;
                    self.timer_a = None;
                }
                if self.state == State::Proceeding {
                    self.events.push_back(UacEvent::Provisional {
                        code,
                        reason: msg.reason().to_string(),
                    });
                }
            }
            200..=299 => {
                if matches!(self.state, State::Calling | State::Proceeding) {
                    self.timer_a = None;
                    self.timer_b = None;
                    self.remote_tag = msg.tag_of("To");
                    self.to_value = msg.header("To").map(str::to_string);
                    if let Some(target) = msg
                        .header("Contact")
                        .and_then(|c| psip::parse_name_addr(c).ok())
                    {
                        self.remote_target = target.uri;
                    }
                    // RFC 3261 §12.1.2: the route set is the Record-Route list, reversed.
                    self.route_set = msg
                        .header_values("Record-Route")
                        .into_iter()
                        .rev()
                        .map(str::to_string)
                        .collect();
                    let ack = self.in_dialog("ACK", INVITE_CSEQ, &branch()).to_bytes();
                    self.transmits.push_back(ack.clone());
                    self.ack = Some(ack);
                    self.state = State::Established;
                    if self.abandon {
                        self.send_bye(now);
                    } else {
                        self.events.push_back(UacEvent::Answered(msg));
                    }
                } else if msg.tag_of("To") == self.remote_tag {
                    // A retransmitted 2xx: our ACK was lost (RFC 3261 §13.2.2.4).
                    if let Some(ack) = &self.ack {
                        self.transmits.push_back(ack.clone());
                    }
                }
            }
            _ => {
                if matches!(self.state, State::Calling | State::Proceeding) {
                    self.timer_a = None;
                    self.timer_b = None;
                    let ack = self.non_2xx_ack(&msg);
                    self.transmits.push_back(ack.clone());
                    self.ack = Some(ack);
                    self.state = State::Done;
                    self.events.push_back(UacEvent::Refused {
                        code,
                        reason: msg.reason().to_string(),
                        local: false,
                    });
                } else if self.state == State::Done && self.remote_tag.is_none() {
                    // A retransmitted final response (our ACK was lost).
                    if let Some(ack) = &self.ack {
                        self.transmits.push_back(ack.clone());
                    }
                }
            }
        }
    }

    /// RFC 3261 §17.1.1.3: same Request-URI, Call-ID, From, top Via (branch) as the INVITE, the
    /// To of the response, CSeq number of the INVITE with method ACK.
    fn non_2xx_ack(&self, resp: &SipMessage) -> Vec<u8> {
        let to = resp
            .header("To")
            .map(str::to_string)
            .unwrap_or_else(|| format!("<{}>", self.req.group));
        SipMessage {
            start: StartLine::Request {
                method: "ACK".into(),
                uri: self.req.group.clone(),
            },
            headers: self.base_headers(&self.invite_branch, &to, INVITE_CSEQ, "ACK"),
            body: Vec::new(),
        }
        .to_bytes()
    }

    fn handle_request(&mut self, req: SipMessage) {
        let method = req.method().unwrap_or_default().to_ascii_uppercase();
        if method == "ACK" {
            return;
        }
        let ours = req.header("Call-ID") == Some(self.call_id.as_str());
        let (code, reason) = match method.as_str() {
            "BYE" if ours => {
                if matches!(self.state, State::Established | State::Leaving) {
                    self.state = State::Done;
                    self.bye = None;
                    self.events.push_back(UacEvent::EndedByPeer);
                }
                (200, "OK")
            }
            "OPTIONS" => (200, "OK"),
            _ if !ours => (481, "Call/Transaction Does Not Exist"),
            "BYE" | "CANCEL" => (481, "Call/Transaction Does Not Exist"),
            _ => (501, "Not Implemented"),
        };
        self.transmits
            .push_back(response_to(&req, code, reason, &self.local_tag));
    }
}

/// A response to a received request (RFC 3261 §8.2.6): the Vias, From, Call-ID and CSeq copied,
/// To with a tag added if it had none.
pub fn response_to(req: &SipMessage, code: u16, reason: &str, local_tag: &str) -> Vec<u8> {
    let mut headers: Vec<(String, String)> = req
        .header_lines("Via")
        .into_iter()
        .map(|v| ("Via".to_string(), v.to_string()))
        .collect();
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(v) = req.header(name) {
            let mut v = v.to_string();
            if name == "To" && req.tag_of("To").is_none() {
                v.push_str(&format!(";tag={local_tag}"));
            }
            headers.push((name.to_string(), v));
        }
    }
    if code == 200 && req.method() == Some("OPTIONS") {
        headers.push(("Allow".into(), ALLOW.into()));
        headers.push(("Accept".into(), "application/sdp".into()));
    }
    SipMessage {
        start: StartLine::Response {
            code,
            reason: reason.to_string(),
        },
        headers,
        body: Vec::new(),
    }
    .to_bytes()
}

#[cfg(test)]
mod tests;
