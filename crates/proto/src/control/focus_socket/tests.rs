//! Both ends of the focus socket protocol: what the relay writes, the module reads, and back.
use super::*;

fn record(i: usize) -> SessionRecord {
    SessionRecord {
        conference: "sip:lounge@im.example.net".into(),
        session: format!("s{i}"),
        uri: "sip:anonymous@anonymous.invalid".into(),
        display_name: Some("bob".into()),
        anonymous: true,
        peer_path: vec!["msrp://192.0.2.1:7654/abc;tcp".into()],
        accept_wrapped_types: vec!["text/plain".into(), "message/cpim".into()],
        chatroom: vec!["nickname".into()],
        private_messages_allowed: true,
    }
}

#[test]
fn method_names_are_defined_once_and_read_back() {
    for m in Method::ALL {
        assert_eq!(Method::from_name(m.name()), Some(m));
    }
    assert_eq!(Method::Nickname.name(), "chat_alias.nickname");
    assert_eq!(Method::Sessions.name(), "chat_alias.sessions");
    assert_eq!(Method::Missing.name(), "chat_alias.missing");
    assert_eq!(Method::from_name("chat_alias.list"), None);
}

/// The exact bytes on the wire (keys sorted), as both sides wrote them before the types.
#[test]
fn requests_are_the_json_rpc_datagrams_of_before() {
    let q = Question::Nickname {
        conference: "sip:lounge@im.example.net".into(),
        session: "abcdefghijklmnop".into(),
        nickname: "Ro\"bert".into(),
    };
    assert_eq!(
        String::from_utf8(q.encode(7)).unwrap(),
        r#"{"id":7,"jsonrpc":"2.0","method":"chat_alias.nickname","params":["sip:lounge@im.example.net","abcdefghijklmnop","Ro\"bert"]}"#
    );
    let q = Question::Sessions {
        offset: 12,
        limit: 16,
    };
    assert_eq!(
        String::from_utf8(q.encode(1 << 50)).unwrap(),
        r#"{"id":1125899906842624,"jsonrpc":"2.0","method":"chat_alias.sessions","params":[12,16]}"#
    );
    let q = Question::Missing {
        sessions: vec![
            ("sip:a@x".into(), "s1".into()),
            ("sip:a@x".into(), "s2".into()),
        ],
    };
    assert_eq!(
        String::from_utf8(q.encode(3)).unwrap(),
        r#"{"id":3,"jsonrpc":"2.0","method":"chat_alias.missing","params":[["sip:a@x","s1"],["sip:a@x","s2"]]}"#
    );
}

#[test]
fn the_module_reads_what_the_relay_writes() {
    for q in [
        Question::Nickname {
            conference: "c".into(),
            session: "s".into(),
            nickname: "".into(),
        },
        Question::Sessions {
            offset: 4,
            limit: 16,
        },
        Question::Missing {
            sessions: vec![("c".into(), "s".into())],
        },
    ] {
        assert_eq!(
            read_request(&q.encode(9)),
            Incoming::Question {
                id: json!(9),
                question: q
            }
        );
    }
}

#[test]
fn malformed_requests_get_the_json_rpc_errors() {
    let refused = |d: &[u8]| match read_request(d) {
        Incoming::Refused { id, fault } => (id, fault.code),
        other => panic!("{other:?}"),
    };
    assert_eq!(refused(b"not json"), (Value::Null, PARSE_ERROR));
    assert_eq!(refused(br#"{"id":1}"#), (json!(1), INVALID_REQUEST));
    assert_eq!(
        refused(br#"{"method":"chat_alias.list","id":"q"}"#),
        (json!("q"), METHOD_NOT_FOUND)
    );
    assert_eq!(
        refused(br#"{"method":"chat_alias.nickname","params":["c","s"],"id":2}"#),
        (json!(2), INVALID_PARAMS)
    );
    assert_eq!(
        refused(br#"{"method":"chat_alias.missing","params":[["c"]],"id":3}"#),
        (json!(3), INVALID_PARAMS)
    );
    let too_many: Vec<Value> = (0..=MAX_CHECK)
        .map(|i| json!(["c", i.to_string()]))
        .collect();
    let d = json!({"method":"chat_alias.missing","params":too_many,"id":4}).to_string();
    assert_eq!(refused(d.as_bytes()), (json!(4), INVALID_PARAMS));
    // Notifications are never answered, whatever they ask.
    assert_eq!(
        read_request(br#"{"method":"chat_alias.list"}"#),
        Incoming::Notification
    );
    // `sessions` defaults and caps its page.
    assert_eq!(
        read_request(br#"{"method":"chat_alias.sessions","params":[90,1000],"id":1}"#),
        Incoming::Question {
            id: json!(1),
            question: Question::Sessions {
                offset: 90,
                limit: MAX_PAGE as u64
            }
        }
    );
    assert_eq!(
        read_request(br#"{"method":"chat_alias.sessions","id":1}"#),
        Incoming::Question {
            id: json!(1),
            question: Question::Sessions {
                offset: 0,
                limit: MAX_PAGE as u64
            }
        }
    );
}

#[test]
fn answers_are_the_datagrams_of_before_and_the_relay_reads_them() {
    let a = encode_answer(&json!(7), Ok(Answer::Nickname(Some("Robert".into()))));
    assert_eq!(
        String::from_utf8(a.clone()).unwrap(),
        r#"{"id":7,"jsonrpc":"2.0","result":{"code":200,"display_name":"Robert"}}"#
    );
    let r = Reply::parse(&a).unwrap();
    assert_eq!(r.id, 7);
    assert_eq!(r.nickname(), NicknameVerdict::Named(Some("Robert".into())));
    let a = encode_answer(&json!(8), Ok(Answer::Nickname(None)));
    assert_eq!(
        Reply::parse(&a).unwrap().nickname(),
        NicknameVerdict::Named(None)
    );
    let a = encode_answer(&json!(9), Err(Fault::new(425, "nickname in use")));
    assert_eq!(
        String::from_utf8(a.clone()).unwrap(),
        r#"{"error":{"code":425,"message":"nickname in use"},"id":9,"jsonrpc":"2.0"}"#
    );
    assert_eq!(
        Reply::parse(&a).unwrap().nickname(),
        NicknameVerdict::Refused {
            code: 425,
            message: "nickname in use".into()
        }
    );
    let a = encode_answer(&json!(1), Ok(Answer::Missing(vec!["gone".into()])));
    assert_eq!(
        String::from_utf8(a.clone()).unwrap(),
        r#"{"id":1,"jsonrpc":"2.0","result":{"missing":["gone"]}}"#
    );
    assert_eq!(
        Reply::parse(&a).unwrap().missing(),
        Some(vec!["gone".into()])
    );
    let page: Vec<SessionRecord> = (0..3).map(record).collect();
    let a = encode_answer(&json!(2), Ok(Answer::Sessions(page.clone())));
    let v: Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(
        v["result"][0]["accept_wrapped_types"],
        "text/plain message/cpim"
    );
    assert_eq!(v["result"][0]["anonymous"], 1);
    assert_eq!(v["result"][0]["peer_path"], "msrp://192.0.2.1:7654/abc;tcp");
    assert_eq!(Reply::parse(&a).unwrap().sessions(), Ok((page, 3)));
}

#[test]
fn an_answer_over_one_datagram_becomes_413() {
    let big = vec!["x".repeat(1000); 100];
    let a = encode_answer(&json!(5), Ok(Answer::Missing(big)));
    assert!(a.len() < MAX_DATAGRAM);
    let v: Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(v["error"]["code"], TOO_LARGE);
    assert_eq!(v["id"], 5);
}

#[test]
fn nickname_replies_as_the_relay_reads_them() {
    let verdict = |d: &[u8]| Reply::parse(d).map(|r| (r.id, r.nickname()));
    // An unknown method is an error with a code that fits an MSRP status only by accident.
    assert!(matches!(
        verdict(br#"{"jsonrpc":"2.0","error":{"code":500,"message":"Method Not Found"},"id":10}"#),
        Some((10, NicknameVerdict::Refused { code: 500, .. }))
    ));
    assert!(matches!(
        verdict(
            br#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Execution Error"},"id":11}"#
        ),
        Some((11, NicknameVerdict::Failed(_)))
    ));
    // A big id printed as a double, and a string id.
    assert_eq!(
        verdict(br#"{"result":{"code":200,"display_name":"x"},"id":4294967296.0}"#).map(|r| r.0),
        Some(4294967296)
    );
    assert_eq!(
        verdict(br#"{"result":{"code":200,"display_name":"x"},"id":"12"}"#).map(|r| r.0),
        Some(12)
    );
    assert!(matches!(
        verdict(br#"{"result":{"code":200},"id":13}"#),
        Some((13, NicknameVerdict::Failed(_)))
    ));
    assert!(matches!(
        verdict(br#"{"result":{},"id":14}"#),
        Some((14, NicknameVerdict::Failed(_)))
    ));
    assert!(matches!(
        verdict(br#"{"result":{"code":404},"id":15}"#),
        Some((15, NicknameVerdict::Refused { code: 404, .. }))
    ));
    assert!(matches!(
        verdict(br#"{"id":16}"#),
        Some((16, NicknameVerdict::Failed(_)))
    ));
    assert_eq!(verdict(br#"{"result":{"code":200}}"#), None);
    assert_eq!(verdict(b"not json"), None);
}

/// Pages skip records a registration cannot use, but count them (paging goes on).
#[test]
fn session_pages_skip_unusable_records_and_count_them() {
    let page = json!({"jsonrpc":"2.0","result":[
        record(1).to_value(),
        {"session":"s4"},
        {"conference":"c","session":"s5","uri":"u","peer_path":["p1","p2"],
         "anonymous":true,"chatroom":["nickname"]},
    ],"id":1});
    let (ps, n) = Reply::parse(page.to_string().as_bytes())
        .unwrap()
        .sessions()
        .unwrap();
    assert_eq!((ps.len(), n), (2, 3));
    assert_eq!(ps[1].peer_path, ["p1", "p2"]);
    assert!(ps[1].anonymous && !ps[1].private_messages_allowed);
    assert_eq!(ps[1].display_name, None);
    let reply = |v: Value| Reply::parse(v.to_string().as_bytes()).unwrap();
    assert!(reply(json!({"error":{"code":500,"message":"x"},"id":1}))
        .sessions()
        .is_err());
    assert!(reply(json!({"result":"x","id":1})).sessions().is_err());
    assert_eq!(
        reply(json!({"result":[],"id":1})).sessions(),
        Ok((vec![], 0))
    );
    assert_eq!(reply(json!({"id":1})).sessions(), Ok((vec![], 0)));
    assert_eq!(
        reply(json!({"result":record(2).to_value(),"id":1})).sessions(),
        Ok((vec![record(2)], 1))
    );
    assert_eq!(
        reply(json!({"error":{"code":-32601,"message":"Method not found"},"id":1})).missing(),
        None
    );
}
