// The mixed cluster on the sharded protocol (createShardedAdapter over node-redis 4, Redis 7
// SSUBSCRIBE/SPUBLISH), in each subscription mode: the same suites as the classic protocol. Node's
// sharded adapter has no allRooms, and no Node emitter speaks this protocol, so only the Ignis
// emitter (Emitter::sharded) is exercised, reaching the clients of every node.
import { mixedClusterSuite } from "../lib/cluster-suite.js";
import { emitterSuite } from "../lib/emitter-suite.js";

for (const mode of ["dynamic", "dynamic-private", "static"]) {
  const extraArgs = ["--mode", "sharded", "--subscription-mode", mode];
  mixedClusterSuite({ title: `sharded mixed cluster (${mode}): Node + 2 × Ignis`, extraArgs, nodeAllRooms: false });
  emitterSuite({ title: `sharded emitter (${mode})`, extraArgs, emitters: [["Rust emitter", 1]] });
}
