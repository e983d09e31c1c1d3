package redisadapter

import (
	"crypto/rand"
	"encoding/hex"
)

const uidChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// uid2 returns n random url-safe characters, like the uid2 npm package.
func uid2(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = uidChars[b[i]&63]
	}
	return string(b)
}

// randomHex returns n random bytes as hex (the sharded adapter's ids).
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
