//! The memory limit of the container (the cgroup) this process runs in, as
//! the metric `api_memory_limit_bytes`. With it, "resident memory near the
//! limit" is one ratio that holds wherever the service runs (a 64 MiB pod, a
//! 512 MiB Fargate task), instead of a number copied into every alert and
//! forgotten when the limit changes.
//!
//! The limit is read at every scrape (a few small files), so a container
//! resized in place reports its new limit. Without a limit the metric is
//! absent.
//!
//! The limit in force is the smallest of the process's cgroup's and of
//! every ancestor's. Inside a container, only the container's own cgroup
//! is mounted: with cgroup v1, its `memory.stat` tells the limit of the
//! whole hierarchy (`hierarchical_memory_limit`), so a limit set only on a
//! parent (an ECS task's memory, a systemd slice) is seen there too; with
//! cgroup v2 and a private cgroup namespace (Docker's default on v2), a
//! parent's limit is not visible from inside, and only the container's
//! own counts.

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
    smallest_limit(&limit_files(
        &cgroups,
        Path::new(V2_ROOT),
        Path::new(V1_ROOT),
    ))
}

/// The smallest limit written in any of `files`: a cgroup's memory is
/// bounded by its own limit and by each of its ancestors', so a limit set
/// only on a parent (a systemd slice, an ECS task's limit above its
/// containers) is the one in force.
fn smallest_limit(files: &[PathBuf]) -> Option<u64> {
    files
        .iter()
        .filter_map(|file| {
            let text = fs::read_to_string(file).ok()?;
            if file.ends_with(V1_STAT) {
                hierarchical_limit(&text)
            } else {
                parse_limit(&text)
            }
        })
        .min()
}

/// cgroup v1's statistics file, which holds the hierarchy's limit.
const V1_STAT: &str = "memory.stat";

/// `hierarchical_memory_limit` of a v1 `memory.stat`: the smallest limit
/// of the cgroup and its ancestors, visible even where they are not.
fn hierarchical_limit(memory_stat: &str) -> Option<u64> {
    let value = memory_stat
        .lines()
        .find_map(|line| line.strip_prefix("hierarchical_memory_limit "))?;
    parse_limit(value)
}

/// Every file that may hold a limit on this process: the one of the cgroup
/// that `/proc/self/cgroup` names and of each of its ancestors up to the
/// root of the mount (`v2_root` for cgroup v2, `v1_root` for v1's memory
/// controller). Inside a container the mount's root is the container's own
/// cgroup, and the path named may not exist there: those are skipped.
fn limit_files(proc_self_cgroup: &str, v2_root: &Path, v1_root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for line in proc_self_cgroup.lines() {
        // v2: `0::/path`; v1: `4:memory:/path` (or `4:memory,...:/path`).
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (root, names): (&Path, &[&str]) = if controllers.is_empty() {
            (v2_root, &["memory.max"])
        } else if controllers.split(',').any(|name| name == "memory") {
            (v1_root, &["memory.limit_in_bytes", V1_STAT])
        } else {
            continue;
        };
        let own = Path::new(path.trim_start_matches('/'));
        for cgroup in own.ancestors() {
            files.extend(names.iter().map(|name| root.join(cgroup).join(name)));
        }
    }
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
    fn every_cgroup_from_the_own_one_up_to_the_mount_root_is_read() {
        let roots = (Path::new("/v2"), Path::new("/v1"));
        let v2 = limit_files("0::/system.slice/api.service\n", roots.0, roots.1);
        assert_eq!(
            v2,
            [
                "/v2/system.slice/api.service/memory.max",
                "/v2/system.slice/memory.max",
                "/v2/memory.max",
            ]
            .map(PathBuf::from)
        );
        let v1 = limit_files("5:cpu,cpuacct:/x\n4:memory:/docker/abc\n", roots.0, roots.1);
        assert_eq!(
            v1,
            [
                "/v1/docker/abc/memory.limit_in_bytes",
                "/v1/docker/abc/memory.stat",
                "/v1/docker/memory.limit_in_bytes",
                "/v1/docker/memory.stat",
                "/v1/memory.limit_in_bytes",
                "/v1/memory.stat",
            ]
            .map(PathBuf::from)
        );
        assert_eq!(
            limit_files("0::/\n", roots.0, roots.1),
            [PathBuf::from("/v2/memory.max")]
        );
    }

    /// A cgroup tree in a temporary folder: `(path, limit file content)`.
    fn tree(name: &str, cgroups: &[(&str, &str)], file: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("api-cgroups-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for (cgroup, limit) in cgroups {
            let dir = root.join(cgroup);
            fs::create_dir_all(&dir).expect("made");
            fs::write(dir.join(file), limit).expect("written");
        }
        root
    }

    #[test]
    fn a_limit_on_a_parent_only_is_the_limit_and_the_smallest_wins() {
        // cgroup v2: the task's limit on the parent, none on the container.
        let v2 = tree(
            "v2",
            &[
                ("", "max\n"),
                ("task", "536870912\n"),
                ("task/container", "max\n"),
            ],
            "memory.max",
        );
        let files = limit_files("0::/task/container\n", &v2, Path::new("/nonexistent"));
        assert_eq!(smallest_limit(&files), Some(512 * 1024 * 1024));
        // cgroup v1: a smaller limit below a larger one.
        let v1 = tree(
            "v1",
            &[
                ("", "9223372036854771712\n"),
                ("slice", "1073741824\n"),
                ("slice/api", "67108864\n"),
            ],
            "memory.limit_in_bytes",
        );
        let files = limit_files("4:memory:/slice/api\n", Path::new("/nonexistent"), &v1);
        assert_eq!(smallest_limit(&files), Some(64 * 1024 * 1024));
        // Inside a v1 container whose task has the only limit: the mount's
        // root is the container's cgroup, unlimited itself, and its
        // memory.stat tells the hierarchy's limit.
        let task = tree(
            "v1-task",
            &[("", "9223372036854771712\n")],
            "memory.limit_in_bytes",
        );
        fs::write(
            task.join(V1_STAT),
            "cache 0\nhierarchical_memory_limit 201326592\nhierarchical_memsw_limit 9223372036854771712\n",
        )
        .expect("written");
        let files = limit_files(
            "4:memory:/ecs/task/container\n",
            Path::new("/nonexistent"),
            &task,
        );
        assert_eq!(smallest_limit(&files), Some(192 * 1024 * 1024));
        // Inside a container: the named path is not under the mount, its root is.
        let container = tree("container", &[("", "268435456\n")], "memory.max");
        let files = limit_files(
            "0::/kubepods/pod1/abc\n",
            &container,
            Path::new("/nonexistent"),
        );
        assert_eq!(smallest_limit(&files), Some(256 * 1024 * 1024));
        for root in [v2, v1, task, container] {
            let _ = fs::remove_dir_all(root);
        }
    }
}
