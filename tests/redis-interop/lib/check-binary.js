// `npm test` runs this first: the suite needs the Rust cluster node, built by cargo.
import { existsSync } from "node:fs";
import { CLUSTER_NODE_BIN } from "./cluster.js";

if (!existsSync(CLUSTER_NODE_BIN)) {
  console.error(
    `redis-interop: the Rust cluster node is missing at ${CLUSTER_NODE_BIN}.\n` +
      "Build it with `cargo build -p ignis-redis --example cluster-node` from the repository root,\n" +
      "or point IGNIS_CLUSTER_NODE_BIN at it.",
  );
  process.exit(1);
}
