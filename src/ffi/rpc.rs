//! RPC commands (`kamcmd chat_alias.*`): list, reload, stats. Handlers collect what they print with
//! the module's locks held, then release them before calling into the RPC layer.
use super::bindings as b;
use super::exports::{module, KCell};
use super::guard;
use crate::service;
use chat_alias_focus::alias_table::Stripe;
use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr::null_mut;

static DOC_LIST: KCell<[*const c_char; 2]> = KCell(UnsafeCell::new([
    c"List conferences and participants: assigned identity, anonymity, real identity (operator only), MSRP session".as_ptr(),
    std::ptr::null(),
]));
static DOC_RELOAD: KCell<[*const c_char; 2]> = KCell(UnsafeCell::new([
    c"Re-read the group documents directory; a bad document is refused and the previous groups stay in force".as_ptr(),
    std::ptr::null(),
]));
static DOC_STATS: KCell<[*const c_char; 2]> = KCell(UnsafeCell::new([
    c"Alias table usage: conferences, participants, capacity, groups".as_ptr(),
    std::ptr::null(),
]));

static DOC_NICKNAME: KCell<[*const c_char; 2]> = KCell(UnsafeCell::new([
    c"Set (or remove, with an empty name) a participant's display name if unique: conference URI, MSRP session id, nickname (used by the relay for RFC 7701 NICKNAME)".as_ptr(),
    std::ptr::null(),
]));

static DOC_SESSIONS: KCell<[*const c_char; 2]> = KCell(UnsafeCell::new([
    c"Every participant as the relay needs it to rebuild its registry (an array of records: conference, session, uri, display_name, anonymous, peer_path, accept_wrapped_types, chatroom, private_messages_allowed); optional params: offset, limit".as_ptr(),
    std::ptr::null(),
]));

/// Kamailio's `RET_ARRAY` (core/rpc.h): every top-level value the handler adds is an element of
/// the result array (jsonrpcs otherwise keeps the last one only).
const RET_ARRAY: std::ffi::c_uint = 1;

pub static RPC_METHODS: KCell<[b::rpc_export_t; 6]> = KCell(UnsafeCell::new([
    b::rpc_export_t {
        name: c"chat_alias.list".as_ptr(),
        function: Some(rpc_list),
        doc_str: DOC_LIST.0.get().cast(),
        flags: 0,
    },
    b::rpc_export_t {
        name: c"chat_alias.reload".as_ptr(),
        function: Some(rpc_reload),
        doc_str: DOC_RELOAD.0.get().cast(),
        flags: 0,
    },
    b::rpc_export_t {
        name: c"chat_alias.stats".as_ptr(),
        function: Some(rpc_stats),
        doc_str: DOC_STATS.0.get().cast(),
        flags: 0,
    },
    b::rpc_export_t {
        name: c"chat_alias.nickname".as_ptr(),
        function: Some(rpc_nickname),
        doc_str: DOC_NICKNAME.0.get().cast(),
        flags: 0,
    },
    b::rpc_export_t {
        name: c"chat_alias.sessions".as_ptr(),
        function: Some(rpc_sessions),
        doc_str: DOC_SESSIONS.0.get().cast(),
        flags: RET_ARRAY,
    },
    b::rpc_export_t {
        name: std::ptr::null(),
        function: None,
        doc_str: null_mut(),
        flags: 0,
    },
]));

fn cstr(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

/// A reply under construction.
struct Reply {
    rpc: *mut b::rpc_t,
    ctx: *mut c_void,
}

enum Field {
    Str(&'static std::ffi::CStr, String),
    Int(&'static std::ffi::CStr, i64),
}

impl Reply {
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

unsafe extern "C" fn rpc_list(rpc: *mut b::rpc_t, ctx: *mut c_void) {
    guard("chat_alias.list", (), || {
        let r = Reply { rpc, ctx };
        let Some(m) = module() else {
            return r.fault(500, "chat_alias not initialised");
        };
        // Collect under the locks, print after.
        let mut rows = Vec::new();
        for i in 0..m.shared.stripes() {
            m.shared.with_stripe(i, |mem| {
                if let Ok(s) = Stripe::attach(mem) {
                    for c in s.conferences() {
                        for p in s.participants(&c.key) {
                            rows.push((c.key.clone(), p));
                        }
                    }
                }
            });
        }
        for (conf, p) in rows {
            r.record(&[
                Field::Str(c"conference", conf),
                Field::Str(c"uri", p.uri),
                Field::Str(c"display_name", p.display_name.unwrap_or_default()),
                Field::Int(c"anonymous", i64::from(p.anonymous)),
                Field::Str(c"identity", p.identity_uri),
                Field::Str(c"session", p.session_id),
            ]);
        }
    })
}

unsafe extern "C" fn rpc_reload(rpc: *mut b::rpc_t, ctx: *mut c_void) {
    guard("chat_alias.reload", (), || {
        let r = Reply { rpc, ctx };
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
            Err(e) => r.fault(500, &e),
        }
    })
}

unsafe extern "C" fn rpc_stats(rpc: *mut b::rpc_t, ctx: *mut c_void) {
    guard("chat_alias.stats", (), || {
        let r = Reply { rpc, ctx };
        let Some(m) = module() else {
            return r.fault(500, "chat_alias not initialised");
        };
        let (mut conferences, mut participants) = (0i64, 0i64);
        for i in 0..m.shared.stripes() {
            m.shared.with_stripe(i, |mem| {
                if let Ok(s) = Stripe::attach(mem) {
                    let u = s.usage();
                    conferences += i64::from(u.conferences.used);
                    participants += i64::from(u.participants.used);
                }
            });
        }
        r.record(&[
            Field::Int(c"conferences", conferences),
            Field::Int(c"participants", participants),
            Field::Int(c"max_participants", m.cfg.max_participants.into()),
            Field::Int(c"max_conferences", m.cfg.max_conferences.into()),
            Field::Int(c"table_stripes", m.cfg.table_stripes.into()),
            Field::Int(c"groups", service::group_count(m) as i64),
        ]);
    })
}

unsafe extern "C" fn rpc_nickname(rpc: *mut b::rpc_t, ctx: *mut c_void) {
    guard("chat_alias.nickname", (), || {
        let r = Reply { rpc, ctx };
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
            Err((code, msg)) => r.fault(c_int::from(code), &msg),
        }
    })
}

unsafe extern "C" fn rpc_sessions(rpc: *mut b::rpc_t, ctx: *mut c_void) {
    guard("chat_alias.sessions", (), || {
        let r = Reply { rpc, ctx };
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
    })
}
