//! `--web.config.file`: basic auth, TLS, mTLS and certificate rotation, against the real binary over real
//! HTTP and TLS on loopback. Certificates come from a test CA generated here with the openssl crate; no broker
//! is needed (the exporter serves HTTP without one).

mod attacks;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{parse_response, Exporter, Response, BIN};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};

// ------------------------------------------------------------------------------------------------------------
// Test PKI.

struct Ca {
    cert: X509,
    key: PKey<Private>,
}

fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    n.build()
}

impl Ca {
    fn new(cn: &str) -> Ca {
        let key = ec_key();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap()).unwrap();
        b.set_subject_name(&name(cn)).unwrap();
        b.set_issuer_name(&name(cn)).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::days_from_now(2).unwrap()).unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap();
        b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build().unwrap()).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        Ca { cert: b.build(), key }
    }

    /// A leaf certificate for `localhost`/127.0.0.1 (server) or a client, with the given serial and CN.
    fn issue(&self, cn: &str, serial: u32, server: bool) -> (X509, PKey<Private>) {
        let key = ec_key();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap()).unwrap();
        b.set_subject_name(&name(cn)).unwrap();
        b.set_issuer_name(self.cert.subject_name()).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::days_from_now(2).unwrap()).unwrap();
        b.append_extension(BasicConstraints::new().build().unwrap()).unwrap();
        b.append_extension(KeyUsage::new().critical().digital_signature().build().unwrap()).unwrap();
        let eku = if server {
            ExtendedKeyUsage::new().server_auth().build()
        } else {
            ExtendedKeyUsage::new().client_auth().build()
        };
        b.append_extension(eku.unwrap()).unwrap();
        if server {
            let san = SubjectAlternativeName::new()
                .dns("localhost")
                .ip("127.0.0.1")
                .build(&b.x509v3_context(Some(&self.cert), None))
                .unwrap();
            b.append_extension(san).unwrap();
        }
        b.sign(&self.key, MessageDigest::sha256()).unwrap();
        (b.build(), key)
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "dfe-web-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
    /// Writes a file atomically (temp file + rename), as a deployment tool would.
    fn write(&self, f: &str, content: &[u8]) -> PathBuf {
        let tmp = self.path(&format!(".{f}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, self.path(f)).unwrap();
        self.path(f)
    }
    fn write_cert(&self, f: &str, cert: &X509) -> PathBuf {
        self.write(f, &cert.to_pem().unwrap())
    }
    fn write_key(&self, f: &str, key: &PKey<Private>) -> PathBuf {
        self.write(f, &key.private_key_to_pem_pkcs8().unwrap())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ------------------------------------------------------------------------------------------------------------
// Exporter and clients.

/// Starts the exporter with a web config and no broker; returns once it logged its port (not yet answering:
/// with TLS the plain-HTTP readiness probe of `Exporter::start_with` cannot be used).
fn start(web_config: &Path, extra: &[(&str, &str)]) -> Exporter {
    let brokers = format!("127.0.0.1:{}", crate::common::free_port());
    let web = web_config.to_str().expect("UTF-8 temp path");
    let env: Vec<(&str, &str)> = std::iter::once(("WEB_CONFIG_FILE", web)).chain(extra.iter().copied()).collect();
    Exporter::spawn(&brokers, "web", "g-web", &env)
}

/// How a TLS client presents itself.
#[derive(Clone, Copy)]
struct Client<'a> {
    ca: &'a Path,
    cert: Option<(&'a Path, &'a Path)>,
}

/// One HTTPS GET (server certificate verified against `ca` for host `localhost`); the response and the CN of
/// the certificate the server presented.
fn tls_get(port: u16, path: &str, client: Client<'_>, headers: &[(&str, &str)]) -> Result<(Response, String), String> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    b.set_ca_file(client.ca).map_err(|e| e.to_string())?;
    b.set_verify(SslVerifyMode::PEER);
    if let Some((cert, key)) = client.cert {
        b.set_certificate_file(cert, SslFiletype::PEM).map_err(|e| e.to_string())?;
        b.set_private_key_file(key, SslFiletype::PEM).map_err(|e| e.to_string())?;
    }
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = b.build().connect("localhost", tcp).map_err(|e| format!("handshake: {e}"))?;
    let cn = s
        .ssl()
        .peer_certificate()
        .and_then(|c| c.subject_name().entries_by_nid(Nid::COMMONNAME).next().map(|e| e.data().to_string().unwrap()))
        .unwrap_or_default();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    Ok((parse_response(&raw).map_err(|e| e.to_string())?, cn))
}

fn wait_for(what: &str, e: &Exporter, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}\n--- exporter log ---\n{}", e.logs());
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// The value of one series in an exposition (exact line match on the name with labels).
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).map(|v| v.parse().unwrap()))
}

// ------------------------------------------------------------------------------------------------------------

#[test]
fn basic_auth_401_without_or_with_wrong_credentials_200_with_right_ones_and_users_reload() {
    let dir = TempDir::new("auth");
    let alice_hash = bcrypt::hash("alice-pw-1", 4).unwrap();
    let bob_hash = bcrypt::hash("bob pw:with colon", 5).unwrap();
    let cfg = dir.write(
        "web.yml",
        format!("# test\nbasic_auth_users:\n  alice: {alice_hash}\n  \"bob\": '{bob_hash}'\n").as_bytes(),
    );
    let e = start(&cfg, &[]);
    let alice = basic("alice", "alice-pw-1");
    let bob = basic("bob", "bob pw:with colon");
    wait_for("HTTP answers", &e, Duration::from_secs(10), || {
        e.request("GET", "/-/healthy", &[("Authorization", &alice)]).is_ok_and(|r| r.status == 200)
    });

    let refused: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("/metrics", vec![]),
        ("/metrics", vec![("Authorization", basic("alice", "wrong"))]),
        ("/metrics", vec![("Authorization", basic("mallory", "alice-pw-1"))]),
        ("/metrics", vec![("Authorization", basic("bob", "alice-pw-1"))]),
        ("/metrics", vec![("Authorization", "Basic !!notbase64".to_string())]),
        ("/metrics", vec![("Authorization", "Bearer abc".to_string())]),
        ("/-/healthy", vec![]),
        ("/-/ready", vec![]),
        ("/", vec![]),
        ("/nope", vec![]),
    ];
    for (path, headers) in &refused {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = e.request("GET", path, &h).unwrap();
        assert_eq!(r.status, 401, "{path} {headers:?}: {}", r.text());
        assert_eq!(r.header("WWW-Authenticate"), Some("Basic"), "{path}");
        assert_eq!(r.text(), "Unauthorized\n");
    }
    for auth in [&alice, &bob] {
        let r = e.request("GET", "/metrics", &[("Authorization", auth)]).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains("# TYPE dashstream_quality_monitor_queries_total counter"));
        assert_eq!(e.request("GET", "/-/healthy", &[("Authorization", auth)]).unwrap().status, 200);
        assert_eq!(e.request("GET", "/-/ready", &[("Authorization", auth)]).unwrap().status, 503, "no broker");
        assert_eq!(e.request("GET", "/nope", &[("Authorization", auth)]).unwrap().status, 404);
    }
    // Repeated scrapes with the right password hit the cache; all keep working.
    for _ in 0..20 {
        assert_eq!(e.request("GET", "/metrics", &[("Authorization", &alice)]).unwrap().status, 200);
    }
    let text = e.request("GET", "/metrics", &[("Authorization", &alice)]).unwrap().text();
    assert_eq!(series(&text, "dashstream_exporter_web_auth_failures_total"), Some(refused.len() as f64), "{text}");
    assert_eq!(series(&text, "dashstream_exporter_web_config_reloads_total{result=\"success\"}"), Some(0.0));

    // New password for alice: picked up without a restart, the old one stops working.
    let new_hash = bcrypt::hash("alice-pw-2", 4).unwrap();
    dir.write("web.yml", format!("basic_auth_users:\n  alice: {new_hash}\n").as_bytes());
    let alice2 = basic("alice", "alice-pw-2");
    // Polled with the old password, a cached success until the reload: so the wait costs no failed login
    // (five failures from one address within seconds would be answered 429).
    wait_for("the old password refused", &e, Duration::from_secs(5), || {
        e.request("GET", "/metrics", &[("Authorization", &alice)]).unwrap().status == 401
    });
    assert_eq!(e.request("GET", "/metrics", &[("Authorization", &alice2)]).unwrap().status, 200);
    assert_eq!(e.request("GET", "/metrics", &[("Authorization", &bob)]).unwrap().status, 401, "bob was removed");
    // An invalid file is refused at reload: the old users stay in force.
    dir.write("web.yml", b"basic_auth_users:\n  alice: not-a-hash\n");
    let text = {
        let mut text = String::new();
        wait_for("the failed reload counted", &e, Duration::from_secs(5), || {
            text = e.request("GET", "/metrics", &[("Authorization", &alice2)]).unwrap().text();
            series(&text, "dashstream_exporter_web_config_reloads_total{result=\"failure\"}") == Some(1.0)
        });
        text
    };
    assert_eq!(series(&text, "dashstream_exporter_web_config_reloads_total{result=\"success\"}"), Some(1.0));
    assert_eq!(e.request("GET", "/metrics", &[("Authorization", &alice2)]).unwrap().status, 200);

    let logs = e.logs();
    assert!(logs.contains("reload failed, keeping the previous one"), "{logs}");
    assert!(logs.contains("basic_auth_users.alice: expected a bcrypt hash"), "{logs}");
    // Neither the passwords, nor any part of a hash (salt: the first 29 characters; digest: the last 31).
    let mut secrets = vec!["alice-pw", "bob pw", "not-a-hash"];
    for h in [&alice_hash, &bob_hash, &new_hash] {
        secrets.extend([&h[..29], &h[29..]]);
    }
    for secret in secrets {
        assert!(!logs.contains(secret), "log leaks {secret:?}:\n{logs}");
    }
}

/// A TLS web config for a fresh CA; returns (dir, CA, config path).
fn tls_setup(tag: &str, extra: &str) -> (TempDir, Ca, PathBuf) {
    let dir = TempDir::new(tag);
    let ca = Ca::new("test CA");
    let (cert, key) = ca.issue("server one", 1, true);
    dir.write_cert("ca.crt", &ca.cert);
    dir.write_cert("server.crt", &cert);
    dir.write_key("server.key", &key);
    // Relative names: resolved against the config file's directory.
    let cfg = dir.write(
        "web.yml",
        format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}").as_bytes(),
    );
    (dir, ca, cfg)
}

#[test]
fn tls_scrape_verified_with_the_test_ca_and_plain_http_gets_nothing() {
    let (dir, _ca, cfg) = tls_setup("tls", "  min_version: TLS12\n");
    let e = start(&cfg, &[]);
    let ca = dir.path("ca.crt");
    let me = Client { ca: &ca, cert: None };
    wait_for("TLS answers", &e, Duration::from_secs(10), || tls_get(e.port, "/-/healthy", me, &[]).is_ok());
    let (r, cn) = tls_get(e.port, "/metrics", me, &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(cn, "server one");
    assert_eq!(r.header("Content-Type"), Some("text/plain; version=0.0.4"));
    assert!(r.text().contains("# TYPE dashstream_quality_monitor_queries_total counter"));
    assert_eq!(tls_get(e.port, "/-/ready", me, &[]).unwrap().0.status, 503, "no broker");
    assert_eq!(tls_get(e.port, "/nope", me, &[]).unwrap().0.status, 404);

    // Plain HTTP to the TLS port: no HTTP response, and the exporter carries on.
    let plain = e.get("/metrics");
    assert!(plain.is_err() || plain.as_ref().unwrap().status == 0, "plain HTTP answered: {}", plain.unwrap().status);
    // A client that trusts another CA refuses the server's certificate.
    let other = TempDir::new("other");
    let other_ca = other.write_cert("ca.crt", &Ca::new("other CA").cert);
    let err = match tls_get(e.port, "/metrics", Client { ca: &other_ca, cert: None }, &[]) {
        Ok((r, cn)) => panic!("untrusted server certificate accepted: {} {cn}", r.status),
        Err(err) => err,
    };
    assert!(err.contains("certificate verify failed"), "{err}");
    assert_eq!(tls_get(e.port, "/metrics", me, &[]).unwrap().0.status, 200, "still serving");
    let logs = e.logs();
    assert!(logs.contains("TLS on (cert="), "{logs}");
    assert!(!logs.contains("PRIVATE KEY"), "{logs}");
}

#[test]
fn mtls_requires_a_client_certificate_signed_by_the_ca() {
    let (dir, ca, cfg) =
        tls_setup("mtls", "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n");
    let (client_cert, client_key) = ca.issue("scraper", 7, false);
    let cert = dir.write_cert("client.crt", &client_cert);
    let key = dir.write_key("client.key", &client_key);
    let rogue_ca = Ca::new("test CA"); // same name, different key
    let (rogue_cert, rogue_key) = rogue_ca.issue("scraper", 7, false);
    let rcert = dir.write_cert("rogue.crt", &rogue_cert);
    let rkey = dir.write_key("rogue.key", &rogue_key);
    let ca_path = dir.path("ca.crt");
    let good = Client { ca: &ca_path, cert: Some((&cert, &key)) };

    let e = start(&cfg, &[]);
    wait_for("mTLS answers", &e, Duration::from_secs(10), || tls_get(e.port, "/-/healthy", good, &[]).is_ok());
    let (r, _) = tls_get(e.port, "/metrics", good, &[]).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("dashstream_exporter_ready 0"));

    for (what, client) in [
        ("no certificate", Client { ca: &ca_path, cert: None }),
        ("a certificate of another CA", Client { ca: &ca_path, cert: Some((&rcert, &rkey)) }),
    ] {
        let got = tls_get(e.port, "/metrics", client, &[]);
        assert!(got.is_err(), "{what}: answered {:?}", got.map(|(r, _)| r.status));
    }
    let (r, _) = tls_get(e.port, "/metrics", good, &[]).unwrap();
    assert_eq!(r.status, 200, "still serving");
    assert_eq!(series(&r.text(), "dashstream_exporter_web_tls_handshake_failures_total"), Some(2.0));
}

#[test]
fn mtls_and_basic_auth_together() {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let (dir, ca, cfg) = tls_setup(
        "both",
        &format!("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\nbasic_auth_users:\n  prom: {hash}\n"),
    );
    let (c, k) = ca.issue("scraper", 9, false);
    let (cert, key) = (dir.write_cert("c.crt", &c), dir.write_key("c.key", &k));
    let ca_path = dir.path("ca.crt");
    let e = start(&cfg, &[]);
    let anonymous = Client { ca: &ca_path, cert: None };
    let with_cert = Client { ca: &ca_path, cert: Some((&cert, &key)) };
    wait_for("TLS answers", &e, Duration::from_secs(10), || tls_get(e.port, "/", anonymous, &[]).is_ok());
    // VerifyClientCertIfGiven: no certificate is fine at the TLS level; basic auth still applies.
    assert_eq!(tls_get(e.port, "/metrics", anonymous, &[]).unwrap().0.status, 401);
    assert_eq!(tls_get(e.port, "/metrics", with_cert, &[]).unwrap().0.status, 401);
    let auth = basic("prom", "pw");
    assert_eq!(tls_get(e.port, "/metrics", anonymous, &[("Authorization", &auth)]).unwrap().0.status, 200);
    assert_eq!(tls_get(e.port, "/metrics", with_cert, &[("Authorization", &auth)]).unwrap().0.status, 200);
}

#[test]
fn certificates_rotate_without_a_restart_and_a_bad_rotation_keeps_the_old_one() {
    let (dir, ca, cfg) = tls_setup("rotate", "");
    let e = start(&cfg, &[]);
    let ca_path = dir.path("ca.crt");
    let me = Client { ca: &ca_path, cert: None };
    wait_for("TLS answers", &e, Duration::from_secs(10), || tls_get(e.port, "/-/healthy", me, &[]).is_ok());
    assert_eq!(tls_get(e.port, "/-/healthy", me, &[]).unwrap().1, "server one");
    let pid = e.child.id();

    // Rotate: new key and certificate (serial 2, new CN), written in place.
    let (cert2, key2) = ca.issue("server two", 2, true);
    dir.write_key("server.key", &key2);
    dir.write_cert("server.crt", &cert2);
    let mut seen = String::new();
    wait_for("the new certificate", &e, Duration::from_secs(5), || {
        seen = tls_get(e.port, "/-/healthy", me, &[]).map(|(_, cn)| cn).unwrap_or_default();
        seen == "server two"
    });
    assert_eq!(e.child.id(), pid);
    let reloads = |result: &str| {
        let text = tls_get(e.port, "/metrics", me, &[]).unwrap().0.text();
        series(&text, &format!("dashstream_exporter_web_config_reloads_total{{result=\"{result}\"}}")).unwrap()
    };
    let successes = reloads("success");
    assert!(successes >= 1.0, "{successes}");
    // (A check between the two writes may have seen the new key with the old certificate: a counted failure.)
    let failures = reloads("failure");

    // A broken rotation (certificate that is not PEM): the previous certificate stays in use.
    std::thread::sleep(Duration::from_millis(1100));
    dir.write("server.crt", b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    wait_for("the failed reload counted", &e, Duration::from_secs(5), || reloads("failure") == failures + 1.0);
    for _ in 0..3 {
        let (r, cn) = tls_get(e.port, "/metrics", me, &[]).unwrap();
        assert_eq!((r.status, cn.as_str()), (200, "server two"));
    }
    // The key's certificate comes back: the next check picks it up.
    dir.write_cert("server.crt", &cert2);
    wait_for("recovery", &e, Duration::from_secs(5), || reloads("success") == successes + 1.0);
    assert_eq!(reloads("failure"), failures + 1.0, "one failure, then no retry until a file changed");
    let logs = e.logs();
    assert!(logs.contains("tls_server_config.cert_file ("), "the error names the key and file:\n{logs}");
    assert!(!logs.contains("PRIVATE KEY"), "{logs}");
}

fn run_binary(args: &[&str], web_config: &Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("WEB_CONFIG_FILE", web_config)
        .env("KAFKA_BROKERS", "127.0.0.1:1")
        .env("METRICS_BIND_IP", "127.0.0.1")
        .env("METRICS_PORT", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn invalid_web_config_exits_2_naming_the_file_and_key_and_check_config_shows_no_secret() {
    let dir = TempDir::new("invalid");
    let ca = Ca::new("ca");
    let (cert, key) = ca.issue("s", 1, true);
    let (_, other_key) = ca.issue("s", 2, true);
    dir.write_cert("s.crt", &cert);
    dir.write_key("s.key", &key);
    dir.write_key("other.key", &other_key);
    let cases: &[(&str, &[&str])] = &[
        (
            "tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n  clientauth: x\n",
            &["line 4", "unknown key \"clientauth\""],
        ),
        ("basic_auth_user:\n  a: b\n", &["line 1", "unknown key \"basic_auth_user\""]),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: s.key\n",
            &["tls_server_config.cert_file", "missing.crt"],
        ),
        (
            "tls_server_config:\n  cert_file: s.crt\n  key_file: other.key\n",
            &["tls_server_config.key_file", "other.key"],
        ),
        (
            "tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n  min_version: TLS14\n",
            &["line 4", "min_version"],
        ),
        ("basic_auth_users:\n  alice: hunter2\n", &["line 2", "basic_auth_users.alice"]),
    ];
    for (text, wants) in cases {
        let cfg = dir.write("bad.yml", text.as_bytes());
        for args in [&[][..], &["check-config"][..]] {
            let (code, _, stderr) = run_binary(args, &cfg);
            assert_eq!(code, 2, "{args:?} {text:?}: {stderr}");
            assert!(stderr.contains("WEB_CONFIG_FILE"), "{stderr}");
            assert!(stderr.contains(&cfg.display().to_string()), "names the file: {stderr}");
            for w in *wants {
                assert!(stderr.contains(w), "{text:?}: want {w:?} in {stderr}");
            }
            assert!(!stderr.contains("hunter2"), "{stderr}");
        }
    }
    let (code, _, stderr) = run_binary(&[], &dir.path("nonexistent.yml"));
    assert_eq!(code, 2);
    assert!(stderr.contains("nonexistent.yml") && stderr.contains("No such file"), "{stderr}");

    // A valid one: check-config shows the file and what it turns on, never the hash.
    let hash = bcrypt::hash("pw", 4).unwrap();
    let cfg = dir.write(
        "good.yml",
        format!("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\nbasic_auth_users:\n  alice: {hash}\n")
            .as_bytes(),
    );
    let (code, stdout, stderr) = run_binary(&["check-config"], &cfg);
    assert_eq!(code, 0, "{stderr}");
    let want = format!(
        "web config {}: TLS on (cert={}, key={}, versions=TLS12..TLS13, cipher_suites=default, \
         prefer_server_cipher_suites=true, curve_preferences=default, client_auth_type=NoClientCert), \
         http2=true (served: HTTP/1.1), headers: none, rate limit off, basic auth on (1 user: alice)",
        cfg.display(),
        dir.path("s.crt").display(),
        dir.path("s.key").display()
    );
    assert!(stdout.contains(&want), "{stdout}");
    assert!(stdout.contains(&format!("WEB_CONFIG_FILE={} (env)", cfg.display())), "{stdout}");
    // The flag wins over the variable.
    let cfg_s = cfg.display().to_string();
    let (code, stdout, stderr) =
        run_binary(&["check-config", "--web.config.file", &cfg_s], &dir.path("nonexistent.yml"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("WEB_CONFIG_FILE={cfg_s} (flag)")), "{stdout}");
    assert!(!stdout.contains(&hash[..29]) && !stdout.contains(&hash[29..]) && !stdout.contains("PRIVATE"), "{stdout}");
}

/// A TLS client (server certificate verified) on a socket whose reads time out after 10 ms, for polling.
fn tls_connect(port: u16, ca: &Path) -> openssl::ssl::SslStream<TcpStream> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(ca).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let s = b.build().connect("localhost", tcp).expect("handshake");
    s.get_ref().set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    s
}

/// Slow-loris over TLS: connections that never start the handshake, and connections that finish it and then
/// trickle header bytes, hold every slot; an authorized scrape over TLS still gets 200 (one of them is evicted
/// for it), the rest are closed by the header deadline without any answer (no 401 reaches a client whose
/// header never completes), and an oversized header without credentials gets 431, not 401.
#[test]
fn slow_loris_over_tls_is_closed_by_the_header_deadline_and_a_tls_scrape_still_gets_200() {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let (dir, _ca, cfg) = tls_setup("loris", &format!("basic_auth_users:\n  prom: {hash}\n"));
    let ca = dir.path("ca.crt");
    let me = Client { ca: &ca, cert: None };
    let auth = basic("prom", "pw");
    let creds = [("Authorization", auth.as_str())];
    // The idle timeout is far longer than the header deadline: only the header deadline can close them.
    let e = start(
        &cfg,
        &[
            ("METRICS_MAX_CONNECTIONS", "3"),
            ("METRICS_HTTP_HEADER_TIMEOUT_SECS", "2"),
            ("METRICS_HTTP_TIMEOUT_SECS", "60"),
        ],
    );
    wait_for("TLS answers", &e, Duration::from_secs(10), || tls_get(e.port, "/-/healthy", me, &creds).is_ok());
    let scrape = || {
        let (r, _) = tls_get(e.port, "/metrics", me, &creds).expect("TLS scrape");
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains("# TYPE dashstream_quality_monitor_queries_total counter"));
        r.text()
    };
    const TLS_FAILURES: &str = "dashstream_exporter_web_tls_handshake_failures_total";
    const AUTH_FAILURES: &str = "dashstream_exporter_web_auth_failures_total";
    let closed = |reason: &str| format!("dashstream_exporter_http_connections_closed_total{{reason=\"{reason}\"}}");
    let expect = |want: &[(&str, f64)]| {
        let got = |text: &str| want.iter().map(|(name, _)| series(text, name).unwrap_or(-1.0)).collect::<Vec<_>>();
        let values = want.iter().map(|(_, v)| *v).collect::<Vec<_>>();
        let mut last = got(&scrape());
        let t0 = Instant::now();
        while last != values && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
            last = got(&scrape());
        }
        assert_eq!(last, values, "{want:?}");
    };

    // 1. Three connections that never send a ClientHello: mid-handshake, so evictable.
    let mut raw: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(("127.0.0.1", e.port)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300)); // let the gate admit them (no assertion on time)
    scrape();
    let mut buf = [0u8; 256];
    for s in &mut raw {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        // Closed by the server without a byte (EOF, or a reset for the evicted one).
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)), "got an answer before the TLS handshake");
    }
    // The evicted one is not a handshake failure. (A relay counts its close just after closing the socket:
    // wait for the counters to settle, then compare exactly.)
    expect(&[(&closed("evicted"), 1.0), (&closed("header_timeout"), 2.0), (TLS_FAILURES, 2.0)]);

    // 2. Three clients that complete the handshake, then trickle a header byte every 100 ms, never ending it.
    let mut loris: Vec<_> = (0..3).map(|_| tls_connect(e.port, &ca)).collect();
    let mut open = vec![true; loris.len()];
    let mut answers = vec![Vec::new(); loris.len()];
    let mut scraped = false;
    let line = b"GET /metrics HTTP/1.1\r\nX-Slow: ";
    let t0 = Instant::now();
    let mut i = 0;
    while open.iter().any(|o| *o) {
        assert!(t0.elapsed() < Duration::from_secs(30), "slow TLS clients still open after 30 s");
        for (k, s) in loris.iter_mut().enumerate() {
            if !open[k] {
                continue;
            }
            let byte = if i < line.len() { line[i] } else { b'a' };
            if s.write_all(&[byte]).is_err() {
                open[k] = false;
                continue;
            }
            match s.read(&mut buf) {
                Ok(0) => open[k] = false,
                Ok(n) => answers[k].extend_from_slice(&buf[..n]),
                Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => open[k] = false,
            }
        }
        i += 1;
        if !scraped && i == 5 {
            // While every slot is held by a trickling TLS client.
            scrape();
            scraped = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(scraped);
    for a in &answers {
        assert!(a.is_empty(), "a client with an incomplete header got an answer: {}", String::from_utf8_lossy(a));
    }
    // No incomplete header reached basic auth.
    expect(&[(&closed("evicted"), 2.0), (&closed("header_timeout"), 4.0), (TLS_FAILURES, 2.0), (AUTH_FAILURES, 0.0)]);

    // 3. An oversized header without credentials: 431 over TLS (the size limit comes before basic auth).
    let mut s = tls_connect(e.port, &ca);
    s.get_ref().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let _ = s.write_all(&big); // the server may close before it has read everything
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let r = parse_response(&raw).expect("an answer to the oversized header");
    assert_eq!(r.status, 431, "{}", r.text());
    // A complete request without credentials still gets 401.
    assert_eq!(tls_get(e.port, "/metrics", me, &[]).unwrap().0.status, 401);
    expect(&[(&closed("header_too_large"), 1.0), (AUTH_FAILURES, 1.0), (&closed("evicted"), 2.0)]);
}
