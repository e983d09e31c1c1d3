// Package cluster runs a mixed Socket.IO cluster end to end: one Node
// socket.io 4.8 server with @socket.io/redis-adapter 8.3 (e2e.js) and two Go
// nodes built from ./server (socketio + redisadapter) on one Redis, or on a
// three-master Redis Cluster in sharded mode, with real socket.io-client
// sockets on every node and @socket.io/redis-emitter 5.1 as a fourth
// publisher. `go test ./tests/cluster/` installs the pinned npm packages when
// needed (npm ci), builds the Go node and starts everything on free ports.
//
// It needs Node.js 20 or later with npm, redis-server 7+ and redis-cli. The
// same package.json serves adapter/redisadapter/interop_test.go (interop.js).
package cluster
