//! The WebSocket transport: a TCP or TLS stream driven by `ignis-ws` in the client role.

use crate::tls::Stream;
use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use ignis_proto::engineio::{Data, Packet};
use ignis_ws::close::encode_close_frame;
use ignis_ws::deflate::{DeflateConfig, Negotiated, offer_header, parse_response};
use ignis_ws::{
    CloseCode, Decoder, Deflater, Inflater, Message, OpCode, Role, encode_frame, generate_key,
    verify_accept,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::TransportError;
use crate::options::Target;

/// The largest handshake response head we read.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// How much room a read gets at least.
const READ_CHUNK: usize = 16 * 1024;

/// What the server sent.
#[derive(Debug)]
pub(crate) enum WsIn {
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    /// A close frame or the end of the stream.
    Closed,
}

struct Compression {
    config: DeflateConfig,
    negotiated: Negotiated,
    deflater: Deflater,
    inflater: Inflater,
}

pub(crate) struct WsConn {
    stream: Stream,
    decoder: Decoder,
    buf: BytesMut,
    compression: Option<Compression>,
}

impl WsConn {
    /// Opens the connection and completes the opening handshake.
    pub(crate) async fn connect(
        target: &Target,
        request_path: &str,
        headers: &HeaderMap,
        offer_deflate: bool,
        max_message_size: usize,
    ) -> Result<WsConn, TransportError> {
        let mut stream = crate::tls::connect(target).await?;
        let key = generate_key(rand::random());
        let config = DeflateConfig::default();
        let request = handshake_request(
            target,
            request_path,
            headers,
            &key,
            offer_deflate.then(|| offer_header(&config)),
        );
        stream.write_all(request.as_bytes()).await?;

        let mut buf = BytesMut::with_capacity(4096);
        let head_len = loop {
            if let Some(end) = find_head_end(&buf) {
                break end;
            }
            if buf.len() >= MAX_RESPONSE_HEAD {
                return Err(TransportError::Handshake("response head too large".into()));
            }
            buf.reserve(4096);
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(TransportError::Handshake(
                    "connection closed during the handshake".into(),
                ));
            }
        };
        let extensions = check_response(&buf[..head_len], &key)?;
        buf.advance(head_len);

        let mut decoder = Decoder::new(Role::Client, max_message_size);
        let compression = match extensions {
            None => None,
            Some(_) if !offer_deflate => {
                return Err(TransportError::Handshake(
                    "server answered an extension that was not offered".into(),
                ));
            }
            Some(value) => {
                let negotiated = parse_response(value.as_bytes(), &config)
                    .map_err(|e| TransportError::Handshake(format!("permessage-deflate: {e}")))?;
                decoder = decoder.with_compression(true);
                Some(Compression {
                    deflater: negotiated.deflater(Role::Client, config.level),
                    inflater: negotiated.inflater(Role::Client),
                    negotiated,
                    config,
                })
            }
        };
        Ok(WsConn {
            stream,
            decoder,
            buf,
            compression,
        })
    }

    /// Reads the next message. Cancel-safe: bytes are only consumed once a whole frame is there.
    pub(crate) async fn read(&mut self) -> Result<WsIn, TransportError> {
        loop {
            if !self.buf.is_empty() {
                let decoded = self.decoder.decode(&self.buf)?;
                if decoded.consumed > 0 {
                    self.buf.advance(decoded.consumed);
                    if let Some(message) = decoded.message
                        && let Some(incoming) = self.convert(message)?
                    {
                        return Ok(incoming);
                    }
                    continue;
                }
                let missing = decoded.needed.saturating_sub(self.buf.len());
                self.buf.reserve(missing.max(READ_CHUNK));
            } else {
                self.buf.reserve(READ_CHUNK);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Ok(WsIn::Closed);
            }
        }
    }

    fn convert(&mut self, message: Message) -> Result<Option<WsIn>, TransportError> {
        Ok(Some(match message {
            Message::Text(text) => WsIn::Text(text),
            Message::Binary(data) => WsIn::Binary(data),
            Message::Ping(data) => WsIn::Ping(data),
            Message::Pong(_) => return Ok(None),
            Message::Close(_) => WsIn::Closed,
            Message::Compressed(compressed) => {
                let Some(c) = self.compression.as_mut() else {
                    return Err(TransportError::Protocol(
                        "compressed frame without permessage-deflate".into(),
                    ));
                };
                match compressed.inflate(&mut c.inflater)? {
                    Message::Text(text) => WsIn::Text(text),
                    Message::Binary(data) => WsIn::Binary(data),
                    _ => return Ok(None),
                }
            }
        }))
    }

    /// Sends Engine.IO packets, one frame each, in one write.
    pub(crate) async fn send(&mut self, packets: &[Packet]) -> Result<(), TransportError> {
        let mut out = Vec::new();
        let mut text = Vec::new();
        for packet in packets {
            let (opcode, payload): (OpCode, &[u8]) = match packet {
                Packet::Message(Data::Binary(data)) => (OpCode::Binary, data),
                other => {
                    text.clear();
                    other.encode_text(&mut text);
                    (OpCode::Text, &text)
                }
            };
            self.push_frame(&mut out, opcode, payload)?;
        }
        self.stream.write_all(&out).await?;
        Ok(())
    }

    fn push_frame(
        &mut self,
        out: &mut Vec<u8>,
        opcode: OpCode,
        payload: &[u8],
    ) -> Result<(), TransportError> {
        let mask = Some(rand::random::<[u8; 4]>());
        if let Some(c) = self.compression.as_mut()
            && c.config
                .should_compress(&c.negotiated, Role::Client, payload.len())
        {
            let compressed = c
                .deflater
                .compress(payload)
                .map_err(|e| TransportError::Protocol(e.to_string()))?;
            out.extend_from_slice(&encode_frame(opcode, compressed, true, mask));
        } else {
            out.extend_from_slice(&encode_frame(opcode, payload, false, mask));
        }
        Ok(())
    }

    /// Answers a ping frame.
    pub(crate) async fn pong(&mut self, data: &[u8]) -> Result<(), TransportError> {
        let frame = encode_frame(OpCode::Pong, data, false, Some(rand::random()));
        self.stream.write_all(&frame).await?;
        Ok(())
    }

    /// Sends a close frame and shuts the stream down; errors do not matter any more.
    pub(crate) async fn close(mut self) {
        let frame = encode_close_frame(CloseCode::NORMAL, "", Some(rand::random()));
        let _ = self.stream.write_all(&frame).await;
        let _ = self.stream.shutdown().await;
    }
}

fn handshake_request(
    target: &Target,
    request_path: &str,
    headers: &HeaderMap,
    key: &str,
    extensions: Option<String>,
) -> String {
    let mut request = format!(
        "GET {request_path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n",
        target.authority
    );
    if let Some(extensions) = extensions {
        request.push_str("Sec-WebSocket-Extensions: ");
        request.push_str(&extensions);
        request.push_str("\r\n");
    }
    for (name, value) in headers {
        // The builder checked the values; anything not printable was refused there.
        if let Ok(value) = value.to_str() {
            request.push_str(name.as_str());
            request.push_str(": ");
            request.push_str(value);
            request.push_str("\r\n");
        }
    }
    request.push_str("\r\n");
    request
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Checks a handshake response head; gives the `Sec-WebSocket-Extensions` value, if any.
fn check_response(head: &[u8], key: &str) -> Result<Option<String>, TransportError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(TransportError::Handshake("incomplete response".into()));
        }
        Err(e) => return Err(TransportError::Handshake(format!("invalid response: {e}"))),
    }
    let status = response.code.unwrap_or(0);
    if status != 101 {
        return Err(TransportError::Status {
            status,
            body: response.reason.unwrap_or("").to_owned(),
        });
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let upgrade_ok = header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"));
    let connection_ok = header("connection").is_some_and(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
    });
    if !upgrade_ok || !connection_ok {
        return Err(TransportError::Handshake(
            "missing Upgrade or Connection header".into(),
        ));
    }
    if !header("sec-websocket-accept").is_some_and(|v| verify_accept(key, v)) {
        return Err(TransportError::Handshake(
            "invalid Sec-WebSocket-Accept".into(),
        ));
    }
    match header("sec-websocket-extensions") {
        None => Ok(None),
        Some(value) => std::str::from_utf8(value)
            .map(|v| Some(v.to_owned()))
            .map_err(|_| TransportError::Handshake("invalid extensions header".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignis_ws::accept_key;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn response(extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_key(KEY.as_bytes())
        )
    }

    #[test]
    fn accepts_a_valid_response() {
        assert_eq!(check_response(response("").as_bytes(), KEY).unwrap(), None);
        let with_ext = response("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert_eq!(
            check_response(with_ext.as_bytes(), KEY).unwrap().as_deref(),
            Some("permessage-deflate")
        );
    }

    #[test]
    fn refuses_invalid_responses() {
        let good_accept = accept_key(KEY.as_bytes());
        let cases = [
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_owned(),
            "HTTP/1.1 200 OK\r\n\r\n".to_owned(),
            format!("HTTP/1.1 101 OK\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {good_accept}\r\n\r\n"),
            format!("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {good_accept}\r\n\r\n"),
            "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_owned(),
            "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n".to_owned(),
            "garbage\r\n\r\n".to_owned(),
            "HTTP/1.1 101\r\nUpgrade".to_owned(),
        ];
        for case in cases {
            assert!(check_response(case.as_bytes(), KEY).is_err(), "{case:?}");
        }
    }

    #[test]
    fn finds_the_end_of_the_head() {
        assert_eq!(find_head_end(b"HTTP/1.1 101\r\n\r\nrest"), Some(16));
        assert_eq!(find_head_end(b"HTTP/1.1 101\r\n"), None);
        assert_eq!(find_head_end(b""), None);
    }
}
