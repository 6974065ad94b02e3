//! The 64-bit key of a session id or a model name, which the session tracker and the model cache use
//! instead of the string.
//!
//! foldhash, seeded once per process from the standard library's random source: a producer cannot pick
//! thread ids that collide here (and so merge sessions) as it could against a fixed-key mix, while within
//! one process an id always gets the same key, which is all the tracker needs.

use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::LazyLock;

static SEED: LazyLock<foldhash::fast::RandomState> = LazyLock::new(foldhash::fast::RandomState::default);

/// The key of `bytes` in this process.
#[inline]
pub fn id_key(bytes: &[u8]) -> u64 {
    SEED.hash_one(bytes)
}

/// Passes a key from [`id_key`] through unchanged, for maps keyed by such keys.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = id_key(bytes);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// `BuildHasher` for maps whose keys are [`id_key`] values.
pub type PreHashed = BuildHasherDefault<KeyHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD: &str = "DFE_ID_KEY_CHILD";

    #[test]
    fn keys_spread_and_are_stable_within_a_process() {
        let distinct: std::collections::HashSet<u64> =
            (0..200_000).map(|i| id_key(format!("model-{i}").as_bytes())).collect();
        assert_eq!(distinct.len(), 200_000);
        assert_ne!(id_key(b"session-1"), id_key(b"session-2"));
        assert_ne!(id_key(b""), id_key(b"\0"));
        assert_eq!(id_key(b"abc"), id_key(b"abc"));
    }

    /// Runs this test binary again as a child that prints its key of "session-1".
    fn key_in_another_process() -> u64 {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "decode::id_key::tests::each_process_has_its_own_seed", "--nocapture"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().find_map(|l| l.strip_prefix("id-key=")).unwrap_or_else(|| panic!("{stdout}"));
        line.parse().unwrap()
    }

    #[test]
    fn each_process_has_its_own_seed() {
        if std::env::var_os(CHILD).is_some() {
            println!("id-key={}", id_key(b"session-1"));
            return;
        }
        let here = id_key(b"session-1");
        let (a, b) = (key_in_another_process(), key_in_another_process());
        assert_ne!(a, b, "two processes key the same id differently");
        assert_ne!(a, here);
        assert_ne!(b, here);
        assert_eq!(id_key(b"session-1"), here, "one process stays consistent");
    }
}
