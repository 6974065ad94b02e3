//! `basic_auth_users`: the users and their bcrypt hashes, and the check of an `Authorization: Basic` header
//! against them.
//!
//! A successful check is cached (keyed by user, hash and password) so that a scraper with the right password
//! pays one SHA-256 per request instead of a bcrypt run. Unknown users cost a bcrypt run like known ones.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Mutex;

use super::decode::mapping;
use super::error::{err_at, key_name, WebConfigError};
use super::node::{Kind, Node};

/// `basic_auth_users`: user name → bcrypt hash. `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Users(pub(super) BTreeMap<String, String>);

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Users {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Whether `h` looks like a bcrypt hash: `$2a$`, `$2b$`, `$2x$` or `$2y$`, a cost 04..31, 53 characters.
pub fn is_bcrypt_hash(h: &str) -> bool {
    let b = h.as_bytes();
    b.len() == 60
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        // Bytes, not `&h[4..6]`: that slice panics when a multi-byte character straddles it (fuzz finding).
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && (4..=31).contains(&((b[4] - b'0') * 10 + (b[5] - b'0')))
        && b[6] == b'$'
        && b[7..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/')
}

/// Reads `basic_auth_users`: a mapping of user name to bcrypt hash. A wrong value is reported without
/// repeating it.
pub(super) fn section(node: Option<&Node>) -> Result<Users, WebConfigError> {
    let mut users = BTreeMap::new();
    for (user, line, value) in mapping(node, "basic_auth_users", &[])? {
        let hash = match &value.kind {
            Kind::Scalar(h, _) => h.as_str(),
            _ => "",
        };
        if !is_bcrypt_hash(hash) {
            return Err(err_at(
                *line,
                format!(
                    "basic_auth_users.{}: expected a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters; \
                     e.g. from `htpasswd -nBC 10 USER`)",
                    key_name(user)
                ),
            ));
        }
        if user.contains(':') {
            return Err(err_at(*line, format!("basic_auth_users.{}: a user name cannot contain ':'", key_name(user))));
        }
        users.insert(user.clone(), hash.to_string());
    }
    Ok(Users(users))
}

/// Decodes `Authorization: Basic base64(user:password)` (scheme case-insensitive, as Go's `Request.BasicAuth`).
pub fn parse_basic_auth(header: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    use base64::Engine as _;
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim_start_matches(' ')).ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    Some((raw[..colon].to_vec(), raw[colon + 1..].to_vec()))
}

/// Hash of a password that no input matches, verified for unknown users so that they cost the same time as
/// known ones (as exporter-toolkit does).
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// A cost-4 bcrypt hash for the tests of this folder.
#[cfg(test)]
pub(super) const TEST_HASH: &str = "$2y$04$8wCHDkh5RTIdG3VkS4dVieKl6gXUqENvNmE3fKfGFePKcvP8ySPhW";

/// Successful verifications, keyed by a SHA-256 of (user, hash, password): a scrape with the right password
/// costs one SHA-256 instead of a (deliberately slow) bcrypt run. Bounded; cleared when full.
#[derive(Default)]
pub struct AuthCache {
    ok: Mutex<HashSet<[u8; 32]>>,
}

const AUTH_CACHE_MAX: usize = 1024;

impl AuthCache {
    /// Forgets every cached success (when the users change).
    pub fn clear(&self) {
        self.ok.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
    fn key(user: &[u8], hash: &str, password: &[u8]) -> [u8; 32] {
        let mut h = openssl::sha::Sha256::new();
        for part in [user, hash.as_bytes(), password] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finish()
    }
}

/// Whether the `Authorization` header value authenticates one of `users`. `true` when no users are configured.
pub fn check_basic_auth(header: Option<&str>, users: &Users, cache: &AuthCache) -> bool {
    if users.is_empty() {
        return true;
    }
    let Some((user, password)) = header.and_then(parse_basic_auth) else { return false };
    let known = std::str::from_utf8(&user).ok().and_then(|u| users.0.get(u));
    let hash = known.map_or(DUMMY_HASH, String::as_str);
    let key = AuthCache::key(&user, hash, &password);
    if known.is_some() && cache.ok.lock().unwrap_or_else(|p| p.into_inner()).contains(&key) {
        return true;
    }
    let ok = bcrypt::verify(&password, hash).unwrap_or(false) && known.is_some();
    if ok {
        let mut c = cache.ok.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() >= AUTH_CACHE_MAX {
            c.clear();
        }
        c.insert(key);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_is_a_real_cost_10_hash() {
        assert!(is_bcrypt_hash(DUMMY_HASH));
        assert_eq!(bcrypt::verify("x", DUMMY_HASH).map_err(|e| e.to_string()), Ok(false));
        assert_eq!(DUMMY_HASH.parse::<bcrypt::HashParts>().map(|h| h.get_cost()).map_err(|e| e.to_string()), Ok(10));
    }

    #[test]
    fn bcrypt_hash_shape() {
        assert!(is_bcrypt_hash(TEST_HASH));
        assert!(is_bcrypt_hash(&TEST_HASH.replacen("$2y$", "$2a$", 1)));
        assert!(!is_bcrypt_hash(&TEST_HASH.replacen("$2y$04", "$2y$03", 1)));
        assert!(!is_bcrypt_hash(&TEST_HASH.replacen("$2y$", "$3y$", 1)));
        assert!(!is_bcrypt_hash(&TEST_HASH[..59]));
        assert!(!is_bcrypt_hash(&format!("{}!", &TEST_HASH[..59])));
    }

    fn basic(user: &str, pass: &str) -> String {
        use base64::Engine as _;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
    }

    #[test]
    fn basic_auth_header_parsing() {
        assert_eq!(parse_basic_auth(&basic("a", "b:c")), Some((b"a".to_vec(), b"b:c".to_vec())));
        assert_eq!(parse_basic_auth("basic YTo="), Some((b"a".to_vec(), b"".to_vec())));
        assert_eq!(parse_basic_auth("Bearer YTpi"), None);
        assert_eq!(parse_basic_auth("Basic !!!"), None);
        assert_eq!(parse_basic_auth("Basic YWI="), None, "no colon");
        assert_eq!(parse_basic_auth("Basic"), None);
    }

    #[test]
    fn basic_auth_checks_and_caches() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = Users([("alice".to_string(), hash.clone())].into());
        let cache = AuthCache::default();
        assert!(check_basic_auth(None, &Users::default(), &cache), "no users: open");
        assert!(!check_basic_auth(None, &users, &cache));
        assert!(!check_basic_auth(Some(&basic("alice", "wrong")), &users, &cache));
        assert!(!check_basic_auth(Some(&basic("mallory", "s3cret")), &users, &cache));
        assert!(cache.ok.lock().unwrap().is_empty(), "failures are not cached");
        assert!(check_basic_auth(Some(&basic("alice", "s3cret")), &users, &cache));
        assert_eq!(cache.ok.lock().unwrap().len(), 1);
        assert!(check_basic_auth(Some(&basic("alice", "s3cret")), &users, &cache));
        assert_eq!(cache.ok.lock().unwrap().len(), 1);
        // A cached success does not survive a changed hash (the key includes it).
        let other = Users([("alice".to_string(), bcrypt::hash("new", 4).unwrap())].into());
        assert!(!check_basic_auth(Some(&basic("alice", "s3cret")), &other, &cache));
        assert!(check_basic_auth(Some(&basic("alice", "new")), &other, &cache));
    }
}
