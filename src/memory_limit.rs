//! The memory limit of the container (the cgroup) this process runs in, as
//! the metric `api_memory_limit_bytes`. With it, "resident memory near the
//! limit" is one ratio that holds wherever the service runs (a 64 MiB pod, a
//! 512 MiB Fargate task), instead of a number copied into every alert and
//! forgotten when the limit changes.
//!
//! The limit is read at every scrape (a file or two), so a container resized
//! in place reports its new limit. Without a limit the metric is absent.

use std::fs;
use std::path::{Path, PathBuf};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, Opts};

/// Where cgroup v2, and v1's memory controller, are mounted.
const V2_ROOT: &str = "/sys/fs/cgroup";
const V1_ROOT: &str = "/sys/fs/cgroup/memory";

/// cgroup v1 writes "no limit" as a number just under `i64::MAX` (rounded to
/// the page size); v2 writes `max`.
const V1_UNLIMITED: u64 = 1 << 62;

/// The memory limit in bytes, if this process has one.
pub fn memory_limit_bytes() -> Option<u64> {
    let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
    limit_files(&cgroups)
        .into_iter()
        .find_map(|file| parse_limit(&fs::read_to_string(file).ok()?))
}

/// Where the limit may be written, most specific first: the cgroup that
/// `/proc/self/cgroup` names (right on a host), then the root of the cgroup
/// mount, which inside a container is the container's own cgroup.
fn limit_files(proc_self_cgroup: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = proc_self_cgroup
        .lines()
        .filter_map(|line| {
            // v2: `0::/path`; v1: `4:memory:/path` (or `4:memory,...:/path`).
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let path = path.trim_start_matches('/');
            if controllers.is_empty() {
                Some(Path::new(V2_ROOT).join(path).join("memory.max"))
            } else if controllers.split(',').any(|name| name == "memory") {
                Some(Path::new(V1_ROOT).join(path).join("memory.limit_in_bytes"))
            } else {
                None
            }
        })
        .collect();
    files.push(Path::new(V2_ROOT).join("memory.max"));
    files.push(Path::new(V1_ROOT).join("memory.limit_in_bytes"));
    files
}

fn parse_limit(text: &str) -> Option<u64> {
    let limit: u64 = text.trim().parse().ok()?;
    (limit < V1_UNLIMITED).then_some(limit)
}

/// The collector behind `api_memory_limit_bytes`.
pub struct MemoryLimit {
    desc: Desc,
}

const NAME: &str = "api_memory_limit_bytes";
const HELP: &str =
    "Memory limit of the cgroup (container) the process runs in; absent without one.";

impl MemoryLimit {
    pub fn new() -> Self {
        let desc = Desc::new(NAME.into(), HELP.into(), vec![], Default::default())
            .expect("a valid metric description");
        Self { desc }
    }
}

impl Default for MemoryLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for MemoryLimit {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(limit) = memory_limit_bytes() else {
            return Vec::new();
        };
        let gauge = Gauge::with_opts(Opts::new(NAME, HELP)).expect("a valid metric");
        gauge.set(limit as f64);
        gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_bytes_and_no_limit_is_none() {
        assert_eq!(parse_limit("67108864\n"), Some(64 * 1024 * 1024));
        assert_eq!(parse_limit("max\n"), None, "cgroup v2 without a limit");
        assert_eq!(
            parse_limit("9223372036854771712\n"),
            None,
            "cgroup v1 without a limit"
        );
        assert_eq!(parse_limit(""), None);
    }

    #[test]
    fn the_own_cgroup_is_tried_first_then_the_mount_root() {
        let v2 = limit_files("0::/system.slice/api.service\n");
        assert_eq!(
            v2[0],
            PathBuf::from("/sys/fs/cgroup/system.slice/api.service/memory.max")
        );
        let v1 = limit_files("5:cpu,cpuacct:/x\n4:memory:/docker/abc\n0::/\n");
        assert_eq!(
            v1[0],
            PathBuf::from("/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes")
        );
        assert_eq!(v1[1], PathBuf::from("/sys/fs/cgroup/memory.max"));
        assert_eq!(
            v1.last(),
            Some(&PathBuf::from(
                "/sys/fs/cgroup/memory/memory.limit_in_bytes"
            ))
        );
    }
}
