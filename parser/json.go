package parser

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"sort"
	"strconv"
	"unicode/utf8"
)

// SplitArray splits a valid JSON array into its raw elements (whitespace
// trimmed). The returned slices alias data.
func SplitArray(data []byte) ([]json.RawMessage, error) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return nil, invalid("not an array")
	}
	i++
	var out []json.RawMessage
	for {
		i = skipSpace(data, i)
		if i >= len(data) {
			return nil, invalid("unterminated array")
		}
		if data[i] == ']' && len(out) == 0 {
			return out, nil
		}
		end, err := skipValue(data, i)
		if err != nil {
			return nil, err
		}
		out = append(out, json.RawMessage(data[i:end]))
		i = skipSpace(data, end)
		if i >= len(data) {
			return nil, invalid("unterminated array")
		}
		if data[i] == ']' {
			return out, nil
		}
		if data[i] != ',' {
			return nil, invalid("expected ',' in array")
		}
		i++
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
			continue
		}
		break
	}
	return i
}

// skipValue returns the index just past the JSON value starting at i. It
// assumes data was checked with json.Valid and only tracks nesting.
func skipValue(b []byte, i int) (int, error) {
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			i++
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(b) {
				return 0, invalid("unterminated string")
			}
			i++
			if depth == 0 {
				return i, nil
			}
		case '[', '{':
			depth++
			i++
		case ']', '}':
			if depth == 0 {
				return i, nil
			}
			depth--
			i++
			if depth == 0 {
				return i, nil
			}
		case ',':
			if depth == 0 {
				return i, nil
			}
			i++
		case ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i, nil
			}
			i++
		default:
			i++
		}
	}
	if depth != 0 {
		return 0, invalid("unterminated value")
	}
	return i, nil
}

// placeholder is the JSON object that replaces a binary value.
type placeholder struct {
	Placeholder bool `json:"_placeholder"`
	Num         *int `json:"num"`
}

// checkPlaceholders verifies every placeholder in data refers to an
// attachment that exists.
func checkPlaceholders(data []byte, n int) error {
	if !bytes.Contains(data, []byte(`"_placeholder"`)) {
		return nil
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return invalid("bad payload")
	}
	var walk func(any) error
	walk = func(v any) error {
		switch t := v.(type) {
		case []any:
			for _, e := range t {
				if err := walk(e); err != nil {
					return err
				}
			}
		case map[string]any:
			if num, ok := placeholderNum(t); ok {
				if num < 0 || num >= n {
					return invalid("placeholder %d out of range", num)
				}
				return nil
			}
			for _, e := range t {
				if err := walk(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(v)
}

func placeholderNum(m map[string]any) (int, bool) {
	if b, ok := m["_placeholder"].(bool); !ok || !b {
		return 0, false
	}
	f, ok := m["num"].(float64)
	if !ok || f != math.Trunc(f) {
		return -1, true
	}
	return int(f), true
}

// Unpack decodes raw JSON with placeholders into generic Go values
// (map[string]any, []any, string, float64, bool, nil), with each placeholder
// replaced by its attachment as []byte.
func Unpack(data json.RawMessage, attachments [][]byte) (any, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, invalid("bad payload: %v", err)
	}
	if len(attachments) == 0 {
		return v, nil
	}
	var walk func(any) (any, error)
	walk = func(v any) (any, error) {
		switch t := v.(type) {
		case []any:
			for i, e := range t {
				r, err := walk(e)
				if err != nil {
					return nil, err
				}
				t[i] = r
			}
		case map[string]any:
			if num, ok := placeholderNum(t); ok {
				if num < 0 || num >= len(attachments) {
					return nil, invalid("placeholder %d out of range", num)
				}
				return attachments[num], nil
			}
			for k, e := range t {
				r, err := walk(e)
				if err != nil {
					return nil, err
				}
				t[k] = r
			}
		}
		return v, nil
	}
	return walk(v)
}

// Encoder builds JSON payloads, extracting []byte values as attachments.
// The zero value is ready to use.
type Encoder struct {
	Buf         []byte
	Attachments [][]byte
}

// AppendArray appends a JSON array of values.
func (e *Encoder) AppendArray(values ...any) error {
	e.Buf = append(e.Buf, '[')
	for i, v := range values {
		if i > 0 {
			e.Buf = append(e.Buf, ',')
		}
		if err := e.AppendValue(v); err != nil {
			return err
		}
	}
	e.Buf = append(e.Buf, ']')
	return nil
}

// AppendValue appends one value. []byte becomes a placeholder plus an
// attachment; json.RawMessage is copied verbatim; maps are written with
// sorted keys; strings are written without HTML escaping, as JSON.stringify does.
func (e *Encoder) AppendValue(v any) error {
	switch t := v.(type) {
	case nil:
		e.Buf = append(e.Buf, "null"...)
	case json.RawMessage:
		if t == nil {
			e.Buf = append(e.Buf, "null"...)
		} else {
			e.Buf = append(e.Buf, t...)
		}
	case []byte:
		e.Buf = append(e.Buf, `{"_placeholder":true,"num":`...)
		e.Buf = strconv.AppendInt(e.Buf, int64(len(e.Attachments)), 10)
		e.Buf = append(e.Buf, '}')
		e.Attachments = append(e.Attachments, t)
	case string:
		e.Buf = AppendString(e.Buf, t)
	case bool:
		e.Buf = strconv.AppendBool(e.Buf, t)
	case int:
		e.Buf = strconv.AppendInt(e.Buf, int64(t), 10)
	case int64:
		e.Buf = strconv.AppendInt(e.Buf, t, 10)
	case uint64:
		e.Buf = strconv.AppendUint(e.Buf, t, 10)
	case float64:
		return e.appendFloat(t)
	case []any:
		return e.AppendArray(t...)
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		e.Buf = append(e.Buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.Buf = append(e.Buf, ',')
			}
			e.Buf = AppendString(e.Buf, k)
			e.Buf = append(e.Buf, ':')
			if err := e.AppendValue(t[k]); err != nil {
				return err
			}
		}
		e.Buf = append(e.Buf, '}')
	default:
		return e.appendReflect(v)
	}
	return nil
}

func (e *Encoder) appendFloat(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		e.Buf = append(e.Buf, "null"...) // as JSON.stringify
		return nil
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	e.Buf = append(e.Buf, b...)
	return nil
}

func (e *Encoder) appendReflect(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
		return e.AppendValue(rv.Bytes())
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	out := buf.Bytes()
	e.Buf = append(e.Buf, out[:len(out)-1]...) // drop Encode's newline
	return nil
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaping like JSON.stringify
// (no HTML escaping; invalid UTF-8 becomes U+FFFD).
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendArg returns a copy of the JSON array data with one more element
// appended (used for recovery offsets).
func AppendArg(data json.RawMessage, arg string) json.RawMessage {
	end := bytes.LastIndexByte(data, ']')
	if end < 0 {
		return data
	}
	out := make([]byte, 0, len(data)+len(arg)+4)
	out = append(out, data[:end]...)
	if len(bytes.TrimSpace(data[bytes.IndexByte(data, '[')+1:end])) > 0 {
		out = append(out, ',')
	}
	out = AppendString(out, arg)
	return append(out, data[end:]...)
}
