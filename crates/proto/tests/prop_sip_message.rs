//! Property tests for `sip::message`: no input makes the parser or the stream framer panic; a
//! composed message parses back; messages written back to back on a stream, read in any pieces,
//! come out whole, in order and byte for byte.
use chat_alias_proto::sip::message::{
    same_header_name, MessageError, SipMessage, StartLine, StreamDecoder, MAX_BODY, MAX_HEAD,
};
use proptest::prelude::*;

fn start_line() -> impl Strategy<Value = StartLine> {
    prop_oneof![
        ("[A-Z]{1,10}", "sip:[a-z0-9]{1,8}@[a-z0-9.]{1,12}")
            .prop_map(|(method, uri)| StartLine::Request { method, uri }),
        (100u16..700, "[A-Za-z ]{0,20}")
            .prop_map(|(code, reason)| StartLine::Response { code, reason }),
    ]
}

/// Header lines as a peer may write them: token names (compact forms included), values of
/// printable ASCII without surrounding white space (the parser trims it). No Content-Length: the
/// composer writes its own.
fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(
        ("[A-Za-z][A-Za-z0-9-]{0,12}", "([!-~]([ -~]{0,30}[!-~])?)?"),
        0..12,
    )
    .prop_map(|hs| {
        hs.into_iter()
            .filter(|(n, _)| !same_header_name(n, "Content-Length"))
            .collect()
    })
}

fn message() -> impl Strategy<Value = SipMessage> {
    (
        start_line(),
        headers(),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(start, headers, body)| SipMessage {
            start,
            headers,
            body,
        })
}

/// What parsing `m.to_bytes()` gives: `m` with the Content-Length the composer appended.
fn as_sent(m: &SipMessage) -> SipMessage {
    let mut m = m.clone();
    m.headers
        .push(("Content-Length".into(), m.body.len().to_string()));
    m
}

proptest! {
    #[test]
    fn parse_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(m) = SipMessage::parse(&raw) {
            // Whatever parses has a head that ends in the input, and a body no longer than it.
            prop_assert!(m.body.len() <= raw.len());
        }
    }

    #[test]
    fn parse_never_panics_on_sip_like_input(
        raw in "(SIP/2\\.0 [0-9]{1,4} [A-Za-z]{0,4}|[A-Z]{1,6} sip:a SIP/2\\.0)(\r\n[ \tA-Za-z:;=0-9-]{0,20}){0,6}(\r\n\r\n)?[a-z]{0,10}"
    ) {
        let _ = SipMessage::parse(raw.as_bytes());
    }

    #[test]
    fn composed_messages_parse_back(m in message()) {
        let bytes = m.to_bytes();
        prop_assert_eq!(SipMessage::parse(&bytes).unwrap(), as_sent(&m));
        // Composing what was parsed gives the same bytes.
        prop_assert_eq!(SipMessage::parse(&bytes).unwrap().to_bytes(), bytes);
    }

    #[test]
    fn a_stream_yields_each_message_whole_in_any_pieces(
        msgs in proptest::collection::vec((message(), 0usize..3), 1..5),
        cuts in proptest::collection::vec(1usize..97, 1..40),
    ) {
        let mut stream = Vec::new();
        let mut frames = Vec::new();
        for (m, keepalives) in &msgs {
            // CRLF keep-alives between messages (RFC 5626 §4.4.1) are skipped.
            stream.extend(std::iter::repeat_n(b"\r\n".as_slice(), *keepalives).flatten());
            let b = m.to_bytes();
            stream.extend_from_slice(&b);
            frames.push(b);
        }
        let mut d = StreamDecoder::default();
        let mut frame_d = StreamDecoder::default();
        let (mut got, mut got_frames) = (Vec::new(), Vec::new());
        let mut rest = stream.as_slice();
        let mut i = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].min(rest.len());
            let (piece, after) = rest.split_at(n);
            rest = after;
            i += 1;
            d.feed(piece);
            frame_d.feed(piece);
            while let Some(m) = d.poll() {
                got.push(m.unwrap());
            }
            while let Some(f) = frame_d.poll_frame() {
                got_frames.push(f.unwrap());
            }
        }
        let want: Vec<SipMessage> = msgs.iter().map(|(m, _)| as_sent(m)).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(got_frames, frames);
        prop_assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn a_stream_of_garbage_never_panics_and_stays_bounded(
        pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..4096), 0..40),
    ) {
        let mut d = StreamDecoder::default();
        for p in &pieces {
            d.feed(p);
            // Once the framing is lost the caller closes; so does this test.
            if let Some(Err(_)) = d.poll() {
                break;
            }
            // Without a complete message, at most a capped head (plus the last piece) waits.
            prop_assert!(d.buffered() <= MAX_HEAD + MAX_BODY + 4 + p.len() + 4096);
        }
    }
}

#[test]
fn a_head_that_never_ends_is_refused_past_the_cap() {
    let mut d = StreamDecoder::default();
    d.feed(b"INVITE sip:a@b SIP/2.0\r\n");
    let mut fed = 0;
    loop {
        d.feed(&[b'a'; 1000]);
        fed += 1000;
        if let Some(r) = d.poll() {
            assert_eq!(r, Err(MessageError::HeadTooLong));
            break;
        }
        assert!(fed <= MAX_HEAD + 1000, "no refusal after {fed} bytes");
    }
}
