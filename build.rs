//! Compiles `proto/dashstream.proto` (and `proto/remote.proto`, remote write's messages, and
//! `proto/metrics.proto`, the protobuf exposition's, for tests) with protox (a pure-Rust protobuf compiler), so no system `protoc` is
//! needed, then generates the Rust types with prost-build.
fn main() {
    println!("cargo:rerun-if-changed=proto/dashstream.proto");
    println!("cargo:rerun-if-changed=proto/remote.proto");
    println!("cargo:rerun-if-changed=proto/metrics.proto");
    // A new commit changes the build_info label.
    for f in [".git/HEAD", ".git/refs/heads"] {
        if std::path::Path::new(f).exists() {
            println!("cargo:rerun-if-changed={f}");
        }
    }
    let fds = protox::compile(["dashstream.proto", "remote.proto", "metrics.proto"], ["proto"])
        .expect("compile proto/*.proto");
    prost_build::Config::new()
        // Deterministic map order for encoding (tests compare bytes) and no hashing cost on decode.
        .btree_map(["."])
        .compile_fds(fds)
        .expect("generate Rust code for proto/*.proto");
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string());
    let commit = std::env::var("GIT_COMMIT_SHA").ok().or(commit).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=DFE_GIT_COMMIT={commit}");
    let date = std::env::var("BUILD_DATE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=DFE_BUILD_DATE={date}");
    println!("cargo:rerun-if-env-changed=GIT_COMMIT_SHA");
    println!("cargo:rerun-if-env-changed=BUILD_DATE");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rv = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=DFE_RUST_VERSION={rv}");
}
