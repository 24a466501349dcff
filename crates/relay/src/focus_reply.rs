//! Reading the focus's answers (JSON-RPC 2.0 responses, one per datagram, from the module's focus
//! socket): `chat_alias.nickname` decisions, `chat_alias.sessions` pages and `chat_alias.missing`
//! verdicts. Pure functions over the decoded JSON, apart from the socket driver in the binary
//! (`focus.rs`), so that a fuzz target can feed them arbitrary datagrams: whatever the sender
//! writes, they never panic and yield only what the relay can use.
use crate::registry::Participant;
use crate::switch::{AskId, FocusOutcome};
use serde_json::Value;

/// The id a JSON-RPC response answers.
pub fn id_of(v: &Value) -> Option<u64> {
    match v.get("id")? {
        // jsonrpcs echoes a numeric id as a double ("%d", or "%.0f" beyond 32 bits).
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.parse().ok(),
        _ => None,
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

/// One record of `chat_alias.sessions` as the participant a `join` would register; None when a
/// field the relay needs is missing (no session, conference, URI or peer path).
fn participant_of(r: &Value) -> Option<Participant> {
    let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
    let peer_path = list(r.get("peer_path"));
    if peer_path.is_empty() {
        return None;
    }
    Some(Participant {
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

/// One page of `chat_alias.sessions`: the records read (unusable ones skipped, but counted for
/// paging) and how many there were, or what went wrong.
pub fn parse_sessions(v: &Value) -> Result<(Vec<Participant>, u64), String> {
    if let Some(err) = v.get("error") {
        return Err(format!("focus error: {err}"));
    }
    let records: Vec<&Value> = match v.get("result") {
        Some(Value::Array(a)) => a.iter().collect(),
        // jsonrpcs without RET_ARRAY keeps one record only: take it, it is still a record.
        Some(o @ Value::Object(_)) => vec![o],
        Some(Value::Null) | None => Vec::new(),
        Some(other) => return Err(format!("unexpected result {other}")),
    };
    let n = records.len() as u64;
    Ok((records.into_iter().filter_map(participant_of).collect(), n))
}

/// Reads one answer: the id it answers and what the focus said. None when the datagram is not a
/// JSON-RPC response with a usable id (nothing can be matched to it).
pub fn parse_reply(datagram: &[u8]) -> Option<(AskId, FocusOutcome)> {
    let v: Value = serde_json::from_slice(datagram).ok()?;
    parse_reply_value(&v)
}

pub fn parse_reply_value(v: &Value) -> Option<(AskId, FocusOutcome)> {
    let id = id_of(v)?;
    let code_of = |o: &Value| o.get("code").and_then(Value::as_i64);
    let outcome = if let Some(err) = v.get("error") {
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match code_of(err).and_then(|c| u16::try_from(c).ok()) {
            Some(code) => FocusOutcome::Refused { code, message },
            None => FocusOutcome::Failed(format!("focus error {:?}: {message}", code_of(err))),
        }
    } else if let Some(res) = v.get("result") {
        match code_of(res) {
            Some(200) => match res.get("display_name") {
                Some(Value::String(s)) if s.is_empty() => FocusOutcome::Named(None),
                Some(Value::String(s)) => FocusOutcome::Named(Some(s.clone())),
                _ => FocusOutcome::Failed("200 without a display_name".into()),
            },
            Some(c) => match u16::try_from(c) {
                Ok(code) => FocusOutcome::Refused {
                    code,
                    message: String::new(),
                },
                Err(_) => FocusOutcome::Failed(format!("result code {c}")),
            },
            None => FocusOutcome::Failed("result without a code".into()),
        }
    } else {
        FocusOutcome::Failed("neither result nor error".into())
    };
    Some((id, outcome))
}

/// The sessions a `chat_alias.missing` answer names; None for an error or an unusable answer
/// (then nothing is closed).
pub fn parse_missing(v: &Value) -> Option<Vec<String>> {
    v.get("result")?.get("missing")?.as_array().map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    })
}
