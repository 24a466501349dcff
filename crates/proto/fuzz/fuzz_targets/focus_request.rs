//! `focus_rpc::parse_request`: a datagram arriving on the module's focus socket (JSON-RPC 2.0,
//! written by whoever can reach the socket) never panics; a `chat_alias.missing` question never
//! carries more than `MAX_CHECK` pairs; and whatever reads as a question, written again the way
//! the relay writes its requests, reads back as the same question with the same id.
#![no_main]
use chat_alias_proto::focus_rpc::{self, Question, MAX_CHECK};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Some((id, question)) = focus_rpc::parse_request(data) else {
        return;
    };
    let Ok(q) = question else {
        return;
    };
    let (method, params) = match &q {
        Question::Nickname {
            conference,
            session,
            nickname,
        } => (
            "chat_alias.nickname",
            json!([conference, session, nickname]),
        ),
        Question::Sessions { offset, limit } => (
            "chat_alias.sessions",
            match limit {
                Some(l) => json!([offset, l]),
                None => json!([offset]),
            },
        ),
        Question::Missing(pairs) => {
            assert!(pairs.len() <= MAX_CHECK, "a missing question is capped");
            let v: Vec<Value> = pairs.iter().map(|(c, s)| json!([c, s])).collect();
            ("chat_alias.missing", Value::Array(v))
        }
    };
    let again = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id});
    let (id2, q2) = focus_rpc::parse_request(again.to_string().as_bytes())
        .expect("a request with an id is answered");
    assert_eq!(q2.expect("the re-written question reads"), q);
    // serde_json does not promise that a float survives printing and parsing bit for bit
    // (`1e-56` comes back as `9.999999999999999e-57`), wherever it sits in the id.
    if !has_float(&id) {
        assert_eq!(id2, id);
    }
});

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}
