//! Joining: push-pull with every seed until one answers, retried with exponential backoff.
//! A node is joined (ready) once a seed answered, when it has no seed but itself (the first
//! member of a cluster), or when another node joined through it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A join in progress (seeds to push-pull with until one answers), and whether this node
/// has joined.
#[derive(Debug, Default)]
pub(crate) struct Joiner {
    attempt: Option<Attempt>,
    joined: bool,
}

#[derive(Debug)]
struct Attempt {
    seeds: Vec<SocketAddr>,
    next: Instant,
    backoff: Duration,
}

impl Joiner {
    /// Starts joining through `seeds` now, first retry `backoff` later.
    pub(crate) fn start(&mut self, now: Instant, seeds: Vec<SocketAddr>, backoff: Duration) {
        self.attempt = Some(Attempt {
            seeds,
            next: now,
            backoff,
        });
    }

    /// When the next attempt is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.attempt.as_ref().map(|a| a.next)
    }

    /// The seeds to try now; schedules the next attempt with the backoff doubled (at most
    /// `max_backoff`).
    pub(crate) fn attempt(&mut self, now: Instant, max_backoff: Duration) -> Vec<SocketAddr> {
        let Some(a) = self.attempt.as_mut() else {
            return Vec::new();
        };
        a.next = now + a.backoff;
        a.backoff = (a.backoff * 2).min(max_backoff);
        a.seeds.clone()
    }

    /// Stops trying (joined, or left).
    pub(crate) fn stop(&mut self) {
        self.attempt = None;
    }

    /// Joined: stops trying; true the first time.
    pub(crate) fn joined(&mut self) -> bool {
        self.attempt = None;
        !std::mem::replace(&mut self.joined, true)
    }

    /// Another node joined through this one: this node is part of a cluster (ready to
    /// serve) even if its own seeds have not answered; it keeps asking them, so that a
    /// cluster this node was meant to join is still found. True the first time.
    pub(crate) fn joined_by_another(&mut self) -> bool {
        !std::mem::replace(&mut self.joined, true)
    }

    pub(crate) fn is_joined(&self) -> bool {
        self.joined
    }
}
