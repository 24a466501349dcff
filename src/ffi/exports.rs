//! What Kamailio's loader looks up by name: `module_version`, `module_flags`,
//! `module_interface_ver`, `exports` and `mod_register`. They must be Rust `#[no_mangle]` items:
//! rustc's cdylib version script hides symbols that only the C shim defines.
use super::bindings as b;
use super::msg::SipMsg;
use super::{guard, install_panic_hook, kemi, log, rpc, Level};
use crate::config::Config;
use crate::service::{self, Module, Outcome, MODULE};
use crate::stats::Counter;
use chat_alias_focus::join::InviteView;
use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::ptr::null_mut;

/// A static Kamailio may read or write (modparams, export tables).
#[repr(transparent)]
pub struct KCell<T>(pub UnsafeCell<T>);
// SAFETY: written by Kamailio only during start-up (single process, single thread), read after.
unsafe impl<T> Sync for KCell<T> {}

#[repr(transparent)]
pub struct KPtr(pub *const c_char);
// SAFETY: points to immutable static strings.
unsafe impl Sync for KPtr {}

#[no_mangle]
pub static module_version: KPtr = KPtr(
    concat!(env!("CHAT_ALIAS_KAMAILIO_VERSION"), "\0")
        .as_ptr()
        .cast(),
);
#[no_mangle]
pub static module_flags: KPtr = KPtr(
    concat!(env!("CHAT_ALIAS_KAMAILIO_FLAGS"), "\0")
        .as_ptr()
        .cast(),
);
#[no_mangle]
pub static module_interface_ver: c_uint = b::MODULE_INTERFACE_VER;

// ---- modparams (Kamailio writes char* or int into these) ----
static P_GROUPS_DIR: KCell<*mut c_char> = KCell(UnsafeCell::new(
    c"/etc/kamailio/chat_alias/groups".as_ptr().cast_mut(),
));
static P_RELAY_SOCKET: KCell<*mut c_char> = KCell(UnsafeCell::new(
    c"/run/chat-alias/relay.sock".as_ptr().cast_mut(),
));
static P_FOCUS_SOCKET: KCell<*mut c_char> = KCell(UnsafeCell::new(c"".as_ptr().cast_mut()));
static P_FOCUS_ALLOWED_UID: KCell<c_int> = KCell(UnsafeCell::new(-1));
static P_RELAY_TIMEOUT_MS: KCell<c_int> = KCell(UnsafeCell::new(200));
static P_RETRY_AFTER: KCell<c_int> = KCell(UnsafeCell::new(5));
static P_MAX_DISPLAY_NAME: KCell<c_int> = KCell(UnsafeCell::new(64));
static P_MAX_PARTICIPANTS: KCell<c_int> = KCell(UnsafeCell::new(16384));
static P_MAX_CONFERENCES: KCell<c_int> = KCell(UnsafeCell::new(1024));
static P_TABLE_STRIPES: KCell<c_int> = KCell(UnsafeCell::new(16));
static P_MAX_PLACES_PER_IDENTITY: KCell<c_int> = KCell(UnsafeCell::new(3));
static P_BIND_TIMEOUT: KCell<c_int> = KCell(UnsafeCell::new(30));
static P_MSRP_GONE_TIMEOUT: KCell<c_int> = KCell(UnsafeCell::new(60));

const fn param(name: &'static CStr, ty: u32, p: *mut c_void) -> b::param_export_t {
    b::param_export_t {
        name: name.as_ptr().cast_mut(),
        type_: ty,
        param_pointer: p,
    }
}

static PARAMS: KCell<[b::param_export_t; 14]> = KCell(UnsafeCell::new([
    param(c"groups_dir", b::PARAM_STRING, P_GROUPS_DIR.0.get().cast()),
    param(
        c"relay_socket",
        b::PARAM_STRING,
        P_RELAY_SOCKET.0.get().cast(),
    ),
    param(
        c"focus_socket",
        b::PARAM_STRING,
        P_FOCUS_SOCKET.0.get().cast(),
    ),
    param(
        c"focus_allowed_uid",
        b::PARAM_INT,
        P_FOCUS_ALLOWED_UID.0.get().cast(),
    ),
    param(
        c"relay_timeout_ms",
        b::PARAM_INT,
        P_RELAY_TIMEOUT_MS.0.get().cast(),
    ),
    param(c"retry_after", b::PARAM_INT, P_RETRY_AFTER.0.get().cast()),
    param(
        c"max_display_name_chars",
        b::PARAM_INT,
        P_MAX_DISPLAY_NAME.0.get().cast(),
    ),
    param(
        c"max_participants",
        b::PARAM_INT,
        P_MAX_PARTICIPANTS.0.get().cast(),
    ),
    param(
        c"max_conferences",
        b::PARAM_INT,
        P_MAX_CONFERENCES.0.get().cast(),
    ),
    param(
        c"table_stripes",
        b::PARAM_INT,
        P_TABLE_STRIPES.0.get().cast(),
    ),
    param(
        c"max_places_per_identity",
        b::PARAM_INT,
        P_MAX_PLACES_PER_IDENTITY.0.get().cast(),
    ),
    param(c"bind_timeout", b::PARAM_INT, P_BIND_TIMEOUT.0.get().cast()),
    param(
        c"msrp_gone_timeout",
        b::PARAM_INT,
        P_MSRP_GONE_TIMEOUT.0.get().cast(),
    ),
    b::param_export_t {
        name: null_mut(),
        type_: 0,
        param_pointer: null_mut(),
    },
]));

static CMDS: KCell<[b::cmd_export_t; 5]> = KCell(UnsafeCell::new([
    b::cmd_export_t {
        name: c"chat_alias_join".as_ptr().cast_mut(),
        function: Some(w_chat_alias_join),
        param_no: 1,
        fixup: Some(b::fixup_spve_null),
        free_fixup: Some(b::fixup_free_spve_null),
        flags: b::REQUEST_ROUTE,
    },
    b::cmd_export_t {
        name: c"chat_alias_is_group".as_ptr().cast_mut(),
        function: Some(w_chat_alias_is_group),
        param_no: 0,
        fixup: None,
        free_fixup: None,
        flags: b::ANY_ROUTE,
    },
    b::cmd_export_t {
        name: c"chat_alias_leave".as_ptr().cast_mut(),
        function: Some(w_chat_alias_leave),
        param_no: 0,
        fixup: None,
        free_fixup: None,
        flags: b::REQUEST_ROUTE,
    },
    b::cmd_export_t {
        name: c"chat_alias_in_dialog".as_ptr().cast_mut(),
        function: Some(w_chat_alias_in_dialog),
        param_no: 0,
        fixup: None,
        free_fixup: None,
        flags: b::REQUEST_ROUTE,
    },
    b::cmd_export_t {
        name: null_mut(),
        function: None,
        param_no: 0,
        fixup: None,
        free_fixup: None,
        flags: 0,
    },
]));

#[no_mangle]
pub static exports: KCell<b::module_exports> = KCell(UnsafeCell::new(b::module_exports {
    name: c"chat_alias".as_ptr().cast_mut(),
    dlflags: 0,
    cmds: CMDS.0.get().cast(),
    params: PARAMS.0.get().cast(),
    rpc_methods: rpc::RPC_METHODS.0.get().cast(),
    pv_items: null_mut(),
    response_f: None,
    init_mod_f: Some(mod_init),
    init_child_f: Some(child_init),
    destroy_mod_f: Some(mod_destroy),
}));

/// Called at dlopen, before modparams: registers the KEMI functions.
#[no_mangle]
pub unsafe extern "C" fn mod_register(
    _path: *mut c_char,
    _dlflags: *mut c_int,
    _p1: *mut c_void,
    _p2: *mut c_void,
) -> c_int {
    guard("mod_register", -1, || {
        install_panic_hook();
        kemi::register()
    })
}

/// # Safety
/// Reads a modparam string Kamailio set (NUL-terminated, static for the process lifetime).
unsafe fn param_str(p: &KCell<*mut c_char>) -> String {
    let ptr = *p.0.get();
    if ptr.is_null() {
        String::new()
    } else {
        CStr::from_ptr(ptr).to_string_lossy().into_owned()
    }
}

fn param_u32(p: &KCell<c_int>) -> u32 {
    // SAFETY: modparams are written only during config parsing, before mod_init.
    let v = unsafe { *p.0.get() };
    u32::try_from(v).unwrap_or(0)
}

fn config_from_params() -> Config {
    Config {
        // SAFETY: see param_str.
        groups_dir: unsafe { param_str(&P_GROUPS_DIR) },
        // SAFETY: see param_str.
        relay_socket: unsafe { param_str(&P_RELAY_SOCKET) },
        // SAFETY: see param_str.
        focus_socket: unsafe { param_str(&P_FOCUS_SOCKET) },
        // SAFETY: modparams are written only during config parsing, before mod_init.
        focus_allowed_uid: u32::try_from(unsafe { *P_FOCUS_ALLOWED_UID.0.get() }).ok(),
        relay_timeout_ms: param_u32(&P_RELAY_TIMEOUT_MS),
        retry_after: param_u32(&P_RETRY_AFTER),
        max_display_name_chars: param_u32(&P_MAX_DISPLAY_NAME),
        max_participants: param_u32(&P_MAX_PARTICIPANTS),
        max_conferences: param_u32(&P_MAX_CONFERENCES),
        table_stripes: param_u32(&P_TABLE_STRIPES),
        max_places_per_identity: param_u32(&P_MAX_PLACES_PER_IDENTITY),
        bind_timeout: param_u32(&P_BIND_TIMEOUT),
        msrp_gone_timeout: param_u32(&P_MSRP_GONE_TIMEOUT),
    }
}

fn init() -> Result<(), String> {
    let cfg = config_from_params();
    cfg.validate()?;
    let mut have_dlg: c_int = 0;
    // SAFETY: called once in mod_init, after all modules are loaded.
    if unsafe { b::ca_load_apis(&mut have_dlg) } != 0 {
        return Err("cannot load the tm API: loadmodule \"tm.so\" before chat_alias".into());
    }
    if have_dlg == 0 {
        return Err("cannot load the dialog API: loadmodule \"dialog.so\" (participants leave on dialog end)".into());
    }
    let names: Vec<*const c_char> = Counter::ALL
        .iter()
        .map(|c| c.describe().0.as_ptr())
        .collect();
    let descrs: Vec<*const c_char> = Counter::ALL
        .iter()
        .map(|c| c.describe().1.as_ptr())
        .collect();
    // SAFETY: the names and descriptions are 'static C strings; the arrays are read during the call.
    if unsafe {
        b::ca_counters_register(
            names.as_ptr().cast_mut(),
            descrs.as_ptr().cast_mut(),
            names.len() as c_int,
        )
    } != 0
    {
        return Err("cannot register the chat_alias counters".into());
    }
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).map_err(|e| format!("getrandom: {e}"))?;
    let shared = super::Shared::create(&cfg, key)?;
    log(
        Level::Info,
        &format!(
            "alias table: {} stripes, {} bytes of shared memory; groups from {}; relay at {}",
            shared.stripes(),
            shared.total_bytes(),
            cfg.groups_dir,
            cfg.relay_socket
        ),
    );
    super::focus::register_process()?;
    // SAFETY: called once in mod_init, before the fork.
    if unsafe { b::ca_timer_register() } != 0 {
        return Err("cannot register the module's timer process".into());
    }
    let m = Module { cfg, shared };
    // At start-up an empty directory is allowed (groups can be added and reloaded later).
    service::reload(&m, true)?;
    MODULE.set(m).map_err(|_| "mod_init ran twice".to_string())
}

unsafe extern "C" fn mod_init() -> c_int {
    guard("mod_init", -1, || match init() {
        Ok(()) => 0,
        Err(e) => {
            log(Level::Error, &format!("initialisation failed: {e}"));
            -1
        }
    })
}

/// Kamailio's PROC_MAIN rank (core/sr_module.h): child_init in the main process, before the fork
/// of the processes modules registered.
const PROC_MAIN: c_int = 0;

unsafe extern "C" fn child_init(rank: c_int) -> c_int {
    // The relay connection is opened lazily by the first request that needs it. The main process
    // creates the focus socket (a failure stops Kamailio) and forks the process that serves it,
    // and forks the timer process that removes participants not backed by a live MSRP session
    // and those of removed groups.
    guard("child_init", -1, || {
        if rank != PROC_MAIN {
            return 0;
        }
        if let Err(e) = start_focus_socket() {
            log(Level::Error, &format!("focus socket: {e}"));
            return -1;
        }
        // SAFETY: plain call from the main process's child_init, as fork_basic_timer requires.
        if unsafe { b::ca_timer_fork(rank) } != 0 {
            log(Level::Error, "cannot fork the chat_alias timer process");
            return -1;
        }
        0
    })
}

fn start_focus_socket() -> Result<(), String> {
    let m = module().ok_or("module not initialised")?;
    let path = crate::focus_socket::path(&m.cfg.focus_socket, &m.cfg.relay_socket);
    let sock = super::focus::bind_private(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let uid = m
        .cfg
        .focus_allowed_uid
        .unwrap_or_else(super::focus::own_uid);
    super::focus::fork_server(sock, uid)?;
    log(
        Level::Info,
        &format!(
            "focus socket at {} (mode 0600), answering uid {uid}",
            path.display()
        ),
    );
    Ok(())
}

unsafe extern "C" fn mod_destroy() {
    // Shared memory is released by Kamailio itself at exit.
    guard("mod_destroy", (), || ())
}

/// The module's state, or None before mod_init succeeded.
pub fn module() -> Option<&'static Module> {
    MODULE.get()
}

/// The join procedure shared by the native script function and KEMI.
pub fn join(msg: *mut b::sip_msg, identity: Option<String>) -> c_int {
    let Some(m) = module() else { return -1 };
    // SAFETY: `msg` is the message of the current script call.
    let Some(mut sip) = (unsafe { SipMsg::from_raw(msg) }) else {
        return -1;
    };
    let Some(parts) = sip.parts() else { return -1 };
    if !parts.method.eq_ignore_ascii_case("INVITE") {
        log(
            Level::Warn,
            "chat_alias_join() called for a non-INVITE request",
        );
        return -1;
    }
    let identity = identity.unwrap_or_default();
    let view = InviteView {
        request_uri: &parts.ruri,
        from: parts.first("From", Some("f")),
        call_id: parts.first("Call-ID", Some("i")),
        privacy: parts.values("Privacy", None),
        accept: parts.values("Accept", None),
        content_type: parts.first("Content-Type", Some("c")),
        body: &parts.body,
        asserted_identity: &identity,
    };
    match service::join_invite(m, &view, &mut sip) {
        Outcome::Replied => 1,
        Outcome::Retransmission => 0,
        Outcome::Failed => -1,
    }
}

pub fn is_group(msg: *mut b::sip_msg) -> c_int {
    let Some(m) = module() else { return -1 };
    // SAFETY: `msg` is the message of the current script call.
    let Some(sip) = (unsafe { SipMsg::from_raw(msg) }) else {
        return -1;
    };
    let Some(ruri) = sip.request_uri() else {
        return -1;
    };
    if service::is_group(m, &ruri) {
        1
    } else {
        -1
    }
}

unsafe extern "C" fn w_chat_alias_join(
    msg: *mut b::sip_msg,
    p1: *mut c_char,
    _p2: *mut c_char,
) -> c_int {
    guard("chat_alias_join", -1, || {
        // SAFETY: p1 is this function's fixed-up parameter for this message.
        let identity = unsafe { SipMsg::from_raw(msg).and_then(|m| m.str_param(p1)) };
        join(msg, identity)
    })
}

/// Runs `f` with the dialog-identifying parts of an in-dialog request; 1 if it says yes, else -1.
fn with_dialog_parts(
    msg: *mut b::sip_msg,
    f: impl FnOnce(&Module, &str, Option<&str>, Option<&str>, Option<&str>) -> bool,
) -> c_int {
    let Some(m) = module() else { return -1 };
    // SAFETY: `msg` is the message of the current script call.
    let Some(sip) = (unsafe { SipMsg::from_raw(msg) }) else {
        return -1;
    };
    let Some(parts) = sip.parts() else { return -1 };
    let yes = f(
        m,
        &parts.ruri,
        parts.first("Call-ID", Some("i")),
        parts.first("From", Some("f")),
        parts.first("To", Some("t")),
    );
    if yes {
        1
    } else {
        -1
    }
}

pub fn in_dialog(msg: *mut b::sip_msg) -> c_int {
    with_dialog_parts(msg, service::in_dialog)
}

pub fn leave(msg: *mut b::sip_msg) -> c_int {
    with_dialog_parts(msg, service::leave_dialog)
}

unsafe extern "C" fn w_chat_alias_leave(
    msg: *mut b::sip_msg,
    _p1: *mut c_char,
    _p2: *mut c_char,
) -> c_int {
    guard("chat_alias_leave", -1, || leave(msg))
}

unsafe extern "C" fn w_chat_alias_in_dialog(
    msg: *mut b::sip_msg,
    _p1: *mut c_char,
    _p2: *mut c_char,
) -> c_int {
    guard("chat_alias_in_dialog", -1, || in_dialog(msg))
}

unsafe extern "C" fn w_chat_alias_is_group(
    msg: *mut b::sip_msg,
    _p1: *mut c_char,
    _p2: *mut c_char,
) -> c_int {
    guard("chat_alias_is_group", -1, || is_group(msg))
}

/// Called every second in the module's timer process.
#[no_mangle]
pub extern "C" fn chat_alias_timer_tick() {
    guard("timer", (), || {
        if let Some(m) = module() {
            service::timer_tick(m);
        }
    })
}

/// Called by the shim's dialog callback in whichever process sees the dialog end.
#[no_mangle]
pub extern "C" fn chat_alias_dialog_ended(handle: u64, cb_type: c_int) {
    guard("dialog callback", (), || {
        let Some(m) = module() else { return };
        let why = match cb_type as u32 {
            t if t & (1 << 6) != 0 => "dialog terminated",
            t if t & (1 << 7) != 0 => "dialog expired",
            _ => "dialog failed",
        };
        service::dialog_ended(m, handle, why);
    })
}
