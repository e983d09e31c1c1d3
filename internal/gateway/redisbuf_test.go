package gateway

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tradewire/tradewire/internal/config"
)

func TestRedisClientBuffers(t *testing.T) {
	c, err := redisClient("TRADEWIRE_REDIS_URL", config.RedisTarget{ClientURL: "redis://127.0.0.1:1/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := c.(*redis.Client).Options()
	if o.ReadBufferSize != redisBuffer || o.WriteBufferSize != redisBuffer ||
		o.PipelineReadBufferSize != redisPipelineBuffer || o.PipelineWriteBufferSize != redisPipelineBuffer {
		t.Fatalf("buffers %d/%d, pipeline %d/%d", o.ReadBufferSize, o.WriteBufferSize, o.PipelineReadBufferSize, o.PipelineWriteBufferSize)
	}
	cc, err := redisClient("TRADEWIRE_REDIS_URL", config.RedisTarget{Cluster: true, ClientURL: "redis://127.0.0.1:1?addr=127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	co := cc.(*redis.ClusterClient).Options()
	if co.ReadBufferSize != redisBuffer || co.WriteBufferSize != redisBuffer || co.PipelineReadBufferSize != 0 {
		t.Fatalf("cluster buffers %d/%d, pipeline %d", co.ReadBufferSize, co.WriteBufferSize, co.PipelineReadBufferSize)
	}
	// Sizes already chosen (e.g. in the URL) are kept.
	r, w, pr, pw := 64<<10, 0, 1, 0
	smallBuffers(&r, &w, &pr, &pw)
	if r != 64<<10 || w != redisBuffer || pr != 1 || pw != redisPipelineBuffer {
		t.Fatalf("smallBuffers: %d %d %d %d", r, w, pr, pw)
	}
}
