//go:build !unix

package mongotest

// lockFile is a no-op where flock is unavailable; the temp-file-and-rename
// build still keeps the cached binary whole.
func lockFile(string) (func(), error) { return func() {}, nil }
