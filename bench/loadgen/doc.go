// Package loadgen is tradewire's load generator: an Engine.IO v4 / Socket.IO 5
// client (websocket and long-polling) that authenticates with connect-redis
// sessions, subscribes like the product's clients, measures publish-to-receipt
// latency from a timestamp carried in each event, and drives the benchmark
// scenarios (idle, fanout, user-events, storm, cluster) against any server
// that speaks the protocol and the HTTP publish API.
//
// The command is bench/cmd/loadgen; this package holds the logic so it can be
// tested piece by piece against real protocol vectors.
package loadgen
