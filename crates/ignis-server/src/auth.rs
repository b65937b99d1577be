//! Client authentication: a JWT from the `Authorization: Bearer` header of the handshake, the
//! CONNECT `auth.token`, or the `authenticate` event's `{token}`; checked with an HS256 secret or
//! an RS256/ES256 public key. Without a key the server runs in an explicit open mode.

use ignis::socketio::AuthRequest;
use ignis_socketio::{Handshake, Value};
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
        self.verify_parts(request.payload.as_ref(), &request.handshake)
    }

    fn verify_parts(
        &self,
        payload: Option<&Value>,
        handshake: &Handshake,
    ) -> Result<Claims, String> {
        let (key, validation) = match self {
            Verifier::Open => return Ok(Claims { sub: None }),
            Verifier::Jwt(jwt) => (&jwt.0, &jwt.1),
        };
        let token = token_of(payload, handshake).ok_or_else(|| "no token".to_string())?;
        jsonwebtoken::decode::<Claims>(&token, key, validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }
}

/// The token: the `authenticate` payload's `token`, else the CONNECT `auth.token`, else the
/// `Authorization: Bearer` header.
fn token_of(payload: Option<&Value>, handshake: &Handshake) -> Option<String> {
    let from = |v: Option<&Value>| {
        v.and_then(|v| v.get("token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(String::from)
    };
    from(payload)
        .or_else(|| from(Some(&handshake.auth)))
        .or_else(|| {
            handshake
                .header("authorization")
                .and_then(|h| {
                    h.strip_prefix("Bearer ")
                        .or_else(|| h.strip_prefix("bearer "))
                })
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignis_socketio::proto::value::Map;
    use jsonwebtoken::{EncodingKey, Header, encode};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    fn handshake(header: Option<&str>, auth_token: Option<&str>) -> Handshake {
        let mut auth = Map::new();
        if let Some(t) = auth_token {
            auth.insert("token", t);
        }
        let mut request = http::Request::get("/io/");
        if let Some(h) = header {
            request = request.header("authorization", h);
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        Handshake::from_request(
            &parts,
            Some("127.0.0.1:1".parse().unwrap()),
            std::time::SystemTime::UNIX_EPOCH,
            Value::Map(auth),
        )
    }

    fn token(alg: Algorithm, key: &EncodingKey, claims: serde_json::Value) -> String {
        encode(&Header::new(alg), &claims, key).unwrap()
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn hs256_from_every_place_a_client_can_put_it() {
        let secret = "a-test-secret-long-enough-for-hs256";
        let verifier = Verifier::new(&JwtKey::Secret(secret.into())).unwrap();
        let key = EncodingKey::from_secret(secret.as_bytes());
        let good = token(Algorithm::HS256, &key, serde_json::json!({"sub": "alice"}));
        let bearer = format!("Bearer {good}");

        let header = verifier
            .verify_parts(None, &handshake(Some(&bearer), None))
            .unwrap();
        assert_eq!(header.sub.as_deref(), Some("alice"));
        let connect = verifier
            .verify_parts(None, &handshake(None, Some(&good)))
            .unwrap();
        assert_eq!(connect.sub.as_deref(), Some("alice"));
        let mut payload = Map::new();
        payload.insert("token", good.as_str());
        let event = verifier
            .verify_parts(Some(&Value::Map(payload)), &handshake(None, None))
            .unwrap();
        assert_eq!(event.sub.as_deref(), Some("alice"));
    }

    #[test]
    fn refused_tokens() {
        let secret = "a-test-secret-long-enough-for-hs256";
        let verifier = Verifier::new(&JwtKey::Secret(secret.into())).unwrap();
        let other = EncodingKey::from_secret(b"another-secret-another-secret!!!");
        let key = EncodingKey::from_secret(secret.as_bytes());
        let cases = [
            ("no token", handshake(None, None)),
            (
                "wrong secret",
                handshake(
                    None,
                    Some(&token(
                        Algorithm::HS256,
                        &other,
                        serde_json::json!({"sub": "x"}),
                    )),
                ),
            ),
            (
                "expired",
                handshake(
                    None,
                    Some(&token(
                        Algorithm::HS256,
                        &key,
                        serde_json::json!({"sub": "x", "exp": now() - 3600}),
                    )),
                ),
            ),
            ("garbage", handshake(Some("Bearer not.a.jwt"), None)),
        ];
        for (what, hs) in cases {
            assert!(
                verifier.verify_parts(None, &hs).is_err(),
                "{what} must be refused"
            );
        }
    }

    #[test]
    fn rs256_and_es256_public_keys() {
        for (alg, private, public) in [
            (Algorithm::RS256, "rsa-private.pem", "rsa-public.pem"),
            (Algorithm::ES256, "ec-private-pk8.pem", "ec-public.pem"),
        ] {
            let verifier = Verifier::new(&JwtKey::PublicKeyPem(fixture(public))).unwrap();
            let key = match alg {
                Algorithm::RS256 => EncodingKey::from_rsa_pem(&fixture(private)).unwrap(),
                _ => EncodingKey::from_ec_pem(&fixture(private)).unwrap(),
            };
            let good = token(
                alg,
                &key,
                serde_json::json!({"sub": "bob", "exp": now() + 3600}),
            );
            let claims = verifier
                .verify_parts(None, &handshake(None, Some(&good)))
                .unwrap();
            assert_eq!(claims.sub.as_deref(), Some("bob"), "{alg:?}");
            // An HS256 token cannot pass as one signed with the public key.
            let forged = token(
                Algorithm::HS256,
                &EncodingKey::from_secret(&fixture(public)),
                serde_json::json!({"sub": "mallory"}),
            );
            assert!(
                verifier
                    .verify_parts(None, &handshake(None, Some(&forged)))
                    .is_err(),
                "{alg:?}"
            );
        }
        assert!(Verifier::new(&JwtKey::PublicKeyPem(b"not a key".to_vec())).is_err());
    }

    #[test]
    fn open_mode_accepts_everyone() {
        let verifier = Verifier::new(&JwtKey::None).unwrap();
        assert!(verifier.is_open());
        assert!(verifier.verify_parts(None, &handshake(None, None)).is_ok());
    }
}
