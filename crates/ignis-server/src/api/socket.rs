//! The nine `{base}/socket` endpoints of the original example.
//!
//! Join, leave and rooms find the client with a cluster-wide `fetch_sockets` on its own-id room
//! and act through the adapter (`sockets_join`/`sockets_leave`), so they reach a client on any
//! node once a cluster adapter is installed.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use ignis::socketio::{SendError, SendOptions, SocketIoServerHelper, keys};
use ignis_socketio::adapter::{AdapterError, Room};
use ignis_socketio::{Operators, Sid, iso_timestamp};
use serde_json::{Map, Value, json};

use super::ApiState;
use super::body::{JsonObject, expected};
use super::error::{ApiError, BadRequest, HandlerError, Issue, not_found};
use crate::logging::Escaped;

pub(crate) const MESSAGE_TOPIC_REQUIRED: &str = "Topic is required";
pub(crate) const MESSAGE_ROOMS_REQUIRED: &str = "Rooms array is required";

/// The bound Socket.IO helper, or the original's 500 while it is not bound yet.
pub(crate) struct Helper(pub SocketIoServerHelper);

impl FromRequestParts<Arc<ApiState>> for Helper {
    type Rejection = ApiError;

    async fn from_request_parts(
        _parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        state
            .app
            .get(keys::SOCKET_IO_INSTANCE)
            .map(Helper)
            .map_err(|_| ApiError::not_initialized())
    }
}

/// The one path parameter of a route, percent-decoded; undecodable input is a 400. An empty
/// segment (`/client//rooms`) names no route, as in the original: were it accepted, an empty
/// room would mean "everyone" to `send`.
pub(crate) struct Param(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Param {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(p)) if p.is_empty() => Err(not_found().await),
            Ok(Path(p)) => Ok(Param(p)),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, e.body_text()).into_response()),
        }
    }
}

/// `GET /socket/info`.
pub(crate) async fn info(Helper(helper): Helper) -> Json<Value> {
    let ids = client_ids(&helper);
    Json(json!({
        "status": "running",
        "connectedClients": ids.len(),
        "clientIds": ids,
        "limits": limit_counters(&helper),
    }))
}

/// How often each abuse limit was hit on this node, the engine's and the sockets'.
fn limit_counters(helper: &SocketIoServerHelper) -> Value {
    let io = helper.io();
    let engine = io.engine().abuse_counters();
    let sockets = io.abuse_counters();
    json!({
        "queueFullMessages": engine.queue_full_messages,
        "queueFullBytes": engine.queue_full_bytes,
        "pingFloodPauses": engine.ping_flood_pauses,
        "bodyTimeouts": engine.body_timeouts,
        "bodiesTooLarge": engine.bodies_too_large,
        "connectionsPerIpRefused": engine.ip_connections_refused,
        "handshakesPerIpRefused": engine.ip_handshakes_refused,
        "ipTableFull": engine.ip_table_full,
        "roomsRefused": sockets.rooms_refused,
        "socketIdRoomsRefused": sockets.socket_id_rooms_refused,
        "eventsRateLimited": sockets.events_rate_limited,
        "eventsTooLarge": sockets.payloads_too_large,
        "floodDisconnects": sockets.flood_disconnects,
    })
}

/// `GET /socket/clients`.
pub(crate) async fn clients(Helper(helper): Helper) -> Json<Value> {
    let ids = client_ids(&helper);
    Json(json!({ "count": ids.len(), "clients": ids }))
}

/// This node's registry, every state included (as in the original).
fn client_ids(helper: &SocketIoServerHelper) -> Vec<String> {
    helper
        .clients()
        .iter()
        .map(|c| c.id().to_string())
        .collect()
}

/// `POST /socket/broadcast` `{topic, data}`.
pub(crate) async fn broadcast(
    Helper(helper): Helper,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, HandlerError> {
    send(&helper, None, &body).await?;
    Ok(success(format!(
        "Broadcast sent to {} clients",
        helper.authenticated_count()
    )))
}

/// `POST /socket/room/{roomId}/send` `{topic, data}`.
pub(crate) async fn send_to_room(
    Helper(helper): Helper,
    Param(room): Param,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, HandlerError> {
    send(&helper, Some(room.clone()), &body).await?;
    Ok(success(format!("Message sent to room: {room}")))
}

/// `POST /socket/client/{clientId}/send` `{topic, data}`. Unlike the original, which sends to
/// the room of that name whether or not a client has it, an unknown client answers "Client not
/// found" as join, leave and rooms do (found on any node of the cluster).
pub(crate) async fn send_to_client(
    Helper(helper): Helper,
    Param(client): Param,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, HandlerError> {
    topic_field(&body)?;
    if find_client(&helper, &client).await?.is_none() {
        return Ok(client_not_found(&client));
    }
    send(&helper, Some(client.clone()), &body).await?;
    Ok(success(format!("Message sent to client: {client}")))
}

/// `POST /socket/client/{clientId}/join` `{rooms: string[]}`: joins directly, without the
/// validator and whatever the client's state, as the original does.
pub(crate) async fn join(
    Helper(helper): Helper,
    Param(id): Param,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, HandlerError> {
    let rooms = rooms_field(&body)?;
    let Some(client) = find_client(&helper, &id).await? else {
        return Ok(client_not_found(&id));
    };
    client
        .operators
        .sockets_join(rooms.clone())
        .await
        .map_err(cluster_error)?;
    Ok(success(format!(
        "Client {id} joined rooms: {}",
        rooms.join(", ")
    )))
}

/// `POST /socket/client/{clientId}/leave` `{rooms: string[]}`. The client's own-id room is
/// never left: it is how messages reach the client.
pub(crate) async fn leave(
    Helper(helper): Helper,
    Param(id): Param,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, HandlerError> {
    let rooms = rooms_field(&body)?;
    let Some(client) = find_client(&helper, &id).await? else {
        return Ok(client_not_found(&id));
    };
    let leaving: Vec<String> = rooms.iter().filter(|r| **r != id).cloned().collect();
    if !leaving.is_empty() {
        client
            .operators
            .sockets_leave(leaving)
            .await
            .map_err(cluster_error)?;
    }
    Ok(success(format!(
        "Client {id} left rooms: {}",
        rooms.join(", ")
    )))
}

/// `GET /socket/client/{clientId}/rooms`: the client's rooms, its own id first.
pub(crate) async fn rooms(
    Helper(helper): Helper,
    Param(id): Param,
) -> Result<Json<Value>, ApiError> {
    Ok(match find_client(&helper, &id).await? {
        Some(client) => Json(json!({
            "success": true,
            "rooms": client.rooms.iter().map(|r| r.as_ref()).collect::<Vec<&str>>(),
        })),
        None => client_not_found(&id),
    })
}

/// `DELETE /socket/client/{clientId}`: disconnects the client, on whichever node it is, and
/// closes its connection (its socket.io-client sees `io server disconnect` and does not
/// reconnect by itself).
pub(crate) async fn disconnect(
    Helper(helper): Helper,
    Param(id): Param,
) -> Result<Json<Value>, ApiError> {
    let Some(client) = find_client(&helper, &id).await? else {
        return Ok(client_not_found(&id));
    };
    client
        .operators
        .disconnect_sockets(true)
        .await
        .map_err(cluster_error)?;
    Ok(success(format!("Client {id} disconnected")))
}

/// `GET /socket/rooms`: the rooms of the cluster with their number of clients, by name; a
/// client's own-id room is not listed (there is one per client, see `/socket/clients`).
pub(crate) async fn cluster_rooms(Helper(helper): Helper) -> Result<Json<Value>, ApiError> {
    let sockets = helper
        .io()
        .operators()
        .fetch_sockets()
        .await
        .map_err(cluster_error)?;
    let mut sizes: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for socket in &sockets {
        for room in &socket.rooms {
            if room.as_ref() != socket.id.as_str() {
                *sizes.entry(room.as_ref()).or_default() += 1;
            }
        }
    }
    let rooms: Vec<Value> = sizes
        .into_iter()
        .map(|(room, size)| json!({ "room": room, "size": size }))
        .collect();
    Ok(Json(json!({ "count": rooms.len(), "rooms": rooms })))
}

/// `GET /socket/room/{roomId}/clients`: the ids of the clients in a room, on every node.
pub(crate) async fn room_clients(
    Helper(helper): Helper,
    Param(room): Param,
) -> Result<Json<Value>, ApiError> {
    let sockets = helper
        .io()
        .to(room.clone())
        .fetch_sockets()
        .await
        .map_err(cluster_error)?;
    let mut ids: Vec<&str> = sockets.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    Ok(Json(
        json!({ "room": room, "count": ids.len(), "clients": ids }),
    ))
}

/// `GET /socket/health`: never fails, and needs no API key.
///
/// With Redis, `redis` says whether the connection is up; while it is down the node is
/// `degraded`: its own clients are served, cross-node delivery fails.
pub(crate) async fn health(State(state): State<Arc<ApiState>>) -> Json<Value> {
    let helper = state.app.get(keys::SOCKET_IO_INSTANCE).ok();
    let redis = helper.as_ref().and_then(|h| h.redis_healthy());
    let draining = helper.as_ref().is_some_and(|h| h.is_draining());
    let mut body = json!({
        "healthy": helper.is_some() && redis != Some(false),
        "timestamp": iso_timestamp(SystemTime::now()),
    });
    if let Some(up) = redis {
        body["redis"] = json!(if up { "up" } else { "down" });
        body["status"] = json!(if up { "ok" } else { "degraded" });
    }
    if draining {
        body["draining"] = json!(true);
        body["status"] = json!("draining");
    }
    Json(body)
}

/// `GET /socket/ready`: the probe a load balancer sends new clients by. 200 `ready` once the
/// Socket.IO server is up; 503 `starting` before, and `draining` once a drain started (the node
/// refuses new clients then). Redis being down does not make a node unready: every node shares
/// it, so taking them all out would turn a degraded cluster into no service at all.
///
/// `?draining=404` answers a drain with 404 instead: HAProxy's `http-check disable-on-404`
/// takes such a node out of the balancing but still sends it the requests of the sessions stuck
/// to it, so that a long-polling client stays on the node until the drain closes its session
/// (and keeps it for recovery), rather than being sent to a node that does not know it.
pub(crate) async fn ready(
    State(state): State<Arc<ApiState>>,
    Query(query): Query<ReadyQuery>,
) -> Result<Response, BadRequest> {
    let draining_code = match query.draining.as_deref() {
        None | Some("503") => StatusCode::SERVICE_UNAVAILABLE,
        Some("404") => StatusCode::NOT_FOUND,
        Some(other) => {
            return Err(BadRequest(format!(
                "draining must be 404 or 503, got {other:?}"
            )));
        }
    };
    let status = match state.app.get(keys::SOCKET_IO_INSTANCE) {
        Err(_) => "starting",
        Ok(helper) if helper.is_draining() => "draining",
        Ok(_) => "ready",
    };
    let code = match status {
        "ready" => StatusCode::OK,
        "draining" => draining_code,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    Ok((code, Json(json!({ "status": status }))).into_response())
}

/// The query of [`ready`].
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ReadyQuery {
    /// The status a draining node answers with: `503` (the default) or `404`.
    draining: Option<String>,
}

/// `POST /socket/drain`: the node stops taking new clients at once (readiness 503, handshakes
/// 503) and the process moves its clients off over the drain window, then exits, as on
/// SIGTERM. Asking again changes nothing.
pub(crate) async fn drain(
    State(state): State<Arc<ApiState>>,
    Helper(helper): Helper,
) -> Json<Value> {
    // Refusing first, so that the answer means the node already takes no one.
    let first = helper.start_draining() | state.drain.request();
    let window = state.drain.window();
    tracing::warn!(
        window_ms = window.as_millis() as u64,
        "drain requested through the REST API"
    );
    let message = if first {
        format!(
            "Draining: no new clients; the {} client(s) here move off over {} s, then the process exits",
            helper.io().engine().session_count(),
            window.as_secs()
        )
    } else {
        "Already draining".to_string()
    };
    Json(json!({
        "success": true,
        "message": message,
        "drainSeconds": window.as_secs(),
    }))
}

fn success(message: String) -> Json<Value> {
    Json(json!({ "success": true, "message": message }))
}

fn client_not_found(id: &str) -> Json<Value> {
    Json(json!({ "success": false, "message": format!("Client not found: {id}") }))
}

fn cluster_error(e: AdapterError) -> ApiError {
    tracing::error!(error = %e, "cluster operation failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("The cluster could not be reached: {e}"),
    )
}

/// `{topic, data}` sent to `destination` (everyone when `None`). `data` may be any JSON value,
/// `null`, `0`, `false` and `""` included; a missing `data` is sent as `null`. Answers once
/// the adapter confirmed the send (with the streams adapter, once the entry is in the stream):
/// sends answered one after another reach the clients in that order, whichever node took them.
/// 503 when the cluster did not take it in the adapter's bound.
async fn send(
    helper: &SocketIoServerHelper,
    destination: Option<String>,
    body: &Map<String, Value>,
) -> Result<(), HandlerError> {
    let topic = topic_field(body)?;
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    // Logged here, escaped: topic and room come from the request, and the helper's own line
    // would write them as they are.
    tracing::info!(
        destination = %Escaped(destination.as_deref().unwrap_or("all")),
        topic = %Escaped(&topic),
        "Message emitted"
    );
    helper
        .send_confirmed(SendOptions {
            destination,
            topic,
            data: data.into(),
            log: false,
        })
        .await
        .map_err(|e| match e {
            SendError::MissingTopic => BadRequest(MESSAGE_TOPIC_REQUIRED.into()).into(),
            SendError::ReservedEvent(_) => BadRequest(e.to_string()).into(),
            SendError::Publish(_) => HandlerError::from(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                e.to_string(),
            )),
        })
}

/// A missing, `null` or empty topic gets the original's 400; a topic of another type is a
/// malformed body (422).
fn topic_field(body: &Map<String, Value>) -> Result<String, HandlerError> {
    match body.get("topic") {
        None | Some(Value::Null) => Err(BadRequest(MESSAGE_TOPIC_REQUIRED.into()).into()),
        Some(Value::String(t)) if t.is_empty() => {
            Err(BadRequest(MESSAGE_TOPIC_REQUIRED.into()).into())
        }
        Some(Value::String(t)) => Ok(t.clone()),
        Some(other) => Err(ApiError::validation(vec![Issue::new(
            &["topic"],
            expected("string", other),
        )])
        .into()),
    }
}

/// `rooms` must be a non-empty array of non-empty strings; anything else (a string included)
/// gets the original's 400.
fn rooms_field(body: &Map<String, Value>) -> Result<Vec<String>, BadRequest> {
    let refuse = || BadRequest(MESSAGE_ROOMS_REQUIRED.into());
    let Some(Value::Array(items)) = body.get("rooms") else {
        return Err(refuse());
    };
    if items.is_empty() {
        return Err(refuse());
    }
    items
        .iter()
        .map(|item| match item {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            _ => Err(refuse()),
        })
        .collect()
}

/// A client found somewhere in the cluster.
struct FoundClient {
    rooms: Vec<Room>,
    /// Selects exactly that client.
    operators: Operators,
}

/// Looks `id` up on every node. Only a string shaped like a socket id can name a client; its
/// own-id room is used to reach it, leaving out any other socket that was put in a room of that
/// name so that join/leave never touch them.
async fn find_client(
    helper: &SocketIoServerHelper,
    id: &str,
) -> Result<Option<FoundClient>, ApiError> {
    if Sid::parse(id).is_none() {
        return Ok(None);
    }
    let sockets = helper
        .io()
        .to(id)
        .fetch_sockets()
        .await
        .map_err(cluster_error)?;
    let mut found = None;
    let mut others = Vec::new();
    for socket in sockets {
        if socket.id.as_str() == id {
            found = Some(socket.rooms);
        } else {
            others.push(socket.id);
        }
    }
    Ok(found.map(|rooms| FoundClient {
        rooms,
        operators: helper.io().to(id).except(others),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test bodies are objects"),
        }
    }

    #[test]
    fn topics() {
        let cases: Vec<(Value, Result<&str, u16>)> = vec![
            (json!({"topic": "news"}), Ok("news")),
            (json!({"topic": "a b/c"}), Ok("a b/c")),
            (json!({}), Err(400)),
            (json!({"topic": null}), Err(400)),
            (json!({"topic": ""}), Err(400)),
            (json!({"topic": 0}), Err(422)),
            (json!({"topic": false}), Err(422)),
            (json!({"topic": ["x"]}), Err(422)),
            (json!({"topic": {"a": 1}}), Err(422)),
        ];
        for (body, want) in cases {
            let got = topic_field(&object(body.clone())).map_err(|e| match e {
                HandlerError::Flat(b) => {
                    assert_eq!(b.0, MESSAGE_TOPIC_REQUIRED);
                    400
                }
                HandlerError::Envelope(e) => {
                    assert_eq!(e.message, "ValidationError");
                    e.status.as_u16()
                }
            });
            assert_eq!(got, want.map(str::to_string), "{body}");
        }
    }

    #[test]
    fn rooms_lists() {
        let cases: Vec<(Value, Option<Vec<&str>>)> = vec![
            (json!({"rooms": ["a"]}), Some(vec!["a"])),
            (json!({"rooms": ["b", "a", "b"]}), Some(vec!["b", "a", "b"])),
            (json!({}), None),
            (json!({"rooms": null}), None),
            (json!({"rooms": []}), None),
            (json!({"rooms": "abc"}), None),
            (json!({"rooms": 3}), None),
            (json!({"rooms": {"0": "a"}}), None),
            (json!({"rooms": ["a", 1]}), None),
            (json!({"rooms": ["a", ""]}), None),
            (json!({"rooms": [null]}), None),
            (json!({"rooms": [["a"]]}), None),
        ];
        for (body, want) in cases {
            let got = rooms_field(&object(body.clone()));
            match want {
                Some(rooms) => assert_eq!(
                    got.ok(),
                    Some(rooms.iter().map(|r| r.to_string()).collect()),
                    "{body}"
                ),
                None => assert_eq!(
                    got,
                    Err(BadRequest(MESSAGE_ROOMS_REQUIRED.into())),
                    "{body}"
                ),
            }
        }
    }
}
