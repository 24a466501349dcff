//! What /proc says about the measured process: CPU time and memory.
use std::time::Duration;

/// CPU time the process has used, user + system, all its threads (fields 14 and 15 of
/// /proc/PID/stat, in clock ticks).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_ticks_of(&stat).map(|t| ticks_to_duration(t, clock_ticks()))
}

/// utime + stime of a /proc/PID/stat text. The command name (field 2) is in parentheses and may
/// hold spaces and parentheses itself: the fields are counted after its last ')'.
pub fn cpu_ticks_of(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) … utime(14) stime(15): indexes 11 and 12 here.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / per_second.max(1))
}

/// Clock ticks per second (USER_HZ), as the kernel handed it to this process in its auxiliary
/// vector (AT_CLKTCK): what `sysconf(_SC_CLK_TCK)` reads, without a foreign call.
fn clock_ticks() -> u64 {
    std::fs::read("/proc/self/auxv")
        .ok()
        .and_then(|auxv| clock_ticks_of_auxv(&auxv))
        .unwrap_or(100)
}

/// AT_CLKTCK in an auxiliary vector: native-endian (key, value) pairs of 64-bit words.
fn clock_ticks_of_auxv(auxv: &[u8]) -> Option<u64> {
    const AT_CLKTCK: u64 = 17;
    let word = |b: &[u8]| b.try_into().ok().map(u64::from_ne_bytes);
    auxv.chunks_exact(16)
        .find(|pair| word(&pair[..8]) == Some(AT_CLKTCK))
        .and_then(|pair| word(&pair[8..]))
        .filter(|&t| t > 0)
}

/// A `Vm…:` line of /proc/PID/status in KiB (`VmRSS`, `VmHWM`).
pub fn vm_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    vm_kib_of(&status, field)
}

pub fn vm_kib_of(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let v = l.strip_prefix(field)?.strip_prefix(':')?;
        let mut it = v.split_whitespace();
        let n = it.next()?.parse().ok()?;
        (it.next() == Some("kB")).then_some(n)
    })
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_ticks_come_from_the_auxiliary_vector() {
        let mut auxv = Vec::new();
        for (k, v) in [(6u64, 4096u64), (17, 250), (0, 0)] {
            auxv.extend_from_slice(&k.to_ne_bytes());
            auxv.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(clock_ticks_of_auxv(&auxv), Some(250));
        assert_eq!(clock_ticks_of_auxv(&auxv[..16]), None);
        // This process's own: Linux reports USER_HZ, 100 on every mainstream architecture.
        assert_eq!(clock_ticks(), 100);
    }

    #[test]
    fn stat_fields_after_a_hostile_name() {
        let stat = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 56 0 0 20 0 3 0 1 2 3";
        assert_eq!(cpu_ticks_of(stat), Some(1290));
        assert_eq!(cpu_ticks_of("4242 (x) S 1"), None);
        assert_eq!(ticks_to_duration(250, 100), Duration::from_millis(2500));
        // This process has a stat file and has used some CPU by now.
        assert!(cpu_time(std::process::id()).is_some());
    }

    #[test]
    fn status_fields() {
        let s = "Name:\tx\nVmHWM:\t   10240 kB\nVmRSS:\t    8192 kB\n";
        assert_eq!(vm_kib_of(s, "VmRSS"), Some(8192));
        assert_eq!(vm_kib_of(s, "VmHWM"), Some(10240));
        assert_eq!(vm_kib_of(s, "VmSwap"), None);
        assert!(vm_kib(std::process::id(), "VmRSS").unwrap() > 0);
    }
}
