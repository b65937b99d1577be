// Bundles the page into the directory named by the first argument:
//   index.html                  the page, naming the assets below
//   assets/main-<hash>.js       the app and socket.io-client, one ES module
//   assets/style-<hash>.css     the styles
//   assets/icon-<hash>.svg      the favicon
// Asset names carry a hash of their content, so the server can let browsers cache them for ever;
// only index.html must be revalidated. crates/ignis-chat/build.rs runs this with OUT_DIR.
import { createHash } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] ?? path.join(here, "dist"));
const assets = path.join(out, "assets");
await rm(out, { recursive: true, force: true });
await mkdir(assets, { recursive: true });

// esbuild has printed what is wrong (file, line, column); its stack would add nothing.
const fail = () => process.exit(1);
const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: ["src/main.js", "src/style.css"],
  bundle: true,
  minify: true,
  format: "esm",
  platform: "browser",
  target: ["chrome109", "firefox115", "safari16"],
  outdir: assets,
  entryNames: "[name]-[hash]",
  metafile: true,
  logLevel: "warning",
}).catch(fail);

/** The output file built from `entry`, as a URL path. */
function built(entry) {
  const found = Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint === entry);
  if (!found) throw new Error(`esbuild wrote nothing for ${entry}`);
  return `/assets/${path.basename(found[0])}`;
}

const icon = await readFile(path.join(here, "src/icon.svg"));
const iconName = `icon-${createHash("sha256").update(icon).digest("hex").slice(0, 12)}.svg`;
await writeFile(path.join(assets, iconName), icon);

const names = {
  "main.js": built("src/main.js"),
  "style.css": built("src/style.css"),
  "icon.svg": `/assets/${iconName}`,
};
const template = await readFile(path.join(here, "src/index.html"), "utf8");
const html = template.replace(/\{\{([a-z.]+)\}\}/g, (whole, name) => {
  if (!(name in names)) throw new Error(`src/index.html names an unknown asset ${whole}`);
  return names[name];
});
await writeFile(path.join(out, "index.html"), html);
