//! The opening handshake (RFC 6455 §4), on plain header values so that any
//! HTTP stack can use it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

/// Appended to the client's key before hashing (RFC 6455 §1.3).
pub const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Versions accepted, as `ws` does; the value for a
/// `Sec-WebSocket-Version` response header when refusing another one.
pub const SUPPORTED_VERSIONS: &str = "13, 8";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
pub fn accept_key(sec_websocket_key: &[u8]) -> String {
    String::from_utf8_lossy(&accept_key_bytes(sec_websocket_key)).into_owned()
}

/// [`accept_key`] without an allocation: a SHA-1 digest is 20 bytes, always 28 in base64.
pub fn accept_key_bytes(sec_websocket_key: &[u8]) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(trim(sec_websocket_key));
    sha.update(GUID);
    let mut out = [0u8; 28];
    // 20 bytes always encode to 28 characters, so the buffer is never too small.
    let _ = STANDARD.encode_slice(sha.finalize(), &mut out);
    out
}

/// The upgrade-relevant parts of a request. Header values are raw bytes;
/// repeated header lines must be joined with `", "` by the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpgradeRequest<'a> {
    /// The request method; only `GET` may upgrade.
    pub method: &'a [u8],
    /// The `Upgrade` header, which must name `websocket`.
    pub upgrade: Option<&'a [u8]>,
    /// The `Connection` header, which must contain the `upgrade` token.
    pub connection: Option<&'a [u8]>,
    /// The `Sec-WebSocket-Version` header, which must be `13` (or `8`, as `ws` accepts).
    pub version: Option<&'a [u8]>,
    /// The `Sec-WebSocket-Key` header, whose accept hash the response carries.
    pub key: Option<&'a [u8]>,
}

/// Why an upgrade request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The method is not `GET`.
    #[error("invalid HTTP method")]
    InvalidMethod,
    /// The `Upgrade` header is missing or does not name `websocket`.
    #[error("invalid Upgrade header")]
    InvalidUpgrade,
    /// The `Connection` header is missing or lacks `upgrade`.
    #[error("Connection header lacks the upgrade token")]
    InvalidConnection,
    /// The `Sec-WebSocket-Key` header is missing or not 16 bytes in base64.
    #[error("missing or invalid Sec-WebSocket-Key header")]
    InvalidKey,
    /// The `Sec-WebSocket-Version` header is missing or neither `13` nor `8`.
    #[error("missing or invalid Sec-WebSocket-Version header")]
    UnsupportedVersion,
}

impl HandshakeError {
    /// The HTTP status to refuse with (405 for the method, 400 otherwise).
    /// With [`HandshakeError::UnsupportedVersion`] also send
    /// `Sec-WebSocket-Version:` [`SUPPORTED_VERSIONS`].
    pub fn status(self) -> u16 {
        match self {
            HandshakeError::InvalidMethod => 405,
            _ => 400,
        }
    }
}

/// Checks a client's upgrade request the way `ws` does, in the same order,
/// plus the RFC's `Connection: Upgrade` requirement (§4.2.1), which `ws`
/// leaves to Node's HTTP parser.
pub fn validate_request(req: &UpgradeRequest<'_>) -> Result<(), HandshakeError> {
    if req.method != b"GET" {
        return Err(HandshakeError::InvalidMethod);
    }
    match req.upgrade {
        Some(value) if trim(value).eq_ignore_ascii_case(b"websocket") => {}
        _ => return Err(HandshakeError::InvalidUpgrade),
    }
    let has_upgrade_token = req.connection.is_some_and(|value| {
        value
            .split(|&b| b == b',')
            .any(|token| trim(token).eq_ignore_ascii_case(b"upgrade"))
    });
    if !has_upgrade_token {
        return Err(HandshakeError::InvalidConnection);
    }
    if !req.key.is_some_and(|key| is_valid_key(trim(key))) {
        return Err(HandshakeError::InvalidKey);
    }
    match req.version.map(trim) {
        Some(b"13" | b"8") => Ok(()),
        _ => Err(HandshakeError::UnsupportedVersion),
    }
}

/// A key is 16 bytes in base64: 22 characters and `==`.
fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn trim(value: &[u8]) -> &[u8] {
    value.trim_ascii()
}

/// Client side: the `Sec-WebSocket-Key` for 16 random bytes from the caller.
pub fn generate_key(random: [u8; 16]) -> String {
    STANDARD.encode(random)
}

/// Client side: whether the server's `Sec-WebSocket-Accept` answers `key`.
pub fn verify_accept(key: &str, accept: &[u8]) -> bool {
    accept_key(key.as_bytes()).as_bytes() == trim(accept)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn rfc6455_section_1_3_example() {
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(verify_accept(
            "dGhlIHNhbXBsZSBub25jZQ==",
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        ));
        assert!(!verify_accept(
            "dGhlIHNhbXBsZSBub25jZQ==",
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOp="
        ));
    }

    #[test]
    fn generated_key_is_valid_and_round_trips() {
        let key = generate_key(*b"the sample nonce");
        assert_eq!(key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert!(is_valid_key(key.as_bytes()));
        assert!(verify_accept(&key, accept_key(key.as_bytes()).as_bytes()));
    }

    fn good() -> UpgradeRequest<'static> {
        UpgradeRequest {
            method: b"GET",
            upgrade: Some(b"websocket"),
            connection: Some(b"Upgrade"),
            version: Some(b"13"),
            key: Some(KEY),
        }
    }

    #[test]
    fn validates_requests() {
        use HandshakeError as E;
        let cases: Vec<(&str, UpgradeRequest<'static>, Result<(), E>)> = vec![
            ("valid", good(), Ok(())),
            (
                "version 8",
                UpgradeRequest {
                    version: Some(b"8"),
                    ..good()
                },
                Ok(()),
            ),
            (
                "case-insensitive upgrade",
                UpgradeRequest {
                    upgrade: Some(b"WebSocket"),
                    ..good()
                },
                Ok(()),
            ),
            (
                "firefox connection",
                UpgradeRequest {
                    connection: Some(b"keep-alive, Upgrade"),
                    ..good()
                },
                Ok(()),
            ),
            (
                "padded values",
                UpgradeRequest {
                    version: Some(b" 13 "),
                    key: Some(b" dGhlIHNhbXBsZSBub25jZQ== "),
                    ..good()
                },
                Ok(()),
            ),
            (
                "POST",
                UpgradeRequest {
                    method: b"POST",
                    ..good()
                },
                Err(E::InvalidMethod),
            ),
            (
                "lowercase method",
                UpgradeRequest {
                    method: b"get",
                    ..good()
                },
                Err(E::InvalidMethod),
            ),
            (
                "no upgrade",
                UpgradeRequest {
                    upgrade: None,
                    ..good()
                },
                Err(E::InvalidUpgrade),
            ),
            (
                "wrong upgrade",
                UpgradeRequest {
                    upgrade: Some(b"h2c"),
                    ..good()
                },
                Err(E::InvalidUpgrade),
            ),
            (
                "no connection",
                UpgradeRequest {
                    connection: None,
                    ..good()
                },
                Err(E::InvalidConnection),
            ),
            (
                "connection close",
                UpgradeRequest {
                    connection: Some(b"close"),
                    ..good()
                },
                Err(E::InvalidConnection),
            ),
            (
                "connection substring",
                UpgradeRequest {
                    connection: Some(b"upgrades"),
                    ..good()
                },
                Err(E::InvalidConnection),
            ),
            (
                "no key",
                UpgradeRequest {
                    key: None,
                    ..good()
                },
                Err(E::InvalidKey),
            ),
            (
                "short key",
                UpgradeRequest {
                    key: Some(b"dGhlIHNhbXBsZSBub25jZ=="),
                    ..good()
                },
                Err(E::InvalidKey),
            ),
            (
                "key not padded",
                UpgradeRequest {
                    key: Some(b"dGhlIHNhbXBsZSBub25jZQAA"),
                    ..good()
                },
                Err(E::InvalidKey),
            ),
            (
                "key bad char",
                UpgradeRequest {
                    key: Some(b"dGhlIHNhbXBsZSBub25j-Q=="),
                    ..good()
                },
                Err(E::InvalidKey),
            ),
            (
                "no version",
                UpgradeRequest {
                    version: None,
                    ..good()
                },
                Err(E::UnsupportedVersion),
            ),
            (
                "version 12",
                UpgradeRequest {
                    version: Some(b"12"),
                    ..good()
                },
                Err(E::UnsupportedVersion),
            ),
            (
                "version list",
                UpgradeRequest {
                    version: Some(b"13, 8"),
                    ..good()
                },
                Err(E::UnsupportedVersion),
            ),
        ];
        for (name, req, expected) in cases {
            assert_eq!(validate_request(&req), expected, "{name}");
        }
    }

    #[test]
    fn status_codes() {
        assert_eq!(HandshakeError::InvalidMethod.status(), 405);
        assert_eq!(HandshakeError::UnsupportedVersion.status(), 400);
    }
}
