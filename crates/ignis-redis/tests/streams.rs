//! The streams adapter against a real Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`):
//! two Ignis servers in one process on a stream and channels no other run uses, with real
//! Socket.IO clients; the stream's entries as Node writes them; sessions kept in Redis and
//! restored on the other server with the packets they missed.

use std::sync::Arc;
use std::time::Duration;

use cluster_common::Node;
use ignis_client::{Client, Socket, Value as ClientValue};
use ignis_redis::{StreamsAdapterConfig, StreamsAdapterFactory};
use ignis_socketio::proto::socketio::PacketKind;
use ignis_socketio::proto::value::Map;
use ignis_socketio::{RecoveryConfig, Room, SessionData, Sid, SocketIo, Value};
use tokio::sync::mpsc;

mod cluster_common;
#[allow(dead_code)]
mod common;

fn config(prefix: &str) -> StreamsAdapterConfig {
    StreamsAdapterConfig {
        stream_name: format!("{prefix}-stream"),
        channel_prefix: prefix.to_string(),
        session_key_prefix: format!("{prefix}:session:"),
        requests_timeout: Duration::from_secs(3),
        block_time: Duration::from_millis(500),
        ..StreamsAdapterConfig::default()
    }
}

async fn node(prefix: &str, name: &'static str) -> Node {
    let conn = common::connect("Redis 6.2 or later").await;
    let factory = StreamsAdapterFactory::new(conn.clone(), config(prefix)).unwrap();
    assert!(factory.reading(Duration::from_secs(5)).await);
    let io = SocketIo::builder()
        .adapter(factory)
        .connection_state_recovery(RecoveryConfig::default())
        .build();
    let node = cluster_common::serve(io, conn).await;
    node.ns
        .on_server_event("who", move |_| async move { Some(Value::from(name)) });
    node
}

/// A client that keeps the offsets of what it gets.
struct Recorder {
    _socket: Socket,
    events: mpsc::UnboundedReceiver<(String, Vec<ClientValue>, Option<String>)>,
}

async fn client(node: &Node) -> Recorder {
    let socket = Client::builder(node.url.as_str())
        .connect("/")
        .await
        .expect("the client connects");
    let (tx, events) = mpsc::unbounded_channel();
    socket.on_any(move |event| {
        let _ = tx.send((event.name.clone(), event.args.clone(), event.offset.clone()));
    });
    Recorder {
        _socket: socket,
        events,
    }
}

impl Recorder {
    /// The next event is `name(arg)`; its offset.
    async fn expect(&mut self, name: &str, arg: &str) -> Option<String> {
        let (got, args, offset) = tokio::time::timeout(Duration::from_secs(5), self.events.recv())
            .await
            .expect("an event within 5 s")
            .expect("the client is alive");
        assert_eq!(
            (got.as_str(), args),
            (name, vec![ClientValue::from(arg)]),
            "expected {name}({arg})"
        );
        offset
    }
}

async fn stream_entries(prefix: &str) -> Vec<(String, Vec<(String, String)>)> {
    let client = redis::Client::open(common::redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let reply: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(format!("{prefix}-stream"))
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .unwrap();
    reply
}

#[tokio::test]
async fn two_nodes_share_a_stream() {
    let prefix = common::random_prefix("ignis-rs-streams");
    let one = node(&prefix, "one").await;
    let two = node(&prefix, "two").await;
    assert_eq!(one.ns.adapter().server_count().await.unwrap(), 2);

    let mut p1 = cluster_common::peer(&one).await;
    let mut p2 = cluster_common::peer(&two).await;
    // With recovery on, each event carries its entry id, which `Peer` leaves out.
    cluster_common::broadcasts_cross(&one, &two, &mut p1, &mut p2, "all").await;

    // Rooms, from either side.
    p2.join("room").await;
    one.ns.to("room").emit("room", "to-room").unwrap();
    p2.expect("room", "to-room").await;
    one.ns.operators().emit("marker", "after-room").unwrap();
    p1.expect("marker", "after-room").await;
    p2.expect("marker", "after-room").await;

    // Utility methods across the nodes.
    let all = one.ns.operators().fetch_sockets().await.unwrap();
    assert_eq!(all.len(), 2);
    let id2 = p2.id();
    one.ns
        .operators()
        .to(id2.clone())
        .sockets_join("joined")
        .await
        .unwrap();
    let in_joined = one.ns.to("joined").fetch_sockets().await.unwrap();
    assert_eq!(in_joined.len(), 1);
    assert_eq!(in_joined[0].id.as_str(), id2);
    one.ns.to("joined").emit("room", "to-joined").unwrap();
    p2.expect("room", "to-joined").await;
    one.ns.operators().sockets_leave("joined").await.unwrap();
    assert!(
        one.ns
            .to("joined")
            .fetch_sockets()
            .await
            .unwrap()
            .is_empty()
    );

    // Server-side emit with acknowledgements: the other node answers.
    let answers = one
        .ns
        .adapter()
        .server_side_emit(
            &one.ns,
            vec![Value::from("who")],
            Some(Duration::from_secs(3)),
        )
        .await
        .unwrap();
    assert_eq!(answers, vec![Value::from("two")]);

    // The entries are Node's: uid, nsp, type and JSON data.
    let entries = stream_entries(&prefix).await;
    let (_, fields) = entries
        .iter()
        .find(|(_, f)| {
            f.iter()
                .any(|(k, v)| k == "data" && v.contains("all-from-one"))
        })
        .expect("the broadcast is in the stream");
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["uid", "nsp", "type", "data"]);
    assert_eq!(fields[1].1, "/");
    assert_eq!(fields[2].1, "3");
    assert!(
        fields[3]
            .1
            .starts_with("{\"packet\":{\"type\":2,\"data\":[\"hello\",\"all-from-one\"]")
    );

    // An entry written as a Node node writes it reaches the sockets of both.
    let client = redis::Client::open(common::redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(format!("{prefix}-stream"))
        .arg("MAXLEN")
        .arg("~")
        .arg(10_000)
        .arg("*")
        .arg("uid")
        .arg("0123456789abcdef")
        .arg("nsp")
        .arg("/")
        .arg("type")
        .arg("3")
        .arg("data")
        .arg(r#"{"packet":{"type":2,"data":["hello","from-node"],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}}"#)
        .query_async(&mut c)
        .await
        .unwrap();
    p1.expect("hello", "from-node").await;
    p2.expect("hello", "from-node").await;

    // Disconnect across the nodes.
    one.ns
        .operators()
        .to(id2)
        .disconnect_sockets(true)
        .await
        .unwrap();
    cluster_common::eventually(Duration::from_secs(5), "the socket of two is gone", || {
        let ns = Arc::clone(&two.ns);
        async move {
            ns.operators()
                .local()
                .fetch_sockets()
                .await
                .unwrap()
                .is_empty()
        }
    })
    .await;
    drop(p1);
}

#[tokio::test]
async fn a_session_restores_on_the_other_node_with_what_it_missed() {
    let prefix = common::random_prefix("ignis-rs-streams");
    let one = node(&prefix, "one").await;
    let two = node(&prefix, "two").await;
    let mut watcher = client(&one).await;
    let mut on_two = client(&two).await;

    one.ns.operators().emit("m", "m0").unwrap();
    let offset = watcher.expect("m", "m0").await.expect("an offset");
    on_two.expect("m", "m0").await;

    // A socket of node one that left after m0, in room-a.
    let sid = Sid::generate();
    let mut values = Map::new();
    values.insert("ignis:authenticated", true);
    let room = |s: &str| -> Room { Arc::from(s) };
    let session = SessionData {
        sid,
        pid: Arc::from("pid-streams-test"),
        rooms: vec![room(sid.as_str()), room("room-a")],
        data: Value::from("its data"),
        values: values.clone(),
    };
    one.ns.adapter().persist_session(&one.ns, session);

    // Each in the stream before the next is sent: two nodes' XADDs would otherwise race, and
    // the stream's order (the order missed packets come back in) is the order Redis ran them.
    one.ns.to("room-a").emit_confirmed("m", "m1").await.unwrap();
    one.ns.to("room-b").emit_confirmed("m", "m2").await.unwrap();
    two.ns
        .except("room-a")
        .emit_confirmed("m", "m3")
        .await
        .unwrap();
    two.ns.operators().emit_confirmed("m", "m4").await.unwrap();
    for m in ["m1", "m2", "m3", "m4"] {
        if m != "m1" && m != "m2" {
            on_two.expect("m", m).await;
        }
    }
    // Node two has read everything: the session and the packets come back there.
    let key = format!("{prefix}:session:pid-streams-test");
    let client = redis::Client::open(common::redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    cluster_common::eventually(Duration::from_secs(5), "the session is kept", || {
        let mut c = c.clone();
        let key = key.clone();
        async move {
            redis::cmd("EXISTS")
                .arg(&key)
                .query_async::<bool>(&mut c)
                .await
                .unwrap()
        }
    })
    .await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        ttl > 100_000 && ttl <= 120_000,
        "expires with maxDisconnectionDuration: {ttl}"
    );

    let restored = two
        .ns
        .adapter()
        .restore_session(&two.ns, "pid-streams-test", &offset)
        .await
        .expect("restored on the other node");
    assert_eq!(restored.sid, sid);
    assert_eq!(restored.data, Value::from("its data"));
    assert_eq!(restored.values, values);
    assert_eq!(restored.rooms, vec![room(sid.as_str()), room("room-a")]);
    // Taken: a second restore finds nothing.
    assert!(
        two.ns
            .adapter()
            .restore_session(&two.ns, "pid-streams-test", &offset)
            .await
            .is_none()
    );

    let missed = two
        .ns
        .adapter()
        .missed_packets(&two.ns, &restored.rooms, &offset)
        .await
        .expect("the packets are known");
    let got: Vec<(String, String)> = missed
        .iter()
        .map(|p| match &p.kind {
            PacketKind::Event {
                event,
                args,
                id: None,
            } => (
                format!(
                    "{}:{}",
                    event.as_value().as_str().unwrap_or(""),
                    args[0].as_str().unwrap_or("")
                ),
                args.last()
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
            other => panic!("not an event: {other:?}"),
        })
        .collect();
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["m:m1", "m:m4"]);
    assert!(
        got[0].1 > offset && got[1].1 > got[0].1,
        "offsets in order: {got:?}"
    );

    // An unknown offset, or one that is not an entry id, restores nothing.
    let sessionless = SessionData {
        sid: Sid::generate(),
        pid: Arc::from("pid-streams-test-2"),
        rooms: Vec::new(),
        data: Value::Null,
        values: Map::new(),
    };
    one.ns.adapter().persist_session(&one.ns, sessionless);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for bad in ["not-an-id", "1-1"] {
        assert!(
            two.ns
                .adapter()
                .restore_session(&two.ns, "pid-streams-test-2", bad)
                .await
                .is_none(),
            "{bad}"
        );
    }
    drop((watcher, on_two));
}

/// The ids of the stream readers' connections, by their client name.
async fn reader_connections(
    c: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(c)
        .await
        .unwrap();
    let name = format!("name=ignis-stream-reader:{prefix}-stream ");
    list.lines()
        .filter(|l| l.contains(&name))
        .filter_map(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn readers_resume_where_they_stopped_after_their_connection_is_killed() {
    let prefix = common::random_prefix("ignis-rs-streams");
    let one = node(&prefix, "one").await;
    let two = node(&prefix, "two").await;
    let mut on_one = client(&one).await;
    let mut on_two = client(&two).await;
    one.ns.operators().emit("m", "before").unwrap();
    on_one.expect("m", "before").await;
    on_two.expect("m", "before").await;

    let client = redis::Client::open(common::redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let readers = reader_connections(&mut c, &prefix).await;
    assert_eq!(readers.len(), 2, "one reader per node");
    for id in &readers {
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    // Added while neither node reads: both get all of it, in order, once they read again.
    let sent: Vec<String> = (0..20).map(|i| format!("during-{i}")).collect();
    for m in &sent {
        one.ns.operators().emit("m", m).unwrap();
        // Spread over the readers' reconnection (their first retry is 100 ms away).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for m in &sent {
        on_one.expect("m", m).await.expect("an offset");
        on_two.expect("m", m).await;
    }
    let fresh = reader_connections(&mut c, &prefix).await;
    assert_eq!(fresh.len(), 2, "both readers are back");
    assert!(fresh.iter().all(|id| !readers.contains(id)));
}
