package wire

import (
	"encoding/json"
	"time"

	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/adapter/redisadapter/internal/msgpack"
	"github.com/tradewire/tradewire/parser"
)

// Request types of the classic adapter (request and response channels).
const (
	TypeSockets              = 0
	TypeAllRooms             = 1
	TypeRemoteJoin           = 2
	TypeRemoteLeave          = 3
	TypeRemoteDisconnect     = 4
	TypeRemoteFetch          = 5
	TypeServerSideEmit       = 6
	TypeBroadcast            = 7
	TypeBroadcastClientCount = 8
	TypeBroadcastAck         = 9
)

// EmitterUID is the uid @socket.io/redis-emitter puts on its messages.
const EmitterUID = "emitter"

// Broadcast is a classic broadcast message, [uid, packet, opts].
type Broadcast struct {
	UID    string
	Packet *parser.Packet
	Opts   adapter.BroadcastOptions
}

// EncodeBroadcast encodes [uid, {type,data,nsp}, {rooms,except,flags}].
func EncodeBroadcast(uid string, p *parser.Packet, opts *adapter.BroadcastOptions) ([]byte, error) {
	pkt, err := PacketToWire(p, true)
	if err != nil {
		return nil, err
	}
	return msgpack.Marshal([]any{uid, pkt, OptsToWire(opts, true)})
}

// DecodeBroadcast decodes a classic broadcast. A missing nsp means "/".
func DecodeBroadcast(b []byte) (*Broadcast, error) {
	v, err := msgpack.Unmarshal(b)
	if err != nil {
		return nil, err
	}
	arr, ok := v.([]any)
	if !ok || len(arr) < 2 {
		return nil, invalid("broadcast is not [uid, packet, opts]")
	}
	uid, _ := arr[0].(string)
	if arr[1] == nil {
		return nil, invalid("broadcast without packet")
	}
	p, err := PacketFromWire(arr[1], "/")
	if err != nil {
		return nil, err
	}
	var opts adapter.BroadcastOptions
	if len(arr) > 2 {
		if opts, err = OptsFromWire(arr[2]); err != nil {
			return nil, err
		}
	}
	return &Broadcast{UID: uid, Packet: p, Opts: opts}, nil
}

// Request is a message on the request channel. Opts is nil in the legacy
// forms of types 2-4, which name one socket (SID) instead.
type Request struct {
	Type         int
	UID          string
	RequestID    string
	HasRequestID bool
	// Rooms: for type 0 the rooms to list, for 2 and 3 the rooms to join or leave.
	Rooms []string
	Opts  *adapter.BroadcastOptions
	Close bool
	// SID and Room are the legacy single-socket form.
	SID, Room string
	// Args are the serverSideEmit arguments (type 6), as parser.Unpack returns values.
	Args []any
	// Packet is the packet of an ack broadcast (type 7).
	Packet *parser.Packet
}

// EncodeRequest encodes r as the adapter does: JSON, except msgpack for type 7.
func EncodeRequest(r *Request) ([]byte, error) {
	m := msgpack.Map{}
	add := func(k string, v any) { m = append(m, msgpack.KV{Key: k, Value: v}) }
	if r.UID != "" {
		add("uid", r.UID)
	}
	if r.HasRequestID {
		add("requestId", r.RequestID)
	}
	add("type", int64(r.Type))
	switch r.Type {
	case TypeSockets:
		add("rooms", nonNil(r.Rooms))
	case TypeRemoteJoin, TypeRemoteLeave:
		if r.Opts == nil {
			add("sid", r.SID)
			add("room", r.Room)
		} else {
			add("opts", OptsToWire(r.Opts, false))
			add("rooms", nonNil(r.Rooms))
		}
	case TypeRemoteDisconnect:
		if r.Opts == nil {
			add("sid", r.SID)
		} else {
			add("opts", OptsToWire(r.Opts, false))
		}
		add("close", r.Close)
	case TypeRemoteFetch:
		add("opts", OptsToWire(r.Opts, false))
	case TypeServerSideEmit:
		args := r.Args
		if args == nil {
			args = []any{}
		}
		add("data", args)
	case TypeBroadcast:
		pkt, err := PacketToWire(r.Packet, true)
		if err != nil {
			return nil, err
		}
		add("packet", pkt)
		add("opts", OptsToWire(r.Opts, true))
		return msgpack.Marshal(Normalize(m))
	}
	return AppendJSON(nil, m, nil)
}

// decodeObject decodes JSON (first byte '{') or msgpack into an object.
func decodeObject(b []byte) (msgpack.Map, error) {
	var v any
	var err error
	if len(b) > 0 && b[0] == '{' {
		v, err = ParseJSON(b, nil)
	} else {
		v, err = msgpack.Unmarshal(b)
	}
	if err != nil {
		return nil, err
	}
	m, ok := v.(msgpack.Map)
	if !ok {
		return nil, invalid("message is %T, want an object", v)
	}
	return m, nil
}

func getString(m msgpack.Map, k string) (string, bool, error) {
	v, ok := m.Get(k)
	if !ok || v == nil {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, invalid("%s is %T, want a string", k, v)
	}
	return s, true, nil
}

func getType(m msgpack.Map) (int, error) {
	v, ok := m.Get("type")
	if !ok {
		return -1, nil
	}
	n, ok := toInt(v)
	if !ok {
		return 0, invalid("type is %v", v)
	}
	return int(n), nil
}

// DecodeRequest decodes a request: JSON when the first byte is '{', msgpack otherwise.
func DecodeRequest(b []byte) (*Request, error) {
	m, err := decodeObject(b)
	if err != nil {
		return nil, err
	}
	r := &Request{}
	if r.Type, err = getType(m); err != nil {
		return nil, err
	}
	if r.Type < TypeSockets || r.Type > TypeBroadcast {
		return nil, invalid("unknown request type %d", r.Type)
	}
	if r.UID, _, err = getString(m, "uid"); err != nil {
		return nil, err
	}
	if r.RequestID, r.HasRequestID, err = getString(m, "requestId"); err != nil {
		return nil, err
	}
	if ov, ok := m.Get("opts"); ok && ov != nil {
		o, err := OptsFromWire(ov)
		if err != nil {
			return nil, err
		}
		r.Opts = &o
	}
	rv, _ := m.Get("rooms")
	if r.Rooms, err = StringList(rv); err != nil {
		return nil, err
	}
	if cv, ok := m.Get("close"); ok {
		r.Close = truthy(cv)
	}
	if r.SID, _, err = getString(m, "sid"); err != nil {
		return nil, err
	}
	if rv, ok := m.Get("room"); ok && rv != nil {
		rooms, err := StringList([]any{rv})
		if err != nil {
			return nil, err
		}
		r.Room = rooms[0]
	}
	switch r.Type {
	case TypeRemoteJoin, TypeRemoteLeave, TypeRemoteDisconnect:
		if r.Opts == nil && r.SID == "" {
			return nil, invalid("request type %d without opts or sid", r.Type)
		}
	case TypeRemoteFetch:
		if r.Opts == nil {
			r.Opts = &adapter.BroadcastOptions{}
		}
	case TypeServerSideEmit:
		dv, _ := m.Get("data")
		arr, ok := dv.([]any)
		if !ok {
			return nil, invalid("serverSideEmit data is %T, want an array", dv)
		}
		r.Args = Plain(arr).([]any)
	case TypeBroadcast:
		pv, _ := m.Get("packet")
		if r.Packet, err = PacketFromWire(pv, "/"); err != nil {
			return nil, err
		}
		if r.Opts == nil {
			r.Opts = &adapter.BroadcastOptions{}
		}
		if !r.HasRequestID {
			return nil, invalid("ack broadcast without requestId")
		}
	}
	return r, nil
}

// Response is a message on a response channel. Type is -1 when the message
// has none (responses to types 0, 1, 5 and legacy 2-4).
type Response struct {
	Type      int
	RequestID string
	// Sockets holds socket ids (type 0) or socket objects (type 5), generic.
	Sockets     []any
	HasSockets  bool
	Rooms       []string
	HasRooms    bool
	Data        any // type 6, plain
	ClientCount int // type 8
	Packet      any // type 9, plain
}

// EncodeSocketsResponse encodes the answer to a type 0 request.
func EncodeSocketsResponse(requestID string, ids []string) []byte {
	b, _ := AppendJSON(nil, msgpack.Map{{Key: "requestId", Value: requestID}, {Key: "sockets", Value: nonNil(ids)}}, nil)
	return b
}

// EncodeRoomsResponse encodes the answer to a type 1 request.
func EncodeRoomsResponse(requestID string, rooms []string) []byte {
	b, _ := AppendJSON(nil, msgpack.Map{{Key: "requestId", Value: requestID}, {Key: "rooms", Value: nonNil(rooms)}}, nil)
	return b
}

// EncodeAckResponse encodes the answer to a legacy type 2-4 request.
func EncodeAckResponse(requestID string) []byte {
	b, _ := AppendJSON(nil, msgpack.Map{{Key: "requestId", Value: requestID}}, nil)
	return b
}

// EncodeFetchResponse encodes the answer to a type 5 request.
func EncodeFetchResponse(requestID string, sockets []adapter.SocketInfo) ([]byte, error) {
	if sockets == nil {
		sockets = []adapter.SocketInfo{}
	}
	raw, err := json.Marshal(sockets)
	if err != nil {
		return nil, err
	}
	return AppendJSON(nil, msgpack.Map{{Key: "requestId", Value: requestID}, {Key: "sockets", Value: json.RawMessage(raw)}}, nil)
}

// EncodeServerSideEmitResponse encodes one node's ack to a type 6 request.
func EncodeServerSideEmitResponse(requestID string, arg any) ([]byte, error) {
	return AppendJSON(nil, msgpack.Map{
		{Key: "type", Value: int64(TypeServerSideEmit)}, {Key: "requestId", Value: requestID}, {Key: "data", Value: arg},
	}, nil)
}

// EncodeClientCountResponse encodes the type 8 response.
func EncodeClientCountResponse(requestID string, n int) []byte {
	b, _ := AppendJSON(nil, msgpack.Map{
		{Key: "type", Value: int64(TypeBroadcastClientCount)}, {Key: "requestId", Value: requestID}, {Key: "clientCount", Value: int64(n)},
	}, nil)
	return b
}

// EncodeBroadcastAckResponse encodes the type 9 response (msgpack).
func EncodeBroadcastAckResponse(requestID string, arg any) ([]byte, error) {
	return msgpack.Marshal(Normalize(msgpack.Map{
		{Key: "type", Value: int64(TypeBroadcastAck)}, {Key: "requestId", Value: requestID}, {Key: "packet", Value: arg},
	}))
}

// DecodeResponse decodes a response: JSON when the first byte is '{', msgpack otherwise.
func DecodeResponse(b []byte) (*Response, error) {
	m, err := decodeObject(b)
	if err != nil {
		return nil, err
	}
	r := &Response{}
	if r.Type, err = getType(m); err != nil {
		return nil, err
	}
	if r.RequestID, _, err = getString(m, "requestId"); err != nil {
		return nil, err
	}
	if sv, ok := m.Get("sockets"); ok && sv != nil {
		arr, ok := sv.([]any)
		if !ok {
			return nil, invalid("sockets is %T, want an array", sv)
		}
		r.Sockets, r.HasSockets = arr, true
	}
	if rv, ok := m.Get("rooms"); ok && rv != nil {
		if r.Rooms, err = StringList(rv); err != nil {
			return nil, err
		}
		r.HasRooms = true
	}
	if dv, ok := m.Get("data"); ok {
		r.Data = Plain(dv)
	}
	if cv, ok := m.Get("clientCount"); ok {
		n, ok := toInt(cv)
		if !ok || n < 0 {
			return nil, invalid("clientCount is %v", cv)
		}
		r.ClientCount = int(n)
	}
	if pv, ok := m.Get("packet"); ok {
		r.Packet = Plain(pv)
	}
	return r, nil
}

// SocketIDs returns the ids of a type 0 response.
func (r *Response) SocketIDs() ([]string, error) { return StringList(r.Sockets) }

// SocketInfos returns the sockets of a type 5 response.
func (r *Response) SocketInfos() ([]adapter.SocketInfo, error) {
	return SocketInfos(r.Sockets)
}

// SocketInfos converts generic socket objects into SocketInfo.
func SocketInfos(list []any) ([]adapter.SocketInfo, error) {
	raw, err := AppendJSON(nil, list, nil)
	if err != nil {
		return nil, err
	}
	var out []adapter.SocketInfo
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, invalid("sockets: %v", err)
	}
	return out, nil
}

// Normalize makes v encodable by msgpack: values of other Go types (structs,
// json.RawMessage, typed slices and maps) go through their JSON form.
func Normalize(v any) any {
	switch t := v.(type) {
	case nil, bool, int, int64, uint64, float64, string, []byte, msgpack.Ext, time.Time:
		return v
	case float32:
		return float64(t)
	case int32:
		return int64(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = Normalize(e)
		}
		return out
	case []string:
		return t
	case msgpack.Map:
		out := make(msgpack.Map, len(t))
		for i, kv := range t {
			out[i] = msgpack.KV{Key: kv.Key, Value: Normalize(kv.Value)}
		}
		return out
	case map[string]any:
		return Normalize(msgpack.SortedMap(t))
	case json.RawMessage:
		if g, err := ParseJSON(t, nil); err == nil {
			return g
		}
		return nil
	}
	if tm, ok := v.(interface{ MarshalJSON() ([]byte, error) }); ok {
		if raw, err := tm.MarshalJSON(); err == nil {
			if g, err := ParseJSON(raw, nil); err == nil {
				return g
			}
		}
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	g, err := ParseJSON(raw, nil)
	if err != nil {
		return nil
	}
	return g
}
