package redisadapter

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// NodeInfo is a node of the cluster as its heartbeat describes it.
type NodeInfo struct {
	UID        string    `json:"uid"`
	Hostname   string    `json:"hostname"`
	PID        int       `json:"pid"`
	StartedAt  time.Time `json:"startedAt"`
	Namespaces []string  `json:"namespaces"`
	Ready      bool      `json:"ready"`
	// LastSeen is the Redis server time of the last heartbeat.
	LastSeen time.Time `json:"-"`
}

// The registry is a sorted set (member uid, score = Redis time in ms of the
// last heartbeat) and a hash (uid -> NodeInfo JSON), both under one hash
// tag so the scripts work on Redis Cluster. Times come from the Redis
// server, so node clocks do not matter.
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
for _, uid in ipairs(stale) do
  redis.call('ZREM', KEYS[1], uid)
  redis.call('HDEL', KEYS[2], uid)
end
return now
`)

var nodesScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf', 'WITHSCORES')
local out = {}
for i = 1, #live, 2 do
  local info = redis.call('HGET', KEYS[2], live[i])
  if info then
    table.insert(out, live[i + 1])
    table.insert(out, info)
  end
end
return out
`)

func (n *Node) registryKeys() []string {
	base := "{" + n.opts.KeyPrefix + "}:nodes"
	return []string{base, base + ":info"}
}

func (n *Node) heartbeat(ctx context.Context) error {
	info := NodeInfo{
		UID: n.uid, Hostname: hostname(), PID: os.Getpid(), StartedAt: n.started,
		Namespaces: n.namespaces(), Ready: n.Ready() == nil,
	}
	slices.Sort(info.Namespaces)
	raw, err := json.Marshal(info)
	if err != nil {
		return err
	}
	err = heartbeatScript.Run(ctx, n.client, n.registryKeys(), n.uid, raw, n.opts.NodeTimeout.Milliseconds()).Err()
	if err != nil {
		n.observeError("heartbeat", err)
		return err
	}
	n.observer().OnPublish("heartbeat", len(raw))
	return nil
}

func (n *Node) heartbeatLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(n.ctx, n.opts.HeartbeatInterval)
		_ = n.heartbeat(ctx)
		cancel()
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) unregister(ctx context.Context) {
	keys := n.registryKeys()
	if err := n.client.ZRem(ctx, keys[0], n.uid).Err(); err != nil {
		n.observeError("heartbeat", err)
	}
	if err := n.client.HDel(ctx, keys[1], n.uid).Err(); err != nil {
		n.observeError("heartbeat", err)
	}
}

// Nodes returns the nodes whose last heartbeat is younger than NodeTimeout,
// this one included, ordered by uid. It costs one script call (O(nodes)).
func (n *Node) Nodes(ctx context.Context) ([]NodeInfo, error) {
	res, err := nodesScript.Run(ctx, n.client, n.registryKeys(), n.opts.NodeTimeout.Milliseconds()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisadapter: nodes: %w", err)
	}
	out := make([]NodeInfo, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		var info NodeInfo
		if err := json.Unmarshal([]byte(res[i+1]), &info); err != nil {
			continue // an entry written by something else
		}
		if ms, err := strconv.ParseInt(res[i], 10, 64); err == nil {
			info.LastSeen = time.UnixMilli(ms)
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b NodeInfo) int {
		if a.UID < b.UID {
			return -1
		}
		if a.UID > b.UID {
			return 1
		}
		return 0
	})
	return out, nil
}
