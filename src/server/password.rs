//! Meeting passwords as Argon2id hashes (PHC strings): hashing what a host sets and checking
//! a newcomer's guess. Both cost tens of milliseconds and ~19 MiB on purpose, so they run on
//! the blocking pool, a few at a time, never on a room's task.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

/// Hashes and checks at once at most: each holds Argon2's memory (19 MiB by default), and a
/// flood of guesses from many rooms must queue rather than take the machine's memory.
const AT_ONCE: usize = 2;

/// The server's Argon2 worker: a bounded number of hashes and checks in flight.
#[derive(Clone, Debug)]
pub struct Passwords {
    permits: Arc<Semaphore>,
}

impl Default for Passwords {
    fn default() -> Self {
        Passwords {
            permits: Arc::new(Semaphore::new(AT_ONCE)),
        }
    }
}

impl Passwords {
    /// The PHC string of `password` with a fresh salt, or `None` without OS randomness.
    pub async fn hash(&self, password: String) -> Option<String> {
        self.blocking(move || hash(&password)).await.flatten()
    }

    /// Whether `guess` is the password `hash` was made from.
    pub async fn matches(&self, hash: String, guess: String) -> bool {
        self.blocking(move || matches(&hash, &guess))
            .await
            .unwrap_or(false)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _permit = self.permits.acquire().await.ok()?;
        tokio::task::spawn_blocking(work).await.ok()
    }
}

fn hash(password: &str) -> Option<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).ok()?;
    let salt = SaltString::encode_b64(&salt).ok()?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .ok()
        .map(|hash| hash.to_string())
}

fn matches(hash: &str, guess: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(guess.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_matches_its_password_only_and_never_contains_it() {
        let passwords = Passwords::default();
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert!(
            passwords
                .matches(hash.clone(), "correct horse".into())
                .await
        );
        assert!(
            !passwords
                .matches(hash.clone(), "correct horse ".into())
                .await
        );
        assert!(!passwords.matches("not a hash".into(), "x".into()).await);
        // Salted: the same password hashes differently each time.
        assert_ne!(passwords.hash("correct horse".into()).await.unwrap(), hash);
    }
}
