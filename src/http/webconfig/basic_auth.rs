//! The check of an `Authorization: Basic` header against `basic_auth_users` (read and checked by
//! `config/webconfig/users.rs`).
//!
//! A successful check is cached (keyed by user, hash and password) so that a scraper with the right password
//! pays one SHA-256 per request instead of a bcrypt run. Unknown users cost a bcrypt run like known ones, of
//! the same cost. The bcrypt runs that other logins cost are budgeted per client address and in total
//! ([`AuthLimits`]): past either, a login is answered 429 without one.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::rate::Tokens;
use crate::config::webconfig::{RateLimitConfig, Users};

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

/// The dummy hash's cost when no user is configured, and the highest it takes: a configured hash of a
/// higher cost would make every start-up and reload wait for the dummy (cost 14 is about a second here).
const DUMMY_COST_DEFAULT: u32 = 10;
const DUMMY_COST_MAX: u32 = 14;

/// A hash that only the exporter's own fixed string matches, verified for unknown users (who are refused
/// whatever they send) so that they cost what known ones cost, as exporter-toolkit does; of the highest
/// cost among `users` (at most 14), so the time of an answer does not tell which names exist. Derived
/// from the users, so a reload that keeps them keeps it.
pub fn dummy_hash(users: &Users) -> String {
    let cost = users
        .0
        .values()
        .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
        .map(|p| p.get_cost())
        .max()
        .unwrap_or(DUMMY_COST_DEFAULT)
        .min(DUMMY_COST_MAX);
    bcrypt::hash_with_salt("dashflow-prometheus-exporter: unknown user", cost, *b"unknown user....")
        .map(|h| h.format_for_version(bcrypt::Version::TwoY))
        .expect("a cost in bcrypt's range")
}

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

crate::table::label_enum! {
    /// Which budget of bcrypt runs refused a login (`dashstream_exporter_web_auth_throttled_total`).
    pub enum Throttle {
        /// The client's address failed too often lately.
        Client => "client",
        /// The server's budget of bcrypt runs per second is spent.
        Total => "total",
    }
}

/// Failed logins from one address: 5 at once, then one more every 2 s.
const PER_CLIENT: RateLimitConfig = RateLimitConfig { interval: Duration::from_secs(2), burst: 5 };
/// The server's bcrypt work, in time: a second of it at once, then half a second per second (half a core
/// at most for logins that are not cached). In time rather than in checks, so the budget means the same
/// whatever cost the configured hashes have: at cost 12 (about 270 ms a check) that is 4 at once, then 2 a
/// second; at cost 10, about 14, then 7.
const TOTAL_BURST: Duration = Duration::from_secs(1);
/// Addresses remembered; when full, those whose bucket has refilled are forgotten (and, if none has,
/// every one: memory stays bounded whatever the number of addresses).
const MAX_CLIENTS: usize = 4096;

/// The server's budget of bcrypt time. A check may start while the balance is positive and is charged what
/// it took afterwards (so the balance may go below zero, and the next ones wait until it has refilled).
#[derive(Debug)]
struct WorkBudget {
    /// Nanoseconds of bcrypt work available (at most `TOTAL_BURST`), and when that was counted.
    balance: i128,
    at: Instant,
}

impl WorkBudget {
    fn new(now: Instant) -> WorkBudget {
        WorkBudget { balance: TOTAL_BURST.as_nanos() as i128, at: now }
    }

    /// Whether a check may start at `now`.
    fn admit(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_nanos() as i128 / 2;
        self.balance = (self.balance + refill).min(TOTAL_BURST.as_nanos() as i128);
        self.at = self.at.max(now);
        self.balance > 0
    }

    /// Charges a check that took `took`.
    fn charge(&mut self, took: Duration) {
        self.balance = (self.balance - took.as_nanos() as i128).max(-(TOTAL_BURST.as_nanos() as i128));
    }
}

/// Budgets of the bcrypt runs that logins not in the cache cost: per client address (a token is kept only
/// when the login fails) and the server's bcrypt time in total. Logins in the cache (every scrape after a
/// scraper's first) take nothing from either, so a flood of wrong passwords cannot starve the honest path.
pub struct AuthLimits {
    total: Mutex<WorkBudget>,
    clients: Mutex<HashMap<IpAddr, Tokens>>,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits { total: Mutex::new(WorkBudget::new(Instant::now())), clients: Mutex::default() }
    }
}

impl AuthLimits {
    /// Takes a token from `peer`'s budget and checks the total one, or says which has none.
    fn admit(&self, peer: Option<IpAddr>, now: Instant) -> Result<(), Throttle> {
        if let Some(ip) = peer {
            let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            if clients.len() >= MAX_CLIENTS && !clients.contains_key(&ip) {
                clients.retain(|_, t| !t.is_full(PER_CLIENT, now));
                if clients.len() >= MAX_CLIENTS {
                    clients.clear();
                }
            }
            if !clients.entry(ip).or_insert_with(|| Tokens::full(PER_CLIENT, now)).take(PER_CLIENT, now) {
                return Err(Throttle::Client);
            }
        }
        if !self.total.lock().unwrap_or_else(|p| p.into_inner()).admit(now) {
            // The client's token is not spent on a login that did not happen.
            self.succeeded(peer);
            return Err(Throttle::Total);
        }
        Ok(())
    }

    fn charge(&self, took: Duration) {
        self.total.lock().unwrap_or_else(|p| p.into_inner()).charge(took);
    }

    /// Gives `peer` back the token its login took: only failures count against an address.
    fn succeeded(&self, peer: Option<IpAddr>) {
        let Some(ip) = peer else { return };
        if let Some(t) = self.clients.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&ip) {
            t.put_back(PER_CLIENT);
        }
    }
}

/// What a login came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    Allowed,
    /// Missing, malformed or wrong credentials (401).
    Denied,
    /// Not checked: a budget of bcrypt runs is spent (429).
    Throttled(Throttle),
}

/// The server's side of basic auth: the users, the hash unknown names are checked against
/// ([`dummy_hash`]), the cache of successes and the budgets of bcrypt runs.
pub struct Login<'a> {
    pub users: &'a Users,
    pub dummy: &'a str,
    pub cache: &'a AuthCache,
    pub limits: &'a AuthLimits,
}

impl Login<'_> {
    /// Whether the `Authorization` header value from `peer` authenticates one of the users; `Allowed` when
    /// none is configured.
    pub fn check(&self, header: Option<&str>, peer: Option<IpAddr>) -> AuthOutcome {
        self.check_at(header, peer, Instant::now())
    }

    fn check_at(&self, header: Option<&str>, peer: Option<IpAddr>, now: Instant) -> AuthOutcome {
        if self.users.is_empty() {
            return AuthOutcome::Allowed;
        }
        let Some((user, password)) = header.and_then(parse_basic_auth) else { return AuthOutcome::Denied };
        let known = std::str::from_utf8(&user).ok().and_then(|u| self.users.0.get(u));
        let hash = known.map_or(self.dummy, String::as_str);
        let key = AuthCache::key(&user, hash, &password);
        if known.is_some() && self.cache.ok.lock().unwrap_or_else(|p| p.into_inner()).contains(&key) {
            return AuthOutcome::Allowed;
        }
        if let Err(t) = self.limits.admit(peer, now) {
            return AuthOutcome::Throttled(t);
        }
        let started = Instant::now();
        let verified = bcrypt::verify(&password, hash).unwrap_or(false);
        self.limits.charge(started.elapsed());
        if !(verified && known.is_some()) {
            return AuthOutcome::Denied;
        }
        self.limits.succeeded(peer);
        let mut c = self.cache.ok.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() >= AUTH_CACHE_MAX {
            c.clear();
        }
        c.insert(key);
        AuthOutcome::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::webconfig::is_bcrypt_hash;

    #[test]
    fn the_dummy_hash_costs_what_the_users_hashes_cost() {
        let cost = |h: &str| h.parse::<bcrypt::HashParts>().map(|h| h.get_cost()).map_err(|e| e.to_string());
        let users = |costs: &[u32]| {
            Users(costs.iter().enumerate().map(|(i, c)| (format!("u{i}"), bcrypt::hash("x", *c).unwrap())).collect())
        };
        assert_eq!(cost(&dummy_hash(&Users::default())), Ok(10));
        assert_eq!(cost(&dummy_hash(&users(&[4]))), Ok(4));
        assert_eq!(cost(&dummy_hash(&users(&[4, 6, 5]))), Ok(6), "the highest");
        let d = dummy_hash(&users(&[5]));
        assert!(is_bcrypt_hash(&d), "{d}");
        assert_eq!(d, dummy_hash(&users(&[5])), "the same users, the same dummy");
        assert_eq!(bcrypt::verify("x", &d).map_err(|e| e.to_string()), Ok(false));
        // A cost-31 hash would take days to check; the dummy stays at 14 (only its prefix is formatted here).
        let c31 = "$2y$31$8wCHDkh5RTIdG3VkS4dVieKl6gXUqENvNmE3fKfGFePKcvP8ySPhW";
        assert_eq!(Users([("slow".to_string(), c31.to_string())].into()).0.values().count(), 1);
        assert_eq!(DUMMY_COST_MAX, 14);
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
        let (cache, limits) = (AuthCache::default(), AuthLimits::default());
        let dummy = dummy_hash(&users);
        let t0 = Instant::now();
        let login_at = |users: &Users, h: Option<&str>, t: Instant| {
            Login { users, dummy: &dummy, cache: &cache, limits: &limits }.check_at(h, None, t)
        };
        let login = |users: &Users, h: Option<&str>| login_at(users, h, t0);
        assert_eq!(login(&Users::default(), None), AuthOutcome::Allowed, "no users: open");
        assert_eq!(login(&users, None), AuthOutcome::Denied);
        assert_eq!(login(&users, Some(&basic("alice", "wrong"))), AuthOutcome::Denied);
        assert_eq!(login(&users, Some(&basic("mallory", "s3cret"))), AuthOutcome::Denied);
        assert!(cache.ok.lock().unwrap().is_empty(), "failures are not cached");
        assert_eq!(login(&users, Some(&basic("alice", "s3cret"))), AuthOutcome::Allowed);
        assert_eq!(cache.ok.lock().unwrap().len(), 1);
        assert_eq!(login(&users, Some(&basic("alice", "s3cret"))), AuthOutcome::Allowed);
        assert_eq!(cache.ok.lock().unwrap().len(), 1);
        // A cached success does not survive a changed hash (the key includes it).
        let other = Users([("alice".to_string(), bcrypt::hash("new", 4).unwrap())].into());
        assert_eq!(login(&other, Some(&basic("alice", "s3cret"))), AuthOutcome::Denied);
        assert_eq!(login(&other, Some(&basic("alice", "new"))), AuthOutcome::Allowed);
        // A spent budget of bcrypt time refuses the next uncached login, and has refilled a second later.
        limits.charge(Duration::from_secs(3));
        assert_eq!(login_at(&other, Some(&basic("alice", "s3cret")), t0), AuthOutcome::Throttled(Throttle::Total));
        let later = t0 + Duration::from_secs(5);
        assert_eq!(login_at(&other, Some(&basic("alice", "s3cret")), later), AuthOutcome::Denied);
    }

    #[test]
    fn the_budget_of_bcrypt_time_refills_at_half_a_second_per_second() {
        let t0 = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        let mut b = WorkBudget::new(t0);
        assert!(b.admit(t0));
        b.charge(ms(700));
        assert!(b.admit(t0), "300 ms left");
        b.charge(ms(700));
        assert!(!b.admit(t0), "400 ms in debt");
        assert!(!b.admit(t0 + ms(800)), "800 ms refill half that: 0 left");
        assert!(b.admit(t0 + ms(802)));
        // Idle for long: back to a second at most, not more.
        assert!(b.admit(t0 + ms(60_000)));
        b.charge(ms(999));
        assert!(b.admit(t0 + ms(60_000)));
        b.charge(ms(2));
        assert!(!b.admit(t0 + ms(60_000)));
    }

    #[test]
    fn failures_are_limited_per_address_and_in_total_but_cached_logins_never() {
        let users = Users([("alice".to_string(), bcrypt::hash("password", 4).unwrap())].into());
        let (cache, limits) = (AuthCache::default(), AuthLimits::default());
        let dummy = dummy_hash(&users);
        let login = Login { users: &users, dummy: &dummy, cache: &cache, limits: &limits };
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let ip = |last: u8| IpAddr::from([192, 0, 2, last]);
        let (a, b, c) = (ip(1), ip(2), ip(3));
        let (no, client, total) =
            (AuthOutcome::Denied, AuthOutcome::Throttled(Throttle::Client), AuthOutcome::Throttled(Throttle::Total));
        // The honest scraper logs in once: its success gives back its address's token and is cached.
        let right = basic("alice", "password");
        assert_eq!(login.check_at(Some(&right), Some(c), at(0)), AuthOutcome::Allowed);
        // Address a fails every 500 ms: its 5 tokens, plus what 2.5 s refill (one per 2 s), then 429 without
        // a bcrypt run, whatever name it tries.
        let wrong = basic("alice", "wrong");
        let a_tries: Vec<_> = (0..=6).map(|i| login.check_at(Some(&wrong), Some(a), at(500 * i))).collect();
        assert_eq!(a_tries, [no, no, no, no, no, no, client]);
        assert_eq!(login.check_at(Some(&basic("mallory", "x")), Some(a), at(3100)), client);
        // Address b is not held back by a's failures; the total budget refuses it once its bcrypt time is spent.
        assert_eq!(login.check_at(Some(&wrong), Some(b), at(3500)), no);
        limits.charge(Duration::from_secs(2));
        assert_eq!(login.check_at(Some(&wrong), Some(b), at(3500)), total);
        assert_eq!(login.check_at(Some(&wrong), Some(b), at(3500)), total);
        // The cached scraper gets in throughout, from any address, at no cost.
        assert_eq!(login.check_at(Some(&right), Some(a), at(3500)), AuthOutcome::Allowed);
        assert_eq!(login.check_at(Some(&right), Some(c), at(3500)), AuthOutcome::Allowed);
        // A refusal by the total budget took nothing from b: once the budget is well positive again (3.9 s
        // later: 0.95 s of bcrypt time, so that real bcrypt runs on a loaded machine do not spend it; b has
        // regained its one failure and not yet a second), five failures fit (had the two refused logins taken
        // a token each, only three would).
        let b_tries: Vec<_> = (0..6).map(|i| login.check_at(Some(&wrong), Some(b), at(7400 + i))).collect();
        assert_eq!(b_tries, [no, no, no, no, no, client]);
    }
}
