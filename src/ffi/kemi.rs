//! KEMI exports: `KSR.chat_alias.join(identity)` and `KSR.chat_alias.is_group()` for Lua, Python,
//! JavaScript routing scripts. Registered in mod_register.
use super::bindings as b;
use super::declare::KCell;
use super::exports::{in_dialog, is_group, join, leave};
use super::host::guard;
use std::cell::UnsafeCell;
use std::ffi::{c_int, c_void};

const fn kstr(s: &'static std::ffi::CStr) -> b::str_ {
    b::str_ {
        s: s.as_ptr().cast_mut(),
        len: s.count_bytes() as c_int,
    }
}

const NONE: c_int = b::SR_KEMIP_NONE as c_int;

static KEMI: KCell<[b::sr_kemi_t; 5]> = KCell(UnsafeCell::new([
    b::sr_kemi_t {
        mname: kstr(c"chat_alias"),
        fname: kstr(c"join"),
        rtype: b::SR_KEMIP_INT as c_int,
        func: ki_join as *mut c_void,
        ptypes: [b::SR_KEMIP_STR as c_int, NONE, NONE, NONE, NONE, NONE],
    },
    b::sr_kemi_t {
        mname: kstr(c"chat_alias"),
        fname: kstr(c"is_group"),
        rtype: b::SR_KEMIP_INT as c_int,
        func: ki_is_group as *mut c_void,
        ptypes: [NONE; 6],
    },
    b::sr_kemi_t {
        mname: kstr(c"chat_alias"),
        fname: kstr(c"in_dialog"),
        rtype: b::SR_KEMIP_INT as c_int,
        func: ki_in_dialog as *mut c_void,
        ptypes: [NONE; 6],
    },
    b::sr_kemi_t {
        mname: kstr(c"chat_alias"),
        fname: kstr(c"leave"),
        rtype: b::SR_KEMIP_INT as c_int,
        func: ki_leave as *mut c_void,
        ptypes: [NONE; 6],
    },
    b::sr_kemi_t {
        mname: b::str_ {
            s: std::ptr::null_mut(),
            len: 0,
        },
        fname: b::str_ {
            s: std::ptr::null_mut(),
            len: 0,
        },
        rtype: 0,
        func: std::ptr::null_mut(),
        ptypes: [NONE; 6],
    },
]));

pub fn register() -> c_int {
    // SAFETY: the table is static and NULL-terminated; Kamailio keeps the pointer.
    if unsafe { b::sr_kemi_modules_add(KEMI.0.get().cast()) } < 0 {
        -1
    } else {
        0
    }
}

unsafe extern "C" fn ki_join(msg: *mut b::sip_msg, identity: *mut b::str_) -> c_int {
    guard("KSR.chat_alias.join", -1, || {
        // SAFETY: KEMI passes a valid str for an SR_KEMIP_STR parameter.
        let id = unsafe {
            identity
                .as_ref()
                .filter(|s| !s.s.is_null() && s.len > 0)
                .map(|s| {
                    String::from_utf8_lossy(std::slice::from_raw_parts(
                        s.s.cast::<u8>(),
                        s.len as usize,
                    ))
                    .into_owned()
                })
        };
        join(msg, id)
    })
}

unsafe extern "C" fn ki_is_group(msg: *mut b::sip_msg) -> c_int {
    guard("KSR.chat_alias.is_group", -1, || is_group(msg))
}

unsafe extern "C" fn ki_in_dialog(msg: *mut b::sip_msg) -> c_int {
    guard("KSR.chat_alias.in_dialog", -1, || in_dialog(msg))
}

unsafe extern "C" fn ki_leave(msg: *mut b::sip_msg) -> c_int {
    guard("KSR.chat_alias.leave", -1, || leave(msg))
}
