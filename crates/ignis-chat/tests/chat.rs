//! Every REST route and socket event of the chat, each scenario run on SQLite and on PostgreSQL.

mod common;

use std::time::Duration;

use common::{Backend, TestChat, assert_fails, assert_ok};
use serde_json::{Value as Json, json};

/// Runs each scenario once per database.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await
                }
            )*
        }
    };
}

on_both_databases!(
    accounts,
    rooms_and_members,
    room_messages_history_and_unread,
    joining_rooms,
    edit_and_delete,
    direct_messages,
    typing,
    presence,
    presence_of_a_dead_node,
    limits_and_bad_input,
    store_failures_are_reported,
    restart_keeps_data_and_sessions,
    history_order_within_a_millisecond,
    a_connections_events_keep_their_order,
    a_node_that_stops_takes_its_users_offline,
    socket_authentication,
    events_right_after_authenticated,
);

fn ids(list: &Json) -> Vec<String> {
    list.as_array()
        .expect("an array")
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

async fn accounts(backend: Backend) {
    let t = TestChat::start(backend).await;
    let sign_up = |body: Json| {
        let t = &t;
        async move {
            t.http("POST", "/api/auth/sign-up", None, Some(&body.to_string()))
                .await
        }
    };
    let (status, body) = sign_up(json!({
        "username": "alice", "password": "correct horse", "displayName": "Alice A."
    }))
    .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(
        body["user"],
        json!({
            "id": body["user"]["id"], "username": "alice", "displayName": "Alice A.",
            "avatar": null, "isOnline": false, "lastSeenAt": null
        })
    );
    // Taken in any letter case.
    let (status, body) = sign_up(json!({"username": "ALICE", "password": "another one"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("CONFLICT"))
    );

    for (body, field) in [
        (json!({"password": "password123"}), "username"),
        (
            json!({"username": "ab", "password": "password123"}),
            "username",
        ),
        (
            json!({"username": "a b c", "password": "password123"}),
            "username",
        ),
        (
            json!({"username": "x".repeat(51), "password": "password123"}),
            "username",
        ),
        (
            json!({"username": "bob'; DROP TABLE users;--", "password": "password123"}),
            "username",
        ),
        (
            json!({"username": 42, "password": "password123"}),
            "username",
        ),
        (json!({"username": "bob"}), "password"),
        (json!({"username": "bob", "password": "short"}), "password"),
        (
            json!({"username": "bob", "password": "p".repeat(201)}),
            "password",
        ),
        (
            json!({"username": "bob", "password": ["password123"]}),
            "password",
        ),
        (
            json!({"username": "bob", "password": "password123", "displayName": 7}),
            "displayName",
        ),
        (
            json!({"username": "bob", "password": "password123", "displayName": "d".repeat(101)}),
            "displayName",
        ),
        (json!(["not", "an", "object"]), "body"),
    ] {
        let (status, answer) = sign_up(body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert_eq!(answer["error"]["field"], json!(field), "{body} -> {answer}");
    }
    // Lengths count characters: 8 two-byte characters are a valid password.
    let (status, _) = sign_up(json!({"username": "bob", "password": "éééééééé"})).await;
    assert_eq!(status, 201);
    let (status, answer) = t
        .http("POST", "/api/auth/sign-up", None, Some("{not json"))
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("BAD_REQUEST"))
    );

    // Sign-in: either mistake gets the same answer.
    let sign_in = |body: Json| {
        let t = &t;
        async move {
            t.http("POST", "/api/auth/sign-in", None, Some(&body.to_string()))
                .await
        }
    };
    let (status, body) = sign_in(json!({"username": "alice", "password": "correct horse"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["username"], "alice");
    let (s1, wrong_password) =
        sign_in(json!({"username": "alice", "password": "wrong horse"})).await;
    let (s2, wrong_user) =
        sign_in(json!({"username": "nobody", "password": "correct horse"})).await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong_password, wrong_user);
    let (status, _) =
        sign_in(json!({"username": "alice' OR '1'='1", "password": "x' OR '1'='1"})).await;
    assert_eq!(status, 401);
    let (status, answer) = sign_in(json!({"username": "alice"})).await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (422, Some("password"))
    );

    // me, and every chat route, need a valid token.
    let (status, me) = t.get("/api/auth/me", &token).await;
    assert_eq!((status, me["username"].as_str()), (200, Some("alice")));
    for path in [
        "/api/auth/me",
        "/api/chat/rooms",
        "/api/chat/conversations",
        "/api/chat/users",
    ] {
        let (status, _) = t.http("GET", path, None, None).await;
        assert_eq!(status, 401, "{path}");
        let (status, _) = t.get(path, "not.a.token").await;
        assert_eq!(status, 401, "{path}");
    }
    let (status, _) = t.get("/api/chat/no-such-route", &token).await;
    assert_eq!(status, 404);
    // Of every sign-up, only the two valid ones were stored.
    let (_, users) = t.get("/api/chat/users", &token).await;
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    t.stop().await;
}

async fn rooms_and_members(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, _) = t.user("alice").await;
    let (bob, bob_id) = t.user("bob").await;
    let (carol, carol_id) = t.user("carol").await;

    let (status, room) = t
        .post(
            "/api/chat/rooms",
            &alice,
            json!({"name": "general", "description": "all of us", "isPrivate": false}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    for key in [
        "id",
        "name",
        "description",
        "isPrivate",
        "createdBy",
        "createdAt",
        "modifiedAt",
    ] {
        assert!(room.get(key).is_some(), "{key} in {room}");
    }
    let general = room["id"].as_str().unwrap().to_string();
    let secret = t.room(&alice, "secret", true).await;

    for (body, field) in [
        (json!({"isPrivate": false}), "name"),
        (json!({"name": "", "isPrivate": false}), "name"),
        (json!({"name": "   ", "isPrivate": false}), "name"),
        (json!({"name": "n".repeat(101), "isPrivate": false}), "name"),
        (json!({"name": "x"}), "isPrivate"),
        (json!({"name": "x", "isPrivate": "yes"}), "isPrivate"),
        (
            json!({"name": "x", "isPrivate": false, "description": 3}),
            "description",
        ),
    ] {
        let (status, answer) = t.post("/api/chat/rooms", &alice, body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert_eq!(answer["error"]["field"], json!(field));
    }
    // A name counts characters: 100 of them fit, in any script.
    let (status, _) = t
        .post(
            "/api/chat/rooms",
            &bob,
            json!({"name": "日".repeat(100), "isPrivate": false}),
        )
        .await;
    assert_eq!(status, 201);

    let (_, mine) = t.get("/api/chat/rooms", &alice).await;
    let mine = mine.as_array().unwrap().clone();
    assert_eq!(mine.len(), 2);
    for r in &mine {
        assert_eq!(r["role"], "admin");
        assert_eq!(r["unreadCount"], 0);
        assert_eq!(r["lastMessage"], Json::Null);
    }
    let (_, public) = t.get("/api/chat/rooms/public", &carol).await;
    let public = ids(&public);
    assert!(public.contains(&general));
    assert!(!public.contains(&secret));

    // Adding members: admins only, to rooms and users that exist, once.
    let members = format!("/api/chat/rooms/{secret}/members");
    let (status, _) = t.post(&members, &bob, json!({"userId": carol_id})).await;
    assert_eq!(status, 403);
    let (status, member) = t.post(&members, &alice, json!({"userId": bob_id})).await;
    assert_eq!(status, 201, "{member}");
    assert_eq!(
        (member["role"].as_str(), member["userId"].as_str()),
        (Some("member"), Some(bob_id.as_str()))
    );
    let (status, _) = t.post(&members, &alice, json!({"userId": bob_id})).await;
    assert_eq!(status, 409);
    // Bob is a member now, not an admin.
    let (status, _) = t.post(&members, &bob, json!({"userId": carol_id})).await;
    assert_eq!(status, 403);
    let (status, _) = t
        .post(&members, &alice, json!({"userId": "no-such-user"}))
        .await;
    assert_eq!(status, 404);
    let (status, answer) = t.post(&members, &alice, json!({"user": carol_id})).await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (422, Some("userId"))
    );
    let (status, _) = t
        .post(
            "/api/chat/rooms/no-such-room/members",
            &alice,
            json!({"userId": carol_id}),
        )
        .await;
    assert_eq!(status, 404);
    let (_, bobs) = t.get("/api/chat/rooms", &bob).await;
    assert!(ids(&bobs).contains(&secret));

    // Users, all or online only (nobody is connected).
    let (_, all) = t.get("/api/chat/users", &carol).await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    let (_, online) = t.get("/api/chat/users?online=true", &carol).await;
    assert_eq!(online, json!([]));
    let (status, answer) = t.get("/api/chat/users?online=maybe", &carol).await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (422, Some("online"))
    );
    t.stop().await;
}

async fn room_messages_history_and_unread(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, alice_id) = t.user("alice").await;
    let (bob, bob_id) = t.user("bob").await;
    let (carol, _) = t.user("carol").await;
    let room = t.room(&alice, "general", false).await;

    let mut a = t.client(&alice).await;
    let b = t.client(&bob).await;
    assert_ok(&a.call("room:join", json!({"roomId": room})).await);
    let joined = b
        .call("room:join", json!({"roomId": room, "userId": alice_id}))
        .await;
    assert_ok(&joined);
    assert_eq!(joined["room"]["id"], json!(room));
    let seen = a.expect("room:user-joined").await;
    // The joiner is who the token says, whatever the payload claims.
    assert_eq!(seen, json!({"roomId": room, "userId": bob_id}));

    // Bob sends as fast as acknowledgements allow: the order stored is the order sent, even
    // within one millisecond.
    let mut sent = Vec::new();
    for i in 0..12 {
        let answer = b
            .call(
                "message:send",
                json!({"roomId": room, "content": format!("message {i}"), "userId": alice_id}),
            )
            .await;
        assert_ok(&answer);
        assert_eq!(answer["message"]["senderId"], json!(bob_id));
        assert_eq!(answer["message"]["sender"]["username"], "bob");
        sent.push(answer["message"]["id"].as_str().unwrap().to_string());
    }
    for (i, id) in sent.iter().enumerate() {
        let m = a.expect("message:new").await;
        assert_eq!(m["id"], json!(id));
        assert_eq!(m["content"], json!(format!("message {i}")));
        for key in [
            "roomId",
            "senderId",
            "type",
            "metadata",
            "editedAt",
            "deletedAt",
            "createdAt",
            "modifiedAt",
        ] {
            assert!(m.get(key).is_some(), "{key} in {m}");
        }
        assert_eq!(m["type"], "text");
        assert_eq!(m["editedAt"], Json::Null);
    }

    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();
    let path = format!("/api/chat/rooms/{room}/messages");
    let (status, all) = t.get(&path, &alice).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&all), newest_first);
    let (_, page1) = t.get(&format!("{path}?limit=5"), &alice).await;
    assert_eq!(ids(&page1), newest_first[..5]);
    let (_, page2) = t
        .get(
            &format!("{path}?limit=5&before={}", newest_first[4]),
            &alice,
        )
        .await;
    assert_eq!(ids(&page2), newest_first[5..10]);
    let (_, page3) = t
        .get(
            &format!("{path}?limit=5&before={}", newest_first[9]),
            &alice,
        )
        .await;
    assert_eq!(ids(&page3), newest_first[10..]);
    let (status, answer) = t.get(&format!("{path}?limit=zero"), &alice).await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (422, Some("limit"))
    );
    let (status, _) = t
        .get(&format!("{path}?before=no-such-message"), &alice)
        .await;
    assert_eq!(status, 404);
    let (status, _) = t.get(&path, &carol).await;
    assert_eq!(status, 403);
    let (status, _) = t.get("/api/chat/rooms/no-such-room/messages", &alice).await;
    assert_eq!(status, 404);

    // Unread counts follow the read marker; one's own messages are never unread.
    let unread = |token: String| {
        let t = &t;
        let room = room.clone();
        async move {
            let (_, rooms) = t.get("/api/chat/rooms", &token).await;
            let r = rooms
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == json!(room))
                .cloned()
                .expect("the room is listed");
            (
                r["unreadCount"].as_i64().unwrap(),
                r["lastMessage"]["id"].clone(),
            )
        }
    };
    assert_eq!(unread(alice.clone()).await, (12, json!(sent[11])));
    assert_eq!(unread(bob.clone()).await.0, 0);
    let (status, read) = t
        .post(&format!("/api/chat/rooms/{room}/read"), &alice, json!({}))
        .await;
    assert_eq!(status, 200, "{read}");
    assert!(read["lastReadAt"].is_string());
    assert_eq!(unread(alice.clone()).await.0, 0);
    assert_ok(
        &b.call(
            "message:send",
            json!({"roomId": room, "content": "one more"}),
        )
        .await,
    );
    assert_eq!(unread(alice.clone()).await.0, 1);
    let (status, _) = t
        .post(&format!("/api/chat/rooms/{room}/read"), &carol, json!({}))
        .await;
    assert_eq!(status, 403);
    let (status, _) = t
        .post("/api/chat/rooms/no-such-room/read", &carol, json!({}))
        .await;
    assert_eq!(status, 404);

    // A non-member cannot send; an unknown room is not found.
    let c = t.client(&carol).await;
    assert_fails(
        &c.call("message:send", json!({"roomId": room, "content": "hi"}))
            .await,
        "FORBIDDEN",
    );
    assert_fails(
        &c.call(
            "message:send",
            json!({"roomId": "no-such-room", "content": "hi"}),
        )
        .await,
        "NOT_FOUND",
    );
    t.stop().await;
}

async fn joining_rooms(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, _) = t.user("alice").await;
    let (bob, bob_id) = t.user("bob").await;
    let secret = t.room(&alice, "secret", true).await;
    let open = t.room(&alice, "open", false).await;
    let mut a = t.client(&alice).await;
    let mut b = t.client(&bob).await;
    assert_ok(&a.call("room:join", json!({"roomId": secret})).await);
    assert_ok(&a.call("room:join", json!({"roomId": open})).await);

    assert_fails(
        &b.call("room:join", json!({"roomId": secret})).await,
        "FORBIDDEN",
    );
    // Failures also come as `error` events.
    let error = b.expect("error").await;
    assert_eq!(error["code"], "FORBIDDEN");
    assert_eq!(error["message"], "Cannot join private room");
    assert_fails(
        &b.call("room:join", json!({"roomId": "no-such-room"})).await,
        "NOT_FOUND",
    );
    assert_fails(&b.call("room:join", json!({})).await, "VALIDATION");
    assert_fails(
        &b.call("room:join", json!({"roomId": 12})).await,
        "VALIDATION",
    );
    assert_fails(&b.call_args("room:join", vec![]).await, "VALIDATION");
    assert_fails(&b.call("room:join", json!("a string")).await, "VALIDATION");

    // Once added by the admin, the private room can be joined.
    let (status, _) = t
        .post(
            &format!("/api/chat/rooms/{secret}/members"),
            &alice,
            json!({"userId": bob_id}),
        )
        .await;
    assert_eq!(status, 201);
    assert_ok(&b.call("room:join", json!({"roomId": secret})).await);
    a.expect_where("room:user-joined", |v| v["roomId"] == json!(secret))
        .await;

    // Joining again announces nothing new: the next thing alice hears is bob's message.
    assert_ok(&b.call("room:join", json!({"roomId": secret})).await);
    assert_ok(
        &b.call(
            "message:send",
            json!({"roomId": secret, "content": "again"}),
        )
        .await,
    );
    let (name, _) = a.next_of(&["room:user-joined", "message:new"]).await;
    assert_eq!(name, "message:new");
    // Joining a public room makes one a member: its history opens, and leaving the socket
    // room keeps the membership.
    assert_ok(&b.call("room:join", json!({"roomId": open})).await);
    let (status, _) = t
        .get(&format!("/api/chat/rooms/{open}/messages"), &bob)
        .await;
    assert_eq!(status, 200);
    assert_ok(
        &b.call("room:leave", json!({"roomId": open, "userId": "someone"}))
            .await,
    );
    let left = a
        .expect_where("room:user-left", |v| v["roomId"] == json!(open))
        .await;
    assert_eq!(left["userId"], json!(bob_id));
    // Messages of a room left no longer come to that socket.
    b.drain();
    assert_ok(
        &a.call(
            "message:send",
            json!({"roomId": open, "content": "after leave"}),
        )
        .await,
    );
    assert_ok(
        &a.call(
            "message:send",
            json!({"roomId": secret, "content": "marker"}),
        )
        .await,
    );
    let next = b.expect("message:new").await;
    assert_eq!(next["content"], "marker");
    assert_fails(
        &b.call("room:leave", json!({"roomId": open})).await,
        "NOT_FOUND",
    );
    let (_, rooms) = t.get("/api/chat/rooms", &bob).await;
    assert!(ids(&rooms).contains(&open));
    t.stop().await;
}

async fn edit_and_delete(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, _) = t.user("alice").await;
    let (bob, bob_id) = t.user("bob").await;
    let (carol, _) = t.user("carol").await;
    let room = t.room(&alice, "general", false).await;
    let mut a = t.client(&alice).await;
    let b = t.client(&bob).await;
    let c = t.client(&carol).await;
    for p in [&a, &b, &c] {
        assert_ok(&p.call("room:join", json!({"roomId": room})).await);
    }
    let sent = b
        .call("message:send", json!({"roomId": room, "content": "helo"}))
        .await;
    let id = sent["message"]["id"].as_str().unwrap().to_string();
    let alices = a
        .call("message:send", json!({"roomId": room, "content": "mine"}))
        .await;
    let alices_id = alices["message"]["id"].as_str().unwrap().to_string();

    let edited = b
        .call(
            "message:edit",
            json!({"messageId": id, "content": "hello", "userId": "x"}),
        )
        .await;
    assert_ok(&edited);
    assert_eq!(edited["message"]["content"], "hello");
    assert!(edited["message"]["editedAt"].is_string());
    let seen = a.expect("message:edited").await;
    assert_eq!(
        (seen["id"].as_str(), seen["content"].as_str()),
        (Some(id.as_str()), Some("hello"))
    );
    assert_eq!(seen["senderId"], json!(bob_id));

    assert_fails(
        &c.call(
            "message:edit",
            json!({"messageId": id, "content": "mine now"}),
        )
        .await,
        "FORBIDDEN",
    );
    assert_fails(
        &a.call(
            "message:edit",
            json!({"messageId": id, "content": "admin edit"}),
        )
        .await,
        "FORBIDDEN",
    );
    assert_fails(
        &b.call("message:edit", json!({"messageId": "nope", "content": "x"}))
            .await,
        "NOT_FOUND",
    );
    assert_fails(
        &b.call("message:edit", json!({"messageId": id, "content": ""}))
            .await,
        "VALIDATION",
    );
    assert_fails(
        &b.call("message:edit", json!({"messageId": id})).await,
        "VALIDATION",
    );

    // Delete: the sender or an admin of the room, nobody else.
    assert_fails(
        &c.call("message:delete", json!({"messageId": id})).await,
        "FORBIDDEN",
    );
    assert_fails(
        &b.call("message:delete", json!({"messageId": alices_id}))
            .await,
        "FORBIDDEN",
    );
    let deleted = a.call("message:delete", json!({"messageId": id})).await;
    assert_ok(&deleted);
    let seen = a.expect("message:deleted").await;
    assert_eq!(seen, json!({"messageId": id, "roomId": room}));
    assert_fails(
        &a.call("message:delete", json!({"messageId": id})).await,
        "NOT_FOUND",
    );
    assert_fails(
        &b.call("message:edit", json!({"messageId": id, "content": "back"}))
            .await,
        "NOT_FOUND",
    );
    assert_ok(
        &a.call("message:delete", json!({"messageId": alices_id}))
            .await,
    );
    let (_, history) = t
        .get(&format!("/api/chat/rooms/{room}/messages"), &carol)
        .await;
    assert_eq!(history, json!([]));
    let (_, rooms) = t.get("/api/chat/rooms", &carol).await;
    assert_eq!(rooms[0]["unreadCount"], 0);
    assert_eq!(rooms[0]["lastMessage"], Json::Null);
    t.stop().await;
}

async fn direct_messages(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, alice_id) = t.user("alice").await;
    let (bob, bob_id) = t.user("bob").await;
    let (carol, carol_id) = t.user("carol").await;
    let mut a = t.client(&alice).await;
    let mut b1 = t.client(&bob).await;
    let mut b2 = t.client(&bob).await;
    let mut c = t.client(&carol).await;

    let answer = a
        .call(
            "dm:send",
            json!({"receiverId": bob_id, "content": "hi bob"}),
        )
        .await;
    assert_ok(&answer);
    let dm = answer["message"].clone();
    assert_eq!(
        dm,
        json!({
            "id": dm["id"], "senderId": alice_id, "receiverId": bob_id, "content": "hi bob",
            "type": "text", "metadata": null, "readAt": null, "deletedAt": null,
            "createdAt": dm["createdAt"]
        })
    );
    // Every device of both users gets it.
    assert_eq!(b1.expect("dm:new").await, dm);
    assert_eq!(b2.expect("dm:new").await, dm);
    assert_eq!(a.expect("dm:new").await, dm);
    assert!(!c.receives("dm:new", Duration::from_millis(200)).await);

    // A payload that names another sender is ignored: carol sends as carol.
    let spoof = c
        .call("dm:send", json!({"receiverId": bob_id, "content": "from alice?", "userId": alice_id, "senderId": alice_id}))
        .await;
    assert_ok(&spoof);
    assert_eq!(spoof["message"]["senderId"], json!(carol_id));
    b1.expect_where("dm:new", |m| m["senderId"] == json!(carol_id))
        .await;

    let mut sent = vec![dm["id"].as_str().unwrap().to_string()];
    for i in 0..5 {
        let (from, to) = if i % 2 == 0 {
            (&b1, &alice_id)
        } else {
            (&a, &bob_id)
        };
        let answer = from
            .call(
                "dm:send",
                json!({"receiverId": to, "content": format!("dm {i}")}),
            )
            .await;
        assert_ok(&answer);
        sent.push(answer["message"]["id"].as_str().unwrap().to_string());
    }
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();
    let path = format!("/api/chat/dm/{alice_id}");
    let (_, all) = t.get(&path, &bob).await;
    assert_eq!(ids(&all), newest_first);
    let (_, page) = t
        .get(&format!("{path}?limit=2&before={}", newest_first[1]), &bob)
        .await;
    assert_eq!(ids(&page), newest_first[2..4]);
    let (status, _) = t.get(&format!("{path}?before=no-such-dm"), &bob).await;
    assert_eq!(status, 404);
    // A DM of another conversation is no cursor here.
    let carols = spoof["message"]["id"].as_str().unwrap();
    let (status, _) = t.get(&format!("{path}?before={carols}"), &bob).await;
    assert_eq!(status, 404);
    let (status, _) = t.get("/api/chat/dm/no-such-user", &bob).await;
    assert_eq!(status, 404);

    // Conversations: one per partner, the latest first, with what is unread.
    let (_, conversations) = t.get("/api/chat/conversations", &bob).await;
    let list = conversations.as_array().unwrap();
    assert_eq!(list.len(), 2, "{conversations}");
    assert_eq!(list[0]["user"]["id"], json!(alice_id));
    assert_eq!(list[0]["lastMessage"]["id"], json!(newest_first[0]));
    // Unread by bob: alice's first DM and her two replies.
    assert_eq!(list[0]["unreadCount"], 3);
    assert_eq!(list[1]["user"]["id"], json!(carol_id));
    assert_eq!(list[1]["unreadCount"], 1);
    let (status, read) = t
        .post(&format!("/api/chat/dm/{alice_id}/read"), &bob, json!({}))
        .await;
    assert_eq!((status, read["count"].as_i64()), (200, Some(3)));
    let (_, conversations) = t.get("/api/chat/conversations", &bob).await;
    assert_eq!(conversations[0]["unreadCount"], 0);
    let (_, history) = t.get(&path, &bob).await;
    let first = history.as_array().unwrap().last().unwrap();
    assert!(first["readAt"].is_string(), "{first}");
    let (status, _) = t
        .post("/api/chat/dm/no-such-user/read", &bob, json!({}))
        .await;
    assert_eq!(status, 404);

    assert_fails(
        &a.call(
            "dm:send",
            json!({"receiverId": "no-such-user", "content": "x"}),
        )
        .await,
        "NOT_FOUND",
    );
    assert_fails(
        &a.call("dm:send", json!({"receiverId": bob_id})).await,
        "VALIDATION",
    );
    assert_fails(
        &a.call("dm:send", json!({"content": "to whom"})).await,
        "VALIDATION",
    );
    t.stop().await;
}

async fn typing(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, _) = t.user("alice").await;
    let (bob, bob_id) = t.user("bob").await;
    let room = t.room(&alice, "general", false).await;
    let other = t.room(&alice, "other", false).await;
    let mut a = t.client(&alice).await;
    let b = t.client(&bob).await;
    assert_ok(&a.call("room:join", json!({"roomId": room})).await);
    assert_ok(&b.call("room:join", json!({"roomId": room})).await);

    assert_ok(&b.call("typing:start", json!({"roomId": room})).await);
    assert_eq!(
        a.expect("typing:update").await,
        json!({"roomId": room, "userId": bob_id, "isTyping": true})
    );
    assert_ok(&b.call("typing:stop", json!({"roomId": room})).await);
    assert_eq!(a.expect("typing:update").await["isTyping"], false);

    // It stops by itself after 3 s without another start.
    assert_ok(&b.call("typing:start", json!({"roomId": room})).await);
    assert_eq!(a.expect("typing:update").await["isTyping"], true);
    let started = tokio::time::Instant::now();
    assert_eq!(a.expect("typing:update").await["isTyping"], false);
    assert!(started.elapsed() >= Duration::from_millis(2500));

    // A message stops it.
    assert_ok(&b.call("typing:start", json!({"roomId": room})).await);
    assert_eq!(a.expect("typing:update").await["isTyping"], true);
    assert_ok(
        &b.call(
            "message:send",
            json!({"roomId": room, "content": "done typing"}),
        )
        .await,
    );
    assert_eq!(a.expect("typing:update").await["isTyping"], false);

    // So does closing the connection.
    assert_ok(&b.call("typing:start", json!({"roomId": room})).await);
    assert_eq!(a.expect("typing:update").await["isTyping"], true);
    b.close();
    assert_eq!(
        a.expect("typing:update").await,
        json!({"roomId": room, "userId": bob_id, "isTyping": false})
    );

    let b = t.client(&bob).await;
    assert_fails(
        &b.call("typing:start", json!({"roomId": other})).await,
        "FORBIDDEN",
    );
    assert_fails(
        &b.call("typing:start", json!({"room": room})).await,
        "VALIDATION",
    );
    t.stop().await;
}

async fn presence(backend: Backend) {
    // A grace period long enough for a reconnection on a loaded machine (CI runs this beside
    // the rest of the suite on two cores: 1.5 s was once too short for b3's connection), and
    // short enough for the offline at the end to come within `WAIT`.
    let db = common::Database::new(backend).await;
    let mut config = common::config(&db);
    config.presence_grace = Duration::from_millis(5000);
    let t = TestChat::start_with(db, config).await;
    let (alice, _) = t.user("alice").await;
    let (bob, bob_id) = t.user("bob").await;
    let mut a = t.client(&alice).await;
    let is_bob = |v: &Json| v["userId"] == json!(bob_id);

    let b1 = t.client(&bob).await;
    let online = a.expect_where("presence:changed", is_bob).await;
    assert_eq!(online["status"], "online");
    assert!(online["lastSeenAt"].is_string());
    let (_, users) = t.get("/api/chat/users?online=true", &alice).await;
    assert!(ids(&users).contains(&bob_id));
    let (_, me) = t.get("/api/auth/me", &bob).await;
    assert_eq!(me["isOnline"], true);

    // A second device, then closing the first: still online.
    let b2 = t.client(&bob).await;
    b1.close();
    // Back within the grace period: no offline in between.
    b2.close();
    let b3 = t.client(&bob).await;
    assert!(
        !a.receives("presence:changed", Duration::from_millis(2000))
            .await,
        "a reconnection within the grace period is not announced"
    );
    let (_, me) = t.get("/api/auth/me", &bob).await;
    assert_eq!(me["isOnline"], true);

    // The last connection closes and none returns: offline after the grace period.
    b3.close();
    let offline = a.expect_where("presence:changed", is_bob).await;
    assert_eq!(offline["status"], "offline");
    let (_, users) = t.get("/api/chat/users?online=true", &alice).await;
    assert!(!ids(&users).contains(&bob_id));
    let (_, me) = t.get("/api/auth/me", &bob).await;
    assert_eq!(me["isOnline"], false);
    assert!(me["lastSeenAt"].is_string());
    t.stop().await;
}

async fn presence_of_a_dead_node(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, _) = t.user("alice").await;
    let (_, bob_id) = t.user("bob").await;
    let mut a = t.client(&alice).await;
    // Another node held bob's connection and died: its heartbeat stopped long ago.
    let store = &t.chat.chat().store;
    store.node_heartbeat("dead-node", 1).await.unwrap();
    assert!(
        store
            .user_connected("dead-node", &bob_id, ignis_chat::model::now())
            .await
            .unwrap()
    );
    let offline = a
        .expect_where("presence:changed", |v| v["userId"] == json!(bob_id))
        .await;
    assert_eq!(offline["status"], "offline");
    t.stop().await;
}

async fn limits_and_bad_input(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, _) = t.user("alice").await;
    let room = t.room(&alice, "general", false).await;
    let a = t.client(&alice).await;
    assert_ok(&a.call("room:join", json!({"roomId": room})).await);

    // Content: 1 to 4000 characters.
    let longest = "ü".repeat(4000);
    assert_ok(
        &a.call("message:send", json!({"roomId": room, "content": longest}))
            .await,
    );
    for bad in [
        json!(""),
        json!("x".repeat(4001)),
        json!(42),
        json!(null),
        json!({"a": 1}),
    ] {
        assert_fails(
            &a.call("message:send", json!({"roomId": room, "content": bad}))
                .await,
            "VALIDATION",
        );
    }
    assert_fails(
        &a.call(
            "message:send",
            json!({"roomId": room, "content": "x", "type": "no spaces"}),
        )
        .await,
        "VALIDATION",
    );
    assert_fails(
        &a.call("message:send", json!({"content": "x"})).await,
        "VALIDATION",
    );
    assert_fails(
        &a.call("message:send", json!([room, "x"])).await,
        "VALIDATION",
    );
    assert_fails(
        &a.call(
            "message:send",
            json!({"roomId": "x".repeat(5000), "content": "x"}),
        )
        .await,
        "VALIDATION",
    );
    // SQL-looking text is stored as it is.
    let sql = "'); DROP TABLE messages; --";
    let answer = a
        .call(
            "message:send",
            json!({"roomId": room, "content": sql, "type": "code"}),
        )
        .await;
    assert_ok(&answer);
    assert_eq!(answer["message"]["type"], "code");
    let (_, history) = t
        .get(&format!("/api/chat/rooms/{room}/messages?limit=1"), &alice)
        .await;
    assert_eq!(history[0]["content"], sql);
    let (status, _) = t
        .get(
            &format!("/api/chat/rooms/{}/messages", urlencode("' OR 1=1 --")),
            &alice,
        )
        .await;
    assert_eq!(status, 404);

    // A flood: at most 20 messages a second get through, the rest are refused, none lost.
    let flood: Vec<_> = (0..45)
        .map(|i| {
            a.call(
                "message:send",
                json!({"roomId": room, "content": format!("flood {i}")}),
            )
        })
        .collect();
    let answers = futures_join(flood).await;
    let accepted = answers.iter().filter(|a| a["ok"] == json!(true)).count();
    let limited = answers
        .iter()
        .filter(|a| a["error"]["code"] == json!("RATE_LIMITED"))
        .count();
    assert_eq!(accepted + limited, 45);
    assert!(limited >= 5, "{accepted} accepted, {limited} limited");
    let (_, stored) = t
        .get(
            &format!("/api/chat/rooms/{room}/messages?limit=100"),
            &alice,
        )
        .await;
    let floods = stored
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["content"].as_str().unwrap().starts_with("flood"))
        .count();
    assert_eq!(floods, accepted);
    // Nothing refused was stored: the longest message, the SQL-looking one, the accepted flood.
    assert_eq!(stored.as_array().unwrap().len(), accepted + 2);

    // A burst of events that wait on the database: a connection has at most 32 waiting, the
    // rest are refused at once instead of piling up.
    let burst: Vec<_> = (0..300)
        .map(|_| a.call("message:edit", json!({"messageId": "nope", "content": "x"})))
        .collect();
    let answers = futures_join(burst).await;
    let refused = answers
        .iter()
        .filter(|a| a["error"]["code"] == json!("RATE_LIMITED"))
        .count();
    let not_found = answers
        .iter()
        .filter(|a| a["error"]["code"] == json!("NOT_FOUND"))
        .count();
    assert_eq!(refused + not_found, 300);
    assert!(
        refused > 0 && not_found >= 32,
        "{refused} refused, {not_found} served"
    );

    // Bodies: too large, not JSON, not an object.
    let huge = json!({"name": "x", "isPrivate": false, "description": "d".repeat(100_000)});
    let (status, _) = t.post("/api/chat/rooms", &alice, huge).await;
    assert_eq!(status, 413);
    let (status, _) = t
        .http("POST", "/api/chat/rooms", Some(&alice), Some("[1,"))
        .await;
    assert_eq!(status, 400);
    t.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn futures_join<F: std::future::Future<Output = Json>>(futures: Vec<F>) -> Vec<Json> {
    let mut set = Vec::with_capacity(futures.len());
    // Polled together: every emit leaves before the first acknowledgement is awaited.
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<Json>> = vec![None; pinned.len()];
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    set.extend(done.into_iter().flatten());
    set
}

async fn store_failures_are_reported(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, _) = t.user("alice").await;
    let (_, bob_id) = t.user("bob").await;
    let room = t.room(&alice, "general", false).await;
    let a = t.client(&alice).await;
    assert_ok(&a.call("room:join", json!({"roomId": room})).await);
    let sent = a
        .call("message:send", json!({"roomId": room, "content": "x"}))
        .await;
    let id = sent["message"]["id"].as_str().unwrap().to_string();

    // The database goes away: each event says it failed with its own code, REST says 503.
    t.chat.chat().store.close().await;
    assert_fails(
        &a.call("room:join", json!({"roomId": room})).await,
        "JOIN_FAILED",
    );
    assert_fails(
        &a.call("message:send", json!({"roomId": room, "content": "x"}))
            .await,
        "SEND_FAILED",
    );
    assert_fails(
        &a.call("message:edit", json!({"messageId": id, "content": "y"}))
            .await,
        "EDIT_FAILED",
    );
    assert_fails(
        &a.call("message:delete", json!({"messageId": id})).await,
        "DELETE_FAILED",
    );
    assert_fails(
        &a.call("dm:send", json!({"receiverId": bob_id, "content": "x"}))
            .await,
        "DM_FAILED",
    );
    let (status, body) = t.get("/api/auth/me", &alice).await;
    assert_eq!(status, 503, "{body}");
    t.stop().await;
}

async fn restart_keeps_data_and_sessions(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, alice_id) = t.user("alice").await;
    let room = t.room(&alice, "general", false).await;
    let db = t.stop().await;
    let mut config = common::config(&db);
    // The secret generated on the first start is used again.
    config.jwt_secret = None;
    let t = TestChat::start_with(db, config).await;
    let (status, me) = t.get("/api/auth/me", &alice).await;
    assert_eq!((status, me["id"].as_str()), (200, Some(alice_id.as_str())));
    let (_, rooms) = t.get("/api/chat/rooms", &alice).await;
    assert_eq!(ids(&rooms), vec![room]);

    // A database whose schema is newer than this binary is refused, with a clear message.
    let store = &t.chat.chat().store;
    let newer = ignis_chat::store::schema_version() + 1;
    match store {
        ignis_chat::Store::Sqlite(pool, _) => {
            sqlx::query("INSERT INTO chat_schema_migrations VALUES ($1, 'future', 0)")
                .bind(newer)
                .execute(pool)
                .await
                .unwrap();
        }
        ignis_chat::Store::Postgres(pool, _) => {
            sqlx::query("INSERT INTO chat_schema_migrations VALUES ($1, 'future', 0)")
                .bind(newer)
                .execute(pool)
                .await
                .unwrap();
        }
    }
    let db = t.stop().await;
    let error = ignis_chat::start(common::config(&db))
        .await
        .err()
        .expect("a newer schema is refused")
        .to_string();
    assert!(error.contains("newer than this binary"), "{error}");
}

async fn history_order_within_a_millisecond(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, alice_id) = t.user("alice").await;
    let (_, bob_id) = t.user("bob").await;
    let room = t.room(&alice, "general", false).await;
    let store = &t.chat.chat().store;
    let sender = store.user(&alice_id).await.unwrap().unwrap();
    // Stored back to back: many share a millisecond, and the history keeps the order anyway.
    let mut sent = Vec::new();
    let mut sent_dms = Vec::new();
    for i in 0..150 {
        let m = store
            .insert_message(ignis_chat::store::NewMessage {
                room_id: &room,
                sender: &sender,
                content: &format!("m{i}"),
                kind: "text",
            })
            .await
            .unwrap();
        sent.push((m.id, m.created_at));
        let d = store
            .insert_dm(&alice_id, &bob_id, &format!("d{i}"))
            .await
            .unwrap();
        sent_dms.push(d.id);
    }
    let ties = sent.windows(2).filter(|w| w[0].1 == w[1].1).count();
    eprintln!("{ties} of 149 consecutive messages share their millisecond");
    let mut expected: Vec<String> = sent.into_iter().map(|(id, _)| id).collect();
    expected.reverse();
    let (_, page1) = t
        .get(
            &format!("/api/chat/rooms/{room}/messages?limit=100"),
            &alice,
        )
        .await;
    let (_, page2) = t
        .get(
            &format!(
                "/api/chat/rooms/{room}/messages?limit=100&before={}",
                expected[99]
            ),
            &alice,
        )
        .await;
    let mut got = ids(&page1);
    got.extend(ids(&page2));
    assert_eq!(got, expected);
    sent_dms.reverse();
    let (_, dms) = t
        .get(&format!("/api/chat/dm/{bob_id}?limit=100"), &alice)
        .await;
    assert_eq!(ids(&dms), sent_dms[..100]);
    t.stop().await;
}

async fn a_connections_events_keep_their_order(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, _) = t.user("alice").await;
    let room = t.room(&alice, "general", false).await;
    let a = t.client(&alice).await;
    assert_ok(&a.call("room:join", json!({"roomId": room})).await);
    // Sent one after the other without waiting for the acknowledgements, as a person typing
    // fast does: they are stored in the order they were sent.
    let sends: Vec<_> = (0..15)
        .map(|i| {
            a.call(
                "message:send",
                json!({"roomId": room, "content": format!("{i}")}),
            )
        })
        .collect();
    let answers = futures_join(sends).await;
    assert!(
        answers.iter().all(|a| a["ok"] == json!(true)),
        "{answers:?}"
    );
    let (_, history) = t
        .get(&format!("/api/chat/rooms/{room}/messages"), &alice)
        .await;
    let contents: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..15).map(|i| i.to_string()).collect();
    assert_eq!(contents, expected);
    t.stop().await;
}

async fn a_node_that_stops_takes_its_users_offline(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, _) = t.user("alice").await;
    let (bob, bob_id) = t.user("bob").await;
    // A second node on the same database, whose own sweep only runs as it starts.
    let mut config = common::config(&t.db);
    config.node_heartbeat = Duration::from_secs(600);
    let other = TestChat::start_with(common::Database::shared(&t.db), config).await;
    let mut b = t.client(&bob).await;
    b.expect_where("presence:changed", |v| v["userId"] == json!(bob_id))
        .await;
    let online = |t: &TestChat, token: String| {
        let port = t.port;
        async move {
            let (_, users) = common::http(
                port,
                "GET",
                "/api/chat/users?online=true",
                Some(&token),
                None,
            )
            .await;
            ids(&users)
        }
    };
    assert_eq!(online(&other, alice.clone()).await, vec![bob_id.clone()]);
    let db = t.stop().await;
    assert_eq!(online(&other, alice.clone()).await, Vec::<String>::new());
    other.stop().await;
    drop(db);
}

/// Connects with `builder`, emits `authenticate` with `payload`, and gives the first of
/// `authenticated` / `unauthenticated`.
async fn auth_outcome(
    builder: ignis_client::ClientBuilder,
    payload: Vec<ignis_client::Value>,
) -> (ignis_client::Socket, String) {
    let socket = builder
        .path("/io")
        .reconnection(false)
        .connect("/")
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    socket.on_any(move |e| {
        let _ = tx.send(e.name);
    });
    socket.emit_args("authenticate", payload).unwrap();
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let name = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("an answer to authenticate")
            .expect("the client is there");
        if name == "authenticated" || name == "unauthenticated" {
            return (socket, name);
        }
    }
}

async fn socket_authentication(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, alice_id) = t.user("alice").await;
    let url = format!("http://127.0.0.1:{}", t.port);
    let client = || ignis_client::Client::builder(url.as_str());
    // The token in the CONNECT auth, or the header, with `authenticate` carrying nothing.
    let (s, outcome) = auth_outcome(client().auth(json!({"token": alice})), vec![]).await;
    assert_eq!(outcome, "authenticated");
    s.disconnect();
    let (s, outcome) = auth_outcome(
        client().header("authorization", format!("Bearer {alice}")),
        vec![],
    )
    .await;
    assert_eq!(outcome, "authenticated");
    s.disconnect();
    // A token signed with another secret, garbage, or none: refused, and chat events do nothing.
    let forged = ignis_chat::auth::Tokens::new("some-other-secret-entirely").issue(&alice_id);
    for token in [forged.as_str(), "garbage", ""] {
        let payload = ignis_client::proto::value::to_value(&json!({"token": token})).unwrap();
        let (s, outcome) = auth_outcome(client(), vec![payload]).await;
        assert_eq!(outcome, "unauthenticated", "{token}");
        assert!(
            s.emit_with_ack("message:send", vec![], Duration::from_millis(300))
                .await
                .is_err()
        );
    }
    t.stop().await;
}

/// A client may send an event the moment it hears `authenticated`: it is answered, never
/// dropped for want of the chat's handlers. The component emits `authenticated` before it runs
/// the client-connected handler, so handlers attached there missed such events when the
/// server's thread was descheduled in between (a loaded machine), and their acknowledgements
/// never came. Many clients, each sending from the callback that hears `authenticated`, so
/// that such a window shows; each event is refused (no `roomId`), which sends `error`.
async fn events_right_after_authenticated(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, _) = t.user("alice").await;
    for _ in 0..5 {
        let peers = (0..20)
            .map(|_| async {
                let mut p =
                    common::Peer::connect_eager(t.port, &alice, "typing:stop", json!({})).await;
                let (name, error) = p.next_of(&["error"]).await;
                p.close();
                json!({"name": name, "code": error["code"]})
            })
            .collect();
        for answer in futures_join(peers).await {
            assert_eq!(answer, json!({"name": "error", "code": "VALIDATION"}));
        }
    }
    t.stop().await;
}
