//! Close codes and close frames (RFC 6455 §5.5.1, §7.4).

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame::{MAX_CONTROL_PAYLOAD, OpCode, encode_frame_header, header_len};

/// A close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection is fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is leaving (a server shutting down, a page navigated away).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the WebSocket protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a message of a type the endpoint cannot accept (text or binary).
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// Reserved: reported locally when a close frame had no code, never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// Reserved: reported locally when the connection dropped, never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a message's data is inconsistent with its type (text that is not UTF-8, corrupt
    /// compressed data).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message broke the endpoint's policy, when no more specific code fits.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message exceeds the endpoint's size limit.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client needed an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// Whether the code may appear in a close frame. Same rule as the `ws`
    /// library: 1000–1014 except 1004 (reserved), 1005 and 1006 (local only),
    /// plus the 3000–4999 ranges for libraries and applications.
    pub const fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

/// The body of a received close frame. `reason` is valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code the peer sent.
    pub code: CloseCode,
    /// The peer's reason (UTF-8, at most 123 bytes); empty when none was given.
    pub reason: Bytes,
}

impl CloseFrame {
    /// The reason as text; the decoder validated it as UTF-8.
    pub fn reason_str(&self) -> &str {
        std::str::from_utf8(&self.reason).unwrap_or_default()
    }
}

/// Builds an unmasked close frame. The reason is cut, on a character
/// boundary, so that the payload fits the 125-byte control frame limit.
pub fn encode_close(code: CloseCode, reason: &str) -> Bytes {
    encode_close_frame(code, reason, None)
}

/// Builds a close frame, masked when `mask` is given (client side).
pub fn encode_close_frame(code: CloseCode, reason: &str, mask: Option<[u8; 4]>) -> Bytes {
    let reason = truncate_utf8(reason, MAX_CONTROL_PAYLOAD - 2);
    let payload_len = 2 + reason.len();
    let hlen = header_len(payload_len, mask.is_some());
    let mut out = BytesMut::with_capacity(hlen + payload_len);
    encode_frame_header(true, false, OpCode::Close, payload_len, mask, &mut out);
    out.put_u16(code.0);
    out.put_slice(reason.as_bytes());
    if let Some(key) = mask {
        crate::frame::apply_mask(&mut out[hlen..], key, 0);
    }
    out.freeze()
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity_matches_ws() {
        let cases: [(u16, bool); 16] = [
            (0, false),
            (999, false),
            (1000, true),
            (1003, true),
            (1004, false),
            (1005, false),
            (1006, false),
            (1007, true),
            (1011, true),
            (1014, true),
            (1015, false),
            (2999, false),
            (3000, true),
            (4999, true),
            (5000, false),
            (u16::MAX, false),
        ];
        for (code, valid) in cases {
            assert_eq!(CloseCode(code).is_valid_on_wire(), valid, "{code}");
        }
    }

    #[test]
    fn encode_close_layout() {
        assert_eq!(
            encode_close(CloseCode::NORMAL, "bye").to_vec(),
            vec![0x88, 0x05, 0x03, 0xE8, b'b', b'y', b'e']
        );
        assert_eq!(
            encode_close(CloseCode::MESSAGE_TOO_BIG, "").to_vec(),
            vec![0x88, 0x02, 0x03, 0xF1]
        );
    }

    #[test]
    fn encode_close_truncates_on_char_boundary() {
        let reason = "é".repeat(100);
        let frame = encode_close(CloseCode::GOING_AWAY, &reason);
        let payload_len = usize::from(frame[1]);
        assert!(payload_len <= MAX_CONTROL_PAYLOAD);
        assert_eq!(frame.len(), 2 + payload_len);
        assert!(std::str::from_utf8(&frame[4..]).is_ok());
        assert_eq!(payload_len, 2 + 122);
    }

    #[test]
    fn masked_close_frame() {
        let key = [1, 2, 3, 4];
        let frame = encode_close_frame(CloseCode::NORMAL, "x", Some(key));
        assert_eq!(frame[1], 0x80 | 3);
        let mut payload = frame[6..].to_vec();
        crate::frame::apply_mask(&mut payload, key, 0);
        assert_eq!(payload, vec![0x03, 0xE8, b'x']);
    }
}
