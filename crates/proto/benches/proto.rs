//! `make bench`: the per-INVITE protocol work of a join, without Kamailio.
//!
//! - `nickname/clash_key`: the RFC 8266 + UTS #39 comparison key of a plain ASCII alias and of a
//!   confusable Unicode one (a full-width letter, a Cyrillic look-alike, a zero-width space).
//! - `sdp`: parsing a typical MSRP chat offer (as the end-to-end tests send it), choosing its chat
//!   media line and composing the focus's answer.
//! - `cpim/parse_headers` and `multipart/parse`: the bodies of the illustrative 200 OK of README.md ("The sample flow") (what a client
//!   parses when its alias was modified).
use std::hint::black_box;
use std::time::Duration;

use chat_alias_proto::sdp::{self, AnswerParams};
use chat_alias_proto::{cpim, multipart, nickname};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// The offer of `msrp_offer` in tests/support/sip.rs (and of kamailio/sipp/join-leave.xml).
const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=message 40000 TCP/MSRP *\r\na=accept-types:message/cpim\r\na=accept-wrapped-types:text/plain\r\n\
a=path:msrp://127.0.0.1:40000/kx8Qm2Zp0aLw7vR1;tcp\r\na=setup:actpass\r\n\
a=chatroom:nickname private-messages\r\n";

/// The multipart body of the illustrative 200 OK in README.md ("The sample flow") (LF here, CRLF when used).
const SPEC_200_OK_BODY: &str = "--ca7f3a
Content-Type: message/cpim

From: <sip:bookclub@im.example.net>
To: \"bob-2\" <sip:anonymous2@anonymous.invalid>

Content-Type: text/plain;charset=UTF-8


--ca7f3a
Content-Type: application/sdp

v=0
o=- 1 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=message 2855 TCP/MSRP *
a=accept-types:message/cpim
a=accept-wrapped-types:text/plain text/html *
a=path:msrp://192.0.2.10:2855/kx8Qm2Zp0aLw7vR1;tcp
a=setup:passive
a=chatroom:nickname private-messages
--ca7f3a--
";

fn nickname_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("nickname/clash_key");
    // Full-width B, Cyrillic о, b and a zero-width space: it must key like "bob".
    let confusable = "\u{FF22}\u{043E}b\u{200B}";
    assert_eq!(nickname::clash_key(confusable), nickname::clash_key("bob"));
    // The alias table keys `bob-N` once per clashing join: its cost grows with the name's length,
    // not with N, which is what `alias_table/join/same_name/*` shows.
    for (label, name) in [
        ("ascii", "bob"),
        ("ascii_bob-2", "bob-2"),
        ("ascii_bob-10000", "bob-10000"),
        ("confusable_unicode", confusable),
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(label), name, |b, n| {
            b.iter(|| nickname::clash_key(black_box(n)))
        });
    }
    g.finish();
}

fn sdp_benches(c: &mut Criterion) {
    let offer = sdp::parse(OFFER).expect("offer parses");
    let chat = sdp::find_chat_media(&offer).expect("chat media");
    let wrapped = ["text/plain", "text/html", "*"];
    let chatroom = ["nickname", "private-messages"];
    let params = AnswerParams {
        address: "127.0.0.1",
        port: 2855,
        path: "msrp://127.0.0.1:2855/kx8Qm2Zp0aLw7vR1xY3b;tcp",
        accept_wrapped_types: &wrapped,
        chatroom: &chatroom,
        max_size: None,
        session_id: 1,
        session_version: 1,
    };
    let mut g = c.benchmark_group("sdp");
    g.throughput(Throughput::Bytes(OFFER.len() as u64));
    g.bench_function("parse", |b| b.iter(|| sdp::parse(black_box(OFFER))));
    g.throughput(Throughput::Elements(1));
    g.bench_function("find_chat_media", |b| {
        b.iter(|| sdp::find_chat_media(black_box(&offer)))
    });
    g.bench_function("compose_answer", |b| {
        b.iter(|| sdp::compose_answer(black_box(&offer), chat, black_box(&params)))
    });
    g.bench_function("parse+find+compose", |b| {
        b.iter(|| {
            let o = sdp::parse(black_box(OFFER)).expect("offer");
            let i = sdp::find_chat_media(&o).expect("chat");
            sdp::compose_answer(&o, i, &params)
        })
    });
    g.finish();
}

fn body_benches(c: &mut Criterion) {
    let body = SPEC_200_OK_BODY.replace('\n', "\r\n").into_bytes();
    let parts = multipart::parse(&body, "ca7f3a").expect("multipart parses");
    let cpim_part = parts[0].body.to_vec();
    cpim::parse_headers(&cpim_part).expect("CPIM parses");

    let mut g = c.benchmark_group("cpim");
    g.throughput(Throughput::Bytes(cpim_part.len() as u64));
    g.bench_function("parse_headers", |b| {
        b.iter(|| cpim::parse_headers(black_box(&cpim_part)).map(|h| h.header_len))
    });
    g.finish();

    let mut g = c.benchmark_group("multipart");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("parse_spec_200_ok", |b| {
        b.iter(|| multipart::parse(black_box(&body), "ca7f3a").map(|p| p.len()))
    });
    g.finish();
}

fn config_criterion() -> Criterion {
    // Short runs: `make bench` must stay within a few minutes on 2 cores.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config_criterion();
    targets = nickname_benches, sdp_benches, body_benches
}
criterion_main!(benches);
