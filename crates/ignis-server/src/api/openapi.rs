//! The OpenAPI 3.1 document describing the API, built once when the router is.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use serde_json::{Value, json};

use super::ApiState;

/// `GET {base}/doc/openapi.json`.
pub(crate) async fn serve(State(state): State<Arc<ApiState>>) -> Response {
    let mut response = state.openapi.clone().into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn json_body(schema: &str, example: Value) -> Value {
    json!({
        "required": true,
        "content": { "application/json": { "schema": schema_ref(schema), "example": example } }
    })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": { "type": "string" }
    })
}

/// What every endpoint of a kind may answer besides its success.
struct Common {
    protected: bool,
    with_body: bool,
    api_key: bool,
}

fn operation(
    tag: &str,
    id: &str,
    summary: &str,
    description: &str,
    success: Value,
    common: Common,
) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert("200".into(), success);
    if common.with_body {
        responses.insert(
            "400".into(),
            json_response(
                "Malformed JSON (envelope, `Malformed Body Payload`) or a missing required field \
                 (flat `{\"error\": \"...\"}`)",
                json!({ "oneOf": [schema_ref("ErrorEnvelope"), schema_ref("FlatError")] }),
            ),
        );
        responses.insert(
            "413".into(),
            json_response(
                "The body is over 10 MB (the body is `{}`)",
                json!({ "type": "object" }),
            ),
        );
        responses.insert(
            "422".into(),
            json_response(
                "A well-formed body of the wrong shape (`ValidationError`, `details.cause`)",
                schema_ref("ErrorEnvelope"),
            ),
        );
    }
    if common.protected {
        if common.api_key {
            responses.insert(
                "401".into(),
                json_response("No valid API key", schema_ref("ErrorEnvelope")),
            );
        }
        responses.insert(
            "500".into(),
            json_response(
                "The Socket.IO server is not initialized yet",
                schema_ref("ErrorEnvelope"),
            ),
        );
    }
    let mut op = json!({
        "tags": [tag],
        "operationId": id,
        "summary": summary,
        "description": description,
        "responses": responses,
    });
    if common.protected
        && common.api_key
        && let Some(op) = op.as_object_mut()
    {
        op.insert(
            "security".into(),
            json!([{ "ApiKeyHeader": [] }, { "BearerAuth": [] }]),
        );
    }
    op
}

/// The document for an API served under `base` (already normalized).
pub(crate) fn document(base: &str, app_name: &str, api_key: bool) -> Value {
    let socket = |with_body| Common {
        protected: true,
        with_body,
        api_key,
    };
    let open = |with_body| Common {
        protected: false,
        with_body,
        api_key,
    };
    let client_id = path_param("clientId", "A socket id (20 characters)");
    let room_id = path_param("roomId", "A room name");
    let send_example = json!({ "topic": "notification", "data": { "text": "hello" } });
    let rooms_example = json!({ "rooms": ["room-a", "room-b"] });
    let publish_failed = json_response(
        "The message could not be published: the cluster did not take it in time (with \
         `--redis-mode streams`, the entry was not in the stream within the adapter's bound, \
         5 s; it is still added once Redis is back). The message names the reason.",
        schema_ref("ErrorEnvelope"),
    );

    let mut paths = serde_json::Map::new();
    let mut add =
        |path: &str, method: &str, mut op: Value, params: Vec<Value>, body: Option<Value>| {
            if let Some(o) = op.as_object_mut() {
                if !params.is_empty() {
                    o.insert("parameters".into(), Value::Array(params));
                }
                if let Some(body) = body {
                    o.insert("requestBody".into(), body);
                }
            }
            let entry = paths
                .entry(format!("{base}{path}"))
                .or_insert_with(|| json!({}));
            if let Some(entry) = entry.as_object_mut() {
                entry.insert(method.into(), op);
            }
        };

    add(
        "/socket/info",
        "get",
        operation(
            "socket",
            "getSocketInfo",
            "Server status and the clients of this node",
            "Counts every tracked socket of the answering node, authenticated or not.",
            json_response("Status", schema_ref("SocketInfo")),
            socket(false),
        ),
        vec![],
        None,
    );
    add(
        "/socket/clients",
        "get",
        operation(
            "socket",
            "getSocketClients",
            "The ids of the clients of this node",
            "Every tracked socket of the answering node, authenticated or not.",
            json_response("Client ids", schema_ref("SocketClients")),
            socket(false),
        ),
        vec![],
        None,
    );
    let with_publish = |op: Value| {
        let mut op = op;
        if let Some(r) = op.get_mut("responses").and_then(Value::as_object_mut) {
            r.insert("503".into(), publish_failed.clone());
        }
        op
    };
    add(
        "/socket/broadcast",
        "post",
        with_publish(operation(
            "socket",
            "broadcast",
            "Send an event to every authenticated client",
            "`data` may be any JSON value (`null`, `0`, `false` and `\"\"` included); a missing \
             `data` is sent as `null`. The message counts the authenticated clients of this node \
             (those the broadcast reaches). Answers once the cluster took the message (with \
             `--redis-mode streams`, once its entry is in the stream): sends answered one after \
             another, through any nodes, reach every client in that order.",
            json_response("Sent", schema_ref("Success")),
            socket(true),
        )),
        vec![],
        Some(json_body("SendBody", send_example.clone())),
    );
    add(
        "/socket/room/{roomId}/send",
        "post",
        with_publish(operation(
            "socket",
            "sendToRoom",
            "Send an event to the clients in a room",
            "Reaches the room's clients on every node. Answers once the cluster took the \
             message, as the broadcast does.",
            json_response("Sent", schema_ref("Success")),
            socket(true),
        )),
        vec![room_id.clone()],
        Some(json_body("SendBody", send_example.clone())),
    );
    add(
        "/socket/client/{clientId}/send",
        "post",
        with_publish(operation(
            "socket",
            "sendToClient",
            "Send an event to one client",
            "Finds the client on any node, and answers once the cluster took the message, as \
             the broadcast does. An unknown client answers 200 with `success: false`, \
             as join, leave and rooms do (the original answers `Message sent` whether or not the \
             client exists).",
            json_response(
                "Sent, or the client was not found",
                json!({ "oneOf": [schema_ref("Success"), schema_ref("ClientNotFound")] }),
            ),
            socket(true),
        )),
        vec![client_id.clone()],
        Some(json_body("SendBody", send_example)),
    );
    add(
        "/socket/client/{clientId}/join",
        "post",
        with_publish(operation(
            "socket",
            "joinRooms",
            "Make a client join rooms",
            "Finds the client on any node and joins it directly (no room validator). An unknown \
             client answers 200 with `success: false`.",
            json_response(
                "Joined, or the client was not found",
                json!({ "oneOf": [schema_ref("Success"), schema_ref("ClientNotFound")] }),
            ),
            socket(true),
        )),
        vec![client_id.clone()],
        Some(json_body("RoomsBody", rooms_example.clone())),
    );
    add(
        "/socket/client/{clientId}/leave",
        "post",
        with_publish(operation(
            "socket",
            "leaveRooms",
            "Make a client leave rooms",
            "Finds the client on any node. The client's own-id room is never left. An unknown \
             client answers 200 with `success: false`.",
            json_response(
                "Left, or the client was not found",
                json!({ "oneOf": [schema_ref("Success"), schema_ref("ClientNotFound")] }),
            ),
            socket(true),
        )),
        vec![client_id.clone()],
        Some(json_body("RoomsBody", rooms_example)),
    );
    add(
        "/socket/client/{clientId}/rooms",
        "get",
        with_publish(operation(
            "socket",
            "getClientRooms",
            "The rooms of a client",
            "Finds the client on any node; its own id comes first.",
            json_response(
                "The rooms, or the client was not found",
                json!({ "oneOf": [schema_ref("ClientRooms"), schema_ref("ClientNotFound")] }),
            ),
            socket(false),
        )),
        vec![client_id.clone()],
        None,
    );
    add(
        "/socket/client/{clientId}",
        "delete",
        with_publish(operation(
            "socket",
            "disconnectClient",
            "Disconnect a client",
            "Finds the client on any node, disconnects it and closes its connection (the client \
             sees `io server disconnect` and does not reconnect by itself). An unknown client \
             answers 200 with `success: false`.",
            json_response(
                "Disconnected, or the client was not found",
                json!({ "oneOf": [schema_ref("Success"), schema_ref("ClientNotFound")] }),
            ),
            socket(false),
        )),
        vec![client_id],
        None,
    );
    add(
        "/socket/drain",
        "post",
        operation(
            "socket",
            "drainNode",
            "Drain this node (as SIGTERM does)",
            "At once the node refuses new Socket.IO handshakes (503) and `/socket/ready` answers \
             503; its clients are then moved off over the drain window (`--drain-seconds`) by \
             closing their connections, which socket.io-client reconnects (to another node behind \
             a load balancer), and the process exits once they are gone or the window is over. \
             No body. Asking again answers `Already draining`.",
            json_response("Draining", schema_ref("Drain")),
            socket(false),
        ),
        vec![],
        None,
    );
    add(
        "/socket/ready",
        "get",
        {
            let mut op = operation(
                "socket",
                "getSocketReadiness",
                "Whether this node takes new clients (a load balancer's probe)",
                "200 `ready` while the node takes new clients; 503 `starting` before the Socket.IO \
                 server is up and `draining` once a drain started (404 with `?draining=404`, for \
                 HAProxy's `http-check disable-on-404`, which keeps sending a draining node the \
                 requests of its sessions). Needs no API key.",
                json_response("Ready", schema_ref("Readiness")),
                open(false),
            );
            if let Some(r) = op.get_mut("responses").and_then(Value::as_object_mut) {
                r.insert(
                    "503".into(),
                    json_response("Starting or draining", schema_ref("Readiness")),
                );
                r.insert(
                    "404".into(),
                    json_response(
                        "Draining, asked with `?draining=404`",
                        schema_ref("Readiness"),
                    ),
                );
                r.insert(
                    "400".into(),
                    json_response(
                        "`draining` is neither 404 nor 503",
                        json!({
                            "type": "object",
                            "properties": { "error": { "type": "string" } },
                            "required": ["error"]
                        }),
                    ),
                );
            }
            op
        },
        vec![json!({
            "name": "draining",
            "in": "query",
            "required": false,
            "description": "The status a draining node answers with: 503 (the default) or 404 \
                            (for HAProxy's `http-check disable-on-404`)",
            "schema": { "type": "string", "enum": ["503", "404"] }
        })],
        None,
    );
    add(
        "/socket/rooms",
        "get",
        with_publish(operation(
            "socket",
            "getRooms",
            "The rooms of the cluster and their sizes",
            "Every room some client of any node is in, by name, with its number of clients; \
             the clients' own-id rooms are left out.",
            json_response("The rooms", schema_ref("Rooms")),
            socket(false),
        )),
        vec![],
        None,
    );
    add(
        "/socket/room/{roomId}/clients",
        "get",
        with_publish(operation(
            "socket",
            "getRoomClients",
            "The clients in a room",
            "The ids of the room's clients on every node, sorted; an unknown room has none.",
            json_response("The clients", schema_ref("RoomClients")),
            socket(false),
        )),
        vec![room_id.clone()],
        None,
    );
    add(
        "/socket/health",
        "get",
        operation(
            "socket",
            "getSocketHealth",
            "Whether the Socket.IO server is up",
            "Never fails and needs no API key.",
            json_response("Health", schema_ref("SocketHealth")),
            open(false),
        ),
        vec![],
        None,
    );
    add(
        "/health-check",
        "get",
        operation(
            "health-check",
            "getHealthCheck",
            "Liveness",
            "Answers while the process serves HTTP.",
            json_response("Alive", schema_ref("HealthStatus")),
            open(false),
        ),
        vec![],
        None,
    );
    add(
        "/health-check/ping",
        "post",
        operation(
            "health-check",
            "ping",
            "Echo a message",
            "Answers `PONG` with the message and the server time.",
            json_response("Pong", schema_ref("Pong")),
            open(true),
        ),
        vec![],
        Some(json_body(
            "Ping",
            json!({ "type": "PING", "message": "hello" }),
        )),
    );
    add(
        "/doc/openapi.json",
        "get",
        operation(
            "documentation",
            "getOpenApiDocument",
            "This document",
            "OpenAPI 3.1.",
            json_response("The document", json!({ "type": "object" })),
            open(false),
        ),
        vec![],
        None,
    );
    add(
        "/doc/explorer",
        "get",
        operation(
            "documentation",
            "getExplorer",
            "A page to browse and try the API",
            "Self-contained HTML.",
            json!({ "description": "HTML page", "content": { "text/html": { "schema": { "type": "string" } } } }),
            open(false),
        ),
        vec![],
        None,
    );

    let string = json!({ "type": "string" });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("{app_name} REST API"),
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Management API of the Ignis real-time server. Every response carries \
                `X-Request-Id` (a valid incoming one is reused). Errors use the envelope \
                `{\"error\": {message, statusCode, requestId, details}}`; unknown routes answer \
                404 with `{message: \"URL NOT FOUND\", statusCode, requestId, path, url}`; a \
                known path with another method answers 405 with `Allow` and the envelope. \
                Cross-origin calls from browsers are refused unless the server lists the \
                origin (`--cors-origins`).",
        },
        "tags": [
            { "name": "socket", "description": "Clients, rooms and messages of the Socket.IO server" },
            { "name": "health-check", "description": "Liveness" },
            { "name": "documentation", "description": "This document and its explorer" },
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "ApiKeyHeader": { "type": "apiKey", "in": "header", "name": "X-API-Key",
                    "description": "The server's API key, when one is configured" },
                "BearerAuth": { "type": "http", "scheme": "bearer",
                    "description": "The server's API key as a bearer token" },
            },
            "schemas": {
                "ErrorEnvelope": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": {
                        "type": "object",
                        "required": ["message", "statusCode", "requestId", "details"],
                        "properties": {
                            "message": string,
                            "statusCode": { "type": "integer" },
                            "requestId": string,
                            "details": {
                                "type": "object",
                                "required": ["url", "path"],
                                "properties": {
                                    "url": string,
                                    "path": string,
                                    "cause": { "type": "array", "items": schema_ref("Issue") },
                                },
                            },
                        },
                    } },
                },
                "Issue": {
                    "type": "object",
                    "required": ["path", "message"],
                    "properties": { "path": strings, "message": string },
                },
                "FlatError": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": string },
                    "examples": [{ "error": "Topic is required" }],
                },
                "NotFound": {
                    "type": "object",
                    "required": ["message", "statusCode", "requestId", "path", "url"],
                    "properties": {
                        "message": { "const": "URL NOT FOUND" },
                        "statusCode": { "const": 404 },
                        "requestId": string, "path": string, "url": string,
                    },
                },
                "SendBody": {
                    "type": "object",
                    "required": ["topic"],
                    "properties": {
                        "topic": { "type": "string", "minLength": 1, "description": "The event name" },
                        "data": { "description": "Any JSON value" },
                    },
                },
                "RoomsBody": {
                    "type": "object",
                    "required": ["rooms"],
                    "properties": { "rooms": {
                        "type": "array", "minItems": 1,
                        "items": { "type": "string", "minLength": 1 },
                    } },
                },
                "Success": {
                    "type": "object",
                    "required": ["success", "message"],
                    "properties": { "success": { "const": true }, "message": string },
                },
                "ClientNotFound": {
                    "type": "object",
                    "required": ["success", "message"],
                    "properties": { "success": { "const": false }, "message": string },
                    "examples": [{ "success": false, "message": "Client not found: abc" }],
                },
                "Rooms": {
                    "type": "object",
                    "required": ["count", "rooms"],
                    "properties": {
                        "count": { "type": "integer" },
                        "rooms": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["room", "size"],
                                "properties": {
                                    "room": { "type": "string" },
                                    "size": { "type": "integer" },
                                },
                            },
                        },
                    },
                },
                "RoomClients": {
                    "type": "object",
                    "required": ["room", "count", "clients"],
                    "properties": {
                        "room": { "type": "string" },
                        "count": { "type": "integer" },
                        "clients": strings,
                    },
                },
                "ClientRooms": {
                    "type": "object",
                    "required": ["success", "rooms"],
                    "properties": { "success": { "const": true }, "rooms": strings },
                },
                "SocketInfo": {
                    "type": "object",
                    "required": ["status", "connectedClients", "clientIds", "limits"],
                    "properties": {
                        "status": { "const": "running" },
                        "connectedClients": { "type": "integer" },
                        "clientIds": strings,
                        "limits": {
                            "type": "object",
                            "description": "How often each abuse limit of this node was hit since it started: clients cut for a full outbound queue (in messages or bytes), WebSocket reads paused for an unread pong, bodies too slow (408) or too large (413), connections and handshakes refused per IP, rooms refused (over the cap, not allowed, another socket's id room), events refused for their rate or size, and sockets disconnected for flooding.",
                            "additionalProperties": { "type": "integer", "minimum": 0 },
                        },
                    },
                },
                "SocketClients": {
                    "type": "object",
                    "required": ["count", "clients"],
                    "properties": { "count": { "type": "integer" }, "clients": strings },
                },
                "SocketHealth": {
                    "type": "object",
                    "required": ["healthy", "timestamp"],
                    "properties": {
                        "healthy": { "type": "boolean" },
                        "timestamp": { "type": "string", "format": "date-time" },
                        "redis": { "enum": ["up", "down"] },
                        "status": { "enum": ["ok", "degraded", "draining"] },
                        "draining": { "const": true },
                    },
                },
                "Readiness": {
                    "type": "object",
                    "required": ["status"],
                    "properties": { "status": { "enum": ["ready", "starting", "draining"] } },
                },
                "Drain": {
                    "type": "object",
                    "required": ["success", "message", "drainSeconds"],
                    "properties": {
                        "success": { "const": true },
                        "message": { "type": "string" },
                        "drainSeconds": { "type": "integer", "minimum": 0 },
                    },
                },
                "HealthStatus": {
                    "type": "object",
                    "required": ["status"],
                    "properties": { "status": { "const": "ok" } },
                },
                "Ping": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "type": { "type": "string", "default": "PING" },
                        "message": { "type": "string", "minLength": 1, "maxLength": 255 },
                    },
                },
                "Pong": {
                    "type": "object",
                    "required": ["type", "date", "message"],
                    "properties": {
                        "type": { "const": "PONG" },
                        "date": { "type": "string", "format": "date-time" },
                        "message": string,
                    },
                },
            },
        },
    })
}
