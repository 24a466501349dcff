//! How the module is declared to Kamailio: [`kamailio_module!`] turns one declaration of the
//! module (name, init functions, modparams, script functions, RPCs) into everything Kamailio's
//! loader reads: the `exports` structure with its cmd, param and RPC tables, the KEMI table
//! registered in `mod_register`, the modparam statics and the function that reads them into the
//! settings struct, and a panic-guarded `extern "C"` trampoline per entry. Also the statics
//! Kamailio reads or writes ([`KCell`], [`KPtr`]) and the pieces the expansion calls.
use super::bindings as b;
use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, CStr};
use std::ptr::null_mut;

/// A static Kamailio may read or write (modparams, export tables).
#[repr(transparent)]
pub struct KCell<T>(pub UnsafeCell<T>);
// SAFETY: written by Kamailio only during start-up (single process, single thread), read after.
unsafe impl<T> Sync for KCell<T> {}

/// A pointer to an immutable static C string.
#[repr(transparent)]
pub struct KPtr(pub *const c_char);
// SAFETY: points to immutable static strings.
unsafe impl Sync for KPtr {}

/// A modparam's value as Kamailio stored it, turned into the settings field's type.
pub trait FromParam<Raw> {
    fn from_param(raw: Raw) -> Self;
}

impl FromParam<*mut c_char> for String {
    fn from_param(raw: *mut c_char) -> Self {
        if raw.is_null() {
            return String::new();
        }
        // SAFETY: a `PARAM_STRING` modparam points to its NUL-terminated default (a static) or to
        // the string Kamailio copied from the config, kept for the life of the process.
        unsafe { CStr::from_ptr(raw) }
            .to_string_lossy()
            .into_owned()
    }
}

/// A negative integer (nonsense for every count and duration here) reads as 0, which the range
/// checks refuse where 0 is not allowed.
impl FromParam<c_int> for u32 {
    fn from_param(raw: c_int) -> Self {
        u32::try_from(raw).unwrap_or(0)
    }
}

/// A negative integer means "not set".
impl FromParam<c_int> for Option<u32> {
    fn from_param(raw: c_int) -> Self {
        u32::try_from(raw).ok()
    }
}

/// A KEMI `str` parameter as an owned string; None when absent or empty.
///
/// # Safety
/// `s` must be NULL or the `str` KEMI passed for an `SR_KEMIP_STR` parameter of the current call.
pub unsafe fn kemi_str(s: *mut b::str_) -> Option<String> {
    // SAFETY: per the contract, `s` points to `len` readable bytes for the call.
    unsafe {
        s.as_ref().filter(|s| !s.s.is_null() && s.len > 0).map(|s| {
            String::from_utf8_lossy(std::slice::from_raw_parts(s.s.cast::<u8>(), s.len as usize))
                .into_owned()
        })
    }
}

/// A `str` view of a static NUL-terminated string, without its NUL.
pub const fn kstr(s: &'static str) -> b::str_ {
    b::str_ {
        s: s.as_ptr().cast::<c_char>().cast_mut(),
        len: s.len() as c_int - 1,
    }
}

const KEMI_END: b::sr_kemi_t = b::sr_kemi_t {
    mname: b::str_ {
        s: null_mut(),
        len: 0,
    },
    fname: b::str_ {
        s: null_mut(),
        len: 0,
    },
    rtype: 0,
    func: null_mut(),
    ptypes: [b::SR_KEMIP_NONE as c_int; 6],
};

/// The KEMI table from one optional entry per script function (the last one `None`): the entries
/// first, then the all-NULL end marker.
pub const fn kemi_table<const N: usize>(entries: [Option<b::sr_kemi_t>; N]) -> [b::sr_kemi_t; N] {
    let mut out = [KEMI_END; N];
    let (mut i, mut j) = (0, 0);
    while i < N {
        if let Some(e) = entries[i] {
            out[j] = e;
            j += 1;
        }
        i += 1;
    }
    out
}

/// Declares the module once. Script functions take a `&mut SipMsg` and their string parameters
/// as `Option<String>` and return Kamailio's script code (>0 true, <0 false, 0 stop); RPC
/// handlers take a `&Reply`. `init` and `child_init` return `Result<(), String>`; an error is
/// logged and fails Kamailio's start-up.
macro_rules! kamailio_module {
    (
        name: $modname:literal,
        init: $init:path,
        child_init: $child_init:path,
        modparams: $params_ty:ident from $from_params:ident {
            $($pname:ident : $pkind:ident = $pdefault:expr),* $(,)?
        },
        functions {
            $($fid:ident ( $($arg:ident : $akind:ident)? ) => {
                script: $fscript:literal,
                routes: $($route:ident)|+,
                kemi: $kemi:literal,
                handler: $fhandler:path $(,)?
            }),* $(,)?
        },
        rpcs {
            $($rid:ident => {
                name: $rname:literal,
                doc: $rdoc:literal,
                flags: $rflags:expr,
                handler: $rhandler:path $(,)?
            }),* $(,)?
        } $(,)?
    ) => {
        // ---- modparams: Kamailio writes a char* or an int into each of these ----
        #[allow(non_upper_case_globals)]
        mod modparam_storage {
            $(pub static $pname: $crate::ffi::declare::KCell<
                $crate::ffi::declare::kamailio_module!(@ptype $pkind)
            > = $crate::ffi::declare::KCell(::std::cell::UnsafeCell::new(
                $crate::ffi::declare::kamailio_module!(@pinit $pkind $pdefault)
            ));)*
        }

        static PARAMS: $crate::ffi::declare::KCell<
            [$crate::ffi::bindings::param_export_t; [$(stringify!($pname)),*].len() + 1]
        > = $crate::ffi::declare::KCell(::std::cell::UnsafeCell::new([
            $($crate::ffi::bindings::param_export_t {
                name: concat!(stringify!($pname), "\0").as_ptr().cast::<::std::ffi::c_char>().cast_mut(),
                type_: $crate::ffi::declare::kamailio_module!(@pconst $pkind),
                param_pointer: modparam_storage::$pname.0.get().cast(),
            },)*
            $crate::ffi::bindings::param_export_t {
                name: ::std::ptr::null_mut(),
                type_: 0,
                param_pointer: ::std::ptr::null_mut(),
            },
        ]));

        /// The modparams as the operator set them (read in mod_init).
        fn $from_params() -> $params_ty {
            $params_ty {
                $($pname: $crate::ffi::declare::FromParam::from_param(
                    // SAFETY: modparams are written only while Kamailio parses its config, in
                    // one process, before mod_init reads them.
                    unsafe { *modparam_storage::$pname.0.get() },
                ),)*
            }
        }

        // ---- script functions: one trampoline for the config script, one for KEMI ----
        $(
            mod $fid {
                use super::*;

                pub unsafe extern "C" fn script(
                    msg: *mut $crate::ffi::bindings::sip_msg,
                    p1: *mut ::std::ffi::c_char,
                    _p2: *mut ::std::ffi::c_char,
                ) -> ::std::ffi::c_int {
                    $crate::ffi::host::guard($fscript, -1, || {
                        // SAFETY: `msg` is the message of the current script call.
                        let Some(mut sip) = (unsafe { $crate::ffi::msg::SipMsg::from_raw(msg) })
                        else {
                            return -1;
                        };
                        let _ = p1;
                        // SAFETY: p1 is this function's fixed-up parameter for this message.
                        $(let $arg = unsafe { sip.str_param(p1) };)?
                        $fhandler(&mut sip $(, $arg)?)
                    })
                }

                pub unsafe extern "C" fn kemi(
                    msg: *mut $crate::ffi::bindings::sip_msg
                    $(, $arg: *mut $crate::ffi::bindings::str_)?
                ) -> ::std::ffi::c_int {
                    $crate::ffi::host::guard(concat!("KSR.", $modname, ".", stringify!($fid)), -1, || {
                        // SAFETY: `msg` is the message of the current KEMI call.
                        let Some(mut sip) = (unsafe { $crate::ffi::msg::SipMsg::from_raw(msg) })
                        else {
                            return -1;
                        };
                        // SAFETY: KEMI passes a valid str for an SR_KEMIP_STR parameter.
                        $(let $arg = unsafe { $crate::ffi::declare::kemi_str($arg) };)?
                        $fhandler(&mut sip $(, $arg)?)
                    })
                }
            }
        )*

        static CMDS: $crate::ffi::declare::KCell<
            [$crate::ffi::bindings::cmd_export_t; [$(stringify!($fid)),*].len() + 1]
        > = $crate::ffi::declare::KCell(::std::cell::UnsafeCell::new([
            $($crate::ffi::bindings::cmd_export_t {
                name: concat!($fscript, "\0").as_ptr().cast::<::std::ffi::c_char>().cast_mut(),
                function: Some($fid::script),
                param_no: $crate::ffi::declare::kamailio_module!(@argc $($akind)?),
                fixup: $crate::ffi::declare::kamailio_module!(@fixup $($akind)?),
                free_fixup: $crate::ffi::declare::kamailio_module!(@free_fixup $($akind)?),
                flags: $($crate::ffi::bindings::$route)|+,
            },)*
            $crate::ffi::bindings::cmd_export_t {
                name: ::std::ptr::null_mut(),
                function: None,
                param_no: 0,
                fixup: None,
                free_fixup: None,
                flags: 0,
            },
        ]));

        static KEMI: $crate::ffi::declare::KCell<
            [$crate::ffi::bindings::sr_kemi_t; [$(stringify!($fid)),*].len() + 1]
        > = $crate::ffi::declare::KCell(::std::cell::UnsafeCell::new(
            $crate::ffi::declare::kemi_table([
                $(if $kemi {
                    Some($crate::ffi::bindings::sr_kemi_t {
                        mname: $crate::ffi::declare::kstr(concat!($modname, "\0")),
                        fname: $crate::ffi::declare::kstr(concat!(stringify!($fid), "\0")),
                        rtype: $crate::ffi::bindings::SR_KEMIP_INT as ::std::ffi::c_int,
                        func: $fid::kemi as *mut ::std::ffi::c_void,
                        ptypes: $crate::ffi::declare::kamailio_module!(@ptypes $($akind)?),
                    })
                } else {
                    None
                },)*
                None,
            ]),
        ));

        // ---- RPC commands ----
        $(
            mod $rid {
                use super::*;

                pub static DOC: $crate::ffi::declare::KCell<[*const ::std::ffi::c_char; 2]> =
                    $crate::ffi::declare::KCell(::std::cell::UnsafeCell::new([
                        concat!($rdoc, "\0").as_ptr().cast(),
                        ::std::ptr::null(),
                    ]));

                pub unsafe extern "C" fn rpc(
                    rpc: *mut $crate::ffi::bindings::rpc_t,
                    ctx: *mut ::std::ffi::c_void,
                ) {
                    $crate::ffi::host::guard($rname, (), || {
                        $rhandler(&$crate::ffi::rpc::Reply::new(rpc, ctx))
                    })
                }
            }
        )*

        static RPC_METHODS: $crate::ffi::declare::KCell<
            [$crate::ffi::bindings::rpc_export_t; [$(stringify!($rid)),*].len() + 1]
        > = $crate::ffi::declare::KCell(::std::cell::UnsafeCell::new([
            $($crate::ffi::bindings::rpc_export_t {
                name: concat!($rname, "\0").as_ptr().cast(),
                function: Some($rid::rpc),
                doc_str: $rid::DOC.0.get().cast(),
                flags: $rflags,
            },)*
            $crate::ffi::bindings::rpc_export_t {
                name: ::std::ptr::null(),
                function: None,
                doc_str: ::std::ptr::null_mut(),
                flags: 0,
            },
        ]));

        // ---- what the loader looks up by name ----
        #[no_mangle]
        pub static module_version: $crate::ffi::declare::KPtr = $crate::ffi::declare::KPtr(
            concat!(env!("CHAT_ALIAS_KAMAILIO_VERSION"), "\0").as_ptr().cast(),
        );
        #[no_mangle]
        pub static module_flags: $crate::ffi::declare::KPtr = $crate::ffi::declare::KPtr(
            concat!(env!("CHAT_ALIAS_KAMAILIO_FLAGS"), "\0").as_ptr().cast(),
        );
        #[no_mangle]
        pub static module_interface_ver: ::std::ffi::c_uint =
            $crate::ffi::bindings::MODULE_INTERFACE_VER;

        #[no_mangle]
        pub static exports: $crate::ffi::declare::KCell<$crate::ffi::bindings::module_exports> =
            $crate::ffi::declare::KCell(::std::cell::UnsafeCell::new(
                $crate::ffi::bindings::module_exports {
                    name: concat!($modname, "\0").as_ptr().cast::<::std::ffi::c_char>().cast_mut(),
                    dlflags: 0,
                    cmds: CMDS.0.get().cast(),
                    params: PARAMS.0.get().cast(),
                    rpc_methods: RPC_METHODS.0.get().cast(),
                    pv_items: ::std::ptr::null_mut(),
                    response_f: None,
                    init_mod_f: Some(mod_init_trampoline),
                    init_child_f: Some(child_init_trampoline),
                    destroy_mod_f: Some(mod_destroy_trampoline),
                },
            ));

        /// Called at dlopen, before modparams: installs the panic hook, registers the KEMI functions.
        #[no_mangle]
        pub unsafe extern "C" fn mod_register(
            _path: *mut ::std::ffi::c_char,
            _dlflags: *mut ::std::ffi::c_int,
            _p1: *mut ::std::ffi::c_void,
            _p2: *mut ::std::ffi::c_void,
        ) -> ::std::ffi::c_int {
            $crate::ffi::host::guard("mod_register", -1, || {
                $crate::ffi::host::install_panic_hook();
                // SAFETY: the table is static and ends with the NULL entry; Kamailio keeps the
                // pointer.
                if unsafe { $crate::ffi::bindings::sr_kemi_modules_add(KEMI.0.get().cast()) } < 0 {
                    -1
                } else {
                    0
                }
            })
        }

        unsafe extern "C" fn mod_init_trampoline() -> ::std::ffi::c_int {
            $crate::ffi::host::guard("mod_init", -1, || match $init() {
                Ok(()) => 0,
                Err(e) => {
                    $crate::ffi::host::log(
                        $crate::service::Level::Error,
                        &format!("initialisation failed: {e}"),
                    );
                    -1
                }
            })
        }

        unsafe extern "C" fn child_init_trampoline(rank: ::std::ffi::c_int) -> ::std::ffi::c_int {
            $crate::ffi::host::guard("child_init", -1, || match $child_init(rank) {
                Ok(()) => 0,
                Err(e) => {
                    $crate::ffi::host::log($crate::service::Level::Error, &e);
                    -1
                }
            })
        }

        unsafe extern "C" fn mod_destroy_trampoline() {
            // Shared memory is released by Kamailio itself at exit.
            $crate::ffi::host::guard("mod_destroy", (), || ())
        }
    };

    (@ptype str) => { *mut ::std::ffi::c_char };
    (@ptype int) => { ::std::ffi::c_int };
    (@pinit str $d:expr) => { $d.as_ptr().cast_mut() };
    (@pinit int $d:expr) => { $d };
    (@pconst str) => { $crate::ffi::bindings::PARAM_STRING };
    (@pconst int) => { $crate::ffi::bindings::PARAM_INT };
    (@argc) => { 0 };
    (@argc str) => { 1 };
    (@fixup) => { None };
    (@fixup str) => { Some($crate::ffi::bindings::fixup_spve_null) };
    (@free_fixup) => { None };
    (@free_fixup str) => { Some($crate::ffi::bindings::fixup_free_spve_null) };
    (@ptypes) => { [$crate::ffi::bindings::SR_KEMIP_NONE as ::std::ffi::c_int; 6] };
    (@ptypes str) => {{
        let none = $crate::ffi::bindings::SR_KEMIP_NONE as ::std::ffi::c_int;
        [$crate::ffi::bindings::SR_KEMIP_STR as ::std::ffi::c_int, none, none, none, none, none]
    }};
}
pub(crate) use kamailio_module;

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &'static str) -> b::sr_kemi_t {
        b::sr_kemi_t {
            fname: kstr(name),
            ..KEMI_END
        }
    }

    fn fname(e: &b::sr_kemi_t) -> String {
        if e.fname.s.is_null() {
            return String::new();
        }
        // SAFETY: kstr points into a static string of at least `len` bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts(e.fname.s.cast::<u8>(), e.fname.len as usize) };
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// Functions declared without KEMI leave no hole: the table ends at the first NULL entry.
    #[test]
    fn the_kemi_table_keeps_its_entries_first_and_ends_with_null() {
        let t = kemi_table([Some(entry("join\0")), None, Some(entry("leave\0")), None]);
        let names: Vec<String> = t.iter().map(fname).collect();
        assert_eq!(names, ["join", "leave", "", ""]);
        assert!(t[2].func.is_null() && t[2].mname.s.is_null());
    }

    #[test]
    fn modparams_read_as_their_field_types() {
        assert_eq!(<u32 as FromParam<c_int>>::from_param(200), 200);
        assert_eq!(<u32 as FromParam<c_int>>::from_param(-5), 0);
        assert_eq!(<Option<u32> as FromParam<c_int>>::from_param(-1), None);
        assert_eq!(
            <Option<u32> as FromParam<c_int>>::from_param(1000),
            Some(1000)
        );
        let default = c"/run/chat-alias/relay.sock";
        assert_eq!(
            <String as FromParam<*mut c_char>>::from_param(default.as_ptr().cast_mut()),
            "/run/chat-alias/relay.sock"
        );
        assert_eq!(
            <String as FromParam<*mut c_char>>::from_param(null_mut()),
            ""
        );
    }
}
