// Package auth authenticates clients with the Express/Passport session they
// already have. It knows sessions and users, not Socket.IO.
//
// A client presents Credentials: the handshake's Cookie header (the signed
// express-session cookie, default "connect.sid") and/or auth.sessionID and
// auth.userId from the CONNECT payload. Authenticator.Authenticate verifies
// the signature (cookie-signature compatible, secret rotation), reads the
// session from a SessionStore (connect-mongo: auth/mongostore, connect-redis:
// auth/redisstore, dev mode: auth/memstore), checks expiry and
// session.passport.user, loads role and subscription tier from a UserStore,
// and returns an Identity. Failures are *Error values with a stable Code
// (UNAUTHORIZED, SESSION_NOT_FOUND, SESSION_EXPIRED, USER_MISMATCH,
// FORBIDDEN, STORE_UNAVAILABLE) and a client-safe Message.
//
// Successful lookups are cached briefly (default 5 s) and concurrent lookups
// of one session are coalesced, so a reconnect storm costs one store round
// trip per session. Revalidate re-checks many session ids in one query per
// 1000, for disconnecting logged-out users.
//
// Session ids are bearer credentials: nothing in this package logs them, and
// Identity's String, GoString and LogValue leave them out.
package auth
