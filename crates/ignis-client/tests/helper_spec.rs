//! Spec §14.2: the unit tests of the reference (K1–K10 constants, C1–C40 client helper)
//! translated to the Rust API, against an in-process server on `/io`, plus the DESIGN.md
//! decisions #22–#26.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{AuthMode, SpecServer, closed_port, obj, until, within};
use ignis_client::constants::{self, ClientState, binding_keys};
use ignis_client::{Client, HelperError, HelperOptions, SocketIoClientHelper, Subscription, Value};
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// What the five callbacks saw.
#[derive(Default)]
struct Calls {
    connected: AtomicUsize,
    disconnected: Mutex<Vec<String>>,
    errors: Mutex<Vec<String>>,
    authenticated: Mutex<Vec<Value>>,
    unauthenticated: Mutex<Vec<String>>,
}

fn options(url: &str, calls: &Arc<Calls>) -> HelperOptions {
    let c = Arc::clone(calls);
    let d = Arc::clone(calls);
    let e = Arc::clone(calls);
    let a = Arc::clone(calls);
    let u = Arc::clone(calls);
    HelperOptions::new(
        "test-client",
        Client::builder(url)
            .path("/io")
            .header("authorization", "Bearer test-token")
            .reconnection(false),
    )
    .on_connected(move || {
        c.connected.fetch_add(1, Ordering::SeqCst);
    })
    .on_disconnected(move |reason| d.disconnected.lock().push(reason.to_owned()))
    .on_error(move |err| e.errors.lock().push(err.to_string()))
    .on_authenticated(move |payload| a.authenticated.lock().push(payload.clone()))
    .on_unauthenticated(move |message| u.unauthenticated.lock().push(message.to_owned()))
}

async fn connected_helper(server: &SpecServer) -> (SocketIoClientHelper, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let helper = SocketIoClientHelper::new(options(&server.url(), &calls)).expect("helper");
    until("onConnected", || {
        calls.connected.load(Ordering::SeqCst) == 1
    })
    .await;
    (helper, calls)
}

async fn authenticated_helper(server: &SpecServer) -> (SocketIoClientHelper, Arc<Calls>) {
    let (helper, calls) = connected_helper(server).await;
    assert!(helper.authenticate());
    until("authenticated", || {
        helper.state() == ClientState::Authenticated
    })
    .await;
    (helper, calls)
}

/// A handler that counts its calls and reports each event's first argument.
fn counting(
    event: &str,
) -> (
    Subscription,
    Arc<AtomicUsize>,
    mpsc::UnboundedReceiver<Value>,
) {
    let count = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::unbounded_channel();
    let c = Arc::clone(&count);
    let sub = Subscription::sync(event, move |ev| {
        c.fetch_add(1, Ordering::SeqCst);
        let _ = tx.send(ev.args.first().cloned().unwrap_or(Value::Null));
    });
    (sub, count, rx)
}

fn hello() -> Value {
    obj(&[("message", Value::from("Hello"))])
}

/// Lets events already on the wire arrive.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

// ---- K1–K10: constants ----

#[test]
fn k1_to_k5_binding_keys() {
    let cases = [
        (binding_keys::SOCKET_IO_INSTANCE, "@app/socket-io/instance"),
        (
            binding_keys::SERVER_OPTIONS,
            "@app/socket-io/server-options",
        ),
        (
            binding_keys::REDIS_CONNECTION,
            "@app/socket-io/redis-connection",
        ),
        (
            binding_keys::AUTHENTICATE_HANDLER,
            "@app/socket-io/authenticate-handler",
        ),
        (
            binding_keys::CLIENT_CONNECTED_HANDLER,
            "@app/socket-io/client-connected-handler",
        ),
        (
            binding_keys::VALIDATE_ROOM_HANDLER,
            "@app/socket-io/validate-room-handler",
        ),
    ];
    for (got, expected) in cases {
        assert_eq!(got, expected);
    }
}

#[test]
fn k6_event_constants() {
    let cases = [
        (constants::EVENT_PING, "ping"),
        (constants::EVENT_CONNECT, "connection"),
        (constants::EVENT_DISCONNECT, "disconnect"),
        (constants::EVENT_JOIN, "join"),
        (constants::EVENT_LEAVE, "leave"),
        (constants::EVENT_AUTHENTICATE, "authenticate"),
        (constants::EVENT_AUTHENTICATED, "authenticated"),
        (constants::EVENT_UNAUTHENTICATE, "unauthenticated"),
    ];
    for (got, expected) in cases {
        assert_eq!(got, expected);
    }
}

#[test]
fn k7_room_constants() {
    assert_eq!(constants::ROOM_DEFAULT, "io-default");
    assert_eq!(constants::ROOM_NOTIFICATION, "io-notification");
}

#[test]
fn k8_state_values() {
    assert_eq!(ClientState::Unauthorized.as_str(), "unauthorized");
    assert_eq!(ClientState::Authenticating.as_str(), "authenticating");
    assert_eq!(ClientState::Authenticated.as_str(), "authenticated");
    assert_eq!(ClientState::ALL.len(), 3);
}

#[test]
fn k9_is_valid_for_the_three_states() {
    for s in ["unauthorized", "authenticating", "authenticated"] {
        assert!(ClientState::is_valid(s), "{s}");
    }
}

#[test]
fn k10_is_valid_false_otherwise() {
    for s in ["invalid", "", "UNAUTHORIZED"] {
        assert!(!ClientState::is_valid(s), "{s:?}");
    }
}

// ---- C1–C3: construction ----

#[tokio::test]
async fn c1_c2_c3_initial_state_identifier_socket() {
    let server = SpecServer::start().await;
    let calls = Arc::new(Calls::default());
    let helper =
        SocketIoClientHelper::new(options(&server.url(), &calls).auto_connect(false)).unwrap();
    assert_eq!(helper.state(), ClientState::Unauthorized);
    assert_eq!(helper.identifier(), "test-client");
    assert_eq!(helper.socket().nsp(), "/");
    assert!(!helper.connected());
}

// ---- C4–C7: connection lifecycle ----

#[tokio::test]
async fn c4_c5_auto_connects_and_on_connected_fires() {
    let server = SpecServer::start().await;
    let (helper, calls) = connected_helper(&server).await;
    assert!(helper.connected());
    assert_eq!(calls.connected.load(Ordering::SeqCst), 1);
    helper.shutdown();
}

#[tokio::test]
async fn c6_c7_disconnect_reports_reason_and_resets_state() {
    let server = SpecServer::start().await;
    let (helper, calls) = authenticated_helper(&server).await;
    helper.disconnect();
    until("onDisconnected", || !calls.disconnected.lock().is_empty()).await;
    assert_eq!(calls.disconnected.lock()[0], "io client disconnect");
    assert_eq!(helper.state(), ClientState::Unauthorized);
}

// ---- C8–C13: authentication ----

#[tokio::test]
async fn c8_authenticate_while_not_connected_is_a_no_op() {
    let port = closed_port().await;
    let calls = Arc::new(Calls::default());
    let helper =
        SocketIoClientHelper::new(options(&format!("http://127.0.0.1:{port}"), &calls)).unwrap();
    assert!(!helper.authenticate());
    assert_eq!(helper.state(), ClientState::Unauthorized);
    assert!(matches!(
        helper.authenticate_and_wait().await,
        Err(HelperError::CannotAuthenticate(
            ClientState::Unauthorized,
            false
        ))
    ));
    // The reference's port 99999 is not a port: the URL is refused up front.
    let err = SocketIoClientHelper::new(options("http://127.0.0.1:99999", &calls)).unwrap_err();
    assert!(matches!(
        err,
        HelperError::Client(ignis_client::Error::InvalidUrl(_))
    ));
}

#[tokio::test]
async fn c9_c10_authenticate_goes_authenticating_synchronously_and_reaches_the_server() {
    let server = SpecServer::start().await;
    server.set_mode(AuthMode::Silent);
    let (helper, _calls) = connected_helper(&server).await;
    assert!(helper.authenticate());
    assert_eq!(helper.state(), ClientState::Authenticating);
    let got = server.next("authenticate").await;
    assert!(got.args.is_empty(), "authenticate carries no payload");
    helper.shutdown();
}

#[tokio::test]
async fn c11_authenticated_reply() {
    let server = SpecServer::start().await;
    let (helper, calls) = authenticated_helper(&server).await;
    until("onAuthenticated", || calls.authenticated.lock().len() == 1).await;
    // Decision #25: the payload is handed over.
    let payload = calls.authenticated.lock()[0].clone();
    assert_eq!(
        payload.get("id").and_then(Value::as_str),
        helper.socket().id().as_deref()
    );
    helper.shutdown();
}

#[tokio::test]
async fn c12_unauthenticated_reply() {
    let server = SpecServer::start().await;
    server.set_mode(AuthMode::Reject);
    let (helper, calls) = connected_helper(&server).await;
    assert!(helper.authenticate());
    until("onUnauthenticated", || {
        calls.unauthenticated.lock().len() == 1
    })
    .await;
    assert_eq!(calls.unauthenticated.lock()[0], "Invalid token");
    assert_eq!(helper.state(), ClientState::Unauthorized);
    assert!(matches!(
        helper.authenticate_and_wait().await,
        Err(HelperError::Unauthenticated(m)) if m == "Invalid token"
    ));
    helper.shutdown();
}

#[tokio::test]
async fn c13_authenticate_again_when_authenticated_stays_authenticated() {
    let server = SpecServer::start().await;
    let (helper, _calls) = authenticated_helper(&server).await;
    let _ = server.next("authenticate").await;
    assert!(!helper.authenticate());
    assert_eq!(helper.state(), ClientState::Authenticated);
    assert!(
        !server
            .receives_within("authenticate", Duration::from_millis(200))
            .await
    );
    helper.shutdown();
}

// ---- C14–C19: subscriptions ----

#[tokio::test]
async fn c14_subscribe_receives_data() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    let (sub, _count, mut rx) = counting("test-event");
    assert!(helper.subscribe(sub).is_some());
    server.io.emit("test-event", hello()).unwrap();
    let got = within("test-event", rx.recv()).await.unwrap();
    assert_eq!(got, hello());
    helper.shutdown();
}

#[tokio::test]
async fn c15_double_subscribe_runs_once_by_default() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    let (sub, count, mut rx) = counting("test-event");
    assert!(helper.subscribe(sub.clone()).is_some());
    assert!(helper.subscribe(sub).is_none());
    assert_eq!(helper.subscription_count("test-event"), 1);
    server.io.emit("test-event", hello()).unwrap();
    within("test-event", rx.recv()).await;
    settle().await;
    assert_eq!(count.load(Ordering::SeqCst), 1);
    helper.shutdown();
}

#[tokio::test]
async fn c16_duplicates_allowed_run_twice() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    let (sub, count, _rx) = counting("test-event");
    assert!(
        helper
            .subscribe(sub.clone().ignore_duplicate(false))
            .is_some()
    );
    assert!(helper.subscribe(sub.ignore_duplicate(false)).is_some());
    server.io.emit("test-event", hello()).unwrap();
    until("two calls", || count.load(Ordering::SeqCst) == 2).await;
    helper.shutdown();
}

#[tokio::test]
async fn c17_unsubscribe_event() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    let (sub, count, _rx) = counting("test-event");
    helper.subscribe(sub);
    assert_eq!(helper.unsubscribe("test-event", None), 1);
    server.io.emit("test-event", hello()).unwrap();
    settle().await;
    assert_eq!(count.load(Ordering::SeqCst), 0);
    helper.shutdown();
}

#[tokio::test]
async fn c18_c19_subscribe_many_and_unsubscribe_many() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    let events = ["event-1", "event-2", "event-3"];
    let subs: Vec<_> = events.iter().map(|e| counting(e)).collect();
    let ids = helper.subscribe_many(subs.iter().map(|(s, _, _)| s.clone()));
    assert!(ids.iter().all(Option::is_some));
    for e in events {
        server.io.emit(e, hello()).unwrap();
    }
    until("all three", || {
        subs.iter().all(|(_, c, _)| c.load(Ordering::SeqCst) == 1)
    })
    .await;

    assert_eq!(helper.unsubscribe_many(events), 3);
    for e in events {
        server.io.emit(e, hello()).unwrap();
    }
    settle().await;
    assert!(subs.iter().all(|(_, c, _)| c.load(Ordering::SeqCst) == 1));
    helper.shutdown();
}

// ---- C20–C23: emit ----

#[tokio::test]
async fn c20_emit_reaches_the_server() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    helper
        .emit("client-message", &serde_json::json!({ "content": "hi" }))
        .unwrap();
    let got = server.next("client-message").await;
    assert_eq!(got.args, vec![obj(&[("content", Value::from("hi"))])]);
    helper.shutdown();
}

#[tokio::test]
async fn c21_c22_emit_errors() {
    let server = SpecServer::start().await;
    let calls = Arc::new(Calls::default());
    let idle =
        SocketIoClientHelper::new(options(&server.url(), &calls).auto_connect(false)).unwrap();
    let err = idle.emit("x", &1).unwrap_err();
    assert_eq!(err.to_string(), "Invalid socket client state to emit");
    assert_eq!(err.status_code(), 400);
    // Connection is checked before the topic.
    assert_eq!(
        idle.emit("", &1).unwrap_err().to_string(),
        "Invalid socket client state to emit"
    );

    let (helper, _calls) = connected_helper(&server).await;
    let err = helper.emit("", &1).unwrap_err();
    assert_eq!(err.to_string(), "Topic is required to emit");
    assert_eq!(err.status_code(), 400);
    helper.shutdown();
}

#[tokio::test]
async fn c23_emit_callback_runs_promptly() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    helper
        .emit_then("client-message", &1, move || {
            let _ = tx.send(());
        })
        .unwrap();
    tokio::time::timeout(Duration::from_millis(50), rx)
        .await
        .expect("callback within 50 ms")
        .unwrap();
    helper.shutdown();
}

// ---- C24–C27: rooms ----

#[tokio::test]
async fn c24_c25_join_and_leave_send_rooms() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    helper.join_rooms(&["room-1", "room-2"]);
    let join = server.next("join").await;
    assert_eq!(
        join.args,
        vec![obj(&[(
            "rooms",
            Value::Array(vec![Value::from("room-1"), Value::from("room-2")])
        )])]
    );
    helper.leave_rooms(&["room-1"]);
    let leave = server.next("leave").await;
    assert_eq!(
        leave.args,
        vec![obj(&[("rooms", Value::Array(vec![Value::from("room-1")]))])]
    );
    helper.shutdown();
}

#[tokio::test]
async fn c26_c27_rooms_while_disconnected_are_ignored() {
    let server = SpecServer::start().await;
    let calls = Arc::new(Calls::default());
    let helper =
        SocketIoClientHelper::new(options(&server.url(), &calls).auto_connect(false)).unwrap();
    helper.join_rooms(&["room-1"]);
    helper.leave_rooms(&["room-1"]);
    helper.connect();
    until("connected", || helper.connected()).await;
    assert!(
        !server
            .receives_within("join", Duration::from_millis(200))
            .await
    );
    helper.shutdown();
}

// ---- C28–C30: shutdown ----

#[tokio::test]
async fn c28_shutdown_disconnects_at_once() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    helper.shutdown();
    assert!(!helper.connected());
    until("server socket gone", || server.socket_count() == 0).await;
}

#[tokio::test]
async fn c29_shutdown_after_auth_resets_state() {
    let server = SpecServer::start().await;
    let (helper, _calls) = authenticated_helper(&server).await;
    helper.shutdown();
    assert_eq!(helper.state(), ClientState::Unauthorized);
    assert!(matches!(
        helper.connect_and_wait().await,
        Err(HelperError::Shutdown)
    ));
}

#[tokio::test]
async fn c30_shutdown_removes_custom_listeners() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    let (sub, _count, _rx) = counting("custom-event");
    helper.subscribe(sub);
    assert_eq!(helper.socket().listener_count("custom-event"), 1);
    helper.shutdown();
    assert_eq!(helper.subscription_count("custom-event"), 0);
    assert_eq!(helper.socket().listener_count("custom-event"), 0);
}

// ---- C31–C34: server ping, errors, failing handlers ----

#[tokio::test]
async fn c31_server_ping_reaches_a_subscriber() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    // Decision #22: the internal `ping` listener does not make this a duplicate.
    let (sub, _c1, mut rx1) = counting("ping");
    let (sub2, _c2, mut rx2) = counting("ping");
    assert!(helper.subscribe(sub).is_some());
    assert!(helper.subscribe(sub2.ignore_duplicate(false)).is_some());
    let time = obj(&[("time", Value::from("2026-02-14T15:54:08.123Z"))]);
    server.io.emit("ping", &time).unwrap();
    assert_eq!(within("ping", rx1.recv()).await.unwrap(), time);
    assert_eq!(within("ping", rx2.recv()).await.unwrap(), time);
    helper.shutdown();
}

#[tokio::test]
async fn c32_connection_error_calls_on_error() {
    let port = closed_port().await;
    let calls = Arc::new(Calls::default());
    let helper =
        SocketIoClientHelper::new(options(&format!("http://127.0.0.1:{port}"), &calls)).unwrap();
    until("onError", || !calls.errors.lock().is_empty()).await;
    assert!(
        calls.errors.lock()[0].contains("error"),
        "{:?}",
        calls.errors.lock()
    );
    assert!(!helper.connected());
    assert_eq!(helper.state(), ClientState::Unauthorized);
}

#[tokio::test]
async fn c33_panicking_handler_does_not_break_the_connection() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    helper.subscribe(Subscription::sync("boom", |_| {
        panic!("handler failure (expected)")
    }));
    let (sub, count, _rx) = counting("after");
    helper.subscribe(sub);
    server.io.emit("boom", &1).unwrap();
    server.io.emit("after", &1).unwrap();
    until("event after the panic", || {
        count.load(Ordering::SeqCst) == 1
    })
    .await;
    assert!(helper.connected());
    helper.emit("client-message", &1).unwrap();
    server.next("client-message").await;
    helper.shutdown();
}

#[tokio::test]
async fn c34_failing_async_handler_does_not_break_the_connection() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    helper.subscribe(Subscription::new("fail", |_| async {
        tokio::task::yield_now().await;
        Err::<(), _>("async failure (expected)")
    }));
    let (sub, count, _rx) = counting("after");
    helper.subscribe(sub);
    server.io.emit("fail", &1).unwrap();
    server.io.emit("after", &1).unwrap();
    until("event after the failure", || {
        count.load(Ordering::SeqCst) == 1
    })
    .await;
    assert!(helper.connected());
    helper.shutdown();
}

// ---- C35–C40: connect control, load, odd input ----

#[tokio::test]
async fn c35_no_auto_connect_until_connect() {
    let server = SpecServer::start().await;
    let calls = Arc::new(Calls::default());
    let helper =
        SocketIoClientHelper::new(options(&server.url(), &calls).auto_connect(false)).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!helper.connected());
    assert_eq!(server.socket_count(), 0);
    within("connect", helper.connect_and_wait()).await.unwrap();
    assert!(helper.connected());
    assert_eq!(calls.connected.load(Ordering::SeqCst), 1);
    helper.shutdown();
}

#[tokio::test]
async fn c36_disconnect_disconnects() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    helper.disconnect();
    assert!(!helper.connected());
    until("server socket gone", || server.socket_count() == 0).await;
}

#[tokio::test]
async fn c37_rapid_connect_shutdown_cycles() {
    let server = SpecServer::start().await;
    for _ in 0..5 {
        let (helper, _calls) = connected_helper(&server).await;
        assert_eq!(server.socket_count(), 1);
        helper.shutdown();
        until("server socket count back to 0", || {
            server.socket_count() == 0
        })
        .await;
    }
}

#[tokio::test]
async fn c38_ten_concurrent_clients() {
    let server = SpecServer::start().await;
    let mut helpers = Vec::new();
    for _ in 0..10 {
        helpers.push(connected_helper(&server).await.0);
    }
    until("10 server sockets", || server.socket_count() == 10).await;
    for h in &helpers {
        h.shutdown();
    }
    until("0 server sockets", || server.socket_count() == 0).await;
}

#[tokio::test]
async fn c39_c40_missing_handler_and_unknown_event() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    assert!(
        helper
            .subscribe(Subscription::without_handler("x"))
            .is_none()
    );
    assert_eq!(helper.subscription_count("x"), 0);
    assert_eq!(helper.unsubscribe("never-subscribed", None), 0);
    assert_eq!(helper.unsubscribe_many(["a", "b"]), 0);
    assert!(helper.connected());
    helper.shutdown();
}

// ---- DESIGN.md #22–#26 ----

#[tokio::test]
async fn d22_subscribing_to_internal_events_works_by_default() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    let (sub, _count, mut rx) = counting("authenticated");
    assert!(helper.subscribe(sub).is_some());
    assert!(helper.authenticate());
    let payload = within("authenticated", rx.recv()).await.unwrap();
    assert!(payload.get("id").is_some());
    helper.shutdown();
}

#[tokio::test]
async fn d23_unsubscribe_one_handler() {
    let server = SpecServer::start().await;
    let (helper, _calls) = connected_helper(&server).await;
    let (a, count_a, _ra) = counting("e");
    let (b, count_b, _rb) = counting("e");
    let id_a = helper.subscribe(a).unwrap();
    helper.subscribe(b.ignore_duplicate(false)).unwrap();
    assert_eq!(helper.unsubscribe("e", Some(id_a)), 1);
    assert_eq!(helper.subscription_count("e"), 1);
    server.io.emit("e", &1).unwrap();
    until("b runs", || count_b.load(Ordering::SeqCst) == 1).await;
    settle().await;
    assert_eq!(count_a.load(Ordering::SeqCst), 0);
    helper.shutdown();
}

#[tokio::test]
async fn d24_unsubscribe_keeps_internal_listeners() {
    let server = SpecServer::start().await;
    let (helper, calls) = connected_helper(&server).await;
    let (sub, _c, _rx) = counting("authenticated");
    helper.subscribe(sub);
    helper.unsubscribe("authenticated", None);
    helper.unsubscribe_many(["connect", "disconnect", "unauthenticated", "ping"]);
    assert!(helper.authenticate());
    until("state still tracked", || {
        helper.state() == ClientState::Authenticated
    })
    .await;
    assert_eq!(calls.authenticated.lock().len(), 1);
    helper.shutdown();
}

#[tokio::test]
async fn d25_authenticate_times_out() {
    let server = SpecServer::start().await;
    server.set_mode(AuthMode::Silent);
    let calls = Arc::new(Calls::default());
    let helper = SocketIoClientHelper::new(
        options(&server.url(), &calls).authenticate_timeout(Duration::from_millis(200)),
    )
    .unwrap();
    until("connected", || helper.connected()).await;
    let result = within("authenticate", helper.authenticate_and_wait()).await;
    assert!(
        matches!(result, Err(HelperError::AuthenticateTimeout)),
        "{result:?}"
    );
    assert_eq!(helper.state(), ClientState::Unauthorized);
    assert_eq!(calls.errors.lock().as_slice(), ["authentication timed out"]);
    // A later success still works.
    server.set_mode(AuthMode::Accept);
    let payload = within("authenticate", helper.authenticate_and_wait())
        .await
        .unwrap();
    assert!(payload.get("id").is_some());
    helper.shutdown();
}

#[tokio::test]
async fn d26_on_connected_fires_on_connect() {
    let server = SpecServer::start().await;
    let (helper, calls) = connected_helper(&server).await;
    assert_eq!(calls.connected.load(Ordering::SeqCst), 1);
    assert!(calls.errors.lock().is_empty());
    helper.shutdown();
}
