//! Test certificates made with the `openssl` command: a CA, a server certificate for localhost/127.0.0.1
//! and client certificates with chosen subject alternative names, all P-256, valid for two days.

use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("the openssl command");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

const EC: [&str; 7] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"];

/// `dir` holding ca.crt/ca.key and server.crt/server.key.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            dir,
            &[&["req", "-x509"], &EC[..], &["-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=test CA"]].concat(),
        );
        let pki = Pki { dir: dir.to_path_buf() };
        pki.issue("server", "localhost", "DNS:localhost,IP:127.0.0.1", "serverAuth");
        pki
    }

    /// client-NAME.crt and client-NAME.key, signed by the CA, with `sans` (e.g. "DNS:scraper-a").
    pub fn client(&self, name: &str, sans: &str) -> (PathBuf, PathBuf) {
        let stem = format!("client-{name}");
        self.issue(&stem, name, sans, "clientAuth");
        (self.path(&format!("{stem}.crt")), self.path(&format!("{stem}.key")))
    }

    fn issue(&self, stem: &str, cn: &str, sans: &str, usage: &str) {
        let (crt, key, subj) = (format!("{stem}.crt"), format!("{stem}.key"), format!("/CN={cn}"));
        let (san, eku) = (format!("subjectAltName={sans}"), format!("extendedKeyUsage={usage}"));
        openssl(
            &self.dir,
            &[
                &["req", "-x509"],
                &EC[..],
                &["-CA", "ca.crt", "-CAkey", "ca.key", "-keyout", &key, "-out", &crt, "-subj", &subj],
                &["-addext", &san, "-addext", &eku, "-addext", "basicConstraints=critical,CA:FALSE"],
            ]
            .concat(),
        );
    }

    pub fn path(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }

    pub fn pem(&self, f: &str) -> String {
        std::fs::read_to_string(self.path(f)).unwrap()
    }
}
