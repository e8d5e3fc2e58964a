//! Signed tokens for embedding Room in another site (`--auth-secret`, `--auth-public-key`):
//! a JWT names the room (or `*`), the display name and the role, and is valid between `nbf`
//! and `exp`. Each way a token can be wrong has its own error code, so an integrator sees
//! which claim to fix. `room token` mints one.

use std::path::Path;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::core::names::RoomSlug;
use crate::core::Refusal;
use crate::protocol::{ErrorCode, Role};

/// Seconds a token's `exp` and `nbf` may be off, for clocks that differ a little.
const LEEWAY_SECS: u64 = 30;

/// The longest token accepted, in bytes; an RS4096 signature and a long name fit well.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The claims Room reads; the rest of a token is ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The room this token opens, or `*` for any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The display name; the name typed on the page is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `host` or `member` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Seconds since 1970 after which the token no longer lets anyone in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Seconds since 1970 before which the token does not let anyone in yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// Who a valid token lets in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub name: String,
    pub role: Role,
}

/// How this server checks tokens: one key, one algorithm.
pub struct TokenAuth {
    key: DecodingKey,
    algorithm: Algorithm,
}

impl std::fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key: a shared secret must not reach a log.
        f.debug_struct("TokenAuth")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TokenAuth {
    /// HS256 with a secret shared with the site that mints tokens.
    pub fn shared_secret(secret: &str) -> Result<Self, String> {
        if secret.len() < 16 {
            return Err("--auth-secret must be at least 16 bytes long".into());
        }
        let key = DecodingKey::from_secret(secret.as_bytes()).map_err(|e| e.to_string())?;
        Ok(TokenAuth {
            key,
            algorithm: Algorithm::HS256,
        })
    }

    /// EdDSA (Ed25519) or RS256, from the public key's PEM file.
    pub fn public_key(path: &Path) -> Result<Self, String> {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
            return Ok(TokenAuth {
                key,
                algorithm: Algorithm::EdDSA,
            });
        }
        match DecodingKey::from_rsa_pem(&pem) {
            Ok(key) => Ok(TokenAuth {
                key,
                algorithm: Algorithm::RS256,
            }),
            Err(error) => Err(format!(
                "{} is neither an Ed25519 nor an RSA public key in PEM: {error}",
                path.display()
            )),
        }
    }

    /// Checks `token` for entering `room` at `now_secs` (seconds since 1970).
    pub fn check(&self, token: &str, room: &RoomSlug, now_secs: u64) -> Result<Grant, Refusal> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid(format!(
                "the token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let alg = header_alg(token)?;
        let expected = algorithm_name(self.algorithm);
        if alg != expected {
            return Err(Refusal::new(
                ErrorCode::TokenAlgorithm,
                format!("this server accepts only {expected}-signed tokens, not {alg:?}"),
            ));
        }
        let mut validation = Validation::new(self.algorithm);
        // Times and the audience are Room's own checks below, each with its own code.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::Json(_) => Refusal::new(
                    ErrorCode::TokenClaims,
                    format!("the token's claims have the wrong types: {error}"),
                ),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    invalid("the token's signature is not this server's".into())
                }
                _ => invalid(format!("the token is not a valid JWT: {error}")),
            })?
            .claims;
        grant(claims, room, now_secs)
    }
}

/// What a signed token's claims allow, once its signature is good.
fn grant(claims: Claims, room: &RoomSlug, now_secs: u64) -> Result<Grant, Refusal> {
    // The room first: an expired token still lets its member reconnect, so everything
    // else about it must be right.
    let Some(allowed) = claims.room else {
        return Err(missing("room"));
    };
    let same_room = allowed == "*" || RoomSlug::parse(&allowed).is_ok_and(|slug| slug == *room);
    if !same_room {
        return Err(Refusal::new(
            ErrorCode::TokenWrongRoom,
            format!("the token is for the room {allowed:?}, not this one"),
        ));
    }
    let Some(exp) = claims.exp else {
        return Err(missing("exp"));
    };
    if now_secs > exp.saturating_add(LEEWAY_SECS) {
        return Err(Refusal::new(
            ErrorCode::TokenExpired,
            "the token has expired; ask for a new link",
        ));
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now_secs.saturating_add(LEEWAY_SECS))
    {
        return Err(Refusal::new(
            ErrorCode::TokenNotYetValid,
            "the token is not valid yet; try again when the meeting starts",
        ));
    }
    let name = claims
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| missing("name"))?;
    let role = match claims.role.as_deref() {
        None | Some("member") => Role::Member,
        Some("host") => Role::Host,
        Some(other) => {
            return Err(Refusal::new(
                ErrorCode::TokenClaims,
                format!("the token's role is {other:?}; Room knows host and member"),
            ))
        }
    };
    Ok(Grant { name, role })
}

fn missing(claim: &str) -> Refusal {
    Refusal::new(
        ErrorCode::TokenClaims,
        format!("the token has no {claim:?} claim"),
    )
}

fn invalid(message: String) -> Refusal {
    Refusal::new(ErrorCode::TokenInvalid, message)
}

/// The `alg` of the token's header, read before anything is verified: `none` (or an
/// algorithm the JWT library does not even name) must get its own code, not look like a bad
/// signature.
fn header_alg(token: &str) -> Result<String, Refusal> {
    #[derive(Deserialize)]
    struct Alg {
        alg: String,
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("a token has three parts separated by dots".into()));
    };
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| invalid("the token's header is not base64url".into()))?;
    serde_json::from_slice::<Alg>(&json)
        .map(|h| h.alg)
        .map_err(|_| invalid("the token's header has no alg".into()))
}

fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::HS256 => "HS256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::RS256 => "RS256",
        // Never configured; kept readable anyway.
        _ => "another algorithm",
    }
}

/// `room token`: the token its flags describe, signed with `--private-key` or the
/// `--auth-secret`.
pub fn token_command(args: &super::config::TokenArgs, now_secs: u64) -> Result<String, String> {
    let key = match (&args.private_key, &args.secret) {
        (Some(path), _) => SigningKey::PrivateKeyPem(
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        ),
        (None, Some(secret)) => SigningKey::Secret(secret.to_string()),
        (None, None) => return Err("give --auth-secret or --private-key to sign with".into()),
    };
    let claims = Claims {
        room: Some(args.room.clone()),
        name: Some(args.name.clone()),
        role: Some(args.role.clone()),
        exp: Some(now_secs.saturating_add(args.valid_for)),
        nbf: args.starts_in.map(|secs| now_secs.saturating_add(secs)),
    };
    mint(&key, &claims)
}

/// The key `room token` signs with.
pub enum SigningKey {
    Secret(String),
    PrivateKeyPem(Vec<u8>),
}

/// Mints a token, for operators (`room token`) and tests.
pub fn mint(key: &SigningKey, claims: &Claims) -> Result<String, String> {
    let (header, key) = match key {
        SigningKey::Secret(secret) => (
            Header::new(Algorithm::HS256),
            EncodingKey::from_secret(secret.as_bytes()).map_err(|e| e.to_string())?,
        ),
        SigningKey::PrivateKeyPem(pem) => match EncodingKey::from_ed_pem(pem) {
            Ok(key) => (Header::new(Algorithm::EdDSA), key),
            Err(_) => (
                Header::new(Algorithm::RS256),
                EncodingKey::from_rsa_pem(pem)
                    .map_err(|e| format!("neither an Ed25519 nor an RSA private key: {e}"))?,
            ),
        },
    };
    jsonwebtoken::encode(&header, claims, &key).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a secret of at least sixteen bytes";
    const NOW: u64 = 1_800_000_000;

    fn claims() -> Claims {
        Claims {
            room: Some("standup".into()),
            name: Some("Ann".into()),
            role: Some("host".into()),
            exp: Some(NOW + 3600),
            nbf: None,
        }
    }

    fn check(token: &str) -> Result<Grant, ErrorCode> {
        let auth = TokenAuth::shared_secret(SECRET).unwrap();
        auth.check(token, &RoomSlug::parse("standup").unwrap(), NOW)
            .map_err(|r| r.code)
    }

    fn signed(claims: &Claims) -> String {
        mint(&SigningKey::Secret(SECRET.into()), claims).unwrap()
    }

    fn base64url(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn a_good_token_grants_its_name_and_role() {
        assert_eq!(
            check(&signed(&claims())),
            Ok(Grant {
                name: "Ann".into(),
                role: Role::Host
            })
        );
        let member = Claims {
            room: Some("*".into()),
            role: None,
            ..claims()
        };
        assert_eq!(check(&signed(&member)).unwrap().role, Role::Member);
    }

    #[test]
    fn each_fault_has_its_own_code() {
        let expired = Claims {
            exp: Some(NOW - 3600),
            ..claims()
        };
        assert_eq!(check(&signed(&expired)), Err(ErrorCode::TokenExpired));
        let early = Claims {
            nbf: Some(NOW + 3600),
            ..claims()
        };
        assert_eq!(check(&signed(&early)), Err(ErrorCode::TokenNotYetValid));
        let elsewhere = Claims {
            room: Some("other".into()),
            ..claims()
        };
        assert_eq!(check(&signed(&elsewhere)), Err(ErrorCode::TokenWrongRoom));
        for stripped in [
            Claims {
                name: None,
                ..claims()
            },
            Claims {
                room: None,
                ..claims()
            },
            Claims {
                exp: None,
                ..claims()
            },
            Claims {
                role: Some("admin".into()),
                ..claims()
            },
        ] {
            assert_eq!(check(&signed(&stripped)), Err(ErrorCode::TokenClaims));
        }
        let forged = mint(
            &SigningKey::Secret("another secret, also sixteen".into()),
            &claims(),
        )
        .unwrap();
        assert_eq!(check(&forged), Err(ErrorCode::TokenInvalid));
        assert_eq!(check("not.a-token"), Err(ErrorCode::TokenInvalid));
        assert_eq!(check(""), Err(ErrorCode::TokenInvalid));
        // The classic forgery: no signature at all, `alg` none.
        let payload = base64url(serde_json::to_string(&claims()).unwrap().as_bytes());
        let unsigned = format!("{}.{payload}.", base64url(br#"{"alg":"none","typ":"JWT"}"#));
        assert_eq!(check(&unsigned), Err(ErrorCode::TokenAlgorithm));
        let other_alg = format!("{}.{payload}.c2ln", base64url(br#"{"alg":"RS256"}"#));
        assert_eq!(check(&other_alg), Err(ErrorCode::TokenAlgorithm));
        let wrong_type = format!(
            "{}.{}.",
            base64url(br#"{"alg":"HS256"}"#),
            base64url(br#"{"exp":"tomorrow"}"#)
        );
        // Unsigned, so the signature fails first: nothing unsigned is ever parsed further.
        assert_eq!(check(&wrong_type), Err(ErrorCode::TokenInvalid));
    }

    #[test]
    fn ed25519_and_rsa_keys_verify_their_own_tokens_only() {
        let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");
        let room = RoomSlug::parse("standup").unwrap();
        for (private, public) in [
            ("ed25519.pem", "ed25519.pub.pem"),
            ("rsa.pem", "rsa.pub.pem"),
        ] {
            let pem = std::fs::read(format!("{keys}/{private}")).unwrap();
            let token = mint(&SigningKey::PrivateKeyPem(pem), &claims()).unwrap();
            let auth = TokenAuth::public_key(Path::new(&format!("{keys}/{public}"))).unwrap();
            assert_eq!(auth.check(&token, &room, NOW).unwrap().role, Role::Host);
            // A token signed with the shared-secret scheme is refused by its algorithm.
            let hs = signed(&claims());
            assert_eq!(
                auth.check(&hs, &room, NOW).unwrap_err().code,
                ErrorCode::TokenAlgorithm
            );
        }
    }

    #[test]
    fn short_secrets_are_refused_at_start() {
        assert!(TokenAuth::shared_secret("short").is_err());
    }
}
