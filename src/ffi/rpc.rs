//! The RPC commands' bodies (`kamcmd chat_alias.*`: list, reload, stats, nickname, sessions; their
//! names and docs are declared in `exports.rs`) and the reply builder they print with. The
//! service collects each answer under the module's locks and returns plain values; they are
//! printed here after the locks are released.
use super::bindings as b;
use super::host::module;
use crate::service;
use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr::null_mut;

fn cstr(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

/// A reply under construction.
pub struct Reply {
    rpc: *mut b::rpc_t,
    ctx: *mut c_void,
}

enum Field {
    Str(&'static std::ffi::CStr, String),
    Int(&'static std::ffi::CStr, i64),
}

impl Reply {
    /// The reply of the RPC call Kamailio handed `rpc` and `ctx` to.
    pub fn new(rpc: *mut b::rpc_t, ctx: *mut c_void) -> Self {
        Reply { rpc, ctx }
    }

    fn fault(&self, code: c_int, msg: &str) {
        let m = cstr(msg);
        // SAFETY: rpc and ctx come from Kamailio for this call; "%s" consumes one C string.
        unsafe {
            if let Some(f) = (*self.rpc).fault {
                f(self.ctx, code, c"%s".as_ptr().cast_mut(), m.as_ptr());
            }
        }
    }

    /// Reads `N` string parameters; None (after a fault) when they are missing.
    fn strings<const N: usize>(&self) -> Option<[String; N]> {
        let mut ptrs: [*mut c_char; 3] = [null_mut(); 3];
        // SAFETY: "s" stores one char* per format letter into the matching pointer; N <= 3.
        let [p0, p1, p2] = &mut ptrs;
        let n = unsafe {
            let scan = (*self.rpc).scan?;
            match N {
                1 => scan(self.ctx, c"s".as_ptr().cast_mut(), p0 as *mut *mut c_char),
                2 => scan(
                    self.ctx,
                    c"ss".as_ptr().cast_mut(),
                    p0 as *mut *mut c_char,
                    p1 as *mut *mut c_char,
                ),
                3 => scan(
                    self.ctx,
                    c"sss".as_ptr().cast_mut(),
                    p0 as *mut *mut c_char,
                    p1 as *mut *mut c_char,
                    p2 as *mut *mut c_char,
                ),
                _ => return None,
            }
        };
        if n < N as c_int {
            self.fault(400, &format!("{N} parameters required"));
            return None;
        }
        // SAFETY: the RPC layer returned NUL-terminated strings valid for this call.
        Some(std::array::from_fn(|i| unsafe {
            if ptrs[i].is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(ptrs[i])
                    .to_string_lossy()
                    .into_owned()
            }
        }))
    }

    /// Reads one optional string parameter.
    fn optional_string(&self) -> Option<String> {
        let mut p: *mut c_char = null_mut();
        // SAFETY: "*s" stores one char* into `p` if present; the return value counts it.
        let n = unsafe {
            let scan = (*self.rpc).scan?;
            scan(
                self.ctx,
                c"*s".as_ptr().cast_mut(),
                &mut p as *mut *mut c_char,
            )
        };
        if n < 1 || p.is_null() {
            return None;
        }
        // SAFETY: the RPC layer returned a NUL-terminated string valid for this call.
        Some(
            unsafe { std::ffi::CStr::from_ptr(p) }
                .to_string_lossy()
                .into_owned(),
        )
    }

    /// Reads up to two optional integer parameters (missing ones stay `None`).
    fn optional_ints(&self) -> [Option<i64>; 2] {
        let (mut a, mut b2): (c_int, c_int) = (0, 0);
        // SAFETY: "*dd" stores one int per 'd' into the matching pointer; '*' makes them optional,
        // and the return value counts the ones read.
        let n = unsafe {
            match (*self.rpc).scan {
                Some(scan) => scan(
                    self.ctx,
                    c"*dd".as_ptr().cast_mut(),
                    &mut a as *mut c_int,
                    &mut b2 as *mut c_int,
                ),
                None => 0,
            }
        };
        [
            (n >= 1).then_some(i64::from(a)),
            (n >= 2).then_some(i64::from(b2)),
        ]
    }

    fn text(&self, s: &str) {
        let v = cstr(s);
        // SAFETY: "s" consumes one C string, copied by the RPC layer.
        unsafe {
            if let Some(add) = (*self.rpc).add {
                add(self.ctx, c"s".as_ptr().cast_mut(), v.as_ptr());
            }
        }
    }

    /// Adds one struct with the given fields to the reply.
    fn record(&self, fields: &[Field]) {
        let mut h: *mut c_void = null_mut();
        // SAFETY: "{" creates a struct and stores its handle in `h`; each struct_add call below passes
        // exactly the (name, value) pair its one-letter format announces; strings are copied.
        unsafe {
            let (Some(add), Some(sadd)) = ((*self.rpc).add, (*self.rpc).struct_add) else {
                return;
            };
            if add(
                self.ctx,
                c"{".as_ptr().cast_mut(),
                &mut h as *mut *mut c_void,
            ) < 0
                || h.is_null()
            {
                return;
            }
            for f in fields {
                match f {
                    Field::Str(name, v) => {
                        let v = cstr(v);
                        sadd(h, c"s".as_ptr().cast_mut(), name.as_ptr(), v.as_ptr());
                    }
                    Field::Int(name, v) => {
                        sadd(
                            h,
                            c"d".as_ptr().cast_mut(),
                            name.as_ptr(),
                            (*v).clamp(i32::MIN.into(), i32::MAX.into()) as c_int,
                        );
                    }
                }
            }
        }
    }
}

pub fn list(r: &Reply) {
    let Some(m) = module() else {
        return r.fault(500, "chat_alias not initialised");
    };
    // Collected under the stripe locks by the service, printed here after they are released.
    for p in service::list(m) {
        r.record(&[
            Field::Str(c"conference", p.conference),
            Field::Str(c"uri", p.uri),
            Field::Str(c"display_name", p.display_name.unwrap_or_default()),
            Field::Int(c"anonymous", i64::from(p.anonymous)),
            Field::Str(c"identity", p.identity),
            Field::Str(c"session", p.session),
        ]);
    }
}

pub fn reload(r: &Reply) {
    let Some(m) = module() else {
        return r.fault(500, "chat_alias not initialised");
    };
    // One optional string parameter: `force` accepts a directory that holds no group.
    let force = match r.optional_string() {
        None => false,
        Some(s) if s == "force" => true,
        Some(other) => {
            return r.fault(
                400,
                &format!("unknown parameter {other:?}: the only parameter is \"force\""),
            )
        }
    };
    match service::reload(m, force) {
        Ok(n) => r.text(&format!("reloaded {n} groups")),
        Err(e) => r.fault(500, &e.to_string()),
    }
}

pub fn stats(r: &Reply) {
    let Some(m) = module() else {
        return r.fault(500, "chat_alias not initialised");
    };
    let st = service::stats(m);
    r.record(&[
        Field::Int(
            c"conferences",
            st.conferences.try_into().unwrap_or(i64::MAX),
        ),
        Field::Int(
            c"participants",
            st.participants.try_into().unwrap_or(i64::MAX),
        ),
        Field::Int(c"max_participants", st.max_participants.into()),
        Field::Int(c"max_conferences", st.max_conferences.into()),
        Field::Int(c"table_stripes", st.table_stripes.into()),
        Field::Int(c"groups", st.groups.try_into().unwrap_or(i64::MAX)),
    ]);
}

pub fn nickname(r: &Reply) {
    let Some(m) = module() else {
        return r.fault(500, "chat_alias not initialised");
    };
    let Some([conference, session, nick]) = r.strings::<3>() else {
        return;
    };
    match service::nickname(m, &conference, &session, &nick) {
        Ok(name) => r.record(&[
            Field::Int(c"code", 200),
            Field::Str(c"display_name", name.unwrap_or_default()),
        ]),
        Err(e) => r.fault(c_int::from(e.status()), &e.to_string()),
    }
}

pub fn sessions(r: &Reply) {
    let Some(m) = module() else {
        return r.fault(500, "chat_alias not initialised");
    };
    let [offset, limit] = r.optional_ints();
    let offset = usize::try_from(offset.unwrap_or(0)).unwrap_or(0);
    let limit = limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(0));
    // Collected under the stripe locks by the service, printed here after they are released.
    for s in service::sessions(m, offset, limit) {
        r.record(&[
            Field::Str(c"conference", s.conference),
            Field::Str(c"session", s.session),
            Field::Str(c"uri", s.uri),
            Field::Str(c"display_name", s.display_name.unwrap_or_default()),
            Field::Int(c"anonymous", i64::from(s.anonymous)),
            Field::Str(c"peer_path", s.peer_path),
            Field::Str(c"accept_wrapped_types", s.accept_wrapped_types.join(" ")),
            Field::Str(c"chatroom", s.chatroom.join(" ")),
            Field::Int(
                c"private_messages_allowed",
                i64::from(s.private_messages_allowed),
            ),
        ]);
    }
}
