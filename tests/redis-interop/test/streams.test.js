// The mixed cluster on @socket.io/redis-streams-adapter 0.3 (one Redis stream for broadcasts and
// cluster-wide joins, leaves and disconnects; PUB/SUB for requests and answers): the same suite as
// the other protocols. Node's streams adapter has no allRooms, and no emitter speaks this protocol.
import { mixedClusterSuite } from "../lib/cluster-suite.js";

mixedClusterSuite({ title: "streams mixed cluster: Node + 2 × Ignis", extraArgs: ["--mode", "streams"], nodeAllRooms: false });
