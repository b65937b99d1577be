// A second namespace, /chat, in the mixed cluster, on the classic protocol and on the sharded one
// (its default dynamic mode, where a room has a channel of its own); the suite is in
// lib/namespace-suite.js.
import { namespaceSuite } from "../lib/namespace-suite.js";

namespaceSuite({ title: "namespace /chat in a mixed cluster" });
namespaceSuite({
  title: "namespace /chat in a sharded mixed cluster (dynamic)",
  extraArgs: ["--mode", "sharded", "--subscription-mode", "dynamic"],
  sharded: true,
});
