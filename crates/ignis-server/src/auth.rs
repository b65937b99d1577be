//! Client authentication: a JWT from the `Authorization: Bearer` header of the handshake, the
//! CONNECT `auth.token`, or the `authenticate` event's `{token}`; checked with an HS256 secret or
//! an RS256/ES256 public key. Without a key the server runs in an explicit open mode.

use ignis::socketio::AuthRequest;
use ignis_socketio::Value;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::JwtKey;

/// The claims we read; others are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub sub: Option<String>,
}

/// Checks client tokens.
#[derive(Clone)]
pub enum Verifier {
    /// Development mode: every client is accepted, with no subject.
    Open,
    /// Boxed: the key and its validation rules are large, the open mode is nothing.
    Jwt(Box<(DecodingKey, Validation)>),
}

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
#[error("invalid JWT key: {0}")]
pub struct KeyError(String);

impl Verifier {
    pub fn new(key: &JwtKey) -> Result<Verifier, KeyError> {
        let (key, algorithms) = match key {
            JwtKey::None => return Ok(Verifier::Open),
            JwtKey::Secret(secret) => (
                DecodingKey::from_secret(secret.as_bytes()),
                vec![Algorithm::HS256],
            ),
            JwtKey::PublicKeyPem(pem) => {
                if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
                    (key, vec![Algorithm::RS256])
                } else {
                    let key = DecodingKey::from_ec_pem(pem).map_err(|e| {
                        KeyError(format!("neither an RSA nor an EC public key: {e}"))
                    })?;
                    (key, vec![Algorithm::ES256])
                }
            }
        };
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        // `exp` is checked when present; tokens without it are accepted.
        validation.required_spec_claims.clear();
        Ok(Verifier::Jwt(Box::new((key, validation))))
    }

    pub fn is_open(&self) -> bool {
        matches!(self, Verifier::Open)
    }

    /// The claims of the client's token, or why it is refused.
    pub fn verify(&self, request: &AuthRequest) -> Result<Claims, String> {
        let (key, validation) = match self {
            Verifier::Open => return Ok(Claims { sub: None }),
            Verifier::Jwt(jwt) => (&jwt.0, &jwt.1),
        };
        let token = token_of(request).ok_or_else(|| "no token".to_string())?;
        jsonwebtoken::decode::<Claims>(&token, key, validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }
}

/// The token: the `authenticate` payload's `token`, else the CONNECT `auth.token`, else the
/// `Authorization: Bearer` header.
fn token_of(request: &AuthRequest) -> Option<String> {
    let from = |v: Option<&Value>| {
        v.and_then(|v| v.get("token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(String::from)
    };
    from(request.payload.as_ref())
        .or_else(|| from(Some(&request.handshake.auth)))
        .or_else(|| {
            request
                .handshake
                .header("authorization")
                .and_then(|h| {
                    h.strip_prefix("Bearer ")
                        .or_else(|| h.strip_prefix("bearer "))
                })
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        })
}
