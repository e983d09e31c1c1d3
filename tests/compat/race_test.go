//go:build race

package compat

// raceEnabled builds the fixture server with the race detector too.
const raceEnabled = true
