//! Which CPU each shard thread runs on (`cpu_affinity`, a Culex option), and the two
//! system calls that read the CPUs the process may use and pin the calling thread.
//!
//! A thread-per-core broker pins its shards the way Seastar and glommio do: shard `i` stays
//! on one core. Unpinned, the kernel places a shard woken by a socket on the core of the
//! thread that woke it (a sync wake-up) and it waits there until that thread yields: a
//! median 19 µs in a trace of the latency benchmark. Measured on the 2-vCPU benchmark
//! machine, 100 pairs at 10,000 msg/s, interleaved: p99 latency 0.82–0.84× Mosquitto's
//! pinned against 0.86–0.94× unpinned; fanin +13 % msg/s (docs/benchmarks.md, session 5).
//!
//! [`plan`] is the pure decision; `main` calls it with [`allowed_cpus`] and each shard
//! thread calls [`pin_current_thread`] with its entry before building its runtime.

use std::io;

/// The `cpu_affinity` option.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Pin when there is exactly one shard per usable CPU and more than one shard (the
    /// default: `threads` unset or equal to the CPU count). Fewer shards than CPUs leaves
    /// the placement to the kernel, since the spare cores belong to something else.
    #[default]
    Auto,
    /// Always pin: shard `i` to the `i`-th usable CPU, wrapping when there are more shards.
    Pin,
    /// Never pin.
    Off,
}

impl Mode {
    /// Parses the option's value: `auto`, `true` or `false`.
    pub fn parse(value: &str) -> Option<Mode> {
        match value {
            "auto" => Some(Mode::Auto),
            "true" => Some(Mode::Pin),
            "false" => Some(Mode::Off),
            _ => None,
        }
    }
}

/// The CPU of each of `shards` shard threads (`None`: not pinned), given the CPUs the
/// process may run on (`allowed`, ascending; empty when they could not be read).
pub fn plan(mode: Mode, allowed: &[usize], shards: usize) -> Vec<Option<usize>> {
    let pin = match mode {
        Mode::Off => false,
        Mode::Pin => !allowed.is_empty(),
        Mode::Auto => shards > 1 && shards == allowed.len(),
    };
    (0..shards)
        .map(|shard| pin.then(|| allowed[shard % allowed.len()]))
        .collect()
}

/// The CPUs this process may run on (its affinity mask, which a container's cpuset or
/// `taskset` narrows), ascending.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a writable cpu_set_t of the size passed; pid 0 is this thread.
    let result =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `cpu` is below the set's capacity in bits.
    Ok((0..max)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    if cpu >= max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is beyond the affinity mask"),
        ));
    }
    // SAFETY: an all-zero cpu_set_t is a valid empty set; `cpu` is below its capacity.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t and `cpu` is below its capacity (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is this thread.
    let result =
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_pins_one_shard_per_allowed_cpu() {
        assert_eq!(
            plan(Mode::Auto, &[0, 1], 2),
            vec![Some(0), Some(1)],
            "threads = CPUs"
        );
        assert_eq!(
            plan(Mode::Auto, &[2, 3, 6], 3),
            vec![Some(2), Some(3), Some(6)],
            "a cpuset's CPUs, in order"
        );
    }

    #[test]
    fn auto_leaves_other_shapes_to_the_kernel() {
        assert_eq!(plan(Mode::Auto, &[0], 1), vec![None], "one core");
        assert_eq!(plan(Mode::Auto, &[0, 1], 1), vec![None], "threads 1 of 2");
        assert_eq!(plan(Mode::Auto, &[0, 1, 2, 3], 2), vec![None, None]);
        assert_eq!(plan(Mode::Auto, &[0, 1], 4), vec![None; 4], "more shards");
        assert_eq!(plan(Mode::Auto, &[], 2), vec![None, None], "mask unknown");
    }

    #[test]
    fn pin_always_pins_and_wraps() {
        assert_eq!(plan(Mode::Pin, &[0, 1, 2, 3], 1), vec![Some(0)]);
        assert_eq!(plan(Mode::Pin, &[4, 5], 3), vec![Some(4), Some(5), Some(4)]);
        assert_eq!(plan(Mode::Pin, &[], 2), vec![None, None]);
    }

    #[test]
    fn off_never_pins() {
        assert_eq!(plan(Mode::Off, &[0, 1], 2), vec![None, None]);
    }

    #[test]
    fn parses_the_option_values() {
        assert_eq!(Mode::parse("auto"), Some(Mode::Auto));
        assert_eq!(Mode::parse("true"), Some(Mode::Pin));
        assert_eq!(Mode::parse("false"), Some(Mode::Off));
        assert_eq!(Mode::parse("yes"), None);
        assert_eq!(Mode::parse("True"), None);
    }

    #[test]
    fn reads_this_process_mask() {
        let allowed = allowed_cpus().expect("sched_getaffinity");
        assert!(!allowed.is_empty());
        assert!(allowed.windows(2).all(|w| w[0] < w[1]), "ascending");
    }
}
