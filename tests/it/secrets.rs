//! Secrets handed over as files (`KAFKA_SASL_PASSWORD_FILE`, `KAFKA_SSL_KEY_PASSWORD_FILE`), checked on the
//! real binary as an operator runs it: the content reaches librdkafka and nothing else — not the process
//! environment, not the logs (at debug level), not `check-config`, not a panic message, not `/metrics` — and a
//! bad file or a doubly given secret stops the start with exit code 2.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{Cluster, Exporter, BIN};

const SASL_SECRET: &str = "Zq7-sasl-SECRET-4f1c9";
const KEY_SECRET: &str = "Zq7-key-SECRET-8b2e0";

/// Writes the secret files (with the trailing newline `echo` and editors leave) in a directory of this test.
fn secret_files(test: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("dfe-secrets-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (sasl, key) = (dir.join("sasl_password"), dir.join("key_password"));
    std::fs::write(&sasl, format!("{SASL_SECRET}\n")).unwrap();
    std::fs::write(&key, format!("{KEY_SECRET}\r\n")).unwrap();
    (sasl, key)
}

/// Fails naming `what` if `text` holds either secret (or any part of one that identifies it).
fn assert_clean(what: &str, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    for needle in [SASL_SECRET, KEY_SECRET, "SECRET-4f1c9", "SECRET-8b2e0"] {
        assert!(!text.contains(needle), "{what} holds {needle:?}:\n{text}");
    }
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).env_clear().envs(env.iter().copied()).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The environment and command line of `pid` and of every process it started.
fn assert_process_tree_clean(pid: u32) {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(String::from_utf8_lossy(&environ).contains("KAFKA_SASL_PASSWORD_FILE="), "the test set the variable");
    assert_clean(&format!("/proc/{pid}/environ"), &environ);
    assert_clean(&format!("/proc/{pid}/cmdline"), &std::fs::read(format!("/proc/{pid}/cmdline")).unwrap());
    let mut children = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let list = std::fs::read_to_string(task.unwrap().path().join("children")).unwrap_or_default();
        children.extend(list.split_whitespace().map(|c| c.parse::<u32>().unwrap()));
    }
    for child in &children {
        assert_process_tree_clean(*child);
    }
    assert_eq!(children, Vec::<u32>::new(), "the exporter starts no processes");
}

/// Runs an exporter with the secrets in files at debug level, checks every place a secret could show, stops it.
fn exporter_shows_no_secret(
    cluster: &Cluster,
    group: &str,
    protocol: &str,
    ready: impl Fn(&Exporter) -> bool,
) -> Exporter {
    let (sasl, key) = secret_files(group);
    let mut e = Exporter::spawn(
        &cluster.brokers,
        &cluster.topic,
        group,
        &[
            ("KAFKA_SECURITY_PROTOCOL", protocol),
            ("KAFKA_SASL_USERNAME", "alice"),
            ("KAFKA_SASL_PASSWORD_FILE", sasl.to_str().unwrap()),
            ("KAFKA_SSL_KEY_PASSWORD_FILE", key.to_str().unwrap()),
            ("RUST_LOG", "debug"),
        ],
    );
    e.wait_until(Duration::from_secs(30), "the exporter at work", ready);
    assert_process_tree_clean(e.child.id());
    for path in ["/metrics", "/", "/-/healthy", "/-/ready"] {
        let r = e.get(path).expect(path);
        assert_clean(path, &r.body);
        assert_clean(&format!("{path} headers"), format!("{:?}", r.headers).as_bytes());
    }
    let (status, _) = e.terminate();
    assert!(status.success(), "{status}\n{}", e.logs());
    let logs = e.logs();
    assert!(logs.contains("[DEBUG]"), "debug logging is on:\n{logs}");
    assert_clean("the log", logs.as_bytes());
    e
}

#[test]
fn secrets_from_files_reach_librdkafka_and_nowhere_else() {
    let cluster = Cluster::new("secrets", 2);
    // sasl_plaintext: librdkafka holds the password and tries it (the mock cluster has no SASL, so it fails).
    let e = exporter_shows_no_secret(&cluster, "secrets-sasl", "sasl_plaintext", |e| {
        e.logs().contains("Failed to initialize SASL authentication")
    });
    assert!(e.logs().contains("sasl.username=alice sasl.password=***"), "{}", e.logs());
    // plaintext: the files are read and validated the same way, the records are counted, SASL is ignored.
    let records: Vec<_> = (0..20).map(|i| (i % 2, Some(vec![0u8; 3]))).collect();
    cluster.produce(&records);
    let e = exporter_shows_no_secret(&cluster, "secrets-plain", "plaintext", |e| {
        e.scrape().get("dashstream_exporter_messages_received_total") == Some(20.0)
    });
    assert_eq!(cluster.committed("secrets-plain"), vec![10, 10], "stopped after committing every record");
    assert!(e.logs().contains("the SASL settings are ignored"), "{}", e.logs());
}

#[test]
fn check_config_masks_secrets_from_files_and_names_where_they_came_from() {
    let (sasl, key) = secret_files("check");
    let (sasl, key) = (sasl.to_str().unwrap(), key.to_str().unwrap());
    let env = [
        ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
        ("KAFKA_SASL_USERNAME", "alice"),
        ("KAFKA_SASL_PASSWORD_FILE", sasl),
        ("RUST_LOG", "debug"),
    ];
    let (code, out, err) = run(&["check-config", "--kafka-ssl-key-password-file", key], &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("KAFKA_SASL_PASSWORD=*** (file KAFKA_SASL_PASSWORD_FILE={sasl})")), "{out}");
    assert!(out.contains(&format!("KAFKA_SSL_KEY_PASSWORD=*** (file --kafka-ssl-key-password-file={key})")), "{out}");
    assert!(out.contains("  sasl.password=***\n") && out.contains("  ssl.key.password=***\n"), "{out}");
    assert_clean("check-config stdout", out.as_bytes());
    assert_clean("check-config stderr", err.as_bytes());
}

#[test]
fn a_panic_message_holds_no_secret() {
    // `check-config` printing to a pipe nobody reads panics ("failed printing to stdout") with the secrets loaded.
    let (sasl, key) = secret_files("panic");
    let mut fds = [0; 2];
    // Close-on-exec: a child another test spawns meanwhile must not inherit the read end (the write would
    // then succeed and the child exit 0); this child's stdout is a dup of the write end, which stays open.
    // SAFETY: pipe2(2) into a two-element array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned here only.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read_end);
    let out = Command::new(BIN)
        .arg("check-config")
        .env_clear()
        .env("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
        .env("KAFKA_SASL_USERNAME", "alice")
        .env("KAFKA_SASL_PASSWORD_FILE", &sasl)
        .env("KAFKA_SSL_KEY_PASSWORD_FILE", &key)
        .env("RUST_BACKTRACE", "full")
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{err}");
    assert!(err.contains("panicked") && err.contains("failed printing to stdout"), "{err}");
    assert_clean("the panic message", &out.stderr);
}

#[test]
fn bad_secret_files_and_doubly_given_secrets_exit_2_naming_variable_and_path() {
    let (sasl, _) = secret_files("bad");
    let sasl = sasl.to_str().unwrap();
    let empty = std::env::temp_dir().join(format!("dfe-secrets-{}-bad/empty", std::process::id()));
    std::fs::write(&empty, "\n").unwrap();
    let empty = empty.to_str().unwrap();
    type Case<'a> = (&'a [&'a str], Vec<(&'a str, &'a str)>, String);
    let cases: [Case<'_>; 5] = [
        (
            &[],
            vec![("KAFKA_SASL_USERNAME", "u"), ("KAFKA_SASL_PASSWORD_FILE", empty)],
            format!("KAFKA_SASL_PASSWORD (KAFKA_SASL_PASSWORD_FILE) = {empty:?}: the file is empty"),
        ),
        (
            &[],
            vec![("KAFKA_SSL_KEY_PASSWORD_FILE", "/run/secrets/missing")],
            "KAFKA_SSL_KEY_PASSWORD (KAFKA_SSL_KEY_PASSWORD_FILE) = \"/run/secrets/missing\": cannot read the file: No such file or directory (os error 2)".into(),
        ),
        (
            &[],
            vec![("KAFKA_SSL_KEY_PASSWORD_FILE", "/")],
            "KAFKA_SSL_KEY_PASSWORD (KAFKA_SSL_KEY_PASSWORD_FILE) = \"/\": cannot read the file: Is a directory (os error 21)".into(),
        ),
        (
            &[],
            vec![("KAFKA_SASL_USERNAME", "u"), ("KAFKA_SASL_PASSWORD", SASL_SECRET), ("KAFKA_SASL_PASSWORD_FILE", sasl)],
            format!("KAFKA_SASL_PASSWORD (KAFKA_SASL_PASSWORD_FILE) = {sasl:?}: KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set; set only one"),
        ),
        (
            &["--kafka-sasl-password", SASL_SECRET, "--kafka-sasl-password-file", sasl],
            vec![("KAFKA_SASL_USERNAME", "u")],
            format!("KAFKA_SASL_PASSWORD (--kafka-sasl-password-file) = {sasl:?}: --kafka-sasl-password and --kafka-sasl-password-file are both set; set only one"),
        ),
    ];
    for (flags, env, want) in cases {
        // The daemon and check-config refuse alike, before anything starts.
        for command in [&[][..], &["check-config"]] {
            let args: Vec<&str> = command.iter().chain(flags).copied().collect();
            let (code, out, err) = run(&args, &env);
            assert_eq!(code, Some(2), "{args:?} {env:?}: {out}{err}");
            assert!(err.contains(&want), "{args:?} {env:?}: want {want:?} in:\n{err}");
            assert_eq!(err.lines().count(), 2, "one problem: {err}");
            assert_clean("the error", err.as_bytes());
            assert_clean("stdout", out.as_bytes());
        }
    }
}
