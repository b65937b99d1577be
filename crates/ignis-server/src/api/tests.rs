//! The API driven through the router, against a real application with the Socket.IO component
//! and a real client speaking Engine.IO long-polling to it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use ignis::socketio::{AuthenticateHandler, SocketIoComponent, keys};
use ignis::{AppConfig, Application, RunningApp};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

use super::{ApiConfig, router};

const NOT_INITIALIZED: &str =
    "[SocketEventService] SocketIO not initialized. Make sure server is started.";

async fn start(with_socket_io: bool) -> RunningApp {
    let config = AppConfig {
        name: "api-test".into(),
        host: "127.0.0.1".into(),
        port: 0,
        ..AppConfig::default()
    };
    let mut app = Application::new(config);
    if with_socket_io {
        app = app
            .bind(
                keys::AUTHENTICATE_HANDLER,
                AuthenticateHandler::new(|_| async { Ok(true) }),
            )
            .component(SocketIoComponent::new());
    }
    app.start().await.expect("the application starts")
}

fn api(app: &RunningApp, api_key: Option<&str>) -> Router {
    router(
        ApiConfig {
            base_path: "/api".into(),
            api_key: api_key.map(str::to_string),
            cors_origins: None,
            app_name: "api-test".into(),
            ..ApiConfig::default()
        },
        app.handle().clone(),
    )
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    fn request_id(&self) -> String {
        self.headers
            .get("x-request-id")
            .expect("every response has X-Request-Id")
            .to_str()
            .unwrap()
            .to_string()
    }
}

async fn call(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get(router: &Router, uri: &str) -> Answer {
    call(
        router,
        Request::get(uri)
            .header("host", "test.local")
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

async fn post(router: &Router, uri: &str, body: &str) -> Answer {
    call(
        router,
        Request::post(uri)
            .header("host", "test.local")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

/// Checks the envelope and that it names this request.
fn assert_envelope(answer: &Answer, status: u16, message: &str, path: &str) -> Value {
    assert_eq!(answer.status.as_u16(), status, "{}", answer.text);
    let body = answer.json();
    let error = &body["error"];
    assert_eq!(error["message"], message, "{body}");
    assert_eq!(error["statusCode"], status);
    assert_eq!(error["requestId"], answer.request_id());
    assert_eq!(error["details"]["path"], path);
    assert_eq!(error["details"]["url"], format!("http://test.local{path}"));
    assert!(error["details"].get("stack").is_none());
    assert_eq!(body.as_object().unwrap().len(), 1, "only `error`: {body}");
    body
}

// ---------------------------------------------------------------------------------------------
// A minimal Socket.IO client over Engine.IO long-polling.

pub(crate) async fn raw_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, tail) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
}

pub(crate) struct PollingClient {
    addr: SocketAddr,
    pub(crate) engine_sid: String,
    /// The Socket.IO socket id (what the REST API knows the client by).
    pub(crate) id: String,
}

impl PollingClient {
    /// Connects to the main namespace and authenticates.
    pub(crate) async fn connect(addr: SocketAddr) -> PollingClient {
        let client = Self::connect_only(addr, None).await;
        client.write(r#"42["authenticate"]"#).await;
        client.event("authenticated").await;
        client
    }

    /// Connects to the main namespace (with `auth` as the CONNECT payload) and does not
    /// authenticate.
    pub(crate) async fn connect_only(addr: SocketAddr, auth: Option<&str>) -> PollingClient {
        let (status, open) = raw_http(addr, "GET", "/io/?EIO=4&transport=polling", "").await;
        assert_eq!(status, 200, "{open}");
        let handshake: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
        let mut client = PollingClient {
            addr,
            engine_sid: handshake["sid"].as_str().unwrap().to_string(),
            id: String::new(),
        };
        client.write(&format!("40{}", auth.unwrap_or(""))).await;
        let connect = client.read_until(|p| p.starts_with("40")).await;
        let payload: Value = serde_json::from_str(&connect[2..]).unwrap();
        client.id = payload["sid"].as_str().unwrap().to_string();
        client
    }

    /// Emits `[event, arg]` asking for an acknowledgement, and returns the acknowledgement's
    /// arguments (events that arrive meanwhile are skipped).
    pub(crate) async fn emit_with_ack(&self, id: u32, event: &str, arg: Value) -> Vec<Value> {
        self.write(&format!("42{id}{}", serde_json::json!([event, arg])))
            .await;
        let prefix = format!("43{id}");
        let packet = self.read_until(|p| p.starts_with(&prefix)).await;
        serde_json::from_str(&packet[prefix.len()..]).unwrap()
    }

    fn url(&self) -> String {
        format!("/io/?EIO=4&transport=polling&sid={}", self.engine_sid)
    }

    pub(crate) async fn write(&self, packet: &str) {
        let (status, body) = raw_http(self.addr, "POST", &self.url(), packet).await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }

    /// Polls until a packet matches, answering the Engine.IO heartbeat on the way.
    pub(crate) async fn read_until(&self, wanted: impl Fn(&str) -> bool) -> String {
        let poll = async {
            loop {
                let (status, body) = raw_http(self.addr, "GET", &self.url(), "").await;
                assert_eq!(status, 200, "{body}");
                for packet in body.split('\u{1e}') {
                    if packet == "2" {
                        self.write("3").await;
                    } else if wanted(packet) {
                        return packet.to_string();
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), poll)
            .await
            .expect("the expected packet arrives")
    }

    /// Waits for an event and returns its arguments.
    pub(crate) async fn event(&self, name: &str) -> Vec<Value> {
        let packet = self
            .read_until(|p| {
                p.strip_prefix("42")
                    .and_then(|json| serde_json::from_str::<Value>(json).ok())
                    .is_some_and(|v| v[0] == name)
            })
            .await;
        let mut array: Vec<Value> = serde_json::from_str(&packet[2..]).unwrap();
        array.remove(0);
        array
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn before_the_helper_is_bound_socket_endpoints_answer_500() {
    let app = start(false).await;
    let router = api(&app, None);
    let cases: &[(Method, &str, &str)] = &[
        (Method::GET, "/api/socket/info", ""),
        (Method::GET, "/api/socket/clients", ""),
        (Method::POST, "/api/socket/broadcast", r#"{"topic":"t"}"#),
        (Method::POST, "/api/socket/room/r/send", r#"{"topic":"t"}"#),
        (
            Method::POST,
            "/api/socket/client/c/send",
            r#"{"topic":"t"}"#,
        ),
        (
            Method::POST,
            "/api/socket/client/c/join",
            r#"{"rooms":["a"]}"#,
        ),
        (
            Method::POST,
            "/api/socket/client/c/leave",
            r#"{"rooms":["a"]}"#,
        ),
        (Method::GET, "/api/socket/client/c/rooms", ""),
    ];
    for (method, path, body) in cases {
        let answer = call(
            &router,
            Request::builder()
                .method(method)
                .uri(*path)
                .header("host", "test.local")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await;
        assert_envelope(&answer, 500, NOT_INITIALIZED, path);
    }
    let health = get(&router, "/api/socket/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["healthy"], false);
    app.stop().await;
}

#[tokio::test]
async fn health_endpoints() {
    let app = start(true).await;
    let router = api(&app, None);

    let health = get(&router, "/api/socket/health").await;
    assert_eq!(health.status, 200);
    let body = health.json();
    assert_eq!(body["healthy"], true);
    let ts = body["timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{ts}"
    );

    let status = get(&router, "/api/health-check").await;
    assert_eq!(
        (status.status.as_u16(), status.json()),
        (200, json!({"status": "ok"}))
    );

    let pong = post(&router, "/api/health-check/ping", r#"{"message":"hello"}"#).await;
    assert_eq!(pong.status, 200);
    let body = pong.json();
    assert_eq!(body["type"], "PONG");
    assert_eq!(body["message"], "hello");
    assert!(body["date"].as_str().unwrap().ends_with('Z'));

    let bad = post(&router, "/api/health-check/ping", r#"{"message":""}"#).await;
    let body = assert_envelope(&bad, 422, "ValidationError", "/api/health-check/ping");
    assert_eq!(
        body["error"]["details"]["cause"],
        json!([{"path": ["message"], "message": "String must contain at least 1 character(s)"}])
    );
    let empty = post(&router, "/api/health-check/ping", "").await;
    assert_envelope(&empty, 422, "ValidationError", "/api/health-check/ping");
    app.stop().await;
}

#[tokio::test]
async fn info_clients_and_sends_reach_a_real_client() {
    let app = start(true).await;
    let router = api(&app, None);

    let empty = get(&router, "/api/socket/info").await;
    let mut info = empty.json();
    let limits = info
        .as_object_mut()
        .and_then(|o| o.remove("limits"))
        .expect("info has the limit counters");
    assert_eq!(
        (empty.status.as_u16(), info),
        (
            200,
            json!({"status": "running", "connectedClients": 0, "clientIds": []})
        )
    );
    // Every counter is there, at 0 on a server nobody attacked.
    let counters = limits.as_object().expect("an object of counters");
    assert_eq!(counters.len(), 13, "{limits}");
    assert!(counters.values().all(|v| v == &json!(0)), "{limits}");

    let client = PollingClient::connect(app.local_addr()).await;
    let info = get(&router, "/api/socket/info").await.json();
    assert_eq!(
        (&info["connectedClients"], &info["clientIds"]),
        (&json!(1), &json!([client.id]))
    );
    let clients = get(&router, "/api/socket/clients").await.json();
    assert_eq!(clients, json!({"count": 1, "clients": [client.id]}));

    // Any JSON value is delivered as data, falsy ones included; a missing `data` is `null`.
    let payloads = [
        (r#"{"topic":"news","data":0}"#, json!(0)),
        (r#"{"topic":"news","data":false}"#, json!(false)),
        (r#"{"topic":"news","data":""}"#, json!("")),
        (r#"{"topic":"news","data":null}"#, json!(null)),
        (r#"{"topic":"news"}"#, json!(null)),
        (
            r#"{"topic":"news","data":{"a":[1,"x"]}}"#,
            json!({"a": [1, "x"]}),
        ),
    ];
    for (body, data) in payloads {
        let answer = post(&router, "/api/socket/broadcast", body).await;
        assert_eq!(
            (answer.status.as_u16(), answer.json()),
            (
                200,
                json!({"success": true, "message": "Broadcast sent to 1 clients"})
            ),
            "{body}"
        );
        assert_eq!(client.event("news").await, vec![data], "{body}");
    }

    let to_client = post(
        &router,
        &format!("/api/socket/client/{}/send", client.id),
        r#"{"topic":"direct","data":{"n":1}}"#,
    )
    .await;
    assert_eq!(
        to_client.json(),
        json!({"success": true, "message": format!("Message sent to client: {}", client.id)})
    );
    assert_eq!(client.event("direct").await, vec![json!({"n": 1})]);

    // A default room of the component; the room id is URL-decoded.
    let to_room = post(
        &router,
        "/api/socket/room/io-default/send",
        r#"{"topic":"room-news","data":"hi"}"#,
    )
    .await;
    assert_eq!(
        to_room.json(),
        json!({"success": true, "message": "Message sent to room: io-default"})
    );
    assert_eq!(client.event("room-news").await, vec![json!("hi")]);
    let decoded = post(
        &router,
        "/api/socket/room/a%20b%2Fc/send",
        r#"{"topic":"t"}"#,
    )
    .await;
    assert_eq!(decoded.json()["message"], "Message sent to room: a b/c");

    // A client that does not exist is not found, as for join, leave and rooms (the original
    // answers "Message sent"); the topic is still checked first.
    for id in ["nobody", "AAAAAAAAAAAAAAAAAAAA"] {
        let nobody = post(
            &router,
            &format!("/api/socket/client/{id}/send"),
            r#"{"topic":"t"}"#,
        )
        .await;
        assert_eq!(nobody.status, 200);
        assert_eq!(
            nobody.json(),
            json!({"success": false, "message": format!("Client not found: {id}")})
        );
    }
    let no_topic = post(&router, "/api/socket/client/nobody/send", "{}").await;
    assert_eq!(no_topic.status, 400);

    // A socket that has not authenticated is tracked but receives no broadcast: not counted.
    let _lurker = PollingClient::connect_only(app.local_addr(), None).await;
    let info = get(&router, "/api/socket/info").await.json();
    assert_eq!(info["connectedClients"], 2);
    let answer = post(&router, "/api/socket/broadcast", r#"{"topic":"news"}"#).await;
    assert_eq!(answer.json()["message"], "Broadcast sent to 1 clients");
    app.stop().await;
}

#[tokio::test]
async fn join_leave_and_rooms_of_a_client() {
    let app = start(true).await;
    let router = api(&app, None);
    let client = PollingClient::connect(app.local_addr()).await;
    let base = format!("/api/socket/client/{}", client.id);

    let rooms = get(&router, &format!("{base}/rooms")).await;
    assert_eq!(
        rooms.json(),
        json!({"success": true, "rooms": [client.id, "io-default", "io-notification"]})
    );

    let joined = post(
        &router,
        &format!("{base}/join"),
        r#"{"rooms":["alpha","beta"]}"#,
    )
    .await;
    assert_eq!(
        (joined.status.as_u16(), joined.json()),
        (
            200,
            json!({"success": true, "message": format!("Client {} joined rooms: alpha, beta", client.id)})
        )
    );
    let rooms = get(&router, &format!("{base}/rooms")).await.json();
    assert_eq!(
        rooms["rooms"],
        json!([client.id, "io-default", "io-notification", "alpha", "beta"])
    );
    // The joined room really routes messages to the client.
    post(
        &router,
        "/api/socket/room/beta/send",
        r#"{"topic":"in-beta","data":1}"#,
    )
    .await;
    assert_eq!(client.event("in-beta").await, vec![json!(1)]);

    // Leaving: the own-id room stays, whatever is asked.
    let body = json!({"rooms": ["alpha", client.id, "io-default"]}).to_string();
    let left = post(&router, &format!("{base}/leave"), &body).await;
    assert_eq!(
        left.json(),
        json!({"success": true, "message": format!("Client {0} left rooms: alpha, {0}, io-default", client.id)})
    );
    let rooms = get(&router, &format!("{base}/rooms")).await.json();
    assert_eq!(
        rooms["rooms"],
        json!([client.id, "io-notification", "beta"])
    );

    // Unknown clients: a well-shaped id nobody has, a room name, junk.
    for id in ["AAAAAAAAAAAAAAAAAAAA", "io-default", "nobody"] {
        let not_found = json!({"success": false, "message": format!("Client not found: {id}")});
        let path = format!("/api/socket/client/{id}");
        for answer in [
            post(&router, &format!("{path}/join"), r#"{"rooms":["x"]}"#).await,
            post(&router, &format!("{path}/leave"), r#"{"rooms":["x"]}"#).await,
            get(&router, &format!("{path}/rooms")).await,
        ] {
            assert_eq!(
                (answer.status.as_u16(), answer.json()),
                (200, not_found.clone())
            );
        }
    }
    // Asking about a room named like nobody's id did not make its members join anything.
    let rooms = get(&router, &format!("{base}/rooms")).await.json();
    assert!(!rooms["rooms"].as_array().unwrap().contains(&json!("x")));
    app.stop().await;
}

#[tokio::test]
async fn endpoint_level_400s_keep_the_flat_shape() {
    let app = start(true).await;
    let router = api(&app, None);
    let topic_required = json!({"error": "Topic is required"});
    let rooms_required = json!({"error": "Rooms array is required"});
    let cases: Vec<(&str, &str, &Value)> = vec![
        ("/api/socket/broadcast", "{}", &topic_required),
        ("/api/socket/broadcast", "", &topic_required),
        ("/api/socket/broadcast", r#"{"topic":""}"#, &topic_required),
        (
            "/api/socket/broadcast",
            r#"{"topic":null,"data":1}"#,
            &topic_required,
        ),
        ("/api/socket/room/r/send", r#"{"data":1}"#, &topic_required),
        (
            "/api/socket/client/c/send",
            r#"{"topic":""}"#,
            &topic_required,
        ),
        ("/api/socket/client/c/join", "{}", &rooms_required),
        ("/api/socket/client/c/join", "", &rooms_required),
        (
            "/api/socket/client/c/join",
            r#"{"rooms":[]}"#,
            &rooms_required,
        ),
        (
            "/api/socket/client/c/join",
            r#"{"rooms":"alpha"}"#,
            &rooms_required,
        ),
        (
            "/api/socket/client/c/join",
            r#"{"rooms":[1]}"#,
            &rooms_required,
        ),
        (
            "/api/socket/client/c/join",
            r#"{"rooms":["a",""]}"#,
            &rooms_required,
        ),
        (
            "/api/socket/client/c/leave",
            r#"{"rooms":"alpha"}"#,
            &rooms_required,
        ),
        (
            "/api/socket/client/c/leave",
            r#"{"rooms":null}"#,
            &rooms_required,
        ),
    ];
    for (path, body, want) in cases {
        let answer = post(&router, path, body).await;
        assert_eq!(
            (answer.status.as_u16(), &answer.json()),
            (400, want),
            "{path} {body}"
        );
        answer.request_id();
    }
    let reserved = post(&router, "/api/socket/broadcast", r#"{"topic":"connect"}"#).await;
    assert_eq!(reserved.status, 400);
    assert_eq!(
        reserved.json(),
        json!({"error": "\"connect\" is a reserved event name"})
    );
    app.stop().await;
}

#[tokio::test]
async fn malformed_and_wrong_shaped_bodies() {
    let app = start(true).await;
    let router = api(&app, None);
    let paths = [
        "/api/socket/broadcast",
        "/api/socket/room/r/send",
        "/api/socket/client/c/send",
        "/api/socket/client/c/join",
        "/api/socket/client/c/leave",
        "/api/health-check/ping",
    ];
    for path in paths {
        for body in [
            "{",
            "{\"topic\":}",
            "not json",
            "{\"a\":1}x",
            " ",
            "\u{0}",
            "[1,",
        ] {
            let answer = post(&router, path, body).await;
            assert_envelope(&answer, 400, "Malformed Body Payload", path);
        }
        for (body, kind) in [
            ("[]", "array"),
            ("null", "null"),
            ("\"text\"", "string"),
            ("42", "number"),
            ("true", "boolean"),
        ] {
            let answer = post(&router, path, body).await;
            let envelope = assert_envelope(&answer, 422, "ValidationError", path);
            assert_eq!(
                envelope["error"]["details"]["cause"],
                json!([{"path": [], "message": format!("Expected object, received {kind}")}]),
                "{path} {body}"
            );
        }
    }
    for (body, kind) in [
        (r#"{"topic":5}"#, "number"),
        (r#"{"topic":false}"#, "boolean"),
        (r#"{"topic":["a"]}"#, "array"),
        (r#"{"topic":{}}"#, "object"),
    ] {
        let answer = post(&router, "/api/socket/broadcast", body).await;
        let envelope = assert_envelope(&answer, 422, "ValidationError", "/api/socket/broadcast");
        assert_eq!(
            envelope["error"]["details"]["cause"],
            json!([{"path": ["topic"], "message": format!("Expected string, received {kind}")}])
        );
    }
    // Deeper than the JSON parser's recursion limit: refused, not a crash.
    let deep = "[".repeat(100_000);
    let answer = post(&router, "/api/socket/broadcast", &deep).await;
    assert_envelope(
        &answer,
        400,
        "Malformed Body Payload",
        "/api/socket/broadcast",
    );
    app.stop().await;
}

#[tokio::test]
async fn bodies_over_10_mb_answer_413() {
    let app = start(true).await;
    let router = api(&app, None);
    let limit = 10 * 1024 * 1024;

    // Declared too large: refused before reading.
    let declared = call(
        &router,
        Request::post("/api/socket/broadcast")
            .header("content-length", (limit + 1).to_string())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (declared.status.as_u16(), declared.text.as_str()),
        (413, "{}")
    );
    declared.request_id();

    // No declared length: counted while read.
    let mut big = br#"{"topic":"t","data":""#.to_vec();
    big.resize(limit + 10, b'x');
    let streamed = call(
        &router,
        Request::post("/api/socket/broadcast")
            .body(Body::from(big))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (streamed.status.as_u16(), streamed.text.as_str()),
        (413, "{}")
    );

    // Just under the limit is fine.
    let mut ok = br#"{"topic":"t","data":""#.to_vec();
    ok.resize(limit - 2, b'x');
    ok.extend_from_slice(b"\"}");
    assert_eq!(ok.len(), limit);
    let fits = call(
        &router,
        Request::post("/api/socket/broadcast")
            .header("content-length", limit.to_string())
            .body(Body::from(ok))
            .unwrap(),
    )
    .await;
    assert_eq!(fits.status, 200, "{}", fits.text);
    app.stop().await;
}

#[tokio::test]
async fn request_ids_are_reused_when_valid_and_generated_otherwise() {
    let app = start(true).await;
    let router = api(&app, None);
    let valid_long = "a".repeat(128);
    let cases: Vec<(Option<&str>, bool)> = vec![
        (Some("abc-123_X.y"), true),
        (Some(valid_long.as_str()), true),
        (Some("1"), true),
        (None, false),
        (Some(""), false),
        (Some("has space"), false),
        (Some("semi;colon"), false),
        (Some("ünïcode"), false),
    ];
    let too_long = "a".repeat(129);
    let mut all = cases;
    all.push((Some(too_long.as_str()), false));
    for (incoming, reused) in all {
        let mut request = Request::get("/api/health-check");
        if let Some(id) = incoming {
            request = request.header("x-request-id", id);
        }
        let answer = call(&router, request.body(Body::empty()).unwrap()).await;
        let id = answer.request_id();
        if reused {
            assert_eq!(Some(id.as_str()), incoming);
        } else {
            assert_ne!(Some(id.as_str()), incoming);
            let shape: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(shape, vec![8, 4, 4, 4, 12], "{id}");
            assert_eq!(id.as_bytes()[14], b'4', "UUID v4: {id}");
        }
    }
    // Two generated ids differ.
    let a = get(&router, "/api/health-check").await.request_id();
    let b = get(&router, "/api/health-check").await.request_id();
    assert_ne!(a, b);

    // The envelope carries the same id as the header.
    let answer = call(
        &router,
        Request::post("/api/socket/broadcast")
            .header("x-request-id", "trace-me")
            .header("host", "test.local")
            .body(Body::from("{"))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.request_id(), "trace-me");
    assert_envelope(
        &answer,
        400,
        "Malformed Body Payload",
        "/api/socket/broadcast",
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_answer_the_404_shape() {
    let app = start(true).await;
    let router = api(&app, None);
    let cases: &[(Method, &str)] = &[
        (Method::GET, "/"),
        (Method::GET, "/api"),
        (Method::GET, "/api/nope"),
        (Method::GET, "/api/socket/info/"),
        (Method::GET, "/api/socket/client//rooms"),
        (Method::POST, "/api/socket/room//send"),
        (Method::POST, "/api/socket/client//join"),
        (Method::GET, "/API/socket/info"),
        (Method::GET, "/other?x=1"),
    ];
    for (method, uri) in cases {
        let answer = call(
            &router,
            Request::builder()
                .method(method)
                .uri(*uri)
                .header("host", "test.local")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        let path = uri.split('?').next().unwrap();
        assert_eq!(answer.status, 404, "{method} {uri}");
        assert_eq!(
            answer.json(),
            json!({
                "message": "URL NOT FOUND",
                "statusCode": 404,
                "requestId": answer.request_id(),
                "path": path,
                "url": format!("http://test.local{uri}"),
            }),
            "{method} {uri}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn api_key_protects_the_socket_endpoints() {
    let app = start(true).await;
    let router = api(&app, Some("k3y"));
    let refused: &[&[(&str, &str)]] = &[
        &[],
        &[("x-api-key", "wrong")],
        &[("authorization", "Bearer wrong")],
        &[("authorization", "Basic k3y")],
    ];
    for headers in refused {
        for (method, path) in [
            (Method::GET, "/api/socket/info"),
            (Method::GET, "/api/socket/clients"),
            (Method::POST, "/api/socket/broadcast"),
            (Method::POST, "/api/socket/client/c/join"),
            (Method::GET, "/api/socket/client/c/rooms"),
        ] {
            let mut request = Request::builder()
                .method(method)
                .uri(path)
                .header("host", "test.local");
            for (name, value) in *headers {
                request = request.header(*name, *value);
            }
            let answer = call(&router, request.body(Body::from("{")).unwrap()).await;
            assert_envelope(
                &answer,
                401,
                "Unauthorized: a valid API key is required",
                path,
            );
            assert!(answer.headers.contains_key("www-authenticate"));
        }
    }
    for (name, value) in [("x-api-key", "k3y"), ("authorization", "Bearer k3y")] {
        let answer = call(
            &router,
            Request::get("/api/socket/info")
                .header(name, value)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(answer.status, 200, "{name}");
        assert_eq!(answer.json()["status"], "running");
    }
    // Open without a key: socket health, health checks, documentation, and 404s stay 404.
    for path in [
        "/api/socket/health",
        "/api/health-check",
        "/api/doc/openapi.json",
        "/api/doc/explorer",
    ] {
        assert_eq!(get(&router, path).await.status, 200, "{path}");
    }
    assert_eq!(get(&router, "/api/socket/nope").await.status, 404);
    // The document says which operations need the key.
    let doc = get(&router, "/api/doc/openapi.json").await.json();
    assert!(doc["paths"]["/api/socket/info"]["get"]["security"].is_array());
    assert!(
        doc["paths"]["/api/socket/health"]["get"]
            .get("security")
            .is_none()
    );
    app.stop().await;
}

#[tokio::test]
async fn drain_behind_the_key_flips_readiness_and_refuses_handshakes() {
    let app = start(true).await;
    let addr = app.local_addr();
    let switch = crate::drain::DrainSwitch::new(Duration::from_secs(7));
    let router = router(
        ApiConfig {
            api_key: Some("k3y".into()),
            drain: switch.clone(),
            ..ApiConfig::default()
        },
        app.handle().clone(),
    );
    let client = PollingClient::connect(addr).await;

    let ready = get(&router, "/api/socket/ready").await;
    assert_eq!(
        (ready.status.as_u16(), ready.json()),
        (200, json!({"status": "ready"}))
    );
    assert_eq!(
        get(&router, "/api/socket/ready?draining=404").await.status,
        200
    );
    let health = get(&router, "/api/socket/health").await.json();
    assert!(health.get("draining").is_none(), "{health}");

    // No key, no drain.
    let refused = post(&router, "/api/socket/drain", "").await;
    assert_eq!(refused.status, 401);
    assert!(!switch.is_requested());
    assert_eq!(get(&router, "/api/socket/ready").await.status, 200);

    let drain = |body: &'static str| {
        call(
            &router,
            Request::post("/api/socket/drain")
                .header("x-api-key", "k3y")
                .body(Body::from(body))
                .unwrap(),
        )
    };
    let answer = drain("").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let body = answer.json();
    assert_eq!(body["success"], true);
    assert_eq!(body["drainSeconds"], 7);
    assert!(
        body["message"].as_str().unwrap().starts_with("Draining"),
        "{body}"
    );
    assert!(switch.is_requested(), "the process is asked to drain");
    let again = drain("{}").await.json();
    assert_eq!(again["message"], "Already draining");

    // A load balancer's probe and the health report see it at once.
    let ready = get(&router, "/api/socket/ready").await;
    assert_eq!(
        (ready.status.as_u16(), ready.json()),
        (503, json!({"status": "draining"}))
    );
    // HAProxy's `disable-on-404` probe: the node keeps the sessions stuck to it.
    let ready = get(&router, "/api/socket/ready?draining=404").await;
    assert_eq!(
        (ready.status.as_u16(), ready.json()),
        (404, json!({"status": "draining"}))
    );
    let bad = get(&router, "/api/socket/ready?draining=200").await;
    assert_eq!(bad.status.as_u16(), 400);
    let health = get(&router, "/api/socket/health").await.json();
    assert_eq!(
        (health["status"].clone(), health["draining"].clone()),
        (json!("draining"), json!(true))
    );

    // New clients are refused, over both transports; the one already here goes on.
    let (status, body) = raw_http(addr, "GET", "/io/?EIO=4&transport=polling", "").await;
    assert_eq!(
        (status, body.as_str()),
        (503, r#"{"code":7,"message":"Server draining"}"#)
    );
    let mut ws = TcpStream::connect(addr).await.unwrap();
    ws.write_all(
        format!(
            "GET /io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = vec![0; 12];
    ws.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 503");
    client.write(r#"42["ping-me"]"#).await;
    assert_eq!(
        get(&router, "/api/socket/info").await.status,
        401,
        "the key is still required"
    );
    app.stop().await;
}

#[tokio::test]
async fn readiness_is_503_starting_before_the_socket_server_is_up() {
    let app = start(false).await;
    let router = api(&app, Some("k3y"));
    let ready = get(&router, "/api/socket/ready").await;
    assert_eq!(
        (ready.status.as_u16(), ready.json()),
        (503, json!({"status": "starting"}))
    );
    // Not starting up is never the soft stop of a drain, whatever the probe asks.
    let ready = get(&router, "/api/socket/ready?draining=404").await;
    assert_eq!(ready.status.as_u16(), 503);
    app.stop().await;
}

#[tokio::test]
async fn a_known_path_with_another_method_answers_405_with_allow() {
    let app = start(true).await;
    let router = api(&app, Some("k3y"));
    let cases: &[(Method, &str, &[&str])] = &[
        (Method::POST, "/api/socket/info", &["GET", "HEAD"]),
        (Method::GET, "/api/socket/broadcast", &["POST"]),
        (Method::DELETE, "/api/health-check", &["GET", "HEAD"]),
        (Method::PUT, "/api/socket/client/abc/join", &["POST"]),
        (Method::OPTIONS, "/api/socket/broadcast", &["POST"]),
    ];
    for (method, uri, allowed) in cases {
        let answer = call(
            &router,
            Request::builder()
                .method(method)
                .uri(*uri)
                .header("host", "test.local")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_envelope(&answer, 405, "Method Not Allowed", uri);
        let allow = answer
            .headers
            .get("allow")
            .unwrap_or_else(|| panic!("{method} {uri}: no Allow header"))
            .to_str()
            .unwrap()
            .to_string();
        let mut got: Vec<&str> = allow.split(',').map(str::trim).collect();
        got.sort_unstable();
        assert_eq!(got, *allowed, "{method} {uri}");
    }
    app.stop().await;
}

#[tokio::test]
async fn cors_is_opt_in() {
    let app = start(true).await;
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/socket/broadcast")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-api-key")
            .body(Body::empty())
            .unwrap()
    };
    let simple = |origin: &str| {
        Request::get("/api/health-check")
            .header("origin", origin)
            .body(Body::empty())
            .unwrap()
    };
    let header =
        |a: &Answer, name: &str| a.headers.get(name).map(|v| v.to_str().unwrap().to_string());
    let with = |origins: Option<Vec<&str>>| {
        router(
            ApiConfig {
                cors_origins: origins.map(|o| o.into_iter().map(String::from).collect()),
                ..ApiConfig::default()
            },
            app.handle().clone(),
        )
    };

    // The default: no page on another origin may read an answer, let alone send with the
    // user's cookies.
    let default = with(None);
    for answer in [
        call(&default, preflight("http://evil.example")).await,
        call(&default, simple("http://evil.example")).await,
    ] {
        assert_eq!(header(&answer, "access-control-allow-origin"), None);
        assert_eq!(header(&answer, "access-control-allow-credentials"), None);
    }

    // `*`: any origin, never with credentials.
    let any = with(Some(vec!["*"]));
    let answer = call(&any, preflight("http://app.example")).await;
    assert!(answer.status.is_success(), "{}", answer.status);
    assert_eq!(
        header(&answer, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(header(&answer, "access-control-allow-credentials"), None);

    // A list: those origins, with credentials.
    let listed = with(Some(vec!["http://good.example", "bad\norigin"]));
    let good = call(&listed, preflight("http://good.example")).await;
    assert!(good.status.is_success(), "{}", good.status);
    assert_eq!(
        header(&good, "access-control-allow-origin").as_deref(),
        Some("http://good.example")
    );
    assert_eq!(
        header(&good, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(
        header(&good, "access-control-max-age").as_deref(),
        Some("86400")
    );
    assert!(
        header(&good, "access-control-allow-headers")
            .unwrap()
            .contains("x-api-key")
    );
    good.request_id();
    let simple_good = call(&listed, simple("http://good.example")).await;
    assert_eq!(
        header(&simple_good, "access-control-allow-origin").as_deref(),
        Some("http://good.example")
    );
    assert!(
        header(&simple_good, "access-control-expose-headers")
            .unwrap()
            .contains("x-request-id")
    );
    let other = call(&listed, preflight("http://evil.example")).await;
    assert_eq!(header(&other, "access-control-allow-origin"), None);
    app.stop().await;
}

#[tokio::test]
async fn openapi_document_and_explorer() {
    let app = start(true).await;
    let router = api(&app, None);
    let answer = get(&router, "/api/doc/openapi.json").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "application/json");
    let doc = answer.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "api-test REST API");
    let expected = [
        ("/api/socket/info", "get"),
        ("/api/socket/clients", "get"),
        ("/api/socket/broadcast", "post"),
        ("/api/socket/room/{roomId}/send", "post"),
        ("/api/socket/client/{clientId}/send", "post"),
        ("/api/socket/client/{clientId}/join", "post"),
        ("/api/socket/client/{clientId}/leave", "post"),
        ("/api/socket/client/{clientId}/rooms", "get"),
        ("/api/socket/drain", "post"),
        ("/api/socket/ready", "get"),
        ("/api/socket/client/{clientId}", "delete"),
        ("/api/socket/rooms", "get"),
        ("/api/socket/room/{roomId}/clients", "get"),
        ("/api/socket/health", "get"),
        ("/api/health-check", "get"),
        ("/api/health-check/ping", "post"),
        ("/api/doc/openapi.json", "get"),
        ("/api/doc/explorer", "get"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), expected.len(), "{:?}", paths.keys());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (path, method) in expected {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path}");
        assert!(op["operationId"].is_string());
        assert!(op["responses"]["200"].is_object());
        // Every path parameter is declared, every reference resolves.
        for name in path
            .split('{')
            .skip(1)
            .map(|s| s.split('}').next().unwrap())
        {
            assert!(
                op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "path"),
                "{path}: {name}"
            );
        }
    }
    let text = doc.to_string();
    for reference in text.split("#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "unresolved {name}");
    }
    assert!(doc["components"]["securitySchemes"]["ApiKeyHeader"].is_object());
    assert!(doc["components"]["securitySchemes"]["BearerAuth"].is_object());
    assert!(schemas["ErrorEnvelope"]["properties"]["error"].is_object());
    // Without an API key configured, no operation demands one.
    assert!(!text.contains("\"security\""));
    // Every endpoint that looks a client up documents "Client not found".
    for path in [
        "/api/socket/client/{clientId}/send",
        "/api/socket/client/{clientId}/join",
        "/api/socket/client/{clientId}/leave",
        "/api/socket/client/{clientId}/rooms",
    ] {
        let op = doc["paths"][path]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap();
        assert!(
            op["responses"]["200"]
                .to_string()
                .contains("ClientNotFound"),
            "{path}"
        );
    }

    let page = get(&router, "/api/doc/explorer").await;
    assert_eq!(page.status, 200);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text.contains("openapi.json"));
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "no CDN"
    );
    app.stop().await;
}

#[tokio::test]
async fn base_path_is_configurable() {
    let app = start(true).await;
    for (base, prefix) in [
        ("/", ""),
        ("", ""),
        ("v1/", "/v1"),
        ("/admin/api", "/admin/api"),
    ] {
        let router = router(
            ApiConfig {
                base_path: base.into(),
                ..ApiConfig::default()
            },
            app.handle().clone(),
        );
        let answer = get(&router, &format!("{prefix}/health-check")).await;
        assert_eq!(answer.status, 200, "{base}");
        let doc = get(&router, &format!("{prefix}/doc/openapi.json"))
            .await
            .json();
        assert!(
            doc["paths"][format!("{prefix}/socket/info")].is_object(),
            "{base}"
        );
        assert_eq!(
            get(&router, "/api/health-check").await.status,
            404,
            "{base}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn every_request_is_logged_with_its_id() {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let app = start(true).await;
    let router = api(&app, None);
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // Other tests of this process make and drop subscribers on their threads meanwhile: make
    // every log call site ask this one again, so that none stays cached as unwanted.
    tracing::callsite::rebuild_interest_cache();
    let answer = call(
        &router,
        Request::get("/api/socket/nope")
            .header("x-request-id", "log-me-1")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    // A handler's own log line carries the id too.
    post(&router, "/api/socket/broadcast", r#"{"topic":"logged"}"#).await;
    drop(guard);
    assert_eq!(answer.status, 404);
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let line = logs
        .lines()
        .find(|l| l.contains("log-me-1"))
        .unwrap_or_else(|| panic!("no line with the id: {logs}"));
    for part in [
        "request_id=log-me-1",
        "method=GET",
        "path=/api/socket/nope",
        "status=404",
        "duration_ms=",
    ] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    assert!(
        logs.lines()
            .any(|l| l.contains("Message emitted") && l.contains("request_id=")),
        "{logs}"
    );
    app.stop().await;
}

async fn delete(router: &Router, uri: &str) -> Answer {
    call(
        router,
        Request::delete(uri)
            .header("host", "test.local")
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn rooms_of_the_cluster_their_clients_and_a_disconnect() {
    let app = start(true).await;
    let router = api(&app, None);
    let a = PollingClient::connect(app.local_addr()).await;
    let b = PollingClient::connect(app.local_addr()).await;
    for (client, rooms) in [
        (&a, r#"{"rooms":["alpha","beta"]}"#),
        (&b, r#"{"rooms":["beta"]}"#),
    ] {
        post(
            &router,
            &format!("/api/socket/client/{}/join", client.id),
            rooms,
        )
        .await;
    }

    let rooms = get(&router, "/api/socket/rooms").await;
    assert_eq!(rooms.status.as_u16(), 200);
    assert_eq!(
        rooms.json(),
        json!({"count": 4, "rooms": [
            {"room": "alpha", "size": 1},
            {"room": "beta", "size": 2},
            {"room": "io-default", "size": 2},
            {"room": "io-notification", "size": 2},
        ]}),
        "by name, own-id rooms left out"
    );
    let mut both = vec![a.id.clone(), b.id.clone()];
    both.sort();
    assert_eq!(
        get(&router, "/api/socket/room/beta/clients").await.json(),
        json!({"room": "beta", "count": 2, "clients": both})
    );
    assert_eq!(
        get(&router, "/api/socket/room/nowhere/clients")
            .await
            .json(),
        json!({"room": "nowhere", "count": 0, "clients": []})
    );

    // Disconnecting A: it gets the namespace's DISCONNECT, and is gone from the rooms.
    let answer = delete(&router, &format!("/api/socket/client/{}", a.id)).await;
    assert_eq!(
        answer.json(),
        json!({"success": true, "message": format!("Client {} disconnected", a.id)})
    );
    a.read_until(|packet| packet == "41").await;
    assert_eq!(
        get(&router, "/api/socket/room/beta/clients").await.json()["clients"],
        json!([b.id])
    );
    assert_eq!(
        get(&router, "/api/socket/rooms").await.json()["rooms"][0],
        json!({"room": "beta", "size": 1})
    );
    for id in [a.id.as_str(), "nobody"] {
        assert_eq!(
            delete(&router, &format!("/api/socket/client/{id}"))
                .await
                .json(),
            json!({"success": false, "message": format!("Client not found: {id}")})
        );
    }
    app.stop().await;
}
