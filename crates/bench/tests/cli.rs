//! The bench binary end to end, against the real relay (built by `make build`; the path in
//! CHAT_ALIAS_RELAY_BIN, as for the other end-to-end tests). Behaviour only, never speed: the
//! rows are there, well formed, and the generator saw every message in order.
use std::path::PathBuf;
use std::process::Command;

fn relay() -> PathBuf {
    let p = std::env::var("CHAT_ALIAS_RELAY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/chat-alias-relay")
        });
    assert!(
        p.exists(),
        "{} not found: run the tests with `make test` (it builds the relay)",
        p.display()
    );
    p
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cab-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rows(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn fanout_through_relay_and_forwarder_then_memory_then_one_table() {
    let dir = scratch("fanout");
    let out = Command::new(env!("CARGO_BIN_EXE_chat-alias-bench"))
        .args([
            "fanout",
            "--quick",
            "--configs",
            "3/2",
            "--idle",
            "40",
            "--big-mib",
            "4",
        ])
        .args(["--chunk-kib", "256", "--relay"])
        .arg(relay())
        .arg("--out")
        .arg(dir.join("fanout.jsonl"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let rows = rows(&dir.join("fanout.jsonl"));
    let measures: Vec<&str> = rows
        .iter()
        .map(|r| r["measure"].as_str().unwrap())
        .collect();
    assert_eq!(
        measures,
        [
            "deliveries/s, 3 participants / 2 senders (1 KiB, window 16)",
            "latency p50, 3 participants / 2 senders (1 KiB, window 16)",
            "latency p99, 3 participants / 2 senders (1 KiB, window 16)",
            "relay CPU per delivery, 3 participants / 2 senders (1 KiB, window 16)",
            "per-sender order violations seen by recipients (all runs)",
            "relay RSS per idle bound participant (40 in conferences of 10)",
            "relay peak RSS growth while one 4 MiB message crosses (256 KiB chunks, 1 recipient)",
        ]
    );
    // Both sides delivered; nothing came out of order; memory rows have no baseline.
    assert!(rows[0]["product"].as_f64().unwrap() > 0.0, "{err}");
    assert!(rows[0]["baseline"].as_f64().unwrap() > 0.0, "{err}");
    assert_eq!(rows[4]["product"], 0.0);
    assert_eq!(rows[4]["baseline"], 0.0);
    assert_eq!(rows[4]["met"], true);
    assert!(rows[5]["baseline"].is_null());
    assert!(rows[6]["product"].as_f64().unwrap() >= 0.0);
    for r in &rows {
        assert!(r["load"]["start"].is_string(), "{r}");
    }
    // One run against each.
    assert!(err.contains("fanout 3/2 relay"), "{err}");
    assert!(err.contains("fanout 3/2 forwarder"), "{err}");

    let latest = dir.join("latest");
    let table = Command::new(env!("CARGO_BIN_EXE_chat-alias-bench"))
        .arg("table")
        .arg(&dir)
        .arg("--latest-dir")
        .arg(&latest)
        .output()
        .unwrap();
    assert!(table.status.success());
    let md = String::from_utf8_lossy(&table.stdout);
    assert!(md.contains("| **fan-out** | | | | | |"), "{md}");
    assert!(md.contains("| **memory** | | | | | |"), "{md}");
    assert!(latest.join("latest.md").exists());
    assert!(dir.join("bench.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
