// Package interop holds compatibility tests of tradewire against the real
// Node packages it replaces. The auth test runs an Express app
// (testdata/nodeapp: express-session, passport, connect-mongo,
// connect-redis, pinned in package-lock.json) that logs users in and writes
// sessions to a FerretDB or Redis started by the test, then authenticates
// the resulting cookies with tradewire's auth package.
package interop
