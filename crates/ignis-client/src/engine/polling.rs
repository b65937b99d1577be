//! The HTTP long-polling transport's requests, on hyper's pooled HTTP/1.1 client.
//!
//! A pending GET and a POST run at the same time, so the pool holds up to two connections to
//! the server.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::error::TransportError;
use crate::options::Target;
use crate::tls::Connector;

/// How much of an error body is kept for the error message.
const ERROR_BODY_PREFIX: usize = 512;

#[derive(Clone)]
pub(crate) struct Http {
    client: Client<Connector, Full<Bytes>>,
    base: String,
    authority: HeaderValue,
    headers: HeaderMap,
    max_body: usize,
}

impl Http {
    pub(crate) fn new(target: &Target, headers: &HeaderMap, max_body: usize) -> Http {
        let connector = Connector {
            target: target.clone(),
        };
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let host = if target.host.contains(':') {
            format!("[{}]", target.host)
        } else {
            target.host.clone()
        };
        Http {
            client,
            // The connector goes to the target whatever the URI says (with TLS for https).
            base: format!("http://{host}:{}", target.port),
            authority: HeaderValue::from_str(&target.authority)
                .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
            headers: headers.clone(),
            max_body,
        }
    }

    /// A long-polling GET; the response body.
    pub(crate) async fn get(&self, path: &str) -> Result<Bytes, TransportError> {
        self.request(Method::GET, path, Bytes::new()).await
    }

    /// Sends a payload.
    pub(crate) async fn post(&self, path: &str, body: Bytes) -> Result<(), TransportError> {
        self.request(Method::POST, path, body).await.map(drop)
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Bytes, TransportError> {
        let uri = format!("{}{path}", self.base);
        let mut builder = Request::builder().method(method.clone()).uri(uri);
        if let Some(headers) = builder.headers_mut() {
            headers.extend(self.headers.clone());
            headers.insert(HOST, self.authority.clone());
            if method == Method::POST {
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain;charset=UTF-8"),
                );
            }
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| TransportError::Http(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| TransportError::Http(error_chain(&e)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), self.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    TransportError::TooLarge(self.max_body)
                } else {
                    TransportError::Http(e.to_string())
                }
            })?
            .to_bytes();
        if !status.is_success() {
            let end = body.len().min(ERROR_BODY_PREFIX);
            return Err(TransportError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..end]).into_owned(),
            });
        }
        Ok(body)
    }
}

/// hyper's top-level errors say little ("client error (Connect)"); the causes say why.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
