package redisadapter

import "context"

// RoomSockets returns the ids of the sockets in room on every node, e.g.
// a user's connections when each socket joins "user:<id>".
//
// Cost: classic mode sends one request and each other node answers with
// the matching ids (O(sockets in the room) bytes, one round trip, bounded by
// RequestsTimeout). Sharded mode has no such message and uses FETCH_SOCKETS,
// which also ships each matching socket's handshake and data. Neither is for
// hot paths: cache the answer or keep counters in the domain layer.
func (a *Adapter) RoomSockets(ctx context.Context, room string) ([]string, error) {
	return a.Sockets(ctx, []string{room})
}

// RoomSize returns the number of sockets in room across the cluster, at
// the cost of RoomSockets.
func (a *Adapter) RoomSize(ctx context.Context, room string) (int, error) {
	ids, err := a.RoomSockets(ctx, room)
	return len(ids), err
}
