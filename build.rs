//! Stamps the binary with the git revision it was built from, for `--version`
//! and the `api_build_info` metric: the full commit SHA, so that it names the
//! same commit as the image's `org.opencontainers.image.revision` label and
//! the `<target>-<sha>` tag that `scripts/push.sh` derives from it, with
//! `-dirty` when the sources differ from that commit.
//!
//! A Docker build has no `.git` (see `.dockerignore`), so there the revision
//! comes in as `API_GIT_REVISION` (the Dockerfile's `GIT_REVISION` argument).

use std::path::Path;
use std::process::Command;

/// What the binary is built from, as the revision check (`git status`) sees it.
const SOURCES: [&str; 4] = ["Cargo.toml", "Cargo.lock", "build.rs", "src"];

fn main() {
    println!("cargo:rerun-if-env-changed=API_GIT_REVISION");
    let revision = match std::env::var("API_GIT_REVISION") {
        Ok(revision) if !revision.is_empty() => {
            assert!(
                is_revision(&revision),
                "API_GIT_REVISION (the image's GIT_REVISION build argument) must be a full \
                 40-character commit SHA, optionally followed by -dirty, not {revision:?}: \
                 `git rev-parse HEAD` gives it"
            );
            revision
        }
        _ => git_revision().unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo:rustc-env=API_GIT_REVISION={revision}");
}

fn is_revision(revision: &str) -> bool {
    let sha = revision.strip_suffix("-dirty").unwrap_or(revision);
    sha.len() == 40
        && sha
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    output.status.success().then(|| text.trim().to_owned())
}

fn git_revision() -> Option<String> {
    let sha = git(&["rev-parse", "HEAD"])?;
    // Rebuild when HEAD moves: HEAD itself and the branch it points to, found
    // through git (in a worktree, .git is a file, not a directory), and when
    // the sources change (for the -dirty mark).
    // A path that does not exist would rerun this script at every build.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for path in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        match git(&["rev-parse", "--git-path", path]) {
            Some(file) if Path::new(&file).exists() => println!("cargo:rerun-if-changed={file}"),
            _ => {}
        }
    }
    for source in SOURCES {
        println!("cargo:rerun-if-changed={source}");
    }
    let mut status = vec!["status", "--porcelain", "--"];
    status.extend(SOURCES);
    let dirty = !git(&status)?.is_empty();
    Some(if dirty { format!("{sha}-dirty") } else { sha })
}
