//! The per-socket limits, from a raw Engine.IO long-polling client: events past the rate are
//! refused and a flood loses its connection, oversized events are refused, joins stop at the
//! room limit and never reach another socket's own room. Other clients are served throughout.

mod common;

use common::{Member, WAIT};

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use ignis_socketio::{EventRate, JoinError, SocketIo, SocketIoBuilder, Value};

/// A Socket.IO client over long-polling, on the main namespace.
type Client = Member;

impl Client {
    /// Emits `echo` with an ack and waits for the answer.
    async fn echo(&self, id: u64, text: &str) -> String {
        self.post(&format!("42{id}[\"echo\",\"{text}\"]")).await;
        let prefix = format!("43{id}");
        let seen = self.until(|p| p.starts_with(&prefix)).await;
        seen.last().unwrap().clone()
    }
}

/// A server whose `echo` acknowledges with its arguments and whose `join` acknowledges with
/// the outcome of `Socket::try_join`.
async fn serve(builder: SocketIoBuilder) -> (SocketIo, SocketAddr) {
    let io = builder.build();
    io.ns("/", |socket| async move {
        socket.on_sync("echo", |_, mut event| {
            let args = std::mem::take(&mut event.args);
            event.ack(args);
        });
        socket.on_sync("join", |socket, event| {
            let rooms: Vec<String> = event.data().unwrap_or_default();
            let outcome = match socket.try_join(rooms) {
                Ok(()) => "ok".to_string(),
                Err(JoinError::TooManyRooms { asked, max }) => format!("too many {asked}/{max}"),
                Err(JoinError::Refused(refused)) => refused
                    .iter()
                    .map(|r| format!("{}:{}", r.room, r.reason.code()))
                    .collect::<Vec<_>>()
                    .join(","),
            };
            let held: Vec<Value> = socket
                .rooms()
                .iter()
                .map(|r| Value::from(r.to_string()))
                .collect();
            event.ack(vec![Value::from(outcome), Value::Array(held)]);
        });
    });
    let addr = common::serve(&io).await;
    (io, addr)
}

#[tokio::test]
async fn events_past_the_rate_are_refused_and_a_flood_loses_its_connection() {
    let (io, addr) = serve(SocketIo::builder().event_rate_limit(Some(EventRate::new(1, 5)))).await;
    let flooder = Client::join(addr, "/socket.io/").await;
    let other = Client::join(addr, "/socket.io/").await;

    // Forty events at once: the burst is served, the rest refused, and past `burst`
    // refusals the connection goes.
    let packets: Vec<String> = (1..=40).map(|i| format!("42{i}[\"echo\",{i}]")).collect();
    flooder.post(&packets.join("\u{1e}")).await;
    let seen = flooder.until_closed().await;
    let echoed = seen
        .iter()
        .take_while(|p| !p.contains("RATE_LIMITED"))
        .filter(|p| p.starts_with("43"))
        .count();
    assert!(
        // The burst, and on a host slow enough to let a second pass since the connect at most
        // one refill of it, is served first.
        (5..=10).contains(&echoed),
        "the burst is served first: {seen:?}"
    );
    let refused = seen.iter().filter(|p| p.contains("RATE_LIMITED")).count();
    assert!(refused >= 6, "{seen:?}");
    assert!(
        seen.iter().filter(|p| p.contains("RATE_LIMITED")).all(|p| p
            .contains(r#"{"error":{"event":"echo","code":"RATE_LIMITED","message":"too many events: at most 1 per second, 5 at once"#)),
        "each refusal answers its ack: {seen:?}"
    );
    let disconnect = seen.iter().position(|p| p == "41").expect("DISCONNECT");
    assert!(seen[disconnect - 1].contains("; disconnected"), "{seen:?}");
    assert!(
        seen.last().is_some_and(|p| p == "1" || p.starts_with("<4")),
        "the connection is closed: {seen:?}"
    );
    // It cannot come back on the same session.
    assert_eq!(flooder.try_post("40").await, 400);

    // Another client is served as before.
    assert_eq!(other.echo(1, "still here").await, r#"431["still here"]"#);
    let counters = io.abuse_counters();
    assert_eq!(counters.events_rate_limited, refused as u64);
    assert_eq!(counters.flood_disconnects, 1);
}

#[tokio::test]
async fn a_client_over_its_rate_but_not_flooding_is_refused_and_stays() {
    let (io, addr) = serve(SocketIo::builder().event_rate_limit(Some(EventRate::new(1, 3)))).await;
    let client = Client::join(addr, "/socket.io/").await;
    let packets: Vec<String> = (1..=5).map(|i| format!("42{i}[\"echo\",{i}]")).collect();
    client.post(&packets.join("\u{1e}")).await;
    let seen = client.until(|p| p.starts_with("435")).await;
    assert!(
        seen.iter()
            .any(|p| p.starts_with("434") && p.contains("RATE_LIMITED"))
    );
    assert!(seen.last().unwrap().contains("RATE_LIMITED"));
    // Once a token is earned again (a second at this rate), events are served again; one try
    // per second keeps the refusals below a flood.
    let served = async {
        let mut id = 10;
        loop {
            tokio::time::sleep(Duration::from_millis(1_100)).await;
            id += 1;
            if client.echo(id, "later").await == format!("43{id}[\"later\"]") {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, served)
        .await
        .expect("served again");
    assert_eq!(io.abuse_counters().flood_disconnects, 0);
}

#[tokio::test]
async fn events_over_max_event_payload_are_refused() {
    let (io, addr) = serve(
        SocketIo::builder()
            .event_rate_limit(None)
            .max_event_payload(100),
    )
    .await;
    let client = Client::join(addr, "/socket.io/").await;
    let big = "x".repeat(200);
    let refused = client.echo(1, &big).await;
    assert!(
        refused.starts_with(
            r#"431[{"error":{"event":"echo","code":"PAYLOAD_TOO_LARGE","message":"event of "#
        ),
        "{refused}"
    );
    assert_eq!(client.echo(2, "small").await, r#"432["small"]"#);

    // A binary event is measured with its attachments.
    let b64 = base64::engine::general_purpose::STANDARD;
    let attachment = format!("b{}", b64.encode([7u8; 80]));
    client
        .post(&format!(
            "451-3[\"echo\",{{\"_placeholder\":true,\"num\":0}}]\u{1e}{attachment}"
        ))
        .await;
    let seen = client.until(|p| p.starts_with("433")).await;
    assert!(
        seen.last().unwrap().contains("PAYLOAD_TOO_LARGE"),
        "{seen:?}"
    );
    assert_eq!(client.echo(4, "still here").await, r#"434["still here"]"#);

    // One whose attachments pass the limit before it is whole is not held: the client is
    // told, then disconnected.
    client
        .post(&format!(
            "452-5[\"echo\",{{\"_placeholder\":true,\"num\":0}},{{\"_placeholder\":true,\"num\":1}}]\u{1e}{attachment}\u{1e}{attachment}"
        ))
        .await;
    let seen = client.until_closed().await;
    assert!(
        seen.iter()
            .any(|p| p.starts_with(r#"42["error",{"event":"","code":"PAYLOAD_TOO_LARGE""#)),
        "{seen:?}"
    );
    assert!(seen.iter().any(|p| p == "41"), "{seen:?}");
    assert_eq!(io.abuse_counters().payloads_too_large, 3);
}

#[tokio::test]
async fn joins_stop_at_the_room_limit_and_never_reach_another_sockets_room() {
    let (io, addr) = serve(SocketIo::builder().max_rooms_per_socket(4)).await;
    let a = Client::join(addr, "/socket.io/").await;
    let b = Client::join(addr, "/socket.io/").await;

    // Far more rooms than the limit: refused before any is looked at.
    let many: Vec<String> = (0..80_000).map(|i| format!("\"r{i}\"")).collect();
    a.post(&format!("421[\"join\",[{}]]", many.join(","))).await;
    let seen = a.until(|p| p.starts_with("431")).await;
    assert_eq!(
        seen.last().unwrap(),
        &format!(r#"431["too many 80000/4",["{}"]]"#, a.id)
    );
    // Meanwhile another client is served.
    assert_eq!(b.echo(1, "hi").await, r#"431["hi"]"#);

    // Within the limit: joined in order up to it, the rest named with the reason; another
    // socket's id is refused whatever the limit.
    a.post(r#"422["join",["x","y"]]"#).await;
    let seen = a.until(|p| p.starts_with("432")).await;
    assert_eq!(
        seen.last().unwrap(),
        &format!(r#"432["ok",["{}","x","y"]]"#, a.id)
    );
    a.post(&format!("423[\"join\",[\"{}\",\"x\",\"z\",\"w\"]]", b.id))
        .await;
    let seen = a.until(|p| p.starts_with("433")).await;
    assert_eq!(
        seen.last().unwrap(),
        &format!(
            r#"433["{}:SOCKET_ID_ROOM,w:ROOM_LIMIT",["{}","x","y","z"]]"#,
            b.id, a.id
        )
    );

    // Through the adapter (what a REST join does): the same rule.
    io.to(a.id.as_str())
        .sockets_join(vec![b.id.clone()])
        .await
        .unwrap();
    let ns = io.main_namespace();
    let sid_a = ignis_socketio::Sid::parse(&a.id).unwrap();
    let rooms: Vec<String> = ns
        .get_socket(sid_a)
        .unwrap()
        .rooms()
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        rooms,
        vec![a.id.clone(), "x".into(), "y".into(), "z".into()]
    );
    let in_b: Vec<String> = io
        .to(b.id.as_str())
        .fetch_sockets()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id.to_string())
        .collect();
    assert_eq!(in_b, vec![b.id.clone()], "b's room holds b alone");

    let counters = io.abuse_counters();
    assert_eq!(counters.rooms_refused, 80_000 + 1);
    assert_eq!(counters.socket_id_rooms_refused, 2);
}
