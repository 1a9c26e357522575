// npm run build: src/index.ts -> dist/cdp.js (one minified IIFE, no dependencies).
import { build } from "esbuild";
import { readFileSync } from "node:fs";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url)));
await build({
  entryPoints: ["src/index.ts"],
  outfile: "dist/cdp.js",
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2017",
  define: { VERSION: JSON.stringify(version) },
  legalComments: "none",
  logLevel: "warning",
});
