//! Short-lived TURN credentials in the "TURN REST" scheme: the username is
//! `expiry:member`, the password the base64 HMAC-SHA1 of the username under a server secret.
//!
//! The server never stores a password: it recomputes one from the username it is given, so
//! a credential cannot outlive its expiry or be used for another member.

use base64::Engine;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

/// Mints and checks credentials with one secret.
#[derive(Clone)]
pub struct Credentials {
    secret: Vec<u8>,
    ttl_secs: u64,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

/// Why a username is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialError {
    /// Not `expiry:member`.
    Malformed,
    Expired,
}

/// A username with its parts read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Username<'a> {
    pub expiry_unix_secs: u64,
    pub member: &'a str,
}

impl Credentials {
    pub fn new(secret: Vec<u8>, ttl_secs: u64) -> Self {
        Credentials { secret, ttl_secs }
    }

    /// A username and password for `member`, valid for the configured time from `now`.
    pub fn mint(&self, member: &str, now_unix_secs: u64) -> (String, String) {
        let username = format!("{}:{member}", now_unix_secs + self.ttl_secs);
        let password = self.password(&username);
        (username, password)
    }

    /// The password that goes with `username`.
    pub fn password(&self, username: &str) -> String {
        let mut mac =
            Hmac::<Sha1>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(username.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    /// The username's parts, if it is well formed and not expired at `now_unix_secs`.
    pub fn check<'a>(
        &self,
        username: &'a str,
        now_unix_secs: u64,
    ) -> Result<Username<'a>, CredentialError> {
        let (expiry, member) = username.split_once(':').ok_or(CredentialError::Malformed)?;
        let expiry_unix_secs: u64 = expiry.parse().map_err(|_| CredentialError::Malformed)?;
        if member.is_empty() || member.len() > 128 {
            return Err(CredentialError::Malformed);
        }
        if expiry_unix_secs <= now_unix_secs {
            return Err(CredentialError::Expired);
        }
        Ok(Username {
            expiry_unix_secs,
            member,
        })
    }
}

/// The long-term credential key of RFC 8489 §9.2.2: MD5 of `username:realm:password`.
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(username.as_bytes());
    md5.update(b":");
    md5.update(realm.as_bytes());
    md5.update(b":");
    md5.update(password.as_bytes());
    md5.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_credentials_check_until_they_expire() {
        let creds = Credentials::new(b"secret".to_vec(), 600);
        let (user, pass) = creds.mint("42", 1_000);
        assert_eq!(user, "1600:42");
        assert_eq!(pass, creds.password(&user));
        assert_eq!(
            creds.check(&user, 1_599),
            Ok(Username {
                expiry_unix_secs: 1600,
                member: "42"
            })
        );
        assert_eq!(creds.check(&user, 1_600), Err(CredentialError::Expired));
        assert_eq!(creds.check("42", 0), Err(CredentialError::Malformed));
        assert_eq!(creds.check("x:42", 0), Err(CredentialError::Malformed));
        assert_eq!(creds.check("9999:", 0), Err(CredentialError::Malformed));
    }

    #[test]
    fn another_secret_gives_another_password() {
        let a = Credentials::new(b"a".to_vec(), 600);
        let b = Credentials::new(b"b".to_vec(), 600);
        assert_ne!(a.password("1:1"), b.password("1:1"));
        assert_ne!(a.password("1:1"), a.password("1:2"));
    }

    #[test]
    fn keys_and_passwords_match_other_implementations() {
        // Computed with Python's hashlib/hmac, as coturn's `use-auth-secret` computes them.
        let key = long_term_key("user", "realm", "pass");
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "8493fbc53ba582fb4c044c456bdc40eb");
        let creds = Credentials::new(b"secret".to_vec(), 600);
        assert_eq!(creds.password("1600:42"), "LjVeq02oMnzdSeGc85Aaa9+qozg=");
    }
}
