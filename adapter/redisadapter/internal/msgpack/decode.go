package msgpack

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Unmarshal decodes exactly one value from data; trailing bytes are an error.
func Unmarshal(data []byte) (any, error) {
	d := decoder{b: data}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if d.off != len(d.b) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrInvalid, len(d.b)-d.off)
	}
	return v, nil
}

type decoder struct {
	b   []byte
	off int
}

func (d *decoder) errf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", ErrInvalid, d.off, fmt.Sprintf(format, args...))
}

func (d *decoder) take(n int) ([]byte, error) {
	if n < 0 || n > len(d.b)-d.off {
		return nil, d.errf("need %d bytes, have %d", n, len(d.b)-d.off)
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p, nil
}

func (d *decoder) uint(n int) (uint64, error) {
	p, err := d.take(n)
	if err != nil {
		return 0, err
	}
	switch n {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), nil
	}
	return binary.BigEndian.Uint64(p), nil
}

func (d *decoder) value(depth int) (any, error) {
	if depth > MaxDepth {
		return nil, d.errf("nesting deeper than %d", MaxDepth)
	}
	p, err := d.take(1)
	if err != nil {
		return nil, err
	}
	c := p[0]
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c&0xf0 == 0x80:
		return d.mapN(int(c&0x0f), depth)
	case c&0xf0 == 0x90:
		return d.arrayN(int(c&0x0f), depth)
	case c&0xe0 == 0xa0:
		return d.str(int(c & 0x1f))
	}
	switch c {
	case 0xc0:
		return nil, nil
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	case 0xc4, 0xc5, 0xc6:
		n, err := d.uint(1 << (c - 0xc4))
		if err != nil {
			return nil, err
		}
		return d.bin(n)
	case 0xc7, 0xc8, 0xc9:
		n, err := d.uint(1 << (c - 0xc7))
		if err != nil {
			return nil, err
		}
		return d.ext(c, n)
	case 0xca:
		u, err := d.uint(4)
		if err != nil {
			return nil, err
		}
		return float64(math.Float32frombits(uint32(u))), nil
	case 0xcb:
		u, err := d.uint(8)
		if err != nil {
			return nil, err
		}
		return math.Float64frombits(u), nil
	case 0xcc, 0xcd, 0xce, 0xcf:
		u, err := d.uint(1 << (c - 0xcc))
		if err != nil {
			return nil, err
		}
		if u > math.MaxInt64 {
			return u, nil
		}
		return int64(u), nil
	case 0xd0, 0xd1, 0xd2, 0xd3:
		n := 1 << (c - 0xd0)
		u, err := d.uint(n)
		if err != nil {
			return nil, err
		}
		shift := 64 - 8*n
		return int64(u<<shift) >> shift, nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return d.ext(c, 1<<(c-0xd4))
	case 0xd9, 0xda, 0xdb:
		n, err := d.uint(1 << (c - 0xd9))
		if err != nil {
			return nil, err
		}
		return d.str(int(min(n, math.MaxInt32)))
	case 0xdc, 0xdd:
		n, err := d.uint(2 << (c - 0xdc))
		if err != nil {
			return nil, err
		}
		return d.arrayN(int(min(n, math.MaxInt32)), depth)
	case 0xde, 0xdf:
		n, err := d.uint(2 << (c - 0xde))
		if err != nil {
			return nil, err
		}
		return d.mapN(int(min(n, math.MaxInt32)), depth)
	}
	return nil, d.errf("unknown format byte 0x%02x", c)
}

func (d *decoder) str(n int) (string, error) {
	p, err := d.take(n)
	if err != nil {
		return "", err
	}
	return string(p), nil
}

func (d *decoder) bin(n uint64) ([]byte, error) {
	p, err := d.take(int(min(n, math.MaxInt32)))
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), p...), nil
}

func (d *decoder) arrayN(n, depth int) (any, error) {
	// every element takes at least one byte: reject lengths the input cannot hold
	if n > len(d.b)-d.off {
		return nil, d.errf("array of %d elements exceeds input", n)
	}
	out := make([]any, n)
	for i := range out {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (d *decoder) mapN(n, depth int) (any, error) {
	if n > (len(d.b)-d.off)/2 {
		return nil, d.errf("map of %d entries exceeds input", n)
	}
	out := make(Map, 0, n)
	var index map[string]int // key -> position, once a scan would cost more
	for range n {
		k, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		key, ok := k.(string)
		if !ok {
			return nil, d.errf("map key of type %T, want string", k)
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		// A repeated key keeps its first position and takes the last value,
		// as notepack's decoding into a JavaScript object does.
		if i, dup := position(out, index, key); dup {
			out[i].Value = v
			continue
		}
		if index == nil && len(out) == 16 {
			index = make(map[string]int, n)
			for i, kv := range out {
				index[kv.Key] = i
			}
		}
		if index != nil {
			index[key] = len(out)
		}
		out = append(out, KV{key, v})
	}
	return out, nil
}

// ext decodes an extension whose format byte is c and data length n.
func (d *decoder) ext(c byte, n uint64) (any, error) {
	tp, err := d.take(1)
	if err != nil {
		return nil, err
	}
	typ := int8(tp[0])
	data, err := d.take(int(min(n, math.MaxInt32)))
	if err != nil {
		return nil, err
	}
	switch typ {
	case -1:
		switch len(data) {
		case 4:
			return time.Unix(int64(binary.BigEndian.Uint32(data)), 0).UTC(), nil
		case 8:
			u := binary.BigEndian.Uint64(data)
			ns := int64(u >> 34)
			if ns > 999999999 {
				return nil, d.errf("timestamp nanoseconds %d out of range", ns)
			}
			return time.Unix(int64(u&(1<<34-1)), ns).UTC(), nil
		case 12:
			ns := int64(binary.BigEndian.Uint32(data))
			if ns > 999999999 {
				return nil, d.errf("timestamp nanoseconds %d out of range", ns)
			}
			return time.Unix(int64(binary.BigEndian.Uint64(data[4:])), ns).UTC(), nil
		}
		return nil, d.errf("timestamp of %d bytes", len(data))
	case 0:
		// notepack's legacy encodings: fixext1 type 0 is undefined, fixext8
		// type 0 a Date in ms, ext8/16/32 type 0 an ArrayBuffer.
		switch c {
		case 0xd4:
			return nil, nil
		case 0xd7:
			ms := int64(binary.BigEndian.Uint64(data))
			return time.UnixMilli(ms).UTC(), nil
		case 0xc7, 0xc8, 0xc9:
			return append([]byte(nil), data...), nil
		}
	}
	return Ext{Type: typ, Data: append([]byte(nil), data...)}, nil
}

// position finds key among the entries decoded so far.
func position(m Map, index map[string]int, key string) (int, bool) {
	if index != nil {
		i, ok := index[key]
		return i, ok
	}
	for i := range m {
		if m[i].Key == key {
			return i, true
		}
	}
	return 0, false
}
