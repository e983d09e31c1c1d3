package loadgen

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

// MsgpackValue is a value the minimal encoder can write: nil, bool, int,
// int64, float64, string, []byte, []any, *OrderedMap or map[string]any
// (written with sorted keys).
type MsgpackValue = any

// OrderedMap keeps key order, which notepack preserves from JS objects.
type OrderedMap struct {
	Keys   []string
	Values []any
}

// Set appends a key.
func (m *OrderedMap) Set(k string, v any) *OrderedMap {
	m.Keys = append(m.Keys, k)
	m.Values = append(m.Values, v)
	return m
}

// AppendMsgpack encodes v like notepack.io: smallest int formats, float64 for
// non-integers, str for strings and bin for byte slices.
func AppendMsgpack(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, 0xc0), nil
	case bool:
		if x {
			return append(dst, 0xc3), nil
		}
		return append(dst, 0xc2), nil
	case int:
		return appendMsgpackInt(dst, int64(x)), nil
	case int64:
		return appendMsgpackInt(dst, x), nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return appendMsgpackInt(dst, int64(x)), nil
		}
		dst = append(dst, 0xcb)
		return binary.BigEndian.AppendUint64(dst, math.Float64bits(x)), nil
	case string:
		n := len(x)
		switch {
		case n < 32:
			dst = append(dst, 0xa0|byte(n))
		case n < 1<<8:
			dst = append(dst, 0xd9, byte(n))
		case n < 1<<16:
			dst = append(dst, 0xda, byte(n>>8), byte(n))
		default:
			dst = append(dst, 0xdb)
			dst = binary.BigEndian.AppendUint32(dst, uint32(n))
		}
		return append(dst, x...), nil
	case []byte:
		n := len(x)
		switch {
		case n < 1<<8:
			dst = append(dst, 0xc4, byte(n))
		case n < 1<<16:
			dst = append(dst, 0xc5, byte(n>>8), byte(n))
		default:
			dst = append(dst, 0xc6)
			dst = binary.BigEndian.AppendUint32(dst, uint32(n))
		}
		return append(dst, x...), nil
	case []any:
		dst = appendMsgpackLen(dst, len(x), 0x90, 0xdc, 0xdd)
		var err error
		for _, e := range x {
			if dst, err = AppendMsgpack(dst, e); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case []string:
		dst = appendMsgpackLen(dst, len(x), 0x90, 0xdc, 0xdd)
		for _, e := range x {
			dst, _ = AppendMsgpack(dst, e)
		}
		return dst, nil
	case *OrderedMap:
		dst = appendMsgpackLen(dst, len(x.Keys), 0x80, 0xde, 0xdf)
		var err error
		for i, k := range x.Keys {
			dst, _ = AppendMsgpack(dst, k)
			if dst, err = AppendMsgpack(dst, x.Values[i]); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		om := &OrderedMap{}
		for _, k := range keys {
			om.Set(k, x[k])
		}
		return AppendMsgpack(dst, om)
	default:
		return dst, fmt.Errorf("msgpack: unsupported type %T", v)
	}
}

func appendMsgpackLen(dst []byte, n int, fix, b16, b32 byte) []byte {
	switch {
	case n < 16:
		return append(dst, fix|byte(n))
	case n < 1<<16:
		return append(dst, b16, byte(n>>8), byte(n))
	default:
		dst = append(dst, b32)
		return binary.BigEndian.AppendUint32(dst, uint32(n))
	}
}

func appendMsgpackInt(dst []byte, v int64) []byte {
	switch {
	case v >= 0 && v < 128:
		return append(dst, byte(v))
	case v < 0 && v >= -32:
		return append(dst, byte(v))
	case v >= 0 && v < 1<<8:
		return append(dst, 0xcc, byte(v))
	case v >= 0 && v < 1<<16:
		return append(dst, 0xcd, byte(v>>8), byte(v))
	case v >= 0 && v < 1<<32:
		dst = append(dst, 0xce)
		return binary.BigEndian.AppendUint32(dst, uint32(v))
	case v >= 0:
		dst = append(dst, 0xcf)
		return binary.BigEndian.AppendUint64(dst, uint64(v))
	case v >= -128:
		return append(dst, 0xd0, byte(v))
	case v >= -32768:
		return append(dst, 0xd1, byte(v>>8), byte(v))
	case v >= -(1 << 31):
		dst = append(dst, 0xd2)
		return binary.BigEndian.AppendUint32(dst, uint32(v))
	default:
		dst = append(dst, 0xd3)
		return binary.BigEndian.AppendUint64(dst, uint64(v))
	}
}

// EmitterMessage builds what @socket.io/redis-emitter 5.x publishes for
// io.of(nsp).to(rooms...).emit(event, args...), and the channel it goes to:
// <prefix>#<nsp># or <prefix>#<nsp>#<room># for exactly one room.
func EmitterMessage(prefix, nsp string, rooms []string, event string, args ...any) (channel string, msg []byte, err error) {
	return EmitterMessageOpts(prefix, nsp, rooms, nil, nil, event, args...)
}

// EmitterMessageOpts is EmitterMessage with except rooms and flags
// (volatile, compress), in the emitter's key order.
func EmitterMessageOpts(prefix, nsp string, rooms, except []string, flags *OrderedMap, event string, args ...any) (channel string, msg []byte, err error) {
	if nsp == "" {
		nsp = "/"
	}
	data := append([]any{event}, args...)
	packet := (&OrderedMap{}).Set("type", 2).Set("data", data).Set("nsp", nsp)
	if rooms == nil {
		rooms = []string{}
	}
	if except == nil {
		except = []string{}
	}
	if flags == nil {
		flags = &OrderedMap{}
	}
	opts := (&OrderedMap{}).Set("rooms", rooms).Set("flags", flags).Set("except", except)
	msg, err = AppendMsgpack(nil, []any{"emitter", packet, opts})
	channel = prefix + "#" + nsp + "#"
	if len(rooms) == 1 {
		channel += rooms[0] + "#"
	}
	return channel, msg, err
}
