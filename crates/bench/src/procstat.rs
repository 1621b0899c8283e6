//! CPU time and peak memory of a process, read from Linux `/proc` while it runs.

use std::time::Duration;

/// Linux reports `utime`/`stime` in USER_HZ ticks, which is 100 on every mainstream
/// architecture (it is fixed by the kernel ABI, unlike CONFIG_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU time of process `pid` (its threads included).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces; fields after the
    // last `)` start at field 3 (state). utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) / TICKS_PER_SECOND))
}

/// Peak resident set size (`VmHWM`) of process `pid`, in bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Processes whose command line contains `needle` (e.g. the Cassandra daemon's main class).
pub fn pids_with_cmdline(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Total CPU time of several processes (those that vanished count as zero).
pub fn total_cpu_time(pids: &[u32]) -> Duration {
    pids.iter().filter_map(|&pid| cpu_time(pid)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let started = cpu_time(pid).unwrap();
        let mut x = 0u64;
        for i in 0..30_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(cpu_time(pid).unwrap() >= started);
        assert!(peak_rss_bytes(pid).unwrap() > 1024 * 1024);
        assert!(pids_with_cmdline("busdrain_bench").contains(&pid));
        assert!(!pids_with_cmdline("no such command line, surely").contains(&pid));
        assert!(cpu_time(u32::MAX).is_none());
    }
}
