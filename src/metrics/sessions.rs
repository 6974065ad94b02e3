//! Session tracking for `dashstream_turns_by_session` (docs/metrics.md, What one quality event does), bounded and
//! timer-driven.
//!
//! A session's highest turn number is observed once, when the session closes: after it has been idle longer
//! than the timeout (checked by a timer, also when no traffic arrives), or early, when the tracker is full
//! and the session is the least recently seen one. Sessions are keyed by a 64-bit hash of their id, so the
//! tracker holds no copies of the ids. The sessions live in a slab threaded by a list in order of last touch
//! (least recent at the head): a touch is one map lookup and a relink of nodes that were touched recently,
//! so it stays in cache however many sessions are tracked; expiry and eviction pop from the head. Every
//! operation is O(1) (expiry O(1) per closed session), with no scan and no allocation once the slab has
//! grown.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::decode::id_key::PreHashed;

/// No node: the end of the list.
const NIL: u32 = u32::MAX;

struct Node {
    key: u64,
    last_seen: Instant,
    max_turn: u32,
    /// Neighbours in order of last touch (`NIL` at either end); `next` also links the free list.
    prev: u32,
    next: u32,
}

/// What closing sessions produced: turn counts to observe and how many were closed early.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Closed {
    pub turns: Vec<u32>,
    pub evicted: u64,
}

pub struct SessionTracker {
    /// Session key → its node in `nodes`.
    index: HashMap<u64, u32, PreHashed>,
    nodes: Vec<Node>,
    /// Least and most recently touched live nodes.
    head: u32,
    tail: u32,
    /// First node of the free list (nodes of closed sessions, reused before the slab grows).
    free: u32,
    timeout: Duration,
    cap: usize,
}

impl SessionTracker {
    pub fn new(timeout: Duration, cap: usize) -> Self {
        // The slab is indexed by u32, with NIL reserved: the configured maximum (10 000 000) is far below.
        let cap = cap.clamp(1, NIL as usize - 1);
        SessionTracker { index: HashMap::default(), nodes: Vec::new(), head: NIL, tail: NIL, free: NIL, timeout, cap }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Records a turn of a session (`k` is the hash of its id). If the tracker was full, the least recently
    /// seen session is closed and its turn count pushed to `closed`.
    pub fn touch(&mut self, k: u64, turn: u32, now: Instant, closed: &mut Closed) {
        match self.index.entry(k) {
            Entry::Occupied(e) => {
                let i = *e.get();
                let n = &mut self.nodes[i as usize];
                n.max_turn = n.max_turn.max(turn);
                n.last_seen = now;
                if i != self.tail {
                    self.unlink(i);
                    self.push_tail(i);
                }
            }
            Entry::Vacant(e) => {
                let node = Node { key: k, last_seen: now, max_turn: turn, prev: NIL, next: NIL };
                let i = if self.free != NIL {
                    let i = self.free;
                    self.free = self.nodes[i as usize].next;
                    self.nodes[i as usize] = node;
                    i
                } else {
                    self.nodes.push(node);
                    (self.nodes.len() - 1) as u32
                };
                e.insert(i);
                self.push_tail(i);
                if self.index.len() > self.cap {
                    // The head is not the new session: it is at the tail and at least two are tracked.
                    closed.turns.push(self.close_head());
                    closed.evicted += 1;
                }
            }
        }
    }

    /// Closes every session idle for longer than the timeout.
    pub fn expire(&mut self, now: Instant, closed: &mut Closed) {
        while self.head != NIL {
            let last_seen = self.nodes[self.head as usize].last_seen;
            if now.saturating_duration_since(last_seen) <= self.timeout {
                break;
            }
            closed.turns.push(self.close_head());
        }
    }

    /// Removes the least recently touched session; returns its turn count. The list must not be empty.
    fn close_head(&mut self) -> u32 {
        let i = self.head;
        self.unlink(i);
        let n = &mut self.nodes[i as usize];
        self.index.remove(&n.key);
        n.next = self.free;
        self.free = i;
        n.max_turn
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            x => self.nodes[x as usize].prev = prev,
        }
    }

    fn push_tail(&mut self, i: u32) {
        let old = self.tail;
        {
            let n = &mut self.nodes[i as usize];
            n.prev = old;
            n.next = NIL;
        }
        match old {
            NIL => self.head = i,
            t => self.nodes[t as usize].next = i,
        }
        self.tail = i;
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
        assert_eq!(t.nodes.len(), 1001, "closed sessions' nodes are reused: the slab holds cap + 1");
        assert_eq!(c.evicted, 999_000);
    }

    #[test]
    fn one_hot_session_uses_one_node() {
        let start = t0();
        let mut t = SessionTracker::new(Duration::from_secs(300), 10);
        let mut c = Closed::default();
        for turn in 0..100_000 {
            t.touch(key("hot"), turn, start, &mut c);
        }
        assert_eq!((t.len(), t.nodes.len()), (1, 1));
        t.expire(start + Duration::from_secs(301), &mut c);
        assert_eq!(c.turns, vec![99_999]);
    }

    /// The list against a plain model (a Vec in order of last touch, scanned), on random touches, expiries
    /// and evictions: the same sessions close, in the same order, with the same turns.
    #[test]
    fn agrees_with_a_scanned_model() {
        let start = t0();
        let (timeout, cap) = (Duration::from_secs(50), 40);
        let mut t = SessionTracker::new(timeout, cap);
        let mut model: Vec<(u64, u32, Instant)> = Vec::new();
        let (mut c, mut want) = (Closed::default(), Closed::default());
        let mut rng = crate::sim::generator::Rng::new(5);
        let mut now = start;
        for step in 0..200_000 {
            now += Duration::from_millis(rng.below(40) as u64);
            if step % 97 == 0 {
                t.expire(now, &mut c);
                while model.first().is_some_and(|s| now.saturating_duration_since(s.2) > timeout) {
                    want.turns.push(model.remove(0).1);
                }
            } else {
                let k = rng.below(120) as u64;
                let turn = rng.below(30) as u32;
                t.touch(k, turn, now, &mut c);
                match model.iter().position(|s| s.0 == k) {
                    Some(p) => {
                        let (_, max, _) = model.remove(p);
                        model.push((k, max.max(turn), now));
                    }
                    None => {
                        model.push((k, turn, now));
                        if model.len() > cap {
                            want.turns.push(model.remove(0).1);
                            want.evicted += 1;
                        }
                    }
                }
            }
            assert_eq!(t.len(), model.len(), "step {step}");
        }
        assert_eq!(c, want);
        assert!(
            want.evicted > 1000 && want.turns.len() > 5000,
            "both ways of closing exercised: {} evicted, {} closed",
            want.evicted,
            want.turns.len()
        );
        assert!(t.nodes.len() <= cap + 1);
    }
}
