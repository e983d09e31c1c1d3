// Computes the hash of the dashboard's sources (web/ and the two client
// packages) and writes it to web/dist/source-hash.txt after a build
// ("write"), or prints it ("print"). web/web_test.go computes the same hash
// in Go, so a test fails when web/dist was not rebuilt after a change.
// The file list and format are defined in web/sources.go; keep both in step.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const roots = ["web/src", "web/index.html", "web/vite.config.js", "web/package.json", "clients/js/src", "clients/react/src", "package-lock.json"];

function walk(p, out) {
  const st = statSync(join(root, p));
  if (st.isDirectory()) {
    for (const name of readdirSync(join(root, p))) walk(p + "/" + name, out);
  } else out.push(p);
}

const files = [];
for (const r of roots) walk(r, files);
files.sort();
const h = createHash("sha256");
for (const f of files) {
  const content = readFileSync(join(root, f)).toString("utf8").replace(/\r\n/g, "\n");
  h.update(f + "\n" + createHash("sha256").update(content).digest("hex") + "\n");
}
const sum = h.digest("hex");
if (process.argv[2] === "write") {
  writeFileSync(join(root, "web/dist/source-hash.txt"), sum + "\n");
  console.log("web/dist/source-hash.txt", sum);
} else console.log(sum);
