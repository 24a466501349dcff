//! The focus socket protocol (relay → module): the questions the relay asks the Kamailio module
//! on the module's own Unix datagram socket, and their answers, typed once for both sides.
//!
//! One JSON-RPC 2.0 shaped request per datagram, one answer per request (JSON-RPC 2.0 §4, §5):
//!
//! - [`Method::Nickname`] `[conference, session, nickname]`: an RFC 7701 NICKNAME decided by the
//!   alias table; `{"code":200,"display_name":"…"}` (`""`: no display name) or an error whose code
//!   is the MSRP status (404 unknown session, 424 invalid, 425 in use);
//! - [`Method::Sessions`] `[offset, limit]`: one page of the participants (at most [`MAX_PAGE`]
//!   [`SessionRecord`]s), to rebuild a restarted relay's registry;
//! - [`Method::Missing`] `[[conference, session], …]` (at most [`MAX_CHECK`] pairs):
//!   `{"missing":[session, …]}`, the sessions of the question the alias table no longer holds.
//!
//! The module reads requests with [`read_request`] and writes answers with [`encode_answer`]; the
//! relay writes requests with [`Question::encode`] and reads answers with [`Reply::parse`] and
//! the typed readers on [`Reply`]. Every JSON object is built as a `serde_json::Value` map, so
//! keys come out in one order (sorted) on both sides.
use serde_json::{json, Value};

/// Largest request or answer: one datagram (a longer request arrives truncated and is dropped;
/// a longer answer is replaced by error 413).
pub const MAX_DATAGRAM: usize = 65536;
/// Records in one `chat_alias.sessions` answer: at most ~2 KiB each (URIs ≤ 255 bytes, name ≤
/// 256, peer path ≤ 256, types ≤ 128), so that a page fits one datagram.
pub const MAX_PAGE: usize = 16;
/// Pairs in one `chat_alias.missing` question (a session id is ≤ 64 bytes, a group URI ≤ 255).
pub const MAX_CHECK: usize = 128;

/// JSON-RPC's own error codes (JSON-RPC 2.0 §5.1).
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// The code of the error that replaces an answer longer than one datagram.
pub const TOO_LARGE: i64 = 413;

/// The methods the focus socket answers; nothing else is (the operator's RPCs, which name real
/// identities, are not reachable there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Nickname,
    Sessions,
    Missing,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::Nickname, Method::Sessions, Method::Missing];

    /// The JSON-RPC method name.
    pub const fn name(self) -> &'static str {
        match self {
            Method::Nickname => "chat_alias.nickname",
            Method::Sessions => "chat_alias.sessions",
            Method::Missing => "chat_alias.missing",
        }
    }

    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One session as the module lists it (`chat_alias.sessions`): what a `join` would register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The group URI as written in its document (what the module sends in `join`).
    pub conference: String,
    pub session: String,
    pub uri: String,
    pub display_name: Option<String>,
    pub anonymous: bool,
    /// The participant's MSRP path, first URI first (on the wire: space-separated).
    pub peer_path: Vec<String>,
    pub accept_wrapped_types: Vec<String>,
    pub chatroom: Vec<String>,
    pub private_messages_allowed: bool,
}

impl SessionRecord {
    /// The wire record: lists space-separated, flags 0/1, no display name as `""`.
    pub fn to_value(&self) -> Value {
        json!({
            "conference": self.conference,
            "session": self.session,
            "uri": self.uri,
            "display_name": self.display_name.clone().unwrap_or_default(),
            "anonymous": i64::from(self.anonymous),
            "peer_path": self.peer_path.join(" "),
            "accept_wrapped_types": self.accept_wrapped_types.join(" "),
            "chatroom": self.chatroom.join(" "),
            "private_messages_allowed": i64::from(self.private_messages_allowed),
        })
    }

    /// Reads a wire record (lists as space-separated strings or arrays, flags as numbers or
    /// booleans); None when a field a registration needs is missing or empty (session,
    /// conference, URI, peer path).
    pub fn from_value(r: &Value) -> Option<SessionRecord> {
        let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
        let peer_path = list(r.get("peer_path"));
        if peer_path.is_empty() {
            return None;
        }
        Some(SessionRecord {
            session: s("session").filter(|v| !v.is_empty())?,
            conference: s("conference").filter(|v| !v.is_empty())?,
            uri: s("uri").filter(|v| !v.is_empty())?,
            display_name: s("display_name").filter(|v| !v.is_empty()),
            anonymous: flag(r.get("anonymous")),
            peer_path,
            accept_wrapped_types: list(r.get("accept_wrapped_types")),
            chatroom: list(r.get("chatroom")),
            private_messages_allowed: flag(r.get("private_messages_allowed")),
        })
    }
}

/// A list field: a space-separated string (as the module sends it) or an array of strings.
fn list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    }
}

/// A question to the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    /// Decide a NICKNAME (empty `nickname`: remove the display name).
    Nickname {
        conference: String,
        session: String,
        nickname: String,
    },
    /// One page of the participants, from `offset`, at most `limit` (capped at [`MAX_PAGE`]).
    Sessions { offset: u64, limit: u64 },
    /// Which of these `(conference, session)` pairs the alias table no longer holds.
    Missing { sessions: Vec<(String, String)> },
}

impl Question {
    pub fn method(&self) -> Method {
        match self {
            Question::Nickname { .. } => Method::Nickname,
            Question::Sessions { .. } => Method::Sessions,
            Question::Missing { .. } => Method::Missing,
        }
    }

    fn params(&self) -> Value {
        match self {
            Question::Nickname {
                conference,
                session,
                nickname,
            } => json!([conference, session, nickname]),
            Question::Sessions { offset, limit } => json!([offset, limit]),
            Question::Missing { sessions } => {
                Value::Array(sessions.iter().map(|(c, s)| json!([c, s])).collect())
            }
        }
    }

    /// The JSON-RPC request datagram asking this with `id`.
    pub fn encode(&self, id: u64) -> Vec<u8> {
        json!({
            "jsonrpc": "2.0",
            "method": self.method().name(),
            "params": self.params(),
            "id": id,
        })
        .to_string()
        .into_bytes()
    }
}

/// A JSON-RPC error: its code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: i64,
    pub message: String,
}

impl Fault {
    pub fn new(code: i64, message: impl Into<String>) -> Fault {
        Fault {
            code,
            message: message.into(),
        }
    }
}

/// What one request datagram is, as the module reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A question, with the id to echo in the answer (any JSON value the relay chose).
    Question { id: Value, question: Question },
    /// A request without `id` (a notification): never answered.
    Notification,
    /// A request that gets an error answer (not JSON, no method, unknown method, bad params).
    Refused { id: Value, fault: Fault },
}

fn str_param(params: &[Value], i: usize) -> Option<&str> {
    params.get(i).and_then(Value::as_str)
}

fn int_param(params: &[Value], i: usize) -> Option<u64> {
    params.get(i).and_then(Value::as_u64)
}

/// Reads one request datagram. A missing or non-array `params` counts as empty; `sessions`
/// defaults to offset 0 and [`MAX_PAGE`] records, and its limit is capped there.
pub fn read_request(datagram: &[u8]) -> Incoming {
    let Ok(v) = serde_json::from_slice::<Value>(datagram) else {
        return Incoming::Refused {
            id: Value::Null,
            fault: Fault::new(PARSE_ERROR, "Parse error"),
        };
    };
    let Some(id) = v.get("id").cloned() else {
        return Incoming::Notification;
    };
    let Some(name) = v.get("method").and_then(Value::as_str) else {
        return Incoming::Refused {
            id,
            fault: Fault::new(INVALID_REQUEST, "Invalid Request"),
        };
    };
    let empty = Vec::new();
    let params = v.get("params").and_then(Value::as_array).unwrap_or(&empty);
    match question(name, params) {
        Ok(question) => Incoming::Question { id, question },
        Err(fault) => Incoming::Refused { id, fault },
    }
}

fn question(name: &str, params: &[Value]) -> Result<Question, Fault> {
    let Some(method) = Method::from_name(name) else {
        return Err(Fault::new(METHOD_NOT_FOUND, "Method not found"));
    };
    match method {
        Method::Nickname => {
            let (Some(conference), Some(session), Some(nickname)) = (
                str_param(params, 0),
                str_param(params, 1),
                str_param(params, 2),
            ) else {
                return Err(Fault::new(INVALID_PARAMS, "3 string parameters required"));
            };
            Ok(Question::Nickname {
                conference: conference.to_string(),
                session: session.to_string(),
                nickname: nickname.to_string(),
            })
        }
        Method::Sessions => Ok(Question::Sessions {
            offset: int_param(params, 0).unwrap_or(0),
            limit: int_param(params, 1)
                .unwrap_or(MAX_PAGE as u64)
                .min(MAX_PAGE as u64),
        }),
        Method::Missing => {
            if params.len() > MAX_CHECK {
                return Err(Fault::new(
                    INVALID_PARAMS,
                    format!("at most {MAX_CHECK} sessions per question"),
                ));
            }
            let mut sessions = Vec::with_capacity(params.len());
            for p in params {
                match p.as_array().map(Vec::as_slice) {
                    Some([Value::String(c), Value::String(s)]) => {
                        sessions.push((c.clone(), s.clone()))
                    }
                    _ => {
                        return Err(Fault::new(
                            INVALID_PARAMS,
                            "each parameter is [conference, session]",
                        ))
                    }
                }
            }
            Ok(Question::Missing { sessions })
        }
    }
}

/// The module's answer to a [`Question`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The NICKNAME was accepted: the display name now recorded (None: none).
    Nickname(Option<String>),
    Sessions(Vec<SessionRecord>),
    /// The sessions asked about that the table no longer holds.
    Missing(Vec<String>),
}

impl Answer {
    fn to_value(&self) -> Value {
        match self {
            Answer::Nickname(name) => {
                json!({"code": 200, "display_name": name.clone().unwrap_or_default()})
            }
            Answer::Sessions(records) => {
                Value::Array(records.iter().map(SessionRecord::to_value).collect())
            }
            Answer::Missing(sessions) => json!({ "missing": sessions }),
        }
    }
}

fn fault_value(id: &Value, f: &Fault) -> Value {
    json!({"jsonrpc": "2.0", "error": {"code": f.code, "message": f.message}, "id": id})
}

/// The answer datagram for request `id`: the result, or the error. An answer longer than
/// [`MAX_DATAGRAM`] becomes error [`TOO_LARGE`].
pub fn encode_answer(id: &Value, answer: Result<Answer, Fault>) -> Vec<u8> {
    let v = match &answer {
        Ok(a) => json!({"jsonrpc": "2.0", "result": a.to_value(), "id": id}),
        Err(f) => fault_value(id, f),
    };
    let bytes = v.to_string().into_bytes();
    if bytes.len() > MAX_DATAGRAM {
        let f = Fault::new(TOO_LARGE, "answer larger than one datagram");
        return fault_value(id, &f).to_string().into_bytes();
    }
    bytes
}

/// What the module said about a NICKNAME question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicknameVerdict {
    /// Accepted: the display name the module recorded for the session (None: no display name).
    Named(Option<String>),
    /// Refused with this MSRP status (403 not allowed, 424 invalid, 425 in use, 404 unknown
    /// session…).
    Refused { code: u16, message: String },
    /// No usable answer: the module is unreachable, the request could not be sent, or the answer
    /// made no sense.
    Failed(String),
}

/// One answer as the relay reads it: the id it answers and the JSON-RPC body, read by the
/// method-specific readers below.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub id: u64,
    body: Value,
}

impl Reply {
    /// Reads an answer datagram; None when it is not JSON or carries no usable id (nothing can
    /// be matched to it).
    pub fn parse(datagram: &[u8]) -> Option<Reply> {
        let body: Value = serde_json::from_slice(datagram).ok()?;
        let id = id_of(&body)?;
        Some(Reply { id, body })
    }

    /// The answer to a [`Question::Nickname`]. An error whose code is not an MSRP status, a
    /// result other than 200 with a display name: [`NicknameVerdict::Failed`].
    pub fn nickname(&self) -> NicknameVerdict {
        let v = &self.body;
        let code_of = |o: &Value| o.get("code").and_then(Value::as_i64);
        if let Some(err) = v.get("error") {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            match code_of(err).and_then(|c| u16::try_from(c).ok()) {
                Some(code) => NicknameVerdict::Refused { code, message },
                None => {
                    NicknameVerdict::Failed(format!("focus error {:?}: {message}", code_of(err)))
                }
            }
        } else if let Some(res) = v.get("result") {
            match code_of(res) {
                Some(200) => match res.get("display_name") {
                    Some(Value::String(s)) if s.is_empty() => NicknameVerdict::Named(None),
                    Some(Value::String(s)) => NicknameVerdict::Named(Some(s.clone())),
                    _ => NicknameVerdict::Failed("200 without a display_name".into()),
                },
                Some(c) => match u16::try_from(c) {
                    Ok(code) => NicknameVerdict::Refused {
                        code,
                        message: String::new(),
                    },
                    Err(_) => NicknameVerdict::Failed(format!("result code {c}")),
                },
                None => NicknameVerdict::Failed("result without a code".into()),
            }
        } else {
            NicknameVerdict::Failed("neither result nor error".into())
        }
    }

    /// The answer to a [`Question::Sessions`]: the usable records (records missing a needed
    /// field are skipped) and how many the page had (for paging), or what went wrong.
    pub fn sessions(&self) -> Result<(Vec<SessionRecord>, u64), String> {
        let v = &self.body;
        if let Some(err) = v.get("error") {
            return Err(format!("focus error: {err}"));
        }
        let records: Vec<&Value> = match v.get("result") {
            Some(Value::Array(a)) => a.iter().collect(),
            // A server that cannot return arrays may send one record as an object: still a record.
            Some(o @ Value::Object(_)) => vec![o],
            Some(Value::Null) | None => Vec::new(),
            Some(other) => return Err(format!("unexpected result {other}")),
        };
        let n = records.len() as u64;
        Ok((
            records
                .into_iter()
                .filter_map(SessionRecord::from_value)
                .collect(),
            n,
        ))
    }

    /// The answer to a [`Question::Missing`]: the sessions it names; None for an error or an
    /// unusable answer.
    pub fn missing(&self) -> Option<Vec<String>> {
        self.body
            .get("result")?
            .get("missing")?
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
    }

    /// The body, for logs.
    pub fn body(&self) -> &Value {
        &self.body
    }
}

/// The id an answer carries: a number (exact integers, also when printed as a double), or a
/// string of digits.
fn id_of(v: &Value) -> Option<u64> {
    match v.get("id")? {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
