//! What a chat session reports: one [`Event`] per thing that happened, printable for people
//! ([`std::fmt::Display`]) and as one JSON object per line (`--json`, [`Event::to_json`]).
use crate::identity::Identity;
use serde::Serialize;
use std::fmt;

/// One event. JSON: `{"event":"joined",…}`, `{"event":"message",…}`, etc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The 200 OK arrived and the MSRP session is bound: messages can flow.
    Joined(Joined),
    /// The join was refused: the final response's code and reason phrase (or a local 408 when
    /// the server did not answer).
    Refused { code: u16, reason: String },
    /// A message received.
    Message(Message),
    /// A message of ours was accepted by the relay (every chunk answered 200).
    Sent(Sent),
    /// Something failed: a message refused by the relay, an unknown recipient, a script
    /// expectation not met, trouble on the MSRP connection.
    Error(Failure),
    /// The session ended.
    Left {
        by: LeftBy,
        /// The final response to our BYE (`by: me`).
        code: Option<u16>,
        reason: String,
    },
}

/// The identity the client joined with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Joined {
    pub group: String,
    /// The sending identity: CPIM From of every message.
    pub identity: Identity,
    /// The focus assigned an identity other than the one asked for (multipart/mixed 200 OK).
    pub modified: bool,
    /// What the INVITE's From asked for.
    pub requested: Identity,
    /// The relay's MSRP URI (first of the answer's a=path).
    pub relay: String,
    /// The answer's a=chatroom offers `private-messages`.
    pub private_messages: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub message_id: String,
    /// CPIM From: the sender's identity in the room.
    pub from: Option<Identity>,
    /// CPIM To: the group, or this participant for a private message.
    pub to: Option<Identity>,
    /// Addressed to this participant rather than to the group.
    pub private: bool,
    /// The encapsulated part's Content-Type.
    pub content_type: String,
    /// The encapsulated body as text (UTF-8, lossy); a non-text body is summarised.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sent {
    pub message_id: String,
    /// CPIM To: the group or the participant.
    pub to: Identity,
    pub private: bool,
    pub text: String,
    /// Octets of the message/cpim body.
    pub bytes: usize,
    /// SEND requests it took.
    pub chunks: usize,
}

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The join failed after its 200 OK (unusable answer, MSRP session not set up) or was
    /// cancelled.
    Join,
    /// The relay refused a message of ours (403, 404, 413, 415, 428, …) or did not answer it.
    Send,
    /// A REPORT said a message could not be delivered.
    Delivery,
    /// The MSRP connection misbehaved or closed.
    Msrp,
    /// A command could not be carried out (unknown participant, not joined, bad syntax).
    Command,
    /// A script's `/expect` was not met in time.
    Expect,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// The MSRP status code (or a local 408/413).
    pub code: Option<u16>,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Identity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private: Option<bool>,
}

impl Failure {
    pub fn new(kind: FailureKind, reason: impl Into<String>) -> Failure {
        Failure {
            kind,
            code: None,
            reason: reason.into(),
            message_id: None,
            to: None,
            private: None,
        }
    }
}

/// Who ended the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftBy {
    /// This client (BYE).
    Me,
    /// The server (its BYE).
    Server,
}

/// Text lines after the first are indented so a multi-line message stays readable.
fn indent(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\n    ")
}

impl Event {
    /// One line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"event\":\"error\",\"reason\":\"{e}\"}}"))
    }

    /// The message, if this is one.
    pub fn as_message(&self) -> Option<&Message> {
        match self {
            Event::Message(m) => Some(m),
            _ => None,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Joined(j) => {
                write!(f, "joined {} as {}", j.group, j.identity)?;
                if j.modified {
                    write!(f, " (assigned by the focus: {} was taken)", j.requested)?;
                }
                Ok(())
            }
            Event::Refused { code, reason } => write!(f, "refused: {code} {reason}"),
            Event::Message(m) => {
                let from = m
                    .from
                    .as_ref()
                    .map_or_else(|| "(no CPIM From)".to_string(), Identity::to_string);
                if m.private {
                    write!(f, "[private] {from} → me: {}", indent(&m.text))
                } else {
                    write!(f, "[group] {from}: {}", indent(&m.text))
                }
            }
            Event::Sent(s) => {
                if s.private {
                    write!(f, "[private] me → {}: {}", s.to, indent(&s.text))
                } else {
                    write!(f, "[group] me: {}", indent(&s.text))
                }
            }
            Event::Error(e) => {
                f.write_str("[error] ")?;
                match e.kind {
                    FailureKind::Send | FailureKind::Delivery => {
                        match (&e.to, e.private) {
                            (Some(to), Some(true)) => write!(f, "private message to {to} ")?,
                            _ => f.write_str("message to the group ")?,
                        }
                        f.write_str("not delivered: ")?;
                        if let Some(c) = e.code {
                            write!(f, "{c} ")?;
                        }
                        f.write_str(&e.reason)
                    }
                    _ => {
                        if let Some(c) = e.code {
                            write!(f, "{c} ")?;
                        }
                        f.write_str(&e.reason)
                    }
                }
            }
            Event::Left { by, code, reason } => match (by, code) {
                (LeftBy::Me, Some(c)) => write!(f, "left (BYE answered {c} {reason})"),
                (LeftBy::Me, None) => write!(f, "left ({reason})"),
                (LeftBy::Server, _) => write!(f, "left: the server ended the session ({reason})"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity::new(Some("Alice"), "sip:alice@example.com")
    }

    #[test]
    fn human_lines() {
        let m = Event::Message(Message {
            message_id: "m1".into(),
            from: Some(alice()),
            to: Some(Identity::new(None, "sip:lounge@im.example.net")),
            private: false,
            content_type: "text/plain".into(),
            text: "hi\nthere".into(),
        });
        assert_eq!(
            m.to_string(),
            "[group] \"Alice\" <sip:alice@example.com>: hi\n    there"
        );
        let e = Event::Error(Failure {
            kind: FailureKind::Send,
            code: Some(404),
            reason: "Not Found".into(),
            message_id: Some("m2".into()),
            to: Some(Identity::new(
                Some("bob-2"),
                "sip:anonymous2@anonymous.invalid",
            )),
            private: Some(true),
        });
        assert_eq!(
            e.to_string(),
            "[error] private message to \"bob-2\" <sip:anonymous2@anonymous.invalid> not delivered: 404 Not Found"
        );
        let j = Event::Joined(Joined {
            group: "sip:lounge@im.example.net".into(),
            identity: Identity::new(Some("bob-2"), "sip:anonymous2@anonymous.invalid"),
            modified: true,
            requested: Identity::anonymous("bob"),
            relay: "msrp://127.0.0.1:2855/x;tcp".into(),
            private_messages: true,
        });
        assert_eq!(
            j.to_string(),
            "joined sip:lounge@im.example.net as \"bob-2\" <sip:anonymous2@anonymous.invalid> \
             (assigned by the focus: \"bob\" <sip:anonymous@anonymous.invalid> was taken)"
        );
    }

    #[test]
    fn json_objects() {
        let v: serde_json::Value = serde_json::from_str(
            &Event::Refused {
                code: 403,
                reason: "Forbidden".into(),
            }
            .to_json(),
        )
        .unwrap();
        assert_eq!(v["event"], "refused");
        assert_eq!(v["code"], 403);
        let s = Event::Sent(Sent {
            message_id: "m".into(),
            to: alice(),
            private: true,
            text: "psst".into(),
            bytes: 120,
            chunks: 1,
        });
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["event"], "sent");
        assert_eq!(v["to"]["display_name"], "Alice");
        assert_eq!(v["to"]["uri"], "sip:alice@example.com");
        assert_eq!(v["private"], true);
        let l = Event::Left {
            by: LeftBy::Me,
            code: Some(200),
            reason: "OK".into(),
        };
        let v: serde_json::Value = serde_json::from_str(&l.to_json()).unwrap();
        assert_eq!(v["by"], "me");
        assert_eq!(l.to_string(), "left (BYE answered 200 OK)");
    }
}
