// Package interop holds compatibility tests of tradewire against the real
// Node packages it replaces, from testdata/nodeapp (pinned in
// package-lock.json; npm ci runs when node_modules is missing or stale, and
// Node.js 20+ with npm must be installed).
//
// The auth tests run the Express app (server.js: express-session, passport,
// connect-mongo, connect-redis) that logs users in and writes sessions to a
// FerretDB or Redis started by the test, then authenticate the resulting
// cookies with tradewire's auth package.
//
// The gateway tests (gateway_test.go) are end to end: the same Express app
// logs users in over HTTP, the tradewire binary built from ./cmd/tradewire
// reads the same store, and the real socket.io-client (client.js, driven
// over JSON lines by harness_test.go) connects with the cookie or
// auth.sessionID and receives the trades published through the HTTP API.
// They also check each refusal's connect_error data.code, that a logout or
// an expiry disconnects within 5 s, and store outages.
package interop
