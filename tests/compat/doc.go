// Package compat runs the official socket.io-client (pinned in package.json)
// against the tradewire Socket.IO server: `go test ./tests/compat/` installs
// the npm packages when needed (npm ci), builds and starts the fixture server
// in ./server, and runs the Node test files (*.test.mjs) against it.
//
// It needs Node.js 20 or later with npm. See README.md.
package compat
