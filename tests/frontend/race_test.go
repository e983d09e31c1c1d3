//go:build race

package frontend

// raceEnabled builds the fixture server with the race detector too.
const raceEnabled = true
