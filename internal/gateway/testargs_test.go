package gateway

import "slices"

// testClusterSecret signs the node routes of test clusters.
const testClusterSecret = "test-cluster-secret-0123456789abcdef"

// testArgs completes the arguments of a test gateway the way a deployment
// or a developer would: explicit dev mode when no session store is given
// (dev mode is never implied by partial configuration), and a cluster
// secret with Redis outside dev mode.
func testArgs(args []string) []string {
	has := func(flag string) bool {
		return slices.ContainsFunc(args, func(a string) bool { return a == flag || len(a) > len(flag) && a[:len(flag)+1] == flag+"=" })
	}
	out := append([]string(nil), args...)
	dev := has("-dev-mode")
	if !dev && !has("-session-store") && !has("-mongo-url") {
		out = append(out, "-dev-mode")
		dev = true
	}
	if !dev && has("-redis-url") && !has("-cluster-secret") {
		out = append(out, "-cluster-secret", testClusterSecret)
	}
	return out
}
