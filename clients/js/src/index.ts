// @tradewire/client: a typed client for the tradewire gateway.
export * from "./events.js";
export * from "./client.js";
