// Package wire encodes and decodes the messages of @socket.io/redis-adapter
// 8.x, @socket.io/redis-emitter 5.x and the sharded adapter, and converts
// packets between the wire's generic values (msgpack, binary as bin) and
// parser.Packet's JSON-with-placeholders form.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/tradewire/tradewire/adapter/redisadapter/internal/msgpack"
	"github.com/tradewire/tradewire/parser"
)

// ErrInvalid is wrapped by every decoding error of this package.
var ErrInvalid = errors.New("redisadapter: invalid message")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// ParseJSON decodes JSON into the generic values msgpack uses (objects as
// msgpack.Map in key order, integers as int64, other numbers as float64).
// With attachments, each {"_placeholder":true,"num":N} becomes attachments[N].
func ParseJSON(data []byte, attachments [][]byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseJSONValue(dec, attachments, attachments != nil, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("trailing data after JSON value")
	}
	return v, nil
}

func parseJSONValue(dec *json.Decoder, att [][]byte, resolve bool, depth int) (any, error) {
	if depth > msgpack.MaxDepth {
		return nil, invalid("JSON nested deeper than %d", msgpack.MaxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, invalid("bad JSON: %v", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := parseJSONValue(dec, att, resolve, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, invalid("bad JSON: %v", err)
			}
			return arr, nil
		case '{':
			m := msgpack.Map{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, invalid("bad JSON: %v", err)
				}
				k, _ := kt.(string)
				v, err := parseJSONValue(dec, att, resolve, depth+1)
				if err != nil {
					return nil, err
				}
				m = setKey(m, k, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, invalid("bad JSON: %v", err)
			}
			if resolve {
				if b, ok, err := resolvePlaceholder(m, att); ok || err != nil {
					return b, err
				}
			}
			return m, nil
		}
		return nil, invalid("unexpected %v", t)
	case json.Number:
		return numberValue(t), nil
	}
	return tok, nil // string, bool, nil
}

// setKey sets k like a JavaScript object does: a repeated key keeps its first
// position and takes the last value.
func setKey(m msgpack.Map, k string, v any) msgpack.Map {
	for i := range m {
		if m[i].Key == k {
			m[i].Value = v
			return m
		}
	}
	return append(m, msgpack.KV{Key: k, Value: v})
}

func numberValue(n json.Number) any {
	s := string(n)
	if !bytes.ContainsAny([]byte(s), ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return u
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		// only out-of-range values get here; JSON.parse gives ±Infinity
		return f
	}
	return f
}

func resolvePlaceholder(m msgpack.Map, att [][]byte) ([]byte, bool, error) {
	p, _ := m.Get("_placeholder")
	if b, ok := p.(bool); !ok || !b {
		return nil, false, nil
	}
	numV, _ := m.Get("num")
	num, ok := toFloat(numV)
	if !ok || num != math.Trunc(num) || num < 0 || num >= float64(len(att)) {
		return nil, true, invalid("placeholder %v out of range (%d attachments)", numV, len(att))
	}
	return att[int(num)], true, nil
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// AppendJSON appends v (a generic value) as JSON the way JSON.stringify
// writes what notepack decoded. With att non-nil, []byte values become
// placeholders and are appended to *att in depth-first order; with att nil
// they are written as Node's Buffer.toJSON does. time.Time becomes an ISO
// string with milliseconds, like Date.prototype.toJSON.
func AppendJSON(dst []byte, v any, att *[][]byte) ([]byte, error) {
	return appendJSON(dst, v, att, 0)
}

func appendJSON(b []byte, v any, att *[][]byte, depth int) ([]byte, error) {
	if depth > msgpack.MaxDepth {
		return b, invalid("value nested deeper than %d", msgpack.MaxDepth)
	}
	var err error
	switch t := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, t), nil
	case int64:
		return strconv.AppendInt(b, t, 10), nil
	case uint64:
		return strconv.AppendUint(b, t, 10), nil
	case int:
		return strconv.AppendInt(b, int64(t), 10), nil
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return append(b, "null"...), nil
		}
		return appendFloat(b, t), nil
	case string:
		return parser.AppendString(b, t), nil
	case []byte:
		if att != nil {
			b = append(b, `{"_placeholder":true,"num":`...)
			b = strconv.AppendInt(b, int64(len(*att)), 10)
			*att = append(*att, t)
			return append(b, '}'), nil
		}
		b = append(b, `{"type":"Buffer","data":[`...)
		for i, c := range t {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(c), 10)
		}
		return append(b, "]}"...), nil
	case []any:
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendJSON(b, e, att, depth+1); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case []string:
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			b = parser.AppendString(b, e)
		}
		return append(b, ']'), nil
	case msgpack.Map:
		b = append(b, '{')
		for i, kv := range t {
			if i > 0 {
				b = append(b, ',')
			}
			b = parser.AppendString(b, kv.Key)
			b = append(b, ':')
			if b, err = appendJSON(b, kv.Value, att, depth+1); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	case map[string]any:
		return appendJSON(b, msgpack.SortedMap(t), att, depth)
	case time.Time:
		return parser.AppendString(b, ISOTime(t)), nil
	case msgpack.Ext:
		// notepack decodes an unknown extension as [type, Buffer]
		return appendJSON(b, []any{int64(t.Type), t.Data}, att, depth)
	case json.RawMessage:
		return append(b, t...), nil
	}
	out, err := json.Marshal(v)
	if err != nil {
		return b, fmt.Errorf("redisadapter: encode %T: %w", v, err)
	}
	return append(b, out...), nil
}

// appendFloat writes f as JavaScript's Number.prototype.toString would for
// the usual range (shortest round-trip digits).
func appendFloat(b []byte, f float64) []byte {
	if f == 0 {
		return append(b, '0') // -0 too: JSON.stringify(-0) is "0", as Node sends it
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	abs := math.Abs(f)
	if abs >= 1e-6 && abs < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // 1e-07, 1.5e+21
	mant, exp, _ := bytes.Cut([]byte(s), []byte("e"))
	b = append(b, mant...)
	b = append(b, 'e')
	if exp[0] == '-' {
		b = append(b, '-')
	} else {
		b = append(b, '+')
	}
	exp = bytes.TrimLeft(exp[1:], "0")
	return append(b, exp...)
}

// ISOTime formats t as Date.prototype.toISOString does.
func ISOTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// Plain converts a generic value into the form parser.Unpack produces:
// map[string]any, []any, string, float64, bool, nil and []byte. Times become
// ISO strings and unknown extensions [type, data].
func Plain(v any) any {
	switch t := v.(type) {
	case int64:
		return float64(t)
	case uint64:
		return float64(t)
	case int:
		return float64(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = Plain(e)
		}
		return out
	case msgpack.Map:
		out := make(map[string]any, len(t))
		for _, kv := range t {
			out[kv.Key] = Plain(kv.Value)
		}
		return out
	case time.Time:
		return ISOTime(t)
	case msgpack.Ext:
		return []any{float64(t.Type), t.Data}
	}
	return v
}

// HasBinary reports whether v holds a []byte anywhere.
func HasBinary(v any) bool {
	switch t := v.(type) {
	case []byte:
		return true
	case []any:
		for _, e := range t {
			if HasBinary(e) {
				return true
			}
		}
	case msgpack.Map:
		for _, kv := range t {
			if HasBinary(kv.Value) {
				return true
			}
		}
	case map[string]any:
		for _, e := range t {
			if HasBinary(e) {
				return true
			}
		}
	case msgpack.Ext:
		return true
	}
	return false
}
