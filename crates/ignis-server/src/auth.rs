//! Client authentication: a JWT from the `Authorization: Bearer` header of the handshake, the
//! CONNECT `auth.token`, or the `authenticate` event's `{token}`; checked with an HS256 secret or
//! an RS256/ES256 public key. Without a key the server runs in an explicit open mode.
//!
//! A token must carry a numeric `exp`; `exp` and `nbf` are checked with a configurable leeway,
//! and either claim of another type (a string, `null`, a negative number) refuses the token
//! rather than being skipped. `iss` and `aud` are required when configured.

use ignis::socketio::AuthRequest;
use ignis_socketio::{Handshake, Value};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Map;

use crate::config::{JwtKey, JwtSettings};

/// The claims we read; others are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claims {
    pub sub: Option<String>,
}

/// The time claims: when present they must be non-negative numbers. jsonwebtoken skips a claim
/// it cannot read as a number, which would let `"exp": "never"` live for ever.
const TIME_CLAIMS: [&str; 3] = ["exp", "nbf", "iat"];

fn is_timestamp(value: &serde_json::Value) -> bool {
    value.as_u64().is_some()
        || value
            .as_f64()
            .is_some_and(|f| f.is_finite() && f >= 0.0 && f < u64::MAX as f64)
}

/// Checks what jsonwebtoken's validation lets through and reads the claims we use.
fn claims_of(map: &Map<String, serde_json::Value>) -> Result<Claims, String> {
    for name in TIME_CLAIMS {
        if let Some(value) = map.get(name)
            && !is_timestamp(value)
        {
            return Err(format!("the `{name}` claim is not a NumericDate"));
        }
    }
    if !map.contains_key("exp") {
        return Err("the token has no `exp` claim".into());
    }
    let sub = match map.get("sub") {
        None => None,
        Some(serde_json::Value::String(sub)) => Some(sub.clone()),
        Some(_) => return Err("the `sub` claim is not a string".into()),
    };
    Ok(Claims { sub })
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MintError {
    #[error("minting a token needs the HS256 secret (--jwt-secret or APP_ENV_JWT_SECRET)")]
    NoSecret,
    #[error("the system clock is before 1970")]
    Clock,
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// An HS256 token for `sub`, valid from now for `ttl`, with the configured `iss` and `aud`.
pub(crate) fn mint(
    settings: &JwtSettings,
    sub: &str,
    ttl: std::time::Duration,
) -> Result<String, MintError> {
    let JwtKey::Secret(secret) = &settings.key else {
        return Err(MintError::NoSecret);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| MintError::Clock)?
        .as_secs();
    let mut claims = serde_json::json!({
        "sub": sub,
        "iat": now,
        "exp": now.saturating_add(ttl.as_secs()),
    });
    if let Some(map) = claims.as_object_mut() {
        if let Some(iss) = &settings.issuer {
            map.insert("iss".into(), iss.as_str().into());
        }
        if let Some(aud) = &settings.audience {
            map.insert("aud".into(), aud.as_str().into());
        }
    }
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// Checks client tokens.
#[derive(Clone)]
pub(crate) enum Verifier {
    /// Development mode: every client is accepted, with no subject.
    Open,
    /// Boxed: the key and its validation rules are large, the open mode is nothing.
    Jwt(Box<(DecodingKey, Validation)>),
}

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
#[error("invalid JWT key: {0}")]
pub(crate) struct KeyError(String);

impl Verifier {
    pub(crate) fn new(settings: &JwtSettings) -> Result<Verifier, KeyError> {
        let (key, algorithms) = match &settings.key {
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
        validation.leeway = settings.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &settings.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // A token's `aud` names who it is for; with none configured there is nothing to
            // compare it with, and refusing every token that has one would surprise.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Verifier::Jwt(Box::new((key, validation))))
    }

    pub(crate) fn is_open(&self) -> bool {
        matches!(self, Verifier::Open)
    }

    /// The claims of the client's token, or why it is refused.
    pub(crate) fn verify(&self, request: &AuthRequest) -> Result<Claims, String> {
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
        let data = jsonwebtoken::decode::<Map<String, serde_json::Value>>(&token, key, validation)
            .map_err(|e| e.to_string())?;
        claims_of(&data.claims)
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

    fn with_key(key: JwtKey) -> JwtSettings {
        JwtSettings {
            key,
            ..JwtSettings::default()
        }
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
        let verifier = Verifier::new(&with_key(JwtKey::Secret(secret.into()))).unwrap();
        let key = EncodingKey::from_secret(secret.as_bytes());
        let good = token(
            Algorithm::HS256,
            &key,
            serde_json::json!({"sub": "alice", "exp": now() + 60}),
        );
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
        let verifier = Verifier::new(&with_key(JwtKey::Secret(secret.into()))).unwrap();
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

    const SECRET: &str = "a-test-secret-long-enough-for-hs256";

    fn check(settings: &JwtSettings, claims: serde_json::Value) -> Result<Claims, String> {
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        let verifier = Verifier::new(settings).unwrap();
        verifier.verify_parts(
            None,
            &handshake(None, Some(&token(Algorithm::HS256, &key, claims))),
        )
    }

    #[test]
    fn time_claims_are_strict() {
        let settings = with_key(JwtKey::Secret(SECRET.into()));
        let t = now();
        let alice = Ok(Claims {
            sub: Some("alice".into()),
        });
        let cases = [
            (
                "valid",
                serde_json::json!({"sub": "alice", "exp": t + 60}),
                true,
            ),
            (
                "float exp",
                serde_json::json!({"sub": "alice", "exp": (t + 60) as f64 + 0.5}),
                true,
            ),
            (
                "nbf passed",
                serde_json::json!({"sub": "alice", "exp": t + 60, "nbf": t - 5}),
                true,
            ),
            (
                "nbf within leeway",
                serde_json::json!({"sub": "alice", "exp": t + 600, "nbf": t + 30}),
                true,
            ),
            ("no exp", serde_json::json!({"sub": "alice"}), false),
            (
                "string exp",
                serde_json::json!({"sub": "alice", "exp": "never"}),
                false,
            ),
            (
                "numeric string exp",
                serde_json::json!({"sub": "alice", "exp": (t + 60).to_string()}),
                false,
            ),
            (
                "null exp",
                serde_json::json!({"sub": "alice", "exp": null}),
                false,
            ),
            (
                "negative exp",
                serde_json::json!({"sub": "alice", "exp": -1}),
                false,
            ),
            (
                "object exp",
                serde_json::json!({"sub": "alice", "exp": {}}),
                false,
            ),
            (
                "expired past leeway",
                serde_json::json!({"sub": "alice", "exp": t - 120}),
                false,
            ),
            (
                "nbf in the future",
                serde_json::json!({"sub": "alice", "exp": t + 600, "nbf": t + 300}),
                false,
            ),
            (
                "string nbf",
                serde_json::json!({"sub": "alice", "exp": t + 60, "nbf": "now"}),
                false,
            ),
            (
                "null nbf",
                serde_json::json!({"sub": "alice", "exp": t + 60, "nbf": null}),
                false,
            ),
            (
                "negative iat",
                serde_json::json!({"sub": "alice", "exp": t + 60, "iat": -5}),
                false,
            ),
            (
                "numeric sub",
                serde_json::json!({"sub": 5, "exp": t + 60}),
                false,
            ),
        ];
        for (what, claims, accepted) in cases {
            let got = check(&settings, claims);
            if accepted {
                assert_eq!(got, alice, "{what}");
            } else {
                assert!(got.is_err(), "{what} must be refused");
            }
        }
    }

    #[test]
    fn leeway_is_configurable() {
        let t = now();
        let expired_recently = serde_json::json!({"sub": "a", "exp": t - 30});
        let strict = JwtSettings {
            leeway_secs: 0,
            ..with_key(JwtKey::Secret(SECRET.into()))
        };
        let lenient = JwtSettings {
            leeway_secs: 120,
            ..strict.clone()
        };
        assert!(check(&strict, expired_recently.clone()).is_err());
        assert!(check(&lenient, expired_recently).is_ok());
        let not_yet = serde_json::json!({"sub": "a", "exp": t + 600, "nbf": t + 30});
        assert!(check(&strict, not_yet.clone()).is_err());
        assert!(check(&lenient, not_yet).is_ok());
    }

    #[test]
    fn issuer_and_audience_are_required_when_set() {
        let exp = now() + 60;
        let settings = JwtSettings {
            issuer: Some("https://id.example".into()),
            audience: Some("ignis".into()),
            ..with_key(JwtKey::Secret(SECRET.into()))
        };
        let cases = [
            (
                serde_json::json!({"exp": exp, "iss": "https://id.example", "aud": "ignis"}),
                true,
            ),
            (
                serde_json::json!({"exp": exp, "iss": "https://id.example", "aud": ["x", "ignis"]}),
                true,
            ),
            (serde_json::json!({"exp": exp, "aud": "ignis"}), false),
            (
                serde_json::json!({"exp": exp, "iss": "https://id.example"}),
                false,
            ),
            (
                serde_json::json!({"exp": exp, "iss": "https://evil.example", "aud": "ignis"}),
                false,
            ),
            (
                serde_json::json!({"exp": exp, "iss": "https://id.example", "aud": "other"}),
                false,
            ),
        ];
        for (claims, accepted) in cases {
            assert_eq!(
                check(&settings, claims.clone()).is_ok(),
                accepted,
                "{claims}"
            );
        }
        // Unconfigured, neither is looked at.
        let open = with_key(JwtKey::Secret(SECRET.into()));
        assert!(
            check(
                &open,
                serde_json::json!({"exp": exp, "iss": "x", "aud": "y"})
            )
            .is_ok()
        );
    }

    #[test]
    fn minted_tokens_pass_the_verifier() {
        let settings = JwtSettings {
            issuer: Some("https://id.example".into()),
            audience: Some("ignis".into()),
            ..with_key(JwtKey::Secret(SECRET.into()))
        };
        let token = mint(&settings, "alice", std::time::Duration::from_secs(3600)).unwrap();
        let claims = Verifier::new(&settings)
            .unwrap()
            .verify_parts(None, &handshake(None, Some(&token)))
            .unwrap();
        assert_eq!(claims.sub.as_deref(), Some("alice"));
        assert!(matches!(
            mint(
                &JwtSettings::default(),
                "alice",
                std::time::Duration::from_secs(1)
            ),
            Err(MintError::NoSecret)
        ));
    }

    #[test]
    fn rs256_and_es256_public_keys() {
        for (alg, private, public) in [
            (Algorithm::RS256, "rsa-private.pem", "rsa-public.pem"),
            (Algorithm::ES256, "ec-private-pk8.pem", "ec-public.pem"),
        ] {
            let verifier = Verifier::new(&with_key(JwtKey::PublicKeyPem(fixture(public)))).unwrap();
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
        assert!(Verifier::new(&with_key(JwtKey::PublicKeyPem(b"not a key".to_vec()))).is_err());
    }

    #[test]
    fn open_mode_accepts_everyone() {
        let verifier = Verifier::new(&JwtSettings::default()).unwrap();
        assert!(verifier.is_open());
        assert!(verifier.verify_parts(None, &handshake(None, None)).is_ok());
    }
}
