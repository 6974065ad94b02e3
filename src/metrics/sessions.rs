//! Session tracking for `dashstream_turns_by_session` (README, What one quality event does), bounded and
//! timer-driven.
//!
//! A session's highest turn number is observed once, when the session closes: after it has been idle longer
//! than the timeout (checked by a timer, also when no traffic arrives), or early, when the tracker is full
//! and the session is the least recently seen one. Sessions are keyed by a 64-bit hash of their id, so the
//! tracker holds no copies of the ids. Every operation is O(1) amortized (no scan per event).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::decode::id_key::PreHashed;

struct Session {
    max_turn: u32,
    last_seen: Instant,
    /// Position stamp of this session's latest entry in `order`.
    stamp: u64,
}

/// What closing sessions produced: turn counts to observe and how many were closed early.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Closed {
    pub turns: Vec<u32>,
    pub evicted: u64,
}

pub struct SessionTracker {
    sessions: HashMap<u64, Session, PreHashed>,
    /// (key, stamp) in order of last touch; entries whose stamp is stale are skipped lazily.
    order: VecDeque<(u64, u64)>,
    next_stamp: u64,
    timeout: Duration,
    cap: usize,
}

impl SessionTracker {
    pub fn new(timeout: Duration, cap: usize) -> Self {
        SessionTracker { sessions: HashMap::default(), order: VecDeque::new(), next_stamp: 0, timeout, cap: cap.max(1) }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Records a turn of a session (`k` is the hash of its id). If the tracker was full, the least recently
    /// seen session is closed and its turn count pushed to `closed`.
    pub fn touch(&mut self, k: u64, turn: u32, now: Instant, closed: &mut Closed) {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        match self.sessions.entry(k) {
            Entry::Occupied(mut e) => {
                let s = e.get_mut();
                s.max_turn = s.max_turn.max(turn);
                s.last_seen = now;
                s.stamp = stamp;
            }
            Entry::Vacant(e) => {
                e.insert(Session { max_turn: turn, last_seen: now, stamp });
                if self.sessions.len() > self.cap {
                    if let Some(turns) = self.pop_oldest_except(k) {
                        closed.turns.push(turns);
                        closed.evicted += 1;
                    }
                }
            }
        }
        self.order.push_back((k, stamp));
        self.compact();
    }

    /// Closes every session idle for longer than the timeout.
    pub fn expire(&mut self, now: Instant, closed: &mut Closed) {
        while let Some(&(k, stamp)) = self.order.front() {
            match self.sessions.get(&k) {
                Some(s) if s.stamp == stamp => {
                    if now.saturating_duration_since(s.last_seen) > self.timeout {
                        closed.turns.push(s.max_turn);
                        self.sessions.remove(&k);
                        self.order.pop_front();
                    } else {
                        break;
                    }
                }
                _ => {
                    self.order.pop_front(); // stale entry
                }
            }
        }
    }

    fn pop_oldest_except(&mut self, keep: u64) -> Option<u32> {
        while let Some((k, stamp)) = self.order.pop_front() {
            if k == keep {
                continue;
            }
            if let Some(s) = self.sessions.get(&k) {
                if s.stamp == stamp {
                    return self.sessions.remove(&k).map(|s| s.max_turn);
                }
            }
        }
        None
    }

    /// Drops stale order entries when they outnumber live sessions, keeping memory proportional to sessions.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.sessions.len() + 1024 {
            let sessions = &self.sessions;
            self.order.retain(|(k, stamp)| sessions.get(k).is_some_and(|s| s.stamp == *stamp));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> u64 {
        crate::decode::id_key::id_key(s.as_bytes())
    }

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn max_turn_is_observed_once_after_timeout() {
        let start = t0();
        let mut t = SessionTracker::new(Duration::from_secs(300), 100);
        let mut c = Closed::default();
        for turn in 1..=5 {
            t.touch(key("s1"), turn, start, &mut c);
        }
        t.touch(key("s1"), 3, start, &mut c); // lower turn does not lower the max
        assert_eq!(t.len(), 1);
        t.expire(start + Duration::from_secs(300), &mut c);
        assert_eq!(c, Closed::default(), "exactly at the timeout the session is still open");
        t.expire(start + Duration::from_secs(301), &mut c);
        assert_eq!(c.turns, vec![5]);
        assert!(t.is_empty());
        t.expire(start + Duration::from_secs(900), &mut c);
        assert_eq!(c.turns, vec![5], "observed once");
    }

    #[test]
    fn activity_keeps_a_session_open() {
        let start = t0();
        let mut t = SessionTracker::new(Duration::from_secs(10), 100);
        let mut c = Closed::default();
        t.touch(key("a"), 1, start, &mut c);
        t.touch(key("b"), 1, start, &mut c);
        t.touch(key("a"), 2, start + Duration::from_secs(8), &mut c);
        t.expire(start + Duration::from_secs(11), &mut c);
        assert_eq!(c.turns, vec![1], "b closed, a still open");
        assert_eq!(t.len(), 1);
        t.expire(start + Duration::from_secs(19), &mut c);
        assert_eq!(c.turns, vec![1, 2]);
    }

    #[test]
    fn the_cap_closes_the_least_recently_seen_session() {
        let start = t0();
        let mut t = SessionTracker::new(Duration::from_secs(300), 3);
        let mut c = Closed::default();
        t.touch(key("a"), 4, start, &mut c);
        t.touch(key("b"), 2, start, &mut c);
        t.touch(key("c"), 7, start, &mut c);
        t.touch(key("a"), 5, start, &mut c); // a is now the most recent
        t.touch(key("d"), 1, start, &mut c); // over the cap: b goes
        assert_eq!(c, Closed { turns: vec![2], evicted: 1 });
        assert_eq!(t.len(), 3);
        t.touch(key("e"), 1, start, &mut c); // then c
        assert_eq!(c, Closed { turns: vec![2, 7], evicted: 2 });
    }

    #[test]
    fn memory_stays_bounded_under_a_million_sessions() {
        let start = t0();
        let mut t = SessionTracker::new(Duration::from_secs(300), 1000);
        let mut c = Closed::default();
        for i in 0..1_000_000u32 {
            t.touch(key(&format!("s{i}")), 1 + i % 9, start, &mut c);
            if c.turns.len() > 10_000 {
                c.turns.clear();
            }
        }
        assert_eq!(t.len(), 1000);
        assert!(t.order.len() <= 2 * 1000 + 1025, "order {}", t.order.len());
        assert_eq!(c.evicted, 999_000);
    }

    #[test]
    fn one_hot_session_does_not_grow_the_order_queue() {
        let start = t0();
        let mut t = SessionTracker::new(Duration::from_secs(300), 10);
        let mut c = Closed::default();
        for turn in 0..100_000 {
            t.touch(key("hot"), turn, start, &mut c);
        }
        assert!(t.order.len() <= 1026);
        t.expire(start + Duration::from_secs(301), &mut c);
        assert_eq!(c.turns, vec![99_999]);
    }
}
