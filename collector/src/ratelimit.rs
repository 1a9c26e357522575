//! Token buckets (governor's GCRA) per (write key, client IP) for ingest, and
//! per client IP for dashboard logins.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Resolved;

pub struct Keyed<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    pub fn new(quota: Option<Quota>) -> Self {
        Keyed { limiter: quota.map(RateLimiter::keyed) }
    }

    /// Ok, or how long until the next request would be allowed.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        match &self.limiter {
            None => Ok(()),
            Some(l) => l.check_key(key).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now())),
        }
    }

    /// Forgets buckets that are full again (called now and then).
    pub fn sweep(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

pub fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    Some(Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate)))
}

/// The ingest limiters: one per portal (portals may have their own quota),
/// keyed by write key and client address.
pub struct Ingest {
    by_portal: HashMap<String, Keyed<(String, IpAddr)>>,
}

impl Ingest {
    pub fn new(resolved: &Resolved) -> Ingest {
        let mut by_portal = HashMap::new();
        for key in resolved.keys.values() {
            by_portal.entry(key.portal.clone()).or_insert_with(|| Keyed::new(quota(key.rate_limit.per_second, key.rate_limit.burst)));
        }
        Ingest { by_portal }
    }

    pub fn check(&self, portal: &str, key: &str, ip: IpAddr) -> Result<(), Duration> {
        match self.by_portal.get(portal) {
            Some(l) => l.check(&(key.to_string(), ip)),
            None => Ok(()),
        }
    }

    pub fn sweep(&self) {
        self.by_portal.values().for_each(Keyed::sweep);
    }
}

/// Whole seconds to wait, at least 1 (Retry-After takes integers).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.as_secs() == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refuses_after_the_burst() {
        let limiter: Keyed<u8> = Keyed::new(quota(1, 3));
        for _ in 0..3 {
            assert!(limiter.check(&1).is_ok());
        }
        let wait = limiter.check(&1).unwrap_err();
        assert!(wait <= Duration::from_secs(1));
        assert!(limiter.check(&2).is_ok(), "another key has its own bucket");
        assert!(Keyed::<u8>::new(quota(0, 0)).check(&1).is_ok(), "0 turns limiting off");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(0)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2100)), 3);
    }
}
