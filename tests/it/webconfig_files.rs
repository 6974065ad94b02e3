//! The web config files under tests/data/webconfig/: each one is checked by the real binary's
//! `check-config`, as an operator would, and must be accepted (exit 0) or refused (exit 2, with the
//! expected fragment in the message) exactly as its header says.
//!
//! Each file opens with three comment lines: `# toolkit: accept|refuse` (what the Prometheus
//! exporter-toolkit does with such a file, from its documentation and its own tests' verdicts),
//! `# expect: accept` or `# expect: refuse: FRAGMENT`, and `# why:`. The files were written for this
//! repository. `@server.crt@`-style lines are replaced by that file's PEM, indented alike, so inline
//! certificates and keys are real ones generated for the run (with the `openssl` command).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::BIN;

/// Replaces each `@file@` line by the file's lines, indented as the placeholder was.
fn fill(text: &str, dir: &Path) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        match t.trim_end().strip_prefix('@').and_then(|r| r.strip_suffix('@')) {
            Some(file) => {
                let indent = &line[..line.len() - t.len()];
                let pem = std::fs::read_to_string(dir.join(file)).unwrap();
                for l in pem.lines() {
                    out.push_str(&format!("{indent}{l}\n"));
                }
            }
            None => out.push_str(line),
        }
    }
    out
}

struct Case {
    file: PathBuf,
    toolkit_accepts: bool,
    /// `None`: accepted; else the fragment the refusal must contain.
    refusal: Option<String>,
}

fn cases() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/webconfig");
    let mut out = Vec::new();
    for sub in ["accept", "refuse"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(sub)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let mut lines = text.lines();
            let toolkit = lines.next().and_then(|l| l.strip_prefix("# toolkit: ")).expect("# toolkit: line");
            let expect = lines.next().and_then(|l| l.strip_prefix("# expect: ")).expect("# expect: line");
            assert!(lines.next().is_some_and(|l| l.starts_with("# why: ")), "{}: # why: line", file.display());
            let refusal = expect.strip_prefix("refuse: ").map(str::to_string);
            assert!(refusal.is_some() || expect == "accept", "{}: {expect:?}", file.display());
            assert_eq!(refusal.is_none(), sub == "accept", "{}: filed under {sub}", file.display());
            out.push(Case { file, toolkit_accepts: toolkit == "accept", refusal });
        }
    }
    out
}

#[test]
fn every_file_is_accepted_or_refused_as_its_header_says_and_as_the_toolkit_does() {
    let dir = std::env::temp_dir().join(format!("dfe-webconfig-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    crate::common::pki::Pki::new(&dir);
    let cases = cases();
    let mut failures = Vec::new();
    let mut as_toolkit = 0;
    for c in &cases {
        let name = c.file.file_name().unwrap().to_string_lossy().into_owned();
        let path = dir.join(&name);
        std::fs::write(&path, fill(&std::fs::read_to_string(&c.file).unwrap(), &dir)).unwrap();
        let out = Command::new(BIN)
            .arg("check-config")
            .env_clear()
            .env("WEB_CONFIG_FILE", &path)
            .env("KAFKA_BROKERS", "127.0.0.1:1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let code = out.status.code();
        let ok = match &c.refusal {
            None => code == Some(0) && stdout.contains(&format!("web config {}: ", path.display())),
            Some(fragment) => {
                code == Some(2) && stderr.contains(fragment) && stderr.contains(&path.display().to_string())
            }
        };
        if !ok {
            failures.push(format!("{name}: want {:?}, got exit {code:?}\n{stdout}{stderr}", c.refusal));
        }
        let accepted = code == Some(0);
        if accepted == c.toolkit_accepts {
            as_toolkit += 1;
        }
        // Nothing secret comes back: no hash, no key.
        for text in [&stdout, &stderr] {
            assert!(!text.contains("$2y$04$") && !text.contains("PRIVATE KEY"), "{name}: {text}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files not as expected:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let accepted = cases.iter().filter(|c| c.refusal.is_none()).count();
    println!(
        "{as_toolkit} of {} files treated as the toolkit treats them ({accepted} accepted, {} refused)",
        cases.len(),
        cases.len() - accepted
    );
    assert_eq!((accepted, cases.len() - accepted), (32, 31), "the set of files changed: update the count");
    assert_eq!(as_toolkit, cases.len());
    std::fs::remove_dir_all(&dir).unwrap();
}
