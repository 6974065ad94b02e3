//! What `--web.config.file` costs (issue 7, item 5): bcrypt checks with and without the success cache, and
//! request latency over real loopback connections to the exporter's own HTTP side (`http::bind`, the gate and
//! 2 request threads) with plain HTTP, basic auth, TLS, and TLS + basic auth. Every request opens a new
//! connection (`Connection: close`), so the TLS cases include a full handshake (ECDSA P-256, TLS 1.3): the
//! worst case; Prometheus keeps connections open between scrapes.
//!
//! `cargo bench --bench web` (env `REQUESTS`, default 300 per case; 5 under `cargo test --benches`).
//! Percentiles are nearest rank.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use dashflow_prometheus_exporter::config::webconfig::{load_file, parse};
use dashflow_prometheus_exporter::config::{Buckets, Config, Listen, ListenAddr, RawSettings};
use dashflow_prometheus_exporter::http;
use dashflow_prometheus_exporter::http::webconfig::{dummy_hash, AuthCache, AuthLimits, AuthOutcome, Login};
use dashflow_prometheus_exporter::metrics::Metrics;
use dashflow_prometheus_exporter::runtime::shutdown::Lifecycle;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslConnector, SslMethod};
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};

fn cert(cn: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name())).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
    match issuer {
        None => b.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap(),
        Some((ca, _)) => {
            let san = SubjectAlternativeName::new().dns("localhost").build(&b.x509v3_context(Some(ca), None)).unwrap();
            b.append_extension(san).unwrap();
        }
    }
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256()).unwrap();
    b.build()
}

fn ec_key() -> PKey<Private> {
    PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap()).unwrap()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

/// One request on a new connection; returns the status.
fn request(addr: SocketAddr, tls: Option<&SslConnector>, auth: Option<&str>) -> u16 {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".to_string();
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    let mut raw = Vec::new();
    match tls {
        None => {
            let mut s = tcp;
            s.write_all(req.as_bytes()).unwrap();
            s.read_to_end(&mut raw).unwrap();
        }
        Some(c) => {
            let mut s = c.connect("localhost", tcp).expect("TLS handshake");
            s.write_all(req.as_bytes()).unwrap();
            s.read_to_end(&mut raw).unwrap();
        }
    }
    String::from_utf8_lossy(&raw[..12.min(raw.len())]).split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("REQUESTS").ok().and_then(|s| s.parse().ok()).unwrap_or(if quick { 5 } else { 300 });
    let dir = std::env::temp_dir().join(format!("dfe-bench-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // bcrypt at the usual cost 10, as `htpasswd -nBC 10` makes.
    let hash = bcrypt::hash("bench-password", 10).unwrap();
    let users = parse(&format!("basic_auth_users:\n  prom: {hash}\n"), &dir).unwrap().users;
    let good = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("prom:bench-password"));
    let bad = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("prom:wrong"));
    let rounds = if quick { 2 } else { 20 };
    let dummy = dummy_hash(&users);
    // Fresh budgets for each uncached check: the bench times bcrypt, not the limits on it.
    let check = |header: &str, cache: &AuthCache| {
        let login = Login { users: &users, dummy: &dummy, cache, limits: &AuthLimits::default() };
        login.check(Some(header), None) == AuthOutcome::Allowed
    };
    let t0 = Instant::now();
    for _ in 0..rounds {
        assert!(check(&good, &AuthCache::default()));
    }
    let uncached = t0.elapsed().as_secs_f64() * 1e3 / rounds as f64;
    let cache = AuthCache::default();
    assert!(check(&good, &cache));
    let cached_n = if quick { 100 } else { 100_000 };
    let t0 = Instant::now();
    for _ in 0..cached_n {
        assert!(check(&good, &cache));
    }
    let cached = t0.elapsed().as_secs_f64() * 1e6 / cached_n as f64;
    let t0 = Instant::now();
    for _ in 0..rounds {
        assert!(!check(&bad, &cache));
    }
    let wrong = t0.elapsed().as_secs_f64() * 1e3 / rounds as f64;
    println!("basic auth check, bcrypt cost 10: uncached {uncached:.1} ms, cached {cached:.2} µs, wrong password {wrong:.1} ms");

    // Certificates and the four web configs.
    let ca_key = ec_key();
    let ca = cert("bench CA", &ca_key, None);
    let key = ec_key();
    let leaf = cert("localhost", &key, Some((&ca, &ca_key)));
    std::fs::write(dir.join("ca.crt"), ca.to_pem().unwrap()).unwrap();
    std::fs::write(dir.join("server.crt"), leaf.to_pem().unwrap()).unwrap();
    std::fs::write(dir.join("server.key"), key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let tls_part = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let auth_part = format!("basic_auth_users:\n  prom: {hash}\n");
    let cases: [(&str, Option<String>, bool, bool); 4] = [
        ("plain", None, false, false),
        ("basic auth", Some(auth_part.clone()), false, true),
        ("TLS", Some(tls_part.to_string()), true, false),
        ("TLS + basic auth", Some(format!("{tls_part}{auth_part}")), true, true),
    ];
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(dir.join("ca.crt")).unwrap();
    let connector = b.build();

    println!("{n} requests per case, each on a new connection (GET /metrics, Connection: close)");
    println!("{:<18} {:>9} {:>9} {:>9} {:>12}", "case", "p50 ms", "p99 ms", "max ms", "requests/s");
    for (name, web, tls, auth) in cases {
        let mut cfg = Config::from_raw(&RawSettings::default()).expect("default config").http;
        cfg.listen = Listen::Addresses(vec![ListenAddr::Socket(SocketAddr::from(([127, 0, 0, 1], 0)))]);
        cfg.web_config = web.map(|text| {
            let p: PathBuf = dir.join(format!("{}.yml", name.replace(' ', "_")));
            std::fs::write(&p, text).unwrap();
            load_file(&p).expect("web config")
        });
        let metrics = Metrics::new(&default_buckets()).unwrap();
        let server = http::bind(&cfg).expect("bind");
        let life = Lifecycle::new();
        let mut times = Vec::with_capacity(n);
        let wall = std::thread::scope(|s| {
            let (server, metrics, life) = (&server, &metrics, &life);
            s.spawn(move || server.run_gate(metrics, life));
            for _ in 0..cfg.threads {
                s.spawn(move || http::serve(&server.server, metrics, life));
            }
            let conn = tls.then_some(&connector);
            let a = auth.then_some(good.as_str());
            assert_eq!(request(server.addr, conn, a), 200, "{name}: warm-up");
            let t0 = Instant::now();
            for _ in 0..n {
                let t = Instant::now();
                assert_eq!(request(server.addr, conn, a), 200, "{name}");
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let wall = t0.elapsed();
            life.request_stop();
            life.stop_http();
            wall
        });
        let rate = n as f64 / wall.as_secs_f64();
        let (p50, p99, max) = (pct(&mut times, 50.0), pct(&mut times, 99.0), pct(&mut times, 100.0));
        println!("{name:<18} {p50:>9.2} {p99:>9.2} {max:>9.2} {rate:>12.0}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn default_buckets() -> Buckets {
    Config::from_raw(&RawSettings::default()).expect("default config").buckets
}
