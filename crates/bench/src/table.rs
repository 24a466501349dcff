//! `chat-alias-bench table DIR`: every part of `make bench` writes its measurements as JSON Lines
//! (`DIR/<part>.jsonl`, one row per line); this reads them all, prints one markdown table grouped
//! by section, and writes `DIR/bench.json` (the rows, the date, the machine, the commit) plus
//! `latest.json` and `latest.md` in the latest directory (`target/bench` by default).
//!
//! A row:
//! `{"section":"joins","measure":"…","unit":"/s","product":2712.0,"baseline":10032.0,
//!   "ratio":0.27,"target":">= 0.9 x baseline","met":false,"better":"higher","samples":{…}}`
//! `baseline`, `ratio`, `target` and `met` may be null. Fields this tool does not know are kept
//! as they are in `bench.json`.
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One measurement row (the fields the table shows; the whole object is kept in `raw`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub section: String,
    pub measure: String,
    #[serde(default)]
    pub unit: String,
    pub product: Option<f64>,
    #[serde(default)]
    pub baseline: Option<f64>,
    #[serde(default)]
    pub ratio: Option<f64>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub met: Option<bool>,
    #[serde(default)]
    pub better: Option<String>,
    #[serde(default)]
    pub samples: Option<Value>,
}

impl Row {
    /// A row with the ratio computed from product and baseline (None when either is missing or
    /// the baseline is zero).
    pub fn new(section: &str, measure: &str, unit: &str, better: &str) -> Row {
        Row {
            section: section.into(),
            measure: measure.into(),
            unit: unit.into(),
            product: None,
            baseline: None,
            ratio: None,
            target: None,
            met: None,
            better: Some(better.into()),
            samples: None,
        }
    }

    /// Sets product and baseline medians from their samples, and the ratio.
    pub fn with_samples(mut self, product: &[f64], baseline: Option<&[f64]>) -> Row {
        self.product = crate::stats::median(product);
        self.baseline = baseline.and_then(crate::stats::median);
        self.ratio = match (self.product, self.baseline) {
            (Some(p), Some(b)) if b != 0.0 => Some(p / b),
            _ => None,
        };
        let mut s = serde_json::Map::new();
        s.insert("product".into(), serde_json::json!(product));
        if let Some(b) = baseline {
            s.insert("baseline".into(), serde_json::json!(b));
        }
        self.samples = Some(Value::Object(s));
        self
    }

    pub fn with_target(mut self, target: &str, met: Option<bool>) -> Row {
        self.target = Some(target.into());
        self.met = met;
        self
    }
}

/// A row as read, with the line it came from and the whole object.
#[derive(Debug, Clone)]
pub struct ReadRow {
    pub row: Row,
    pub raw: Value,
}

/// A line that is not a row: where it is and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BadLine {
    pub file: PathBuf,
    pub line: usize,
    pub error: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: not a bench row: {}",
            self.file.display(),
            self.line,
            self.error
        )
    }
}

/// Parses the rows of one JSON Lines text (blank lines skipped).
pub fn parse_rows(file: &Path, text: &str) -> (Vec<ReadRow>, Vec<BadLine>) {
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Value>(line).and_then(|raw| {
            let row = serde_json::from_value::<Row>(raw.clone())?;
            Ok(ReadRow { row, raw })
        });
        match parsed {
            Ok(r) => rows.push(r),
            Err(e) => bad.push(BadLine {
                file: file.to_path_buf(),
                line: i + 1,
                error: e.to_string(),
            }),
        }
    }
    (rows, bad)
}

/// Every `*.jsonl` of `dir`, by file name, parsed.
pub fn read_dir(dir: &Path) -> Result<(Vec<ReadRow>, Vec<BadLine>), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl") && p.is_file())
        .collect();
    files.sort();
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(&f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        let (r, b) = parse_rows(&f, &text);
        rows.extend(r);
        bad.extend(b);
    }
    Ok((rows, bad))
}

/// A number for a reader: thousands separated from 100 up (integers), one decimal from 10, two
/// from 1, three significant digits below.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    if a >= 100.0 {
        let n = v.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 {
            format!("-{out}")
        } else {
            out
        }
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 || a == 0.0 {
        format!("{v:.2}")
    } else {
        // Three significant digits: 0.123, 0.0123, 0.00123.
        let decimals = (-a.log10().floor()) as usize + 2;
        format!("{v:.decimals$}")
    }
}

fn with_unit(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "–".into(),
        Some(v) if unit.is_empty() => fmt_num(v),
        Some(v) if unit.starts_with('/') || unit == "%" => format!("{}{unit}", fmt_num(v)),
        Some(v) => format!("{} {unit}", fmt_num(v)),
    }
}

/// A table cell: `|` would end the cell and a line break the row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The markdown table: `measure | product | baseline | ratio | target | met?`, sections in the
/// order they first appear, each opened by a bold row, rows in file order within a section.
pub fn render(rows: &[Row]) -> String {
    let mut sections: Vec<&str> = Vec::new();
    for r in rows {
        if !sections.contains(&r.section.as_str()) {
            sections.push(&r.section);
        }
    }
    let mut out = String::from(
        "| measure | product | baseline | ratio | target | met? |\n|---|---:|---:|---:|---|---|\n",
    );
    for s in sections {
        out += &format!("| **{}** | | | | | |\n", cell(s));
        for r in rows.iter().filter(|r| r.section == s) {
            let ratio = r.ratio.map(|x| format!("{x:.2}")).unwrap_or("–".into());
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            out += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                cell(&r.measure),
                with_unit(r.product, &r.unit),
                with_unit(r.baseline, &r.unit),
                ratio,
                cell(r.target.as_deref().unwrap_or("–")),
                met
            );
        }
    }
    out
}

/// What the table says about where it was measured.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub memory_kib: Option<u64>,
    /// /proc/loadavg when the table was made (1, 5 and 15 minutes).
    pub load: String,
}

impl Machine {
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok());
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            memory_kib,
            load: std::fs::read_to_string("/proc/loadavg")
                .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        }
    }
}

/// `git describe --always --dirty` of the current directory's repository, or "unknown".
pub fn commit() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Seconds since the epoch as an RFC 3339 UTC time (`2026-12-03T16:25:56Z`).
pub fn rfc3339(secs: u64) -> String {
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The heading of latest.md: date, machine, commit.
pub fn heading(date: &str, m: &Machine, commit: &str) -> String {
    format!(
        "Measured {date} on {} ({} cores, kernel {}, load {}), commit {commit}.\n",
        m.cpu, m.nproc, m.kernel, m.load
    )
}

/// `bench.json`: every row as read, plus date, machine and commit.
pub fn document(rows: &[ReadRow], date: &str, m: &Machine, commit: &str) -> Value {
    serde_json::json!({
        "date": date,
        "machine": m,
        "commit": commit,
        "rows": rows.iter().map(|r| r.raw.clone()).collect::<Vec<_>>(),
    })
}

/// The subcommand: reads `dir`, prints the table, writes `dir/bench.json` and
/// `latest_dir/latest.{json,md}`. Lines that are not rows are reported on stderr and left out.
pub fn run(dir: &Path, latest_dir: &Path) -> Result<(), String> {
    let (rows, bad) = read_dir(dir)?;
    for b in &bad {
        eprintln!("chat-alias-bench table: {b}");
    }
    if rows.is_empty() {
        return Err(format!("no bench rows in {}/*.jsonl", dir.display()));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let date = rfc3339(now);
    let machine = Machine::this();
    let commit = commit();
    let plain: Vec<Row> = rows.iter().map(|r| r.row.clone()).collect();
    let table = render(&plain);
    let md = format!("{}\n{table}", heading(&date, &machine, &commit));
    print!("{md}");
    let doc = serde_json::to_vec_pretty(&document(&rows, &date, &machine, &commit))
        .map_err(|e| e.to_string())?;
    let write = |p: PathBuf, bytes: &[u8]| {
        std::fs::write(&p, bytes).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    write(dir.join("bench.json"), &doc)?;
    std::fs::create_dir_all(latest_dir)
        .map_err(|e| format!("cannot create {}: {e}", latest_dir.display()))?;
    write(latest_dir.join("latest.json"), &doc)?;
    write(latest_dir.join("latest.md"), md.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOINS: &str = r#"{"section":"joins","measure":"join cycles/s at saturation (64 concurrent)","unit":"/s","product":2712.0,"baseline":10032.0,"ratio":0.27,"target":">= 0.9 x baseline","met":false,"better":"higher","samples":{"product":[2700,2712,2800],"baseline":[10000,10032,10100]}}"#;
    const MEM: &str = r#"{"section":"memory","measure":"relay RSS per idle bound participant","unit":"KiB","product":5.25,"baseline":null,"ratio":null,"target":"<= 8 KiB","met":true,"better":"lower","samples":{"product":[5.2,5.25,5.3]},"load":{"start":1.5}}"#;
    const FAN: &str = r#"{"section":"fan-out","measure":"deliveries/s 10/10","unit":"/s","product":71234.5,"baseline":null,"ratio":null,"target":null,"met":null,"better":"higher"}"#;

    #[test]
    fn table_groups_by_section_in_first_seen_order_with_units_and_verdicts() {
        let (rows, bad) = parse_rows(
            Path::new("x.jsonl"),
            &format!("{JOINS}\n\n{MEM}\n{FAN}\n{JOINS}\n"),
        );
        assert!(bad.is_empty(), "{bad:?}");
        let rows: Vec<Row> = rows.into_iter().map(|r| r.row).collect();
        let t = render(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "| measure | product | baseline | ratio | target | met? |"
        );
        assert_eq!(lines[1], "|---|---:|---:|---:|---|---|");
        assert_eq!(lines[2], "| **joins** | | | | | |");
        let joins = "| join cycles/s at saturation (64 concurrent) | 2,712/s | 10,032/s | 0.27 | >= 0.9 x baseline | **no** |";
        assert_eq!(lines[3], joins);
        // The second joins row is grouped with the first, before the later sections.
        assert_eq!(lines[4], joins);
        assert_eq!(lines[5], "| **memory** | | | | | |");
        assert_eq!(
            lines[6],
            "| relay RSS per idle bound participant | 5.25 KiB | – | – | <= 8 KiB | yes |"
        );
        assert_eq!(lines[7], "| **fan-out** | | | | | |");
        assert_eq!(
            lines[8],
            "| deliveries/s 10/10 | 71,235/s | – | – | – | – |"
        );
        assert_eq!(lines.len(), 9);
    }

    #[test]
    fn cells_cannot_break_the_table() {
        let mut r = Row::new("a|b", "x | y\nz", "ms", "lower");
        r.product = Some(1.5);
        let t = render(&[r]);
        assert!(t.contains("| **a\\|b** |"), "{t}");
        assert!(t.contains("| x \\| y z | 1.50 ms |"), "{t}");
        assert_eq!(t.lines().count(), 4);
    }

    #[test]
    fn bad_lines_are_named_and_skipped() {
        let (rows, bad) = parse_rows(
            Path::new("/d/p.jsonl"),
            &format!("{JOINS}\nnot json\n{{\"section\":\"s\"}}\n"),
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].line, 2);
        assert_eq!(bad[1].line, 3);
        assert!(bad[1]
            .to_string()
            .starts_with("/d/p.jsonl:3: not a bench row: "));
        assert!(bad[1].error.contains("measure"), "{}", bad[1].error);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(413_456.4), "413,456");
        assert_eq!(fmt_num(1_000.0), "1,000");
        assert_eq!(fmt_num(999.6), "1,000");
        assert_eq!(fmt_num(100.0), "100");
        assert_eq!(fmt_num(35.04), "35.0");
        assert_eq!(fmt_num(3.0), "3.00");
        assert_eq!(fmt_num(0.0), "0.00");
        assert_eq!(fmt_num(0.27), "0.270");
        assert_eq!(fmt_num(0.001234), "0.00123");
        assert_eq!(fmt_num(-2_500.0), "-2,500");
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_315_156), "2026-12-03T16:25:56Z");
    }

    #[test]
    fn ratio_from_samples() {
        let r = Row::new("s", "m", "/s", "higher")
            .with_samples(&[3.0, 1.0, 2.0], Some(&[4.0, 4.0, 5.0]));
        assert_eq!(r.product, Some(2.0));
        assert_eq!(r.baseline, Some(4.0));
        assert_eq!(r.ratio, Some(0.5));
        let m = Row::new("s", "m", "KiB", "lower").with_samples(&[1.0], None);
        assert_eq!(m.baseline, None);
        assert_eq!(m.ratio, None);
        let line = serde_json::to_string(&m).unwrap();
        assert!(line.contains(r#""baseline":null"#), "{line}");
        assert!(line.contains(r#""samples":{"product":[1.0]}"#), "{line}");
    }

    #[test]
    fn run_writes_bench_json_and_latest_copies() {
        let base = std::env::temp_dir().join(format!("cab-table-{}", std::process::id()));
        let dir = base.join("20261203T000000Z");
        let latest = base.join("latest");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("joins.jsonl"), format!("{JOINS}\n")).unwrap();
        std::fs::write(dir.join("memory.jsonl"), format!("{MEM}\n")).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a part").unwrap();
        run(&dir, &latest).unwrap();
        let doc: Value =
            serde_json::from_slice(&std::fs::read(dir.join("bench.json")).unwrap()).unwrap();
        assert_eq!(doc["rows"].as_array().unwrap().len(), 2);
        // Fields the tool does not know survive.
        assert_eq!(doc["rows"][1]["load"]["start"], 1.5);
        assert!(doc["machine"]["nproc"].as_u64().unwrap() >= 1);
        assert!(doc["date"].as_str().unwrap().ends_with('Z'));
        assert!(doc["commit"].is_string());
        assert_eq!(
            std::fs::read(latest.join("latest.json")).unwrap(),
            std::fs::read(dir.join("bench.json")).unwrap()
        );
        let md = std::fs::read_to_string(latest.join("latest.md")).unwrap();
        assert!(md.starts_with("Measured "), "{md}");
        assert!(md.contains("| **memory** | | | | | |"), "{md}");
        // An empty directory is an error, not an empty table.
        let empty = base.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(run(&empty, &latest).unwrap_err().contains("no bench rows"));
        let _ = std::fs::remove_dir_all(&base);
    }
}
