//! How many threads the model math should use by default: the performance cores.
//!
//! - Android and Linux: where the cores' cpufreq maximum frequencies differ (big.LITTLE), the
//!   cores above the slowest cluster's maximum; otherwise the physical cores (one per
//!   `(package, core)` pair in sysfs topology, so SMT siblings count once).
//! - iOS and macOS: `hw.perflevel0.physicalcpu` (the performance cores of Apple silicon), else
//!   `hw.physicalcpu`.
//! - Elsewhere, or when none of that can be read: the logical CPUs the process may use.
//!
//! Never more than the CPUs the process may use.

/// The default thread count for the model math (see the module documentation), never more
/// than the CPUs this process may use (a container's quota, an affinity mask); at least 1. Apps
/// may always pass their own count instead.
pub fn performance_cores() -> usize {
    let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
    platform().filter(|&n| n > 0).map_or(usable, |n| n.min(usable))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn platform() -> Option<usize> {
    let cpus = online_cpus()?;
    let sys = std::path::Path::new("/sys/devices/system/cpu");
    let read = |cpu: usize, file: &str| -> Option<u64> {
        std::fs::read_to_string(sys.join(format!("cpu{cpu}")).join(file)).ok()?.trim().parse().ok()
    };
    let freqs: Vec<u64> = cpus.iter().filter_map(|&c| read(c, "cpufreq/cpuinfo_max_freq")).collect();
    if freqs.len() == cpus.len() {
        if let Some(n) = big_cores(&freqs) {
            return Some(n);
        }
    }
    let mut cores: Vec<(u64, u64)> = cpus
        .iter()
        .filter_map(|&c| Some((read(c, "topology/physical_package_id").unwrap_or(0), read(c, "topology/core_id")?)))
        .collect();
    if cores.len() != cpus.len() {
        return None;
    }
    cores.sort_unstable();
    cores.dedup();
    Some(cores.len())
}

/// With differing maximum frequencies: the cores faster than the slowest cluster.
#[cfg(any(target_os = "linux", target_os = "android", test))]
fn big_cores(max_freqs: &[u64]) -> Option<usize> {
    let slowest = *max_freqs.iter().min()?;
    let big = max_freqs.iter().filter(|&&f| f > slowest).count();
    (big > 0).then_some(big)
}

/// The online CPUs, from `/sys/devices/system/cpu/online` (`0-3,6`).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn online_cpus() -> Option<Vec<usize>> {
    parse_cpu_list(std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?.trim())
}

#[cfg(any(target_os = "linux", target_os = "android", test))]
fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<usize>().ok()?..=b.parse::<usize>().ok()?),
            None => out.push(part.parse().ok()?),
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(any(target_os = "ios", target_os = "macos"))]
fn platform() -> Option<usize> {
    let get = |name: &str| -> Option<usize> {
        let name = std::ffi::CString::new(name).ok()?;
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>();
        // SAFETY: `value` and `len` describe a writable c_int; no new value is set.
        let rc = unsafe {
            libc::sysctlbyname(name.as_ptr(), (&mut value as *mut libc::c_int).cast(), &mut len, std::ptr::null_mut(), 0)
        };
        (rc == 0 && value > 0).then_some(value as usize)
    };
    get("hw.perflevel0.physicalcpu").or_else(|| get("hw.physicalcpu"))
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "ios", target_os = "macos")))]
fn platform() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_cores_are_those_above_the_slowest_cluster() {
        // A Snapdragon 8 Gen 2 style 1 + 4 + 3 layout: prime, big, little.
        let f = [2_016_000, 2_016_000, 2_016_000, 2_803_200, 2_803_200, 2_803_200, 2_803_200, 3_187_200];
        assert_eq!(big_cores(&f), Some(5));
        assert_eq!(big_cores(&[1_800_000; 4]), None, "one cluster: count physical cores instead");
        assert_eq!(parse_cpu_list("0-3,6"), Some(vec![0, 1, 2, 3, 6]));
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn never_more_than_the_usable_cpus() {
        let n = performance_cores();
        assert!(n >= 1 && n <= std::thread::available_parallelism().map_or(1, |n| n.get()), "{n}");
    }
}
