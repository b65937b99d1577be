//! A client's acknowledgement is answered at most once, whichever way a handler answers it:
//! `Event::ack` again, or `take_ack` after an answer, send nothing more.

mod common;

use common::Polling;

use ignis_socketio::SocketIo;

#[tokio::test]
async fn an_acknowledgement_is_answered_once() {
    let io = SocketIo::builder().build();
    io.ns("/", |socket| async move {
        socket.on_sync("twice", |_, event| {
            assert!(event.wants_ack());
            event.ack("first");
            assert!(!event.wants_ack());
            event.ack("second");
            assert!(event.take_ack().is_none());
        });
        socket.on_sync("taken", |_, event| {
            let Some(ack) = event.take_ack() else {
                panic!("the client asked for an acknowledgement");
            };
            assert!(!event.wants_ack());
            assert!(event.take_ack().is_none());
            event.ack("not sent");
            ack.send("later");
        });
        socket.on_sync("none", |_, event| {
            assert!(!event.wants_ack());
            assert!(event.take_ack().is_none());
            event.ack("nobody asked");
        });
    });
    let client = Polling::joined(common::serve(&io).await).await;
    client.post(r#"421["twice"]"#).await;
    client.post(r#"42["none"]"#).await;
    client.post(r#"422["taken"]"#).await;
    // A last acknowledged event: everything the ones before sent comes before its answer.
    client.post(r#"423["twice"]"#).await;
    let seen = client.until(|p| p.starts_with("433")).await;
    let acks: Vec<&str> = seen
        .iter()
        .map(String::as_str)
        .filter(|p| p.starts_with("43"))
        .collect();
    assert_eq!(
        acks,
        [r#"431["first"]"#, r#"432["later"]"#, r#"433["first"]"#],
        "{seen:?}"
    );
}
