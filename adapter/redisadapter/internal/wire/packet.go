package wire

import (
	"strconv"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/adapter/redisadapter/internal/msgpack"
	"github.com/tradewire/tradewire/parser"
)

// PacketData returns the packet's payload as generic values with each
// placeholder replaced by its attachment (nil when the packet has none).
func PacketData(p *parser.Packet) (any, error) {
	if p.Data == nil {
		return nil, nil
	}
	att := p.Attachments
	if att == nil {
		att = [][]byte{}
	}
	return ParseJSON(p.Data, att)
}

// wireType is the packet type Node puts on the wire: binary variants are
// plain EVENT/ACK, the receiver detects binary when it encodes.
func wireType(t parser.Type) int64 {
	switch t {
	case parser.BinaryEvent:
		return int64(parser.Event)
	case parser.BinaryAck:
		return int64(parser.Ack)
	}
	return int64(t)
}

// PacketToWire returns {type, data[, nsp]} for p. withNsp is false for the
// sharded adapter, whose packets carry no nsp.
func PacketToWire(p *parser.Packet, withNsp bool) (msgpack.Map, error) {
	data, err := PacketData(p)
	if err != nil {
		return nil, err
	}
	m := msgpack.Map{{Key: "type", Value: wireType(p.Type)}}
	if p.Data != nil {
		m = append(m, msgpack.KV{Key: "data", Value: data})
	}
	if withNsp {
		nsp := p.Nsp
		if nsp == "" {
			nsp = "/"
		}
		m = append(m, msgpack.KV{Key: "nsp", Value: nsp})
	}
	return m, nil
}

// PacketFromWire converts a wire packet {type, data, nsp, id} into a
// parser.Packet; defaultNsp is used when nsp is absent.
func PacketFromWire(v any, defaultNsp string) (*parser.Packet, error) {
	m, ok := v.(msgpack.Map)
	if !ok {
		return nil, invalid("packet is %T, want an object", v)
	}
	p := &parser.Packet{Type: parser.Event, Nsp: defaultNsp}
	if tv, ok := m.Get("type"); ok {
		n, ok := toInt(tv)
		if !ok || n < 0 || n > int64(parser.BinaryAck) {
			return nil, invalid("bad packet type %v", tv)
		}
		p.Type = parser.Type(n)
	}
	if nv, ok := m.Get("nsp"); ok && nv != nil {
		s, ok := nv.(string)
		if !ok {
			return nil, invalid("packet nsp is %T", nv)
		}
		p.Nsp = s
	}
	if idv, ok := m.Get("id"); ok && idv != nil {
		id, ok := toInt(idv)
		if !ok || id < 0 {
			return nil, invalid("bad packet id %v", idv)
		}
		p.ID, p.HasID = uint64(id), true
	}
	if dv, ok := m.Get("data"); ok {
		var att [][]byte
		buf, err := AppendJSON(nil, dv, &att)
		if err != nil {
			return nil, err
		}
		p.Data = buf
		if len(att) > 0 {
			p.Attachments = att
		}
	}
	switch {
	case p.Attachments != nil && p.Type == parser.Event:
		p.Type = parser.BinaryEvent
	case p.Attachments != nil && p.Type == parser.Ack:
		p.Type = parser.BinaryAck
	case p.Attachments == nil && p.Type == parser.BinaryEvent:
		p.Type = parser.Event
	case p.Attachments == nil && p.Type == parser.BinaryAck:
		p.Type = parser.Ack
	}
	return p, nil
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case uint64:
		return 0, false
	case float64:
		if n == float64(int64(n)) {
			return int64(n), true
		}
	}
	return 0, false
}

// OptsToWire returns {rooms, except, flags} as the adapter writes them.
func OptsToWire(o *adapter.BroadcastOptions, withFlags bool) msgpack.Map {
	m := msgpack.Map{
		{Key: "rooms", Value: nonNil(o.Rooms)},
		{Key: "except", Value: nonNil(o.Except)},
	}
	if withFlags {
		m = append(m, msgpack.KV{Key: "flags", Value: FlagsToWire(o.Flags)})
	}
	return m
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// FlagsToWire returns the flags object, with only the flags that are set.
func FlagsToWire(f adapter.Flags) msgpack.Map {
	m := msgpack.Map{}
	if f.Volatile {
		m = append(m, msgpack.KV{Key: "volatile", Value: true})
	}
	if f.Compress != nil {
		m = append(m, msgpack.KV{Key: "compress", Value: *f.Compress})
	}
	if f.Local {
		m = append(m, msgpack.KV{Key: "local", Value: true})
	}
	if f.Timeout > 0 {
		m = append(m, msgpack.KV{Key: "timeout", Value: f.Timeout})
	}
	return m
}

// OptsFromWire reads {rooms, except, flags}; absent fields are empty.
func OptsFromWire(v any) (adapter.BroadcastOptions, error) {
	var o adapter.BroadcastOptions
	if v == nil {
		return o, nil
	}
	m, ok := v.(msgpack.Map)
	if !ok {
		return o, invalid("opts is %T, want an object", v)
	}
	var err error
	rv, _ := m.Get("rooms")
	if o.Rooms, err = StringList(rv); err != nil {
		return o, err
	}
	ev, _ := m.Get("except")
	if o.Except, err = StringList(ev); err != nil {
		return o, err
	}
	if fv, ok := m.Get("flags"); ok && fv != nil {
		fm, ok := fv.(msgpack.Map)
		if !ok {
			return o, invalid("flags is %T, want an object", fv)
		}
		for _, kv := range fm {
			switch kv.Key {
			case "volatile":
				o.Flags.Volatile = truthy(kv.Value)
			case "local":
				o.Flags.Local = truthy(kv.Value)
			case "compress":
				c := truthy(kv.Value)
				o.Flags.Compress = &c
			case "timeout":
				if f, ok := toFloat(kv.Value); ok && f > 0 {
					o.Flags.Timeout = int64(f)
				}
			}
		}
	}
	return o, nil
}

// truthy is JavaScript's boolean conversion for the values JSON/msgpack carry.
func truthy(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case int64:
		return t != 0
	case float64:
		return t != 0 && t == t
	case string:
		return t != ""
	}
	return true
}

// StringList reads an array of room names; numbers are formatted as
// JavaScript would, nil is an empty list.
func StringList(v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, invalid("want an array of strings, got %T", v)
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		switch t := e.(type) {
		case string:
			out = append(out, t)
		case int64:
			out = append(out, strconv.FormatInt(t, 10))
		case uint64:
			out = append(out, strconv.FormatUint(t, 10))
		case float64:
			out = append(out, string(appendFloat(nil, t)))
		default:
			return nil, invalid("room of type %T", e)
		}
	}
	return out, nil
}
