//! Resident memory from `/proc/<pid>/status` (Linux): the soak and fault
//! tests watch a child process's, the retrain-cycle bench its own peak.

/// A process's resident memory (`VmRSS`) in KiB; `None` once it has exited
/// or where `/proc` does not exist.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// This process's peak resident memory so far (`VmHWM`) in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    status_kib("/proc/self/status", "VmHWM:")
}

/// A `<field> <n> kB` line of a status file.
fn status_kib(path: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_resident_memory_and_a_peak_at_least_as_high() {
        let rss = rss_kib(std::process::id()).expect("Linux /proc");
        let peak = peak_rss_kib().expect("Linux /proc");
        assert!(rss > 0);
        assert!(peak >= rss, "peak {peak} KiB below current {rss} KiB");
    }
}
