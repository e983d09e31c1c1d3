// Package logging builds the gateway's slog.Logger: JSON or text output, a
// level, request-scoped fields carried in a context, and redaction of
// secrets, session ids and passwords inside URLs.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Formats accepted by New.
const (
	FormatJSON = "json"
	FormatText = "text"
)

// New returns a logger writing to w in the given format ("json", the default
// when empty, or "text") at the given level (see ParseLevel; "info" when
// empty). Every record goes through ReplaceAttr, so attributes whose keys look
// secret are redacted, and fields stored with WithAttrs or WithSocket in the
// context passed to the *Context logging methods are added to the record.
func New(format, level string, w io.Writer) (*slog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: ReplaceAttr}
	var h slog.Handler
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "", FormatJSON:
		h = slog.NewJSONHandler(w, opts)
	case FormatText:
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("unknown log format %q (want json or text)", format)
	}
	return slog.New(NewContextHandler(h)), nil
}

// ParseLevel parses debug, info, warn (or warning) and error, case-insensitive,
// with an optional offset as slog writes it ("debug-4", "info+2"). The empty
// string is info.
func ParseLevel(s string) (slog.Level, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return slog.LevelInfo, nil
	}
	if strings.EqualFold(s, "warning") {
		return slog.LevelWarn, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
	}
	return l, nil
}

type ctxKey struct{}

// WithAttrs returns a context carrying attrs in addition to those already in
// ctx. A logger made by New (or wrapped with NewContextHandler) adds them to
// every record logged with that context (logger.InfoContext(ctx, ...)).
func WithAttrs(ctx context.Context, attrs ...slog.Attr) context.Context {
	if len(attrs) == 0 {
		return ctx
	}
	prev, _ := ctx.Value(ctxKey{}).([]slog.Attr)
	merged := make([]slog.Attr, 0, len(prev)+len(attrs))
	merged = append(merged, prev...)
	merged = append(merged, attrs...)
	return context.WithValue(ctx, ctxKey{}, merged)
}

// Keys of the request-scoped fields added by WithSocket.
const (
	KeySocketID = "socket_id"
	KeyUserID   = "user_id"
)

// WithSocket returns a context carrying the Socket.IO socket id and the
// authenticated user id (either may be empty and is then left out). Socket
// ids are public identifiers and safe to log; never pass an Express session
// id or an Engine.IO sid here.
func WithSocket(ctx context.Context, socketID, userID string) context.Context {
	attrs := make([]slog.Attr, 0, 2)
	if socketID != "" {
		attrs = append(attrs, slog.String(KeySocketID, socketID))
	}
	if userID != "" {
		attrs = append(attrs, slog.String(KeyUserID, userID))
	}
	return WithAttrs(ctx, attrs...)
}

// ContextAttrs returns the attributes stored in ctx by WithAttrs and WithSocket.
func ContextAttrs(ctx context.Context) []slog.Attr {
	attrs, _ := ctx.Value(ctxKey{}).([]slog.Attr)
	return attrs
}

// NewContextHandler wraps h so that records logged with a context get the
// attributes stored in it by WithAttrs and WithSocket.
func NewContextHandler(h slog.Handler) slog.Handler {
	if ch, ok := h.(contextHandler); ok {
		return ch
	}
	return contextHandler{h}
}

type contextHandler struct{ inner slog.Handler }

func (h contextHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if attrs := ContextAttrs(ctx); len(attrs) > 0 {
			r = r.Clone()
			r.AddAttrs(attrs...)
		}
	}
	return h.inner.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.inner.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.inner.WithGroup(name)}
}
