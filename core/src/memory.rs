//! What the operating system says this process can still use, for limits that must hold before
//! work starts (the frames of a video).

/// Bytes this process can still allocate without being killed, as far as the OS says: the
/// smaller of the system's `MemAvailable` and the room left under the process's cgroup limit
/// (v2 `memory.max`, v1 `memory.limit_in_bytes`). `None` where unknown (not Linux or Android,
/// or nothing readable); on iOS the app reads `os_proc_available_memory` itself.
pub(crate) fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let system = meminfo.as_deref().and_then(|m| field_kb(m, "MemAvailable:")).map(|kb| kb * 1024);
    let group = cgroup_room();
    match (system, group) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn field_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

/// Limit minus usage of this process's cgroup, when it has a limit.
fn cgroup_room() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<u64>().ok());
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    // v2: a single "0::/path" line.
    if let Some(path) = cgroup.lines().find_map(|l| l.strip_prefix("0::")) {
        let dir = format!("/sys/fs/cgroup{}", path.trim_end_matches('/'));
        if let (Some(max), Some(cur)) = (read(&format!("{dir}/memory.max")), read(&format!("{dir}/memory.current"))) {
            return Some(max.saturating_sub(cur));
        }
    }
    // v1: the memory controller's limit; "no limit" reads as a huge number.
    let limit = read("/sys/fs/cgroup/memory/memory.limit_in_bytes")?;
    let usage = read("/sys/fs/cgroup/memory/memory.usage_in_bytes")?;
    (limit < 1 << 60).then(|| limit.saturating_sub(usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo_fields() {
        let m = "MemTotal:       24000000 kB\nMemAvailable:   12345678 kB\n";
        assert_eq!(field_kb(m, "MemAvailable:"), Some(12_345_678));
        assert_eq!(field_kb(m, "Nope:"), None);
        if cfg!(target_os = "linux") {
            let a = available_bytes().expect("Linux reports available memory");
            assert!(a > 0);
        }
    }
}
