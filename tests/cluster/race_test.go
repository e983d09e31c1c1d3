//go:build race

package cluster

// raceEnabled builds the Go node with the race detector too.
const raceEnabled = true
