//! Server-side dashboard sessions: a random token (the cookie) → the role
//! that logged in, a small pool of connections as that role, and the CSRF
//! token of its forms. Nothing is written anywhere: a restart logs everybody
//! out. The password lives only inside the pool's connection settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use rand::RngCore;
use subtle::ConstantTimeEq;

pub struct Session {
    pub role: String,
    pub pool: Pool,
    pub csrf: String,
    created: Instant,
    last_seen: Mutex<Instant>,
}

pub struct Store {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    idle: Duration,
    max: Duration,
}

/// 256 random bits, hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time comparison of two tokens.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Store {
    pub fn new(idle: Duration, max: Duration) -> Store {
        Store { sessions: Mutex::new(HashMap::new()), idle, max }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn create(&self, role: String, pool: Pool) -> (String, Arc<Session>) {
        let token = random_token();
        let now = Instant::now();
        let session = Arc::new(Session { role, pool, csrf: random_token(), created: now, last_seen: Mutex::new(now) });
        self.lock().insert(token.clone(), session.clone());
        (token, session)
    }

    /// The live session of a token (and it counts as activity).
    pub fn get(&self, token: &str) -> Option<Arc<Session>> {
        let mut sessions = self.lock();
        let session = sessions.get(token)?.clone();
        let now = Instant::now();
        let mut last = session.last_seen.lock().unwrap_or_else(|p| p.into_inner());
        if now.duration_since(*last) > self.idle || now.duration_since(session.created) > self.max {
            drop(last);
            if let Some(s) = sessions.remove(token) {
                s.pool.close();
            }
            return None;
        }
        *last = now;
        drop(last);
        Some(session)
    }

    pub fn remove(&self, token: &str) {
        if let Some(s) = self.lock().remove(token) {
            s.pool.close();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Ends expired sessions and closes connections idle for a minute.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, s| {
            let last = *s.last_seen.lock().unwrap_or_else(|p| p.into_inner());
            let live = now.duration_since(last) <= self.idle && now.duration_since(s.created) <= self.max;
            if live {
                s.pool.retain(|_, metrics| metrics.last_used() < Duration::from_secs(60));
            } else {
                s.pool.close();
            }
            live
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_exactly() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b));
        assert!(!same(&a, &a[..63]));
    }
}
