//! The module as Kamailio sees it, declared once: its modparams (into [`Modparams`]), its script
//! functions (each also a KEMI function), its RPC commands, and what mod_init and child_init do.
//! [`kamailio_module!`] generates the tables, the loader's symbols and the trampolines from this
//! declaration. Below it: the script functions' bodies, and the entry point the C shim calls (the
//! timer tick).
use super::bindings as b;
use super::declare::kamailio_module;
use super::focus;
use super::host::{guard, log, module, set_module, Kamailio};
use super::msg::SipMsg;
use super::rpc;
use super::shm::ShmTable;
use crate::modparams::Modparams;
use crate::service::{self, InDialog, Level, Module, Outcome};
use crate::stats::Counter;
use chat_alias_focus::join::InviteView;
use std::ffi::{c_char, c_int};

kamailio_module! {
    name: "chat_alias",
    init: init,
    child_init: child_init,
    modparams: Modparams from modparams_as_set {
        groups_dir: str = c"/etc/kamailio/chat_alias/groups",
        relay_socket: str = c"/run/chat-alias/relay.sock",
        focus_socket: str = c"",
        focus_allowed_uid: int = -1,
        relay_timeout_ms: int = 200,
        retry_after: int = 5,
        max_display_name_chars: int = 64,
        max_participants: int = 16384,
        max_conferences: int = 1024,
        table_stripes: int = 16,
        max_places_per_identity: int = 3,
        bind_timeout: int = 30,
        msrp_gone_timeout: int = 60,
        dialog_timeout: int = 43200,
    },
    functions {
        join(identity: str) => {
            script: "chat_alias_join",
            routes: REQUEST_ROUTE,
            kemi: true,
            handler: join_invite,
        },
        is_group() => {
            script: "chat_alias_is_group",
            routes: ANY_ROUTE,
            kemi: true,
            handler: request_uri_is_group,
        },
        leave() => {
            script: "chat_alias_leave",
            routes: REQUEST_ROUTE,
            kemi: true,
            handler: leave_dialog,
        },
        in_dialog() => {
            script: "chat_alias_in_dialog",
            routes: REQUEST_ROUTE,
            kemi: true,
            handler: request_in_dialog,
        },
    },
    rpcs {
        list => {
            name: "chat_alias.list",
            doc: "List conferences and participants: assigned identity, anonymity, real identity (operator only), MSRP session",
            flags: 0,
            handler: rpc::list,
        },
        reload => {
            name: "chat_alias.reload",
            doc: "Re-read the group documents directory; a bad document is refused and the previous groups stay in force",
            flags: 0,
            handler: rpc::reload,
        },
        stats => {
            name: "chat_alias.stats",
            doc: "Alias table usage: conferences, participants, capacity, groups",
            flags: 0,
            handler: rpc::stats,
        },
        nickname => {
            name: "chat_alias.nickname",
            doc: "Set (or remove, with an empty name) a participant's display name if unique: conference URI, MSRP session id, nickname (used by the relay for RFC 7701 NICKNAME)",
            flags: 0,
            handler: rpc::nickname,
        },
        sessions => {
            name: "chat_alias.sessions",
            doc: "Every participant as the relay needs it to rebuild its registry (an array of records: conference, session, uri, display_name, anonymous, peer_path, accept_wrapped_types, chatroom, private_messages_allowed); optional params: offset, limit",
            // Every top-level value the handler adds is an element of the result array (jsonrpcs
            // otherwise keeps the last one only).
            flags: b::rpc_flags_RET_ARRAY as std::ffi::c_uint,
            handler: rpc::sessions,
        },
    },
}

fn init() -> Result<(), String> {
    let cfg = modparams_as_set();
    cfg.validate()?;
    // SAFETY: called once in mod_init, after all modules are loaded.
    if unsafe { b::ca_load_apis() } != 0 {
        return Err("cannot load the tm API: loadmodule \"tm.so\" before chat_alias".into());
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
    let shm = ShmTable::create(&cfg, key)?;
    log(
        Level::Info,
        &format!(
            "alias table: {} stripes, {} bytes of shared memory; groups from {}; relay at {}",
            shm.stripes(),
            shm.total_bytes(),
            cfg.groups_dir,
            cfg.relay_socket
        ),
    );
    focus::register_process()?;
    // SAFETY: called once in mod_init, before the fork.
    if unsafe { b::ca_timer_register() } != 0 {
        return Err("cannot register the module's timer process".into());
    }
    let host = Kamailio::new(shm, &cfg.relay_socket, cfg.relay_timeout_ms);
    let m = Module::new(cfg, host);
    // At start-up an empty directory is allowed (groups can be added and reloaded later).
    service::reload(&m, true).map_err(|e| e.to_string())?;
    set_module(m)
}

/// In the main process (PROC_MAIN, before the fork of the processes modules registered): creates
/// the focus socket (a failure stops Kamailio) and forks the process that serves it, and forks the
/// timer process that removes participants whose dialog lasted dialog_timeout, those not backed by
/// a live MSRP session and those of removed groups. Other processes open their relay connection lazily, on the first request that needs it.
fn child_init(rank: c_int) -> Result<(), String> {
    if rank != b::PROC_MAIN as c_int {
        return Ok(());
    }
    start_focus_socket().map_err(|e| format!("focus socket: {e}"))?;
    // SAFETY: plain call from the main process's child_init, as fork_basic_timer requires.
    if unsafe { b::ca_timer_fork(rank) } != 0 {
        return Err("cannot fork the chat_alias timer process".into());
    }
    Ok(())
}

fn start_focus_socket() -> Result<(), String> {
    let m = module().ok_or("module not initialised")?;
    let path = crate::focus_socket::path(&m.params.focus_socket, &m.params.relay_socket);
    let sock =
        focus::bind_private(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let uid = m.params.focus_allowed_uid.unwrap_or_else(focus::own_uid);
    focus::fork_server(sock, uid)?;
    log(
        Level::Info,
        &format!(
            "focus socket at {} (mode 0600), answering uid {uid}",
            path.display()
        ),
    );
    Ok(())
}

/// `chat_alias_join(identity)`: answers an INVITE to a group (200 or a refusal). 1 replied, 0
/// a retransmission tm answered already, -1 nothing sent.
fn join_invite(sip: &mut SipMsg, identity: Option<String>) -> c_int {
    let Some(m) = module() else { return -1 };
    // SAFETY: `parts` is used only within this script call.
    let Some(parts) = (unsafe { sip.parts() }) else {
        return -1;
    };
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
        body: parts.body,
        asserted_identity: &identity,
    };
    match service::join_invite(m, &view, sip) {
        Outcome::Replied => 1,
        Outcome::Retransmission => 0,
        Outcome::Failed => -1,
    }
}

/// `chat_alias_is_group()`: whether the Request-URI names a loaded group.
fn request_uri_is_group(sip: &mut SipMsg) -> c_int {
    let Some(m) = module() else { return -1 };
    let Some(ruri) = sip.request_uri() else {
        return -1;
    };
    if m.is_group(&ruri) {
        1
    } else {
        -1
    }
}

/// Runs `f` with the dialog-identifying parts of an in-dialog request; 1 if it says yes, else -1.
fn with_dialog_parts(
    sip: &SipMsg,
    f: impl FnOnce(&Module<Kamailio>, &InDialog<'_>) -> bool,
) -> c_int {
    let Some(m) = module() else { return -1 };
    // SAFETY: `p` is used only within this script call.
    let Some(p) = (unsafe { sip.parts() }) else {
        return -1;
    };
    let req = InDialog {
        request_uri: &p.ruri,
        call_id: p.first("Call-ID", Some("i")),
        from: p.first("From", Some("f")),
        to: p.first("To", Some("t")),
    };
    if f(m, &req) {
        1
    } else {
        -1
    }
}

/// `chat_alias_in_dialog()`: whether the request belongs to a participant's dialog (or to one the
/// focus ended itself lately).
fn request_in_dialog(sip: &mut SipMsg) -> c_int {
    with_dialog_parts(sip, service::in_dialog)
}

/// `chat_alias_leave()`: a BYE frees the participant's place at once.
fn leave_dialog(sip: &mut SipMsg) -> c_int {
    with_dialog_parts(sip, service::leave_dialog)
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
