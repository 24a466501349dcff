//! Builds the FFI room of chat_alias against the installed Kamailio's own headers.
//!
//! 1. Find the Kamailio binary (`KAMAILIO_BIN`, default `kamailio` on PATH, then /usr/sbin) and read
//!    `kamailio -v`: the version line, the compile-flags line and ADAPTIVE_WAIT_LOOPS.
//! 2. Find the matching source tree (`KAMAILIO_SRC`, default `.deps/kamailio-<version>` as fetched
//!    by `scripts/setup.sh`).
//! 3. Turn the flags into the `-D` list Kamailio's modules are compiled with (the flags decide struct
//!    layouts, `gen_lock_t` and whether stats macros do anything), plus the fixed Linux/gcc defines the
//!    binary does not print.
//! 4. Preprocess a probe of `SER_FULL_VERSION` / `SER_COMPILE_FLAGS` with those defines and refuse to
//!    build unless both equal what `kamailio -v` printed, byte for byte: the loader `strcmp`s them and
//!    a mismatch would abort Kamailio's start-up, far from the cause.
//! 5. bindgen over `include/wrapper.h` (allowlisted), cc over `src/ffi/shim.c`.
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    for var in ["KAMAILIO_BIN", "KAMAILIO_SRC"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for f in [
        "include/wrapper.h",
        "include/chat_alias_shim.h",
        "src/ffi/shim.c",
        "build.rs",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());

    let bin = kamailio_bin();
    let info = KamailioInfo::read(&bin);
    let src = kamailio_src(&manifest, &info.number);
    let src_dir = src.join("src");
    let defines = defines(&info);

    verify_version_strings(&info, &defines, &src_dir, &manifest, &out);

    println!(
        "cargo:rustc-env=CHAT_ALIAS_KAMAILIO_VERSION={}",
        info.version
    );
    println!("cargo:rustc-env=CHAT_ALIAS_KAMAILIO_FLAGS={}", info.flags);

    // The shim: macros and static inlines as functions. Kamailio's headers produce many warnings
    // under modern compilers; they are not ours to fix.
    let mut shim = cc::Build::new();
    shim.file(manifest.join("src/ffi/shim.c"))
        .include(&src_dir)
        .include(manifest.join("include"))
        .warnings(false)
        .extra_warnings(false)
        .flag_if_supported("-w")
        .flag("-pthread")
        .pic(true);
    for (k, v) in &defines {
        shim.define(k, v.as_deref());
    }
    shim.define("MOD_NAME", Some("\"chat_alias\""));
    shim.compile("chat_alias_shim");

    let mut clang_args: Vec<String> = vec![
        format!("-I{}", src_dir.display()),
        format!("-I{}", manifest.join("include").display()),
    ];
    for (k, v) in &defines {
        clang_args.push(match v {
            Some(v) => format!("-D{k}={v}"),
            None => format!("-D{k}"),
        });
    }
    clang_args.push("-DMOD_NAME=\"chat_alias\"".into());
    let bindings = bindgen::Builder::default()
        .header(manifest.join("include/wrapper.h").to_string_lossy())
        .clang_args(&clang_args)
        .allowlist_type("module_exports")
        .allowlist_type("cmd_export_t")
        .allowlist_type("param_export_t")
        .allowlist_type("rpc_export_t")
        .allowlist_type("rpc_t")
        .allowlist_type("sr_kemi_t")
        .allowlist_type("str")
        .allowlist_type("sip_msg_t")
        .allowlist_function("sr_kemi_modules_add")
        .allowlist_function("get_str_fparam")
        .allowlist_function("fixup_spve_null")
        .allowlist_function("fixup_free_spve_null")
        .allowlist_function("ca_.*")
        .allowlist_var("REQUEST_ROUTE")
        .allowlist_var("ANY_ROUTE")
        .allowlist_var("PARAM_STRING")
        .allowlist_var("PARAM_INT")
        .allowlist_var("MODULE_INTERFACE_VER")
        .allowlist_var("SR_KEMIP_.*")
        .allowlist_var("SR_KEMI_PARAMS_MAX")
        .allowlist_var("PROC_MAIN")
        .allowlist_type("rpc_flags")
        .opaque_type("sip_msg")
        .opaque_type("sip_msg_t")
        .opaque_type("gparam")
        .layout_tests(true)
        .derive_default(true)
        .generate()
        .unwrap_or_else(|e| panic!("bindgen over include/wrapper.h failed: {e}"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");
}

fn kamailio_bin() -> PathBuf {
    if let Ok(b) = env::var("KAMAILIO_BIN") {
        return PathBuf::from(b);
    }
    for dir in env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin"])
    {
        let p = Path::new(dir).join("kamailio");
        if p.is_file() {
            return p;
        }
    }
    fail("no kamailio binary found: install it (`make deps` or scripts/setup.sh) or set KAMAILIO_BIN")
}

fn kamailio_src(manifest: &Path, number: &str) -> PathBuf {
    let dir = match env::var("KAMAILIO_SRC") {
        Ok(d) => PathBuf::from(d),
        Err(_) => manifest.join(".deps").join(format!("kamailio-{number}")),
    };
    if !dir.join("src/core/sr_module.h").is_file() {
        fail(&format!(
            "Kamailio {number} source headers not found in {} (src/core/sr_module.h): run `make deps` \
             (scripts/setup.sh fetches Debian's source of the installed version) or set KAMAILIO_SRC",
            dir.display()
        ));
    }
    println!(
        "cargo:rerun-if-changed={}",
        dir.join("src/core/sr_module.h").display()
    );
    dir
}

struct KamailioInfo {
    /// `kamailio 5.6.3 (x86_64/linux)`
    version: String,
    /// `5.6.3`
    number: String,
    arch: String,
    os: String,
    /// the flags line after `flags: `
    flags: String,
    adaptive_wait_loops: Option<String>,
}

impl KamailioInfo {
    fn read(bin: &Path) -> Self {
        let out = Command::new(bin)
            .arg("-v")
            .output()
            .unwrap_or_else(|e| fail(&format!("cannot run {} -v: {e}", bin.display())));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = |prefix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(|s| s.trim_end().to_string())
                .unwrap_or_else(|| {
                    fail(&format!(
                        "`{} -v` printed no `{prefix}` line",
                        bin.display()
                    ))
                })
        };
        let version = line("version: ");
        let flags = line("flags: ");
        // "kamailio 5.6.3 (x86_64/linux)"
        let mut parts = version.splitn(3, ' ');
        let _name = parts.next();
        let number = parts.next().unwrap_or_default().to_string();
        let archos = parts
            .next()
            .unwrap_or_default()
            .trim_matches(|c| c == '(' || c == ')');
        let (arch, os) = archos
            .split_once('/')
            .unwrap_or_else(|| fail("unexpected version line"));
        let adaptive_wait_loops = text
            .split([',', '\n'])
            .find_map(|s| s.trim().strip_prefix("ADAPTIVE_WAIT_LOOPS "))
            .map(|s| s.trim().to_string());
        KamailioInfo {
            number,
            arch: arch.to_string(),
            os: os.to_string(),
            version,
            flags,
            adaptive_wait_loops,
        }
    }
}

type Defines = Vec<(String, Option<String>)>;

/// The compile defines of Kamailio's modules: the printed flags (with their two known spellings),
/// plus the fixed ones Debian's build passes and the binary does not print.
fn defines(info: &KamailioInfo) -> Defines {
    let mut d: Defines = Vec::new();
    let mut def = |k: &str, v: Option<String>| {
        if !d.iter().any(|(n, _)| n == k) {
            d.push((k.to_string(), v));
        }
    };
    let major_minor: Vec<u32> = info
        .number
        .split('.')
        .filter_map(|p| p.parse().ok())
        .collect();
    let versionval = major_minor.first().copied().unwrap_or(0) * 1_000_000
        + major_minor.get(1).copied().unwrap_or(0) * 1_000
        + major_minor.get(2).copied().unwrap_or(0);
    def("NAME", Some("\"kamailio\"".into()));
    def("VERSION", Some(format!("\"{}\"", info.number)));
    def("ARCH", Some(format!("\"{}\"", info.arch)));
    def("OS", Some(format!("{}_", info.os)));
    def("OS_QUOTED", Some(format!("\"{}\"", info.os)));
    def(&format!("__CPU_{}", info.arch), None);
    def(&format!("__OS_{}", info.os), None);
    def("VERSIONVAL", Some(versionval.to_string()));
    for flag in info
        .flags
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        match flag {
            "FAST_LOCK-ADAPTIVE_WAIT" => {
                def("FAST_LOCK", None);
                def("ADAPTIVE_WAIT", None);
                def(
                    "ADAPTIVE_WAIT_LOOPS",
                    Some(
                        info.adaptive_wait_loops
                            .clone()
                            .unwrap_or_else(|| "1024".into()),
                    ),
                );
            }
            // -DKSR_PTHREAD_MUTEX_SHARED is printed under its old name.
            "TLS_PTHREAD_MUTEX_SHARED" => def("KSR_PTHREAD_MUTEX_SHARED", None),
            f if f.starts_with("FAST_LOCK") => def("FAST_LOCK", None),
            f => def(f, None),
        }
    }
    for fixed in [
        "WITH_XAVP",
        "MEM_JOIN_FREE",
        "USE_CORE_STATS",
        "STATISTICS",
        "MALLOC_STATS",
        "CC_GCC_LIKE_ASM",
        "HAVE_GETHOSTBYNAME2",
        "HAVE_UNION_SEMUN",
        "HAVE_SCHED_YIELD",
        "HAVE_MSG_NOSIGNAL",
        "HAVE_MSGHDR_MSG_CONTROL",
        "HAVE_ALLOCA_H",
        "HAVE_TIMEGM",
        "HAVE_SCHED_SETSCHEDULER",
        "HAVE_IP_MREQN",
        "HAVE_EPOLL",
        "HAVE_SIGIO_RT",
        "SIGINFO64_WORKARROUND",
        "HAVE_SELECT",
    ] {
        def(fixed, None);
    }
    d
}

fn verify_version_strings(
    info: &KamailioInfo,
    defines: &Defines,
    src_dir: &Path,
    manifest: &Path,
    out: &Path,
) {
    let probe = out.join("version_probe.c");
    std::fs::write(
        &probe,
        "#include \"core/ver_defs.h\"\nCHAT_ALIAS_VERSION=SER_FULL_VERSION\nCHAT_ALIAS_FLAGS=SER_COMPILE_FLAGS\n",
    )
    .expect("write version probe");
    let mut b = cc::Build::new();
    b.file(&probe)
        .include(src_dir)
        .include(manifest.join("include"))
        .warnings(false);
    for (k, v) in defines {
        b.define(k, v.as_deref());
    }
    let expanded = String::from_utf8_lossy(&b.expand()).into_owned();
    let grab = |key: &str| -> String {
        let line = expanded
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| fail(&format!("version probe did not expand {key}")));
        // Adjacent C string literals: concatenate their contents.
        let mut s = String::new();
        let mut in_str = false;
        let mut escaped = false;
        for c in line.chars() {
            if in_str {
                if escaped {
                    s.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_str = false;
                } else {
                    s.push(c);
                }
            } else if c == '"' {
                in_str = true;
            }
        }
        s
    };
    let version = grab("CHAT_ALIAS_VERSION=");
    let flags = grab("CHAT_ALIAS_FLAGS=");
    if version.trim_end() != info.version {
        fail(&format!(
            "module_version would be {version:?} but the installed kamailio is {:?}: the headers in \
             KAMAILIO_SRC do not match the binary",
            info.version
        ));
    }
    if flags.trim_end() != info.flags {
        fail(&format!(
            "module_flags would be\n  {flags:?}\nbut `kamailio -v` prints\n  {:?}\nthe derived defines do \
             not match the installed binary's compile flags",
            info.flags
        ));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: chat_alias build: {msg}");
    panic!("chat_alias build: {msg}");
}
