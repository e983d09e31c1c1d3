import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev -w @tradewire/web` serves the dashboard with hot reload and
// proxies the gateway (go run ./cmd/tradewire on :8080).
const gateway = process.env.TRADEWIRE_URL || "http://localhost:8080";

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
  server: {
    proxy: {
      "/socket.io": { target: gateway, ws: true },
      "/dev": gateway,
    },
  },
});
