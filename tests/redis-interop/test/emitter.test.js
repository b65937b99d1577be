// The emitters on the classic protocol; the suite is in lib/emitter-suite.js.
import { emitterSuite } from "../lib/emitter-suite.js";

emitterSuite({ title: "emitters in a mixed cluster" });
