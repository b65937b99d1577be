// publishOnSpecificResponseChannel in the mixed cluster (classic protocol), on every node and on
// some only. Every classic node listens on its own response channel whatever its option, and the
// option only says where a node publishes its answers, so Node's adapter works with the option
// mixed: the request/response parts of the suite must pass in each case, and each node, Node or
// Ignis, must answer on the channel its own option names.
import { mixedClusterSuite } from "../lib/cluster-suite.js";

const ON = ["--specific-response-channel"];
for (const [title, on] of [
  ["on every node", { node: true, rust1: true, rust2: true }],
  ["on Node only", { node: true, rust1: false, rust2: false }],
  ["on one Ignis node only", { node: false, rust1: true, rust2: false }],
]) {
  mixedClusterSuite({
    title: `specific response channel ${title}`,
    nodeArgs: Object.fromEntries(Object.entries(on).map(([name, yes]) => [name, yes ? ON : []])),
    requestsOnly: true,
    specificResponse: on,
  });
}
