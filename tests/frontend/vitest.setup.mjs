// Global setup of the vitest run: one dev-mode gateway for every test file.
import { startGateway } from "./gateway.mjs";

let gw;

export default async function setup(project) {
  gw = await startGateway({ env: { TRADEWIRE_DEMO_FEED: "false" } });
  project.provide("gatewayUrl", gw.url);
  process.env.TRADEWIRE_TEST_GATEWAY = gw.url;
  return async () => {
    await gw.stop();
  };
}
