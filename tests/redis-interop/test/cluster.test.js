// The mixed cluster on the classic protocol (createAdapter); the suite is in lib/cluster-suite.js.
import { mixedClusterSuite } from "../lib/cluster-suite.js";

mixedClusterSuite({ title: "mixed cluster: Node + 2 × Ignis" });
