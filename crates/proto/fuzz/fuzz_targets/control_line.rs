//! `control::decode`: a line from the control socket never panics, and whatever decodes
//! re-encodes to a line that decodes to the same message — requests (read by the relay: `join`,
//! `leave`, `ping`, `idle`) and responses (read by the module: grants, errors, `idle` lists).
#![no_main]
use chat_alias_proto::control::{self, Request, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = control::decode::<Request>(data) {
        let line = control::encode(&req);
        assert_eq!(
            control::decode::<Request>(&line).expect("re-encoded request decodes"),
            req
        );
    }
    if let Ok(resp) = control::decode::<Response>(data) {
        let line = control::encode(&resp);
        assert_eq!(
            control::decode::<Response>(&line).expect("re-encoded response decodes"),
            resp
        );
    }
});
