// Tests of @tradewire/client and @tradewire/react against the real gateway
// (tests/frontend/vitest.setup.mjs starts the Go binary in dev mode).
// TRADEWIRE_REACT_DIR=<dir with node_modules/react, react-dom> runs the same
// tests against another React major (tests/frontend/react18).
import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { createRequire } from "node:module";

const root = fileURLToPath(new URL(".", import.meta.url));
const alias = [
  { find: "@tradewire/client", replacement: join(root, "clients/js/src/index.ts") },
  { find: "@tradewire/react", replacement: join(root, "clients/react/src/index.tsx") },
];
const reactDir = process.env.TRADEWIRE_REACT_DIR;
if (reactDir) {
  // every entry point of react and react-dom, mapped to that directory's copy
  const req = createRequire(join(reactDir, "package.json"));
  for (const id of ["react", "react/jsx-runtime", "react/jsx-dev-runtime", "react-dom", "react-dom/client", "@testing-library/react"]) {
    alias.push({ find: new RegExp("^" + id.replaceAll("/", "\\/") + "$"), replacement: req.resolve(id) });
  }
}

export default defineConfig({
  plugins: [react()],
  resolve: { alias },
  test: {
    include: ["clients/js/test/*.test.ts", "clients/react/test/*.test.tsx"],
    globalSetup: ["tests/frontend/vitest.setup.mjs"],
    testTimeout: 20000,
    hookTimeout: 30000,
    fileParallelism: false,
    // the workspace's Testing Library goes through the aliases; the React 18
    // run uses the copy next to React 18 instead, loaded by Node
    server: { deps: { inline: reactDir ? [] : ["@testing-library/react"] } },
    env: { TRADEWIRE_REACT_DIR: reactDir ?? "" },
  },
});
