//! `basic_auth_users`: the user names and their bcrypt hashes, read and checked. The check of a login
//! against them is the HTTP stage's (`http/webconfig/basic_auth.rs`).

use std::collections::BTreeMap;
use std::fmt;

use super::decode::mapping;
use super::error::{err_at, key_name, WebConfigError};
use super::node::{Kind, Node};

/// `basic_auth_users`: user name → bcrypt hash. `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Users(pub(crate) BTreeMap<String, String>);

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

/// A cost-4 bcrypt hash for the tests of the web config.
#[cfg(test)]
pub(crate) const TEST_HASH: &str = "$2y$04$8wCHDkh5RTIdG3VkS4dVieKl6gXUqENvNmE3fKfGFePKcvP8ySPhW";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_hash_shape() {
        assert!(is_bcrypt_hash(TEST_HASH));
        assert!(is_bcrypt_hash(&TEST_HASH.replacen("$2y$", "$2a$", 1)));
        assert!(!is_bcrypt_hash(&TEST_HASH.replacen("$2y$04", "$2y$03", 1)));
        assert!(!is_bcrypt_hash(&TEST_HASH.replacen("$2y$", "$3y$", 1)));
        assert!(!is_bcrypt_hash(&TEST_HASH[..59]));
        assert!(!is_bcrypt_hash(&format!("{}!", &TEST_HASH[..59])));
    }
}
