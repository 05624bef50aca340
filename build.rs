//! Stamps the binary with the git revision it was built from, for `--version`
//! and the `api_build_info` metric. A Docker build has no `.git` (see
//! `.dockerignore`), so there the revision comes in as `API_GIT_REVISION`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=API_GIT_REVISION");
    let revision = std::env::var("API_GIT_REVISION")
        .ok()
        .filter(|revision| !revision.is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=API_GIT_REVISION={revision}");
}

fn git_revision() -> Option<String> {
    // Rebuild when HEAD moves: HEAD itself, and the branch file it points to.
    let head = std::fs::read_to_string(".git/HEAD").ok()?;
    println!("cargo:rerun-if-changed=.git/HEAD");
    if let Some(branch) = head.strip_prefix("ref: ") {
        println!("cargo:rerun-if-changed=.git/{}", branch.trim());
    }
    let output = Command::new("git")
        .args(["rev-parse", "--short=7", "HEAD"])
        .output()
        .ok()?;
    let revision = String::from_utf8(output.stdout).ok()?;
    output.status.success().then(|| revision.trim().to_owned())
}
