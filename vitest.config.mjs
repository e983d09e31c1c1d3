// Tests of @tradewire/client and @tradewire/react against the real gateway
// (tests/frontend/vitest.setup.mjs starts the Go binary in dev mode).
// TRADEWIRE_REACT_DIR=<dir with node_modules/react, react-dom> runs the same
// tests against another React major (tests/frontend/react18).
import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const root = fileURLToPath(new URL(".", import.meta.url));
const alias = {
  "@tradewire/client": join(root, "clients/js/src/index.ts"),
  "@tradewire/react": join(root, "clients/react/src/index.tsx"),
};
const reactDir = process.env.TRADEWIRE_REACT_DIR;
if (reactDir) {
  alias["react-dom"] = join(reactDir, "node_modules/react-dom");
  alias["react"] = join(reactDir, "node_modules/react");
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
    server: { deps: { inline: ["@testing-library/react"] } },
  },
});
