package auth

import (
	"errors"
	"fmt"
)

// Stable error codes, sent to clients as connect_error data.code.
const (
	// CodeUnauthorized: no credentials, an unsigned id where signatures are
	// required, a forged or malformed credential, or a session with no
	// logged-in user.
	CodeUnauthorized = "UNAUTHORIZED"
	// CodeSessionNotFound: the session id is not in the store (never
	// existed, destroyed by logout, or removed after expiry).
	CodeSessionNotFound = "SESSION_NOT_FOUND"
	// CodeSessionExpired: the session exists but its expiry has passed.
	CodeSessionExpired = "SESSION_EXPIRED"
	// CodeUserMismatch: auth.userId differs from the session's user.
	CodeUserMismatch = "USER_MISMATCH"
	// CodeForbidden: the user is unknown or lacks the role or tier required.
	CodeForbidden = "FORBIDDEN"
	// CodeStoreUnavailable: a session or user store failed or timed out.
	CodeStoreUnavailable = "STORE_UNAVAILABLE"
)

// Error is an authentication failure with a stable Code and a Message that
// is safe to show to clients: it never contains session ids, secrets or
// infrastructure details. Err, when set, is the underlying cause (store
// errors); it is part of Error() for logs but not of Message.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("auth: %s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("auth: %s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, &auth.Error{Code: auth.CodeForbidden}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// CodeOf returns the Code of the first *Error in err's chain, or "" if there
// is none (including err == nil).
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func newError(code, msg string) *Error { return &Error{Code: code, Message: msg} }

func storeError(msg string, cause error) *Error {
	return &Error{Code: CodeStoreUnavailable, Message: msg, Err: cause}
}
