//! The two HTTP/1.1 exchanges the load generator makes: the WebSocket upgrade and the REST
//! POST. Heads are bounded, bodies need a `Content-Length`.

/// The most a response head may take; a server that sends more is broken for our purpose.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most a REST answer body may take.
pub const MAX_BODY: usize = 64 * 1024;

/// Why an HTTP response could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The response is not valid HTTP.
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    /// The response head passed its bound.
    #[error("response head over {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// The response body passed its bound.
    #[error("response body over {MAX_BODY} bytes")]
    BodyTooLarge,
    /// The server answered the upgrade with another status.
    #[error("upgrade refused with status {0}")]
    UpgradeRefused(u16),
    /// The upgrade answer's accept key is missing or wrong.
    #[error("Sec-WebSocket-Accept missing or wrong")]
    BadAccept,
    /// A response without `Content-Length` (the posters need it for keep-alive).
    #[error("response without Content-Length")]
    NoLength,
}

/// The request that opens an Engine.IO WebSocket session directly (no polling first).
pub fn upgrade_request(host: &str, path: &str, key: &str) -> Vec<u8> {
    format!(
        "GET {path}?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// A keep-alive JSON POST.
pub fn post_request(host: &str, path: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Checks a `101` answer to [`upgrade_request`]. `Ok(None)`: the head is not complete yet;
/// `Ok(Some(n))`: the head took `n` bytes, frames follow.
pub fn parse_upgrade_response(buf: &[u8], key: &str) -> Result<Option<usize>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(HttpError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let code = response.code.unwrap_or(0);
    if code != 101 {
        return Err(HttpError::UpgradeRefused(code));
    }
    let accept = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .ok_or(HttpError::BadAccept)?;
    if !ignis_ws::verify_accept(key, accept.value) {
        return Err(HttpError::BadAccept);
    }
    Ok(Some(head_len))
}

/// A complete response: its status and how many bytes of the buffer it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Bytes of the buffer the response took, head and body.
    pub len: usize,
}

/// Parses one response from the start of `buf`; `Ok(None)` until all of it is there.
pub fn parse_response(buf: &[u8]) -> Result<Option<Response>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(HttpError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let status = response.code.unwrap_or(0);
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .ok_or(HttpError::NoLength)?;
    let length: usize = std::str::from_utf8(length.value)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| HttpError::Malformed("bad Content-Length".into()))?;
    if length > MAX_BODY {
        return Err(HttpError::BodyTooLarge);
    }
    let len = head_len + length;
    Ok((buf.len() >= len).then_some(Response { status, len }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    #[test]
    fn upgrade_responses() {
        let ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n\x01\x01x"
        );
        let head_len = ok.len() - 3;
        type Case = (Vec<u8>, Result<Option<usize>, HttpError>);
        let cases: Vec<Case> = vec![
            (ok.clone().into_bytes(), Ok(Some(head_len))),
            (ok.as_bytes()[..20].to_vec(), Ok(None)),
            (b"".to_vec(), Ok(None)),
            (
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec(),
                Err(HttpError::UpgradeRefused(400)),
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec(),
                Err(HttpError::BadAccept),
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n".to_vec(),
                Err(HttpError::BadAccept),
            ),
            (
                vec![b'x'; 10],
                Err(HttpError::Malformed("invalid HTTP version".into())),
            ),
            (
                [b"HTTP/1.1 101 OK\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat(),
                Err(HttpError::HeadTooLarge),
            ),
        ];
        for (input, expected) in cases {
            let got = parse_upgrade_response(&input, KEY);
            match (&got, &expected) {
                (Err(HttpError::Malformed(_)), Err(HttpError::Malformed(_))) => {}
                _ => assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(&input)),
            }
        }
    }

    #[test]
    fn responses() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        type Case = (Vec<u8>, Result<Option<Response>, HttpError>);
        let cases: Vec<Case> = vec![
            (
                ok.to_vec(),
                Ok(Some(Response {
                    status: 200,
                    len: ok.len(),
                })),
            ),
            (
                [ok.as_slice(), b"HTTP/1.1"].concat(),
                Ok(Some(Response {
                    status: 200,
                    len: ok.len(),
                })),
            ),
            (ok[..ok.len() - 1].to_vec(), Ok(None)),
            (
                b"HTTP/1.1 503 X\r\ncontent-length: 0\r\n\r\n".to_vec(),
                Ok(Some(Response {
                    status: 503,
                    len: 37,
                })),
            ),
            (
                b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
                Err(HttpError::NoLength),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n".to_vec(),
                Err(HttpError::Malformed("bad Content-Length".into())),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n".to_vec(),
                Err(HttpError::BodyTooLarge),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_response(&input),
                expected,
                "{:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn requests_are_well_formed() {
        let req = post_request("h:1", "/b", "X-API-Key: k\r\n", b"{}");
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut parsed = httparse::Request::new(&mut headers);
        let head = parsed.parse(&req).expect("parses");
        assert_eq!(head, httparse::Status::Complete(req.len() - 2));
        assert_eq!(parsed.method, Some("POST"));
        let up = upgrade_request("h:1", "/io/", KEY);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut parsed = httparse::Request::new(&mut headers);
        assert!(parsed.parse(&up).expect("parses").is_complete());
        assert_eq!(parsed.path, Some("/io/?EIO=4&transport=websocket"));
    }
}
