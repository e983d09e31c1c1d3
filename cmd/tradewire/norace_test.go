//go:build !race

package main

// raceEnabled builds the gateway binary with -race when the tests run with it.
const raceEnabled = false
