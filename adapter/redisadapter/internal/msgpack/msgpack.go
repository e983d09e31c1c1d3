// Package msgpack is a MessagePack codec that writes exactly what notepack.io
// 3.x (the codec of @socket.io/redis-adapter and redis-emitter) writes and
// reads everything it can emit.
//
// Decoded values are nil, bool, int64, uint64 (only above MaxInt64),
// float64, string, []byte, []any, Map (keys in wire order), time.Time
// (timestamp extension -1) and Ext (other extensions). Map keys must be
// strings: anything else is an error.
package msgpack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// KV is one map entry.
type KV struct {
	Key   string
	Value any
}

// Map is a map that keeps its key order, as a JavaScript object does.
type Map []KV

// Get returns the value of key and whether it is present.
func (m Map) Get(key string) (any, bool) {
	for _, kv := range m {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// Ext is an extension value other than the timestamp (-1) and notepack's
// legacy types.
type Ext struct {
	Type int8
	Data []byte
}

// ErrInvalid is wrapped by every decoding error.
var ErrInvalid = errors.New("msgpack: invalid data")

// MaxDepth bounds nesting on decode.
const MaxDepth = 128

// Marshal encodes v.
func Marshal(v any) ([]byte, error) { return Append(nil, v) }

// Append appends the encoding of v to dst. Supported: nil, bool, all Go
// integer types, float32/64, string, []byte, []any, []string, Map,
// map[string]any (keys sorted), time.Time, Ext.
//
// Like notepack, a float64 with an integer value is written as the smallest
// integer format, other floats as float64; strings are str, []byte is bin.
func Append(dst []byte, v any) ([]byte, error) {
	return appendValue(dst, v, 0)
}

func appendValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return b, fmt.Errorf("msgpack: nesting deeper than %d", MaxDepth)
	}
	switch t := v.(type) {
	case nil:
		return append(b, 0xc0), nil
	case bool:
		if t {
			return append(b, 0xc3), nil
		}
		return append(b, 0xc2), nil
	case int:
		return AppendInt(b, int64(t)), nil
	case int8:
		return AppendInt(b, int64(t)), nil
	case int16:
		return AppendInt(b, int64(t)), nil
	case int32:
		return AppendInt(b, int64(t)), nil
	case int64:
		return AppendInt(b, t), nil
	case uint:
		return AppendUint(b, uint64(t)), nil
	case uint8:
		return AppendUint(b, uint64(t)), nil
	case uint16:
		return AppendUint(b, uint64(t)), nil
	case uint32:
		return AppendUint(b, uint64(t)), nil
	case uint64:
		return AppendUint(b, t), nil
	case float32:
		return AppendFloat(b, float64(t)), nil
	case float64:
		return AppendFloat(b, t), nil
	case string:
		return AppendString(b, t), nil
	case []byte:
		return AppendBin(b, t), nil
	case []string:
		b = AppendArrayHeader(b, len(t))
		for _, s := range t {
			b = AppendString(b, s)
		}
		return b, nil
	case []any:
		b = AppendArrayHeader(b, len(t))
		var err error
		for _, e := range t {
			if b, err = appendValue(b, e, depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	case Map:
		b = AppendMapHeader(b, len(t))
		var err error
		for _, kv := range t {
			b = AppendString(b, kv.Key)
			if b, err = appendValue(b, kv.Value, depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	case map[string]any:
		return appendValue(b, SortedMap(t), depth)
	case time.Time:
		return AppendTime(b, t), nil
	case Ext:
		return AppendExt(b, t.Type, t.Data), nil
	}
	return b, fmt.Errorf("msgpack: cannot encode %T", v)
}

// SortedMap converts m to a Map with keys in ascending order.
func SortedMap(m map[string]any) Map {
	out := make(Map, 0, len(m))
	for k, v := range m {
		out = append(out, KV{k, v})
	}
	// insertion sort keeps this dependency-free and is fine for small maps
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Key < out[j-1].Key; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// AppendInt appends i in the smallest format notepack would use.
func AppendInt(b []byte, i int64) []byte {
	if i >= 0 {
		return AppendUint(b, uint64(i))
	}
	switch {
	case i >= -0x20:
		return append(b, byte(i))
	case i >= -0x80:
		return append(b, 0xd0, byte(i))
	case i >= -0x8000:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(i))
	case i >= -0x80000000:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(i))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(i))
}

// AppendUint appends u in the smallest format.
func AppendUint(b []byte, u uint64) []byte {
	switch {
	case u < 0x80:
		return append(b, byte(u))
	case u < 0x100:
		return append(b, 0xcc, byte(u))
	case u < 0x10000:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(u))
	case u < 0x100000000:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(u))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), u)
}

// AppendFloat appends f as an integer when it has an integer value that
// fits 64 bits, as float64 otherwise (NaN and ±Inf included).
func AppendFloat(b []byte, f float64) []byte {
	if f == math.Trunc(f) && !math.IsInf(f, 0) {
		if f >= 0 && f < 18446744073709551616.0 {
			if f == 0 && math.Signbit(f) {
				// -0: Math.floor(-0) === -0, notepack writes int 0
				return append(b, 0)
			}
			return AppendUint(b, uint64(f))
		}
		if f < 0 && f >= -9223372036854775808.0 {
			return AppendInt(b, int64(f))
		}
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(f))
}

// AppendString appends s as str.
func AppendString(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 0x20:
		b = append(b, 0xa0|byte(n))
	case n < 0x100:
		b = append(b, 0xd9, byte(n))
	case n < 0x10000:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

// AppendBin appends p as bin.
func AppendBin(b []byte, p []byte) []byte {
	n := len(p)
	switch {
	case n < 0x100:
		b = append(b, 0xc4, byte(n))
	case n < 0x10000:
		b = binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	return append(b, p...)
}

// AppendArrayHeader appends the header of an array of n elements.
func AppendArrayHeader(b []byte, n int) []byte {
	switch {
	case n < 0x10:
		return append(b, 0x90|byte(n))
	case n < 0x10000:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

// AppendMapHeader appends the header of a map of n entries.
func AppendMapHeader(b []byte, n int) []byte {
	switch {
	case n < 0x10:
		return append(b, 0x80|byte(n))
	case n < 0x10000:
		return binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
}

// AppendTime appends t as a timestamp extension (-1) in the smallest of the
// 32, 64 and 96 bit forms, as notepack does for a Date.
func AppendTime(b []byte, t time.Time) []byte {
	s := t.Unix()
	ns := uint32(t.Nanosecond())
	if s >= 0 && s < 1<<34 {
		if ns == 0 && s < 1<<32 {
			return binary.BigEndian.AppendUint32(append(b, 0xd6, 0xff), uint32(s))
		}
		return binary.BigEndian.AppendUint64(append(b, 0xd7, 0xff), uint64(ns)<<34|uint64(s))
	}
	b = binary.BigEndian.AppendUint32(append(b, 0xc7, 12, 0xff), ns)
	return binary.BigEndian.AppendUint64(b, uint64(s))
}

// AppendExt appends an extension value.
func AppendExt(b []byte, typ int8, data []byte) []byte {
	n := len(data)
	switch n {
	case 1:
		b = append(b, 0xd4, byte(typ))
	case 2:
		b = append(b, 0xd5, byte(typ))
	case 4:
		b = append(b, 0xd6, byte(typ))
	case 8:
		b = append(b, 0xd7, byte(typ))
	case 16:
		b = append(b, 0xd8, byte(typ))
	default:
		switch {
		case n < 0x100:
			b = append(b, 0xc7, byte(n), byte(typ))
		case n < 0x10000:
			b = append(binary.BigEndian.AppendUint16(append(b, 0xc8), uint16(n)), byte(typ))
		default:
			b = append(binary.BigEndian.AppendUint32(append(b, 0xc9), uint32(n)), byte(typ))
		}
	}
	return append(b, data...)
}
