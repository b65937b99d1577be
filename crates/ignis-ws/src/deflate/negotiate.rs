//! Offer/answer of permessage-deflate parameters (RFC 7692 §5, §7.1),
//! mirroring the `ws` library's `PerMessageDeflate` accept logic.

use super::header::{self, Element, Param};
use super::{DeflateConfig, EXTENSION_NAME, Negotiated, NegotiationError};

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// A parameter whose name and value were validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    ServerNoContextTakeover,
    ClientNoContextTakeover,
    ServerMaxWindowBits(u8),
    /// `None` is the bare form, only valid in a client's offer.
    ClientMaxWindowBits(Option<u8>),
}

impl Known {
    fn name(self) -> &'static str {
        match self {
            Known::ServerNoContextTakeover => SERVER_NO_CONTEXT_TAKEOVER,
            Known::ClientNoContextTakeover => CLIENT_NO_CONTEXT_TAKEOVER,
            Known::ServerMaxWindowBits(_) => SERVER_MAX_WINDOW_BITS,
            Known::ClientMaxWindowBits(_) => CLIENT_MAX_WINDOW_BITS,
        }
    }

    fn to_param(self) -> Param {
        let value = match self {
            Known::ServerMaxWindowBits(bits) | Known::ClientMaxWindowBits(Some(bits)) => {
                Some(bits.to_string())
            }
            _ => None,
        };
        Param {
            name: self.name().to_owned(),
            value,
        }
    }
}

/// One offer (or answer) as an ordered list of parameters: the order is kept
/// so that the answer lists them the way `ws` does.
#[derive(Debug, Clone, Default)]
struct Params(Vec<Known>);

impl Params {
    fn find(&self, name: &str) -> Option<Known> {
        self.0.iter().copied().find(|p| p.name() == name)
    }

    /// Replaces the parameter of the same name in place, or appends it.
    fn set(&mut self, param: Known) {
        match self.0.iter_mut().find(|p| p.name() == param.name()) {
            Some(slot) => *slot = param,
            None => self.0.push(param),
        }
    }

    fn remove(&mut self, name: &str) {
        self.0.retain(|p| p.name() != name);
    }

    fn negotiated(&self) -> Negotiated {
        let mut out = Negotiated::default();
        for param in &self.0 {
            match *param {
                Known::ServerNoContextTakeover => out.server_no_context_takeover = true,
                Known::ClientNoContextTakeover => out.client_no_context_takeover = true,
                Known::ServerMaxWindowBits(bits) => out.server_max_window_bits = Some(bits),
                Known::ClientMaxWindowBits(bits) => out.client_max_window_bits = bits,
            }
        }
        out
    }

    fn header(&self) -> String {
        header::format(&Element {
            name: EXTENSION_NAME.to_owned(),
            params: self.0.iter().map(|p| p.to_param()).collect(),
        })
    }
}

/// Window bits as `ws` reads them: a number that is an integer in 8..=15.
fn window_bits(name: &str, value: &str) -> Result<u8, NegotiationError> {
    let invalid = || NegotiationError::InvalidParameterValue(name.to_owned());
    let number: f64 = value.parse().map_err(|_| invalid())?;
    if number.fract() == 0.0 && (8.0..=15.0).contains(&number) {
        // In 8..=15 and integral, so the cast is exact.
        Ok(number as u8)
    } else {
        Err(invalid())
    }
}

/// Validates every parameter of one element; `offer` is true when reading a
/// client's offer (where a bare `client_max_window_bits` is allowed).
fn normalize(element: &Element, offer: bool) -> Result<Params, NegotiationError> {
    let mut params = Params::default();
    for param in &element.params {
        let name = param.name.as_str();
        if element
            .params
            .iter()
            .filter(|p| p.name == param.name)
            .count()
            > 1
        {
            return Err(NegotiationError::DuplicateParameter(param.name.clone()));
        }
        let invalid = || NegotiationError::InvalidParameterValue(param.name.clone());
        let known = match (name, param.value.as_deref()) {
            (CLIENT_MAX_WINDOW_BITS, None) if offer => Known::ClientMaxWindowBits(None),
            (CLIENT_MAX_WINDOW_BITS, None) => return Err(invalid()),
            (CLIENT_MAX_WINDOW_BITS, Some(v)) => {
                Known::ClientMaxWindowBits(Some(window_bits(name, v)?))
            }
            (SERVER_MAX_WINDOW_BITS, Some(v)) => Known::ServerMaxWindowBits(window_bits(name, v)?),
            (SERVER_MAX_WINDOW_BITS, None) => return Err(invalid()),
            (SERVER_NO_CONTEXT_TAKEOVER, None) => Known::ServerNoContextTakeover,
            (CLIENT_NO_CONTEXT_TAKEOVER, None) => Known::ClientNoContextTakeover,
            (SERVER_NO_CONTEXT_TAKEOVER | CLIENT_NO_CONTEXT_TAKEOVER, Some(_)) => {
                return Err(invalid());
            }
            _ => return Err(NegotiationError::UnknownParameter(param.name.clone())),
        };
        params.0.push(known);
    }
    Ok(params)
}

/// The server's answer to an accepted offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// What both ends will use.
    pub params: Negotiated,
    /// The `Sec-WebSocket-Extensions` value to send back.
    pub header: String,
}

/// Server side: reads the client's `Sec-WebSocket-Extensions` value and
/// picks the first acceptable permessage-deflate offer.
///
/// Several header lines must be joined with `", "` first, as Node does.
/// `Ok(None)` means the client offered no permessage-deflate (other
/// extensions are ignored). As in `ws`, an error (malformed header, an
/// invalid parameter in *any* permessage-deflate offer, or no acceptable
/// offer) should fail the handshake with 400.
pub fn accept_offer(
    header: &[u8],
    config: &DeflateConfig,
) -> Result<Option<Accepted>, NegotiationError> {
    let elements = header::parse(header)?;
    let offers = elements
        .iter()
        .filter(|e| e.name == EXTENSION_NAME)
        .map(|e| normalize(e, true))
        .collect::<Result<Vec<_>, _>>()?;
    if offers.is_empty() {
        return Ok(None);
    }
    let mut accepted = offers
        .into_iter()
        .find(|offer| acceptable(offer, config))
        .ok_or(NegotiationError::NoAcceptableOffer)?;

    if config.server_no_context_takeover {
        accepted.set(Known::ServerNoContextTakeover);
    }
    if config.client_no_context_takeover {
        accepted.set(Known::ClientNoContextTakeover);
    }
    if let Some(bits) = config.server_max_window_bits {
        accepted.set(Known::ServerMaxWindowBits(bits));
    }
    match config.client_max_window_bits {
        Some(bits) => accepted.set(Known::ClientMaxWindowBits(Some(bits))),
        None => {
            if accepted.find(CLIENT_MAX_WINDOW_BITS) == Some(Known::ClientMaxWindowBits(None)) {
                accepted.remove(CLIENT_MAX_WINDOW_BITS);
            }
        }
    }
    Ok(Some(Accepted {
        params: accepted.negotiated(),
        header: accepted.header(),
    }))
}

fn acceptable(offer: &Params, config: &DeflateConfig) -> bool {
    if let (Some(Known::ServerMaxWindowBits(offered)), Some(ours)) = (
        offer.find(SERVER_MAX_WINDOW_BITS),
        config.server_max_window_bits,
    ) && ours > offered
    {
        return false;
    }
    !(config.client_max_window_bits.is_some() && offer.find(CLIENT_MAX_WINDOW_BITS).is_none())
}

/// Client side: the `Sec-WebSocket-Extensions` value to offer.
pub fn offer_header(config: &DeflateConfig) -> String {
    let mut params = Params::default();
    if config.server_no_context_takeover {
        params.set(Known::ServerNoContextTakeover);
    }
    if config.client_no_context_takeover {
        params.set(Known::ClientNoContextTakeover);
    }
    if let Some(bits) = config.server_max_window_bits {
        params.set(Known::ServerMaxWindowBits(bits));
    }
    params.set(Known::ClientMaxWindowBits(config.client_max_window_bits));
    params.header()
}

/// Client side: reads the server's `Sec-WebSocket-Extensions` answer (when
/// the response had one) to an offer made with [`offer_header`].
pub fn parse_response(
    header: &[u8],
    config: &DeflateConfig,
) -> Result<Negotiated, NegotiationError> {
    let elements = header::parse(header)?;
    if elements.iter().any(|e| e.name != EXTENSION_NAME) {
        return Err(NegotiationError::UnexpectedExtension);
    }
    let answers = elements
        .iter()
        .map(|e| normalize(e, false))
        .collect::<Result<Vec<_>, _>>()?;
    let mut answer = answers
        .into_iter()
        .next()
        .ok_or(NegotiationError::UnexpectedEnd)?;
    match (
        answer.find(CLIENT_MAX_WINDOW_BITS),
        config.client_max_window_bits,
    ) {
        (None, Some(ours)) => answer.set(Known::ClientMaxWindowBits(Some(ours))),
        (Some(Known::ClientMaxWindowBits(Some(theirs))), Some(ours)) if theirs > ours => {
            return Err(NegotiationError::InvalidParameterValue(
                CLIENT_MAX_WINDOW_BITS.to_owned(),
            ));
        }
        _ => {}
    }
    Ok(answer.negotiated())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DeflateConfig {
        DeflateConfig::default()
    }

    struct Case {
        name: &'static str,
        header: &'static str,
        config: DeflateConfig,
        expected: Result<Option<&'static str>, NegotiationError>,
    }

    #[test]
    fn server_accepts_like_ws() {
        use NegotiationError as E;
        let cases = vec![
            Case {
                name: "other extension only",
                header: "x-webkit-deflate-frame",
                config: cfg(),
                expected: Ok(None),
            },
            Case {
                name: "bare offer",
                header: "permessage-deflate",
                config: cfg(),
                expected: Ok(Some("permessage-deflate")),
            },
            Case {
                name: "browser offer: bare client_max_window_bits is dropped",
                header: "permessage-deflate; client_max_window_bits",
                config: cfg(),
                expected: Ok(Some("permessage-deflate")),
            },
            Case {
                name: "stateless server adds both flags",
                header: "permessage-deflate; client_max_window_bits",
                config: DeflateConfig::stateless(),
                expected: Ok(Some(
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                )),
            },
            Case {
                name: "client params echoed in the client's order",
                header: "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; server_no_context_takeover",
                config: cfg(),
                expected: Ok(Some(
                    "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; server_no_context_takeover",
                )),
            },
            Case {
                name: "flag already offered keeps its place",
                header: "permessage-deflate; server_no_context_takeover; client_max_window_bits=12",
                config: DeflateConfig::stateless(),
                expected: Ok(Some(
                    "permessage-deflate; server_no_context_takeover; client_max_window_bits=12; client_no_context_takeover",
                )),
            },
            Case {
                name: "quoted values",
                header: "permessage-deflate; server_max_window_bits=\"11\"; client_max_window_bits=\"9\"",
                config: cfg(),
                expected: Ok(Some(
                    "permessage-deflate; server_max_window_bits=11; client_max_window_bits=9",
                )),
            },
            Case {
                name: "server window imposed",
                header: "permessage-deflate",
                config: DeflateConfig {
                    server_max_window_bits: Some(10),
                    ..cfg()
                },
                expected: Ok(Some("permessage-deflate; server_max_window_bits=10")),
            },
            Case {
                name: "server window lowered below the offer",
                header: "permessage-deflate; server_max_window_bits=12",
                config: DeflateConfig {
                    server_max_window_bits: Some(10),
                    ..cfg()
                },
                expected: Ok(Some("permessage-deflate; server_max_window_bits=10")),
            },
            Case {
                name: "first offer asks for a smaller server window than ours: second taken",
                header: "permessage-deflate; server_max_window_bits=9, permessage-deflate",
                config: DeflateConfig {
                    server_max_window_bits: Some(10),
                    ..cfg()
                },
                expected: Ok(Some("permessage-deflate; server_max_window_bits=10")),
            },
            Case {
                name: "client window needs client support: second offer taken",
                header: "permessage-deflate, permessage-deflate; client_max_window_bits",
                config: DeflateConfig {
                    client_max_window_bits: Some(11),
                    ..cfg()
                },
                expected: Ok(Some("permessage-deflate; client_max_window_bits=11")),
            },
            Case {
                name: "several offers, first acceptable wins",
                header: "foo, permessage-deflate; server_max_window_bits=10, permessage-deflate",
                config: cfg(),
                expected: Ok(Some("permessage-deflate; server_max_window_bits=10")),
            },
            Case {
                name: "window bits 8 accepted",
                header: "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
                config: cfg(),
                expected: Ok(Some(
                    "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
                )),
            },
            Case {
                name: "no acceptable offer",
                header: "permessage-deflate; server_max_window_bits=9",
                config: DeflateConfig {
                    server_max_window_bits: Some(10),
                    ..cfg()
                },
                expected: Err(E::NoAcceptableOffer),
            },
            Case {
                name: "no acceptable offer without client window support",
                header: "permessage-deflate",
                config: DeflateConfig {
                    client_max_window_bits: Some(10),
                    ..cfg()
                },
                expected: Err(E::NoAcceptableOffer),
            },
            Case {
                name: "unknown parameter",
                header: "permessage-deflate; foo",
                config: cfg(),
                expected: Err(E::UnknownParameter("foo".into())),
            },
            Case {
                name: "unknown parameter in a later offer still rejects",
                header: "permessage-deflate, permessage-deflate; foo=1",
                config: cfg(),
                expected: Err(E::UnknownParameter("foo".into())),
            },
            Case {
                name: "duplicated parameter",
                header: "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                config: cfg(),
                expected: Err(E::DuplicateParameter("server_no_context_takeover".into())),
            },
            Case {
                name: "duplicated parameter with values",
                header: "permessage-deflate; client_max_window_bits=10; client_max_window_bits",
                config: cfg(),
                expected: Err(E::DuplicateParameter("client_max_window_bits".into())),
            },
            Case {
                name: "window bits too small",
                header: "permessage-deflate; server_max_window_bits=7",
                config: cfg(),
                expected: Err(E::InvalidParameterValue("server_max_window_bits".into())),
            },
            Case {
                name: "window bits too large",
                header: "permessage-deflate; client_max_window_bits=16",
                config: cfg(),
                expected: Err(E::InvalidParameterValue("client_max_window_bits".into())),
            },
            Case {
                name: "window bits not a number",
                header: "permessage-deflate; server_max_window_bits=ten",
                config: cfg(),
                expected: Err(E::InvalidParameterValue("server_max_window_bits".into())),
            },
            Case {
                name: "window bits not an integer",
                header: "permessage-deflate; server_max_window_bits=10.5",
                config: cfg(),
                expected: Err(E::InvalidParameterValue("server_max_window_bits".into())),
            },
            Case {
                name: "server_max_window_bits needs a value",
                header: "permessage-deflate; server_max_window_bits",
                config: cfg(),
                expected: Err(E::InvalidParameterValue("server_max_window_bits".into())),
            },
            Case {
                name: "flag with a value",
                header: "permessage-deflate; client_no_context_takeover=1",
                config: cfg(),
                expected: Err(E::InvalidParameterValue(
                    "client_no_context_takeover".into(),
                )),
            },
            Case {
                name: "malformed header",
                header: "permessage-deflate; ",
                config: cfg(),
                expected: Err(E::UnexpectedEnd),
            },
            Case {
                name: "malformed header with only other extensions",
                header: "foo;;",
                config: cfg(),
                expected: Err(E::UnexpectedCharacter { index: 4 }),
            },
        ];
        for case in cases {
            let got = accept_offer(case.header.as_bytes(), &case.config);
            let got = got.map(|a| a.map(|a| a.header));
            let expected = case.expected.map(|h| h.map(str::to_owned));
            assert_eq!(got, expected, "{}", case.name);
        }
    }

    #[test]
    fn server_negotiated_params() {
        let accepted = accept_offer(
            b"permessage-deflate; server_max_window_bits=10; client_max_window_bits=12",
            &DeflateConfig::stateless(),
        )
        .expect("valid")
        .expect("offered");
        assert_eq!(
            accepted.params,
            Negotiated {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: Some(10),
                client_max_window_bits: Some(12),
            }
        );
    }

    #[test]
    fn client_offer_header() {
        let cases = [
            (cfg(), "permessage-deflate; client_max_window_bits"),
            (
                DeflateConfig::stateless(),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits",
            ),
            (
                DeflateConfig {
                    server_max_window_bits: Some(10),
                    client_max_window_bits: Some(11),
                    ..cfg()
                },
                "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11",
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(offer_header(&config), expected);
        }
    }

    #[test]
    fn client_reads_response() {
        use NegotiationError as E;
        let full = |s, c, sb, cb| Negotiated {
            server_no_context_takeover: s,
            client_no_context_takeover: c,
            server_max_window_bits: sb,
            client_max_window_bits: cb,
        };
        let cases: Vec<(&str, DeflateConfig, Result<Negotiated, E>)> = vec![
            ("permessage-deflate", cfg(), Ok(Negotiated::default())),
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                cfg(),
                Ok(full(true, true, None, None)),
            ),
            (
                "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10",
                cfg(),
                Ok(full(false, false, Some(9), Some(10))),
            ),
            (
                "permessage-deflate",
                DeflateConfig {
                    client_max_window_bits: Some(11),
                    ..cfg()
                },
                Ok(full(false, false, None, Some(11))),
            ),
            (
                "permessage-deflate; client_max_window_bits=12",
                DeflateConfig {
                    client_max_window_bits: Some(11),
                    ..cfg()
                },
                Err(E::InvalidParameterValue("client_max_window_bits".into())),
            ),
            (
                "permessage-deflate; client_max_window_bits",
                cfg(),
                Err(E::InvalidParameterValue("client_max_window_bits".into())),
            ),
            (
                "permessage-deflate, foo",
                cfg(),
                Err(E::UnexpectedExtension),
            ),
            ("foo", cfg(), Err(E::UnexpectedExtension)),
            (
                "permessage-deflate; bar",
                cfg(),
                Err(E::UnknownParameter("bar".into())),
            ),
            ("permessage-deflate;", cfg(), Err(E::UnexpectedEnd)),
        ];
        for (header, config, expected) in cases {
            assert_eq!(
                parse_response(header.as_bytes(), &config),
                expected,
                "{header}"
            );
        }
    }

    #[test]
    fn arbitrary_tails_never_panic() {
        // Every string of up to 5 characters from the grammar's interesting
        // bytes, after a valid extension name.
        const ALPHABET: &[u8] = b";,=\"\\ \ta1";
        let mut tail = Vec::new();
        let mut count = 0;
        for len in 0..=5u32 {
            for mut n in 0..ALPHABET.len().pow(len) {
                tail.clear();
                for _ in 0..len {
                    tail.push(ALPHABET[n % ALPHABET.len()]);
                    n /= ALPHABET.len();
                }
                let header = [b"permessage-deflate".as_slice(), &tail].concat();
                // Only the absence of a panic matters for the client side.
                let _ = parse_response(&header, &cfg());
                if let Ok(Some(accepted)) = accept_offer(&header, &DeflateConfig::stateless()) {
                    // Whatever we answer, a client reading it agrees.
                    let client = parse_response(accepted.header.as_bytes(), &cfg());
                    assert_eq!(
                        client,
                        Ok(accepted.params),
                        "{:?}",
                        String::from_utf8_lossy(&header)
                    );
                    count += 1;
                }
            }
        }
        assert!(count > 0);
    }

    #[test]
    fn client_and_server_agree() {
        for config in [cfg(), DeflateConfig::stateless()] {
            let offer = offer_header(&config);
            let accepted = accept_offer(offer.as_bytes(), &config)
                .expect("valid")
                .expect("offered");
            let client = parse_response(accepted.header.as_bytes(), &config).expect("answer");
            assert_eq!(client, accepted.params, "{offer}");
        }
    }
}
