//! The exporter-toolkit settings beyond TLS files and basic auth, against the real binary with `curl` as the
//! client: response headers on every answer, the rate limit's 429, inline PEM, client_allowed_sans, cipher
//! suites and curves by Go's names, Verify* against the system roots, each re-read on change; the
//! healthcheck under TLS and basic auth; `--web.listen-address` and `--web.systemd-socket` (started by
//! Debian's `systemd-socket-activate`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::pki::Pki;
use crate::common::{Exporter, BIN};

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dfe-web-toolkit-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes the web config atomically (a temp file renamed over it), as a deployment tool would.
fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn start(web: &Path, extra: &[(&str, &str)]) -> Exporter {
    let brokers = format!("127.0.0.1:{}", crate::common::free_port());
    let web = web.to_str().unwrap();
    let env: Vec<(&str, &str)> = std::iter::once(("WEB_CONFIG_FILE", web)).chain(extra.iter().copied()).collect();
    Exporter::spawn(&brokers, "web", "g-web-toolkit", &env)
}

/// What curl got: its exit code, the status (0 when there was no HTTP answer) and the answer's headers.
struct Got {
    exit: i32,
    status: u16,
    headers: String,
    body: String,
}

fn curl(args: &[&str]) -> Got {
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "--max-time", "10"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = headers.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Got { exit: out.status.code().unwrap_or(-1), status, headers: headers.to_string(), body: body.to_string() }
}

fn https(port: u16, path: &str, pki: &Pki, extra: &[&str]) -> Got {
    let url = format!("https://localhost:{port}{path}");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let ca = pki.path("ca.crt");
    let mut args = vec!["--cacert", ca.to_str().unwrap(), "--resolve", &resolve];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

fn wait(what: &str, e: &Exporter, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(15) {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}\n--- exporter log ---\n{}", e.logs());
}

fn series(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

/// A bcrypt hash of `password` (cost 4, quick in tests).
fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

#[test]
fn headers_on_every_answer_and_the_rate_limit_429_both_reloaded() {
    let dir = temp("headers");
    let cfg = dir.join("web.yml");
    let h = hash("pw");
    write(
        &cfg,
        &format!(
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Content-Security-Policy: \"default-src 'none'\"\n\
             basic_auth_users: {{prom: '{h}'}}\nrate_limit:\n  interval: 1h\n  burst: 3\n"
        ),
    );
    let e = start(&cfg, &[]);
    let url = |p: &str| format!("http://127.0.0.1:{}{p}", e.port);
    let ok = curl(&["-u", "prom:pw", &url("/metrics")]);
    assert_eq!(ok.status, 200, "{}", e.logs());
    let unauthorized = curl(&[&url("/-/healthy")]);
    let missing = curl(&["-u", "prom:pw", &url("/nope")]);
    for (what, got, status) in [("metrics", &ok, 200), ("401", &unauthorized, 401), ("404", &missing, 404)] {
        assert_eq!(got.status, status, "{what}");
        assert!(got.headers.contains("\r\nX-Frame-Options: deny"), "{what}: {}", got.headers);
        assert!(got.headers.contains("\r\nContent-Security-Policy: default-src 'none'"), "{what}: {}", got.headers);
    }
    // Three tokens, all spent: the fourth request is refused before any password check.
    let limited = curl(&["-u", "prom:pw", &url("/metrics")]);
    assert_eq!((limited.status, limited.body.as_str()), (429, "Too Many Requests\n"), "{}", limited.headers);
    assert!(limited.headers.contains("X-Frame-Options: deny"), "{}", limited.headers);
    assert_eq!(curl(&[&url("/-/healthy")]).status, 429, "even without credentials");
    // The rate limit goes and the headers change: seen without a restart.
    write(
        &cfg,
        &format!(
            "http_server_config:\n  headers: {{X-Content-Type-Options: nosniff}}\nbasic_auth_users: {{prom: '{h}'}}\n"
        ),
    );
    // Until the reload is seen, requests are still refused: counted here to know the counter's value.
    let mut refused = 2.0;
    wait("the reload", &e, || match curl(&["-u", "prom:pw", &url("/metrics")]).status {
        429 => {
            refused += 1.0;
            false
        }
        s => s == 200,
    });
    let after = curl(&["-u", "prom:pw", &url("/metrics")]);
    assert!(
        after.headers.contains("\r\nX-Content-Type-Options: nosniff") && !after.headers.contains("X-Frame-Options"),
        "{}",
        after.headers
    );
    assert_eq!(series(&after.body, "dashstream_exporter_web_rate_limited_total"), Some(refused), "{}", after.body);
    // And back, with a burst of one: the second request within the interval is refused.
    write(&cfg, &format!("basic_auth_users: {{prom: '{h}'}}\nrate_limit: {{interval: 1h, burst: 1}}\n"));
    wait("the new rate limit", &e, || curl(&["-u", "prom:pw", &url("/metrics")]).status == 429);
    assert!(e.logs().contains("rate limit on (burst 1 then 1 per 3600s; beyond: 429)"), "{}", e.logs());
    assert!(!e.logs().contains(&h[7..]), "no hash in the logs");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inline_pem_client_allowed_sans_ciphers_and_curves_and_their_reload() {
    let dir = temp("tls");
    let pki = Pki::new(&dir);
    let (a_crt, a_key) = pki.client("scraper-a", "DNS:scraper-a,IP:192.0.2.7");
    let (b_crt, b_key) = pki.client("scraper-b", "DNS:scraper-b");
    let indent = |pem: String| pem.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let base = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}  client_auth_type: RequireAndVerifyClientCert\n  client_ca: |\n{}",
        indent(pki.pem("server.crt")),
        indent(pki.pem("server.key")),
        indent(pki.pem("ca.crt"))
    );
    let cfg = dir.join("web.yml");
    write(&cfg, &format!("{base}  client_allowed_sans: [\"scraper-a\"]\n"));
    let e = start(&cfg, &[]);
    let (a, b) =
        ([a_crt.to_str().unwrap(), a_key.to_str().unwrap()], [b_crt.to_str().unwrap(), b_key.to_str().unwrap()]);
    let with = |c: [&str; 2], extra: &[&str]| {
        let mut args = vec!["--cert", c[0], "--key", c[1]];
        args.extend_from_slice(extra);
        https(e.port, "/-/healthy", &pki, &args)
    };
    wait("TLS up", &e, || with(a, &[]).status == 200);
    let refused = with(b, &[]);
    assert_eq!(refused.status, 0, "scraper-b has no allowed SAN: {}", refused.headers);
    assert_ne!(refused.exit, 0);
    assert_eq!(https(e.port, "/-/healthy", &pki, &[]).status, 0, "no client certificate");
    // The SAN list now names b's IP-less DNS name only; then an IP SAN of a.
    write(&cfg, &format!("{base}  client_allowed_sans: [scraper-b]\n"));
    wait("SANs reloaded", &e, || with(b, &[]).status == 200);
    assert_eq!(with(a, &[]).status, 0);
    write(&cfg, &format!("{base}  client_allowed_sans: [192.0.2.7]\n"));
    wait("IP SAN", &e, || with(a, &[]).status == 200);
    // Cipher suites by Go's names (TLS 1.2: the server key is ECDSA).
    write(&cfg, &format!("{base}  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n"));
    wait("suites reloaded", &e, || {
        with(a, &["--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384"]).status == 0
    });
    let good = with(a, &["--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
    assert_eq!(good.status, 200, "{}", e.logs());
    assert_eq!(with(a, &["--tls-max", "1.1"]).status, 0, "below min_version TLS12");
    // Curves, under TLS 1.3 (under TLS 1.2 OpenSSL also holds an ECDSA certificate's own curve to the list).
    write(&cfg, &format!("{base}  min_version: TLS13\n  curve_preferences: [CurveP384]\n"));
    wait("curves reloaded", &e, || with(a, &["--curves", "prime256v1"]).status == 0);
    assert_eq!(with(a, &["--curves", "secp384r1"]).status, 200);
    assert_eq!(with(a, &["--curves", "X25519"]).status, 0, "only the listed group");
    assert!(!e.logs().contains("PRIVATE KEY"), "{}", e.logs());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn min_and_max_version_bound_the_handshake_from_tls10_to_tls13() {
    let dir = temp("versions");
    let pki = Pki::new(&dir);
    let cfg = dir.join("web.yml");
    let base = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    write(&cfg, &format!("{base}  min_version: TLS10\n  max_version: TLS11\n"));
    let e = start(&cfg, &[]);
    // The client's OpenSSL refuses TLS 1.0/1.1 above security level 0 too.
    let at = |v: &str| {
        let flag = format!("--tlsv{v}");
        https(e.port, "/-/healthy", &pki, &[&flag, "--tls-max", v, "--ciphers", "DEFAULT:@SECLEVEL=0"]).status
    };
    wait("TLS up", &e, || at("1.0") == 200);
    assert_eq!([at("1.0"), at("1.1"), at("1.2"), at("1.3")], [200, 200, 0, 0]);
    write(&cfg, &format!("{base}  min_version: TLS13\n"));
    wait("versions reloaded", &e, || at("1.1") == 0);
    assert_eq!([at("1.0"), at("1.1"), at("1.2"), at("1.3")], [0, 0, 0, 200]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_without_a_client_ca_trusts_the_system_roots() {
    let dir = temp("roots");
    let pki = Pki::new(&dir);
    let (crt, key) = pki.client("scraper", "DNS:scraper");
    let cfg = dir.join("web.yml");
    write(&cfg, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n");
    let args = ["--cert", crt.to_str().unwrap(), "--key", key.to_str().unwrap()];
    // The test CA is not among the system's roots: refused.
    let e = start(&cfg, &[]);
    wait("TLS up", &e, || https(e.port, "/-/healthy", &pki, &args).exit != 7);
    assert_eq!(https(e.port, "/-/healthy", &pki, &args).status, 0);
    drop(e);
    // Made one of them (OpenSSL's SSL_CERT_FILE): accepted.
    let ca = pki.path("ca.crt");
    let e = start(&cfg, &[("SSL_CERT_FILE", ca.to_str().unwrap())]);
    wait("TLS up", &e, || https(e.port, "/-/healthy", &pki, &args).status == 200);
    assert!(e.logs().contains("client_ca=system roots"), "{}", e.logs());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn healthcheck_speaks_tls_with_basic_auth_and_never_prints_the_password() {
    let dir = temp("healthcheck");
    let _pki = Pki::new(&dir);
    let cfg = dir.join("web.yml");
    write(
        &cfg,
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  hc: {}\n",
            hash("s3cret-pw")
        ),
    );
    std::fs::write(dir.join("pw"), "s3cret-pw\n").unwrap();
    let e = start(&cfg, &[]);
    let run = |env: &[(&str, &str)]| {
        let port = e.port.to_string();
        let out = Command::new(BIN)
            .args(["healthcheck", "--url", &format!("https://127.0.0.1:{port}/-/healthy")])
            .env_clear()
            .env("WEB_CONFIG_FILE", &cfg)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let pw = dir.join("pw");
    let pw = pw.to_str().unwrap();
    wait("healthy over TLS", &e, || run(&[("HEALTHCHECK_USER", "hc"), ("HEALTHCHECK_PASSWORD_FILE", pw)]).0 == Some(0));
    assert_eq!(run(&[("HEALTHCHECK_USER", "hc"), ("HEALTHCHECK_PASSWORD", "s3cret-pw")]).0, Some(0));
    let (code, err) = run(&[("HEALTHCHECK_USER", "hc"), ("HEALTHCHECK_PASSWORD", "wrong-pw")]);
    assert_eq!(
        (code, err.trim_end()),
        (Some(1), &*format!("healthcheck https://127.0.0.1:{}/-/healthy: answered HTTP 401", e.port))
    );
    let (code, err) = run(&[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("set HEALTHCHECK_USER and HEALTHCHECK_PASSWORD_FILE"), "{err}");
    // With a CA given instead, a certificate from another CA is not trusted.
    let other = Pki::new(&dir.join("other"));
    let ca = other.path("ca.crt");
    let (code, err) = run(&[
        ("HEALTHCHECK_USER", "hc"),
        ("HEALTHCHECK_PASSWORD_FILE", pw),
        ("HEALTHCHECK_CA_FILE", ca.to_str().unwrap()),
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("certificate verify failed"), "{err}");
    assert!(!e.logs().contains("s3cret-pw") && !e.logs().contains("wrong-pw"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn several_listen_addresses_and_systemd_socket_activation() {
    let (p1, p2) = (crate::common::free_port(), crate::common::free_port());
    let list = format!("127.0.0.1:{p1},[::1]:{p2}");
    let brokers = format!("127.0.0.1:{}", crate::common::free_port());
    let e = Exporter::spawn(&brokers, "web", "g-listen", &[("WEB_LISTEN_ADDRESS", &list)]);
    for url in [format!("http://127.0.0.1:{p1}/-/healthy"), format!("http://[::1]:{p2}/-/healthy")] {
        wait(&url, &e, || curl(&[&url]).status == 200);
    }
    assert_eq!(e.port, p1, "the first address is the one announced");
    drop(e);

    // systemd-socket-activate holds the socket and starts the daemon at the first connection, passing it.
    let p = crate::common::free_port();
    let log = std::env::temp_dir().join(format!("dfe-socket-activate-{}.log", std::process::id()));
    let mut child = Command::new("systemd-socket-activate")
        .args(["-l", &format!("127.0.0.1:{p}"), "-E", &format!("KAFKA_BROKERS={brokers}"), "-E", "RUST_LOG=info"])
        .args([BIN, "--web.systemd-socket"])
        .env_clear()
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(std::fs::OpenOptions::new().append(true).open(&log).unwrap()))
        .spawn()
        .expect("systemd-socket-activate");
    let url = format!("http://127.0.0.1:{p}/-/healthy");
    let t0 = Instant::now();
    let mut got = curl(&[&url]);
    while got.status != 200 && t0.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
        got = curl(&[&url]);
    }
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert_eq!(got.status, 200, "{logs}");
    assert!(logs.contains(&format!("listening on 127.0.0.1:{p}")), "{logs}");
    let _ = std::fs::remove_file(&log);
}
