//! `msrp::Decoder`: never panics on any byte stream fed in any split, keeps `buffered()` within
//! its bound, stays dead after a Framing error; a decoder with `lean_responses()` (the relay's)
//! sees exactly the same events and errors, responses reduced to transaction id and status;
//! `msrp::parse_uri` never panics and round-trips, and `msrp::check_uri` agrees with it.
#![no_main]
use chat_alias_proto::msrp::{self, Decoder, Event, Limits, MsrpError, MAX_END_LINE};
use libfuzzer_sys::fuzz_target;

/// What one decoder saw, in order: events (responses as id and status only) and errors.
fn decode(mut d: Decoder, rest: &[u8], piece: usize, bound: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut dead = false;
    for chunk in rest.chunks(piece) {
        d.feed(chunk);
        assert!(d.buffered() <= bound + chunk.len());
        loop {
            match d.poll() {
                Ok(None) => break,
                Ok(Some(Event::Body(b))) => {
                    assert!(!b.is_empty());
                    seen.push(format!("body {b:?}"));
                }
                Ok(Some(Event::Request(h))) => {
                    let mut out = Vec::new();
                    msrp::encode::request_head(&h, &mut out);
                    seen.push(format!("request {h:?}"));
                }
                Ok(Some(Event::Response(r))) => {
                    seen.push(format!("response {} {}", r.transaction_id, r.status));
                }
                Ok(Some(e)) => seen.push(format!("{e:?}")),
                Err(e @ (MsrpError::Malformed { .. } | MsrpError::BadUri(_))) => {
                    seen.push(format!("error {e:?}"));
                }
                Err(e @ MsrpError::Framing(_)) => {
                    seen.push(format!("error {e:?}"));
                    dead = true;
                    break;
                }
            }
        }
        assert!(d.buffered() <= bound);
        if dead {
            assert!(matches!(d.poll(), Err(MsrpError::Framing(_))));
            assert_eq!(d.buffered(), 0);
        }
    }
    seen
}

fuzz_target!(|data: &[u8]| {
    // Byte 0: piece size (1..=256, 0 = everything at once); byte 1: head limit selector.
    let Some((&[size, head], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limits = Limits {
        max_head_bytes: if head & 1 == 0 {
            64 + usize::from(head) * 4
        } else {
            16 * 1024
        },
        max_non_send_body: usize::from(head >> 4) * 64,
    };
    let bound = limits.max_head_bytes + MAX_END_LINE;
    let piece = if size == 0 {
        rest.len().max(1)
    } else {
        usize::from(size)
    };
    let full = decode(Decoder::new(limits), rest, piece, bound);
    let lean = decode(Decoder::new(limits).lean_responses(), rest, piece, bound);
    assert_eq!(
        full, lean,
        "the lean decoder must see what the full one sees"
    );
    if let Ok(s) = std::str::from_utf8(rest) {
        let parsed = msrp::parse_uri(s);
        assert_eq!(msrp::check_uri(s), parsed.clone().map(|_| ()));
        if let Ok(u) = parsed {
            assert_eq!(msrp::parse_uri(&u.to_string()), Ok(u));
        }
    }
});
