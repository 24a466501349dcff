//! The control protocol between the Kamailio module (the focus) and the relay (the MSRP switch).
//!
//! Transport: a Unix stream socket owned by the relay; each Kamailio process keeps one connection.
//! Framing: one JSON object per line (`\n`), requests from the module, exactly one response per
//! request, matched by `id`, in order. The module gives each request a short deadline
//! (`relay_timeout_ms`); a request that times out is treated as failed and the connection is dropped,
//! so a late response can never be taken for the answer to the next request.
//! See docs/control-protocol.md for the prose version.
use serde::{Deserialize, Serialize};

/// Protocol version carried in every `join`, so a relay can refuse a module it does not understand.
pub const VERSION: u32 = 1;

/// A request from the focus to the switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// A participant was admitted; the relay must be ready to accept its MSRP connection before the
    /// 200 OK leaves. The real identity is deliberately not part of it: the switch never needs it.
    Join(Join),
    /// A participant left (BYE, dialog expiry, or a join rolled back): close its MSRP session.
    Leave { id: u64, session: String },
    /// Liveness probe; answered with `ok`.
    Ping { id: u64 },
    /// Which registered sessions are not backed by a live MSRP connection: never bound for
    /// `bind_timeout_ms` since the join, or unbound (connection gone) for `gone_timeout_ms`.
    /// Answered with at most `max` of them in [`Response::idle`], oldest first. Asking changes
    /// nothing: a session stays listed until the module sends `leave` for it.
    Idle {
        id: u64,
        bind_timeout_ms: u64,
        gone_timeout_ms: u64,
        max: u32,
    },
}

/// Why a session is listed by `idle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleReason {
    /// No MSRP connection ever bound the session.
    NeverBound,
    /// The session's MSRP connection closed and none bound it again.
    Gone,
}

/// One session past its limit (answer to `idle`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleSession {
    pub session: String,
    /// The conference URI the session joined (as in its `join`).
    pub conference: String,
    pub reason: IdleReason,
    /// How long the session has been without a connection, in milliseconds.
    pub idle_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    pub id: u64,
    pub version: u32,
    /// The MSRP session id the module generated (≥ 80 bits of randomness), the last path segment of
    /// the relay URI the participant will connect to.
    pub session: String,
    /// The conference (group) URI as in the group document; CPIM `To` of regular messages.
    pub conference: String,
    /// The identity the participant was assigned: CPIM `From` must be this.
    pub uri: String,
    pub display_name: Option<String>,
    pub anonymous: bool,
    /// The participant's own MSRP path from its SDP offer (`a=path`, first URI first).
    pub peer_path: Vec<String>,
    /// `a=accept-wrapped-types` of the offer (what may be delivered inside CPIM).
    pub accept_wrapped_types: Vec<String>,
    /// `a=chatroom` tokens the participant advertised (`nickname`, `private-messages`).
    pub chatroom: Vec<String>,
    /// Whether the group's policy allows this participant private messages.
    pub private_messages_allowed: bool,
}

impl Request {
    pub fn id(&self) -> u64 {
        match self {
            Request::Join(j) => j.id,
            Request::Leave { id, .. } | Request::Ping { id } | Request::Idle { id, .. } => *id,
        }
    }
}

/// The relay's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Response {
    pub id: u64,
    pub ok: bool,
    /// Why the request failed (`ok == false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For `join`: where the participant connects, as host, port and the full MSRP URI for `a=path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Grant>,
    /// For `idle`: the sessions past their limit (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idle: Vec<IdleSession>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub host: String,
    pub port: u16,
    pub path: String,
    /// The relay's `a=max-size` (bytes).
    pub max_size: u64,
}

/// Errors decoding a line.
#[derive(Debug)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad control message: {}", self.0)
    }
}
impl std::error::Error for DecodeError {}

/// Longest line either side accepts; a longer one is a protocol error, never a growing buffer.
pub const MAX_LINE: usize = 64 * 1024;

/// Encodes one message as a JSON line (with the trailing `\n`).
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail; fall back to an empty object rather than panic.
    let mut v = serde_json::to_vec(msg).unwrap_or_else(|_| b"{}".to_vec());
    v.push(b'\n');
    v
}

/// Decodes one line (with or without its `\n`).
pub fn decode<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Result<T, DecodeError> {
    if line.len() > MAX_LINE {
        return Err(DecodeError(format!(
            "line of {} bytes exceeds {MAX_LINE}",
            line.len()
        )));
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    serde_json::from_slice(line).map_err(|e| DecodeError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_round_trips_and_is_one_line() {
        let r = Request::Join(Join {
            id: 7,
            version: VERSION,
            session: "abc".into(),
            conference: "sip:g@example.net".into(),
            uri: "sip:anonymous2@anonymous.invalid".into(),
            display_name: Some("bob\n-2 \"q\"".into()),
            anonymous: true,
            peer_path: vec!["msrp://127.0.0.1:9/x;tcp".into()],
            accept_wrapped_types: vec!["text/plain".into()],
            chatroom: vec!["private-messages".into()],
            private_messages_allowed: true,
        });
        let line = encode(&r);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(line.ends_with(b"\n"));
        let back: Request = decode(&line).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.id(), 7);
    }

    #[test]
    fn response_without_grant_omits_it() {
        let r = Response {
            id: 1,
            ok: false,
            error: Some("no".into()),
            grant: None,
            idle: Vec::new(),
        };
        let line = String::from_utf8(encode(&r)).unwrap();
        assert!(!line.contains("grant"));
        assert_eq!(decode::<Response>(line.as_bytes()).unwrap(), r);
    }

    #[test]
    fn idle_round_trips() {
        let req: Request = decode(
            br#"{"op":"idle","id":4,"bind_timeout_ms":30000,"gone_timeout_ms":60000,"max":64}"#,
        )
        .unwrap();
        assert_eq!(
            req,
            Request::Idle {
                id: 4,
                bind_timeout_ms: 30000,
                gone_timeout_ms: 60000,
                max: 64
            }
        );
        assert_eq!(req.id(), 4);
        let r = Response {
            id: 4,
            ok: true,
            idle: vec![IdleSession {
                session: "abc".into(),
                conference: "sip:g@example.net".into(),
                reason: IdleReason::NeverBound,
                idle_ms: 31000,
            }],
            ..Default::default()
        };
        let line = String::from_utf8(encode(&r)).unwrap();
        assert!(line.contains(r#""reason":"never_bound""#), "{line}");
        assert_eq!(decode::<Response>(line.as_bytes()).unwrap(), r);
        // An answer without the field (any other request) decodes to an empty list.
        let plain: Response = decode(br#"{"id":1,"ok":true}"#).unwrap();
        assert!(plain.idle.is_empty());
    }

    #[test]
    fn garbage_and_oversize_are_errors() {
        assert!(decode::<Request>(b"{\"op\":\"nope\"}").is_err());
        assert!(decode::<Request>(b"\xff\xfe").is_err());
        assert!(decode::<Request>(&vec![b' '; MAX_LINE + 1]).is_err());
    }
}
