package wire

import (
	"github.com/tradewire/tradewire/adapter"
	"github.com/tradewire/tradewire/adapter/redisadapter/internal/msgpack"
	"github.com/tradewire/tradewire/parser"
)

// Message types of the sharded adapter (socket.io-adapter's ClusterAdapter).
const (
	MsgBroadcast              = 3
	MsgSocketsJoin            = 4
	MsgSocketsLeave           = 5
	MsgDisconnectSockets      = 6
	MsgFetchSockets           = 7
	MsgFetchSocketsResponse   = 8
	MsgServerSideEmit         = 9
	MsgServerSideEmitResponse = 10
	MsgBroadcastClientCount   = 11
	MsgBroadcastAck           = 12
)

// ClusterMessage is a sharded adapter message {type, data, uid, nsp}.
type ClusterMessage struct {
	Type         int
	UID          string
	Nsp          string
	RequestID    string
	HasRequestID bool
	// Packet is the broadcast packet (type 3); its Nsp is the message's.
	Packet *parser.Packet
	// Opts select sockets (types 3-7).
	Opts adapter.BroadcastOptions
	// Rooms to join or leave (types 4, 5).
	Rooms []string
	Close bool
	// Sockets of a fetch response (type 8).
	Sockets []adapter.SocketInfo
	// Args of a serverSideEmit (type 9), plain values.
	Args []any
	// Arg is the reply of types 10 and 12, plain values.
	Arg         any
	ClientCount int
}

// EncodeCluster encodes m as JSON, or as msgpack when its data holds binary
// and its type may carry binary (3, 8, 9, 10, 12), as the sharded adapter does.
func EncodeCluster(m *ClusterMessage) ([]byte, error) {
	data := msgpack.Map{}
	add := func(k string, v any) { data = append(data, msgpack.KV{Key: k, Value: v}) }
	mayHaveBinary := false
	switch m.Type {
	case MsgBroadcast:
		pkt, err := PacketToWire(m.Packet, false)
		if err != nil {
			return nil, err
		}
		add("packet", pkt)
		if m.HasRequestID {
			add("requestId", m.RequestID)
		}
		add("opts", OptsToWire(&m.Opts, true))
		mayHaveBinary = true
	case MsgSocketsJoin, MsgSocketsLeave:
		add("opts", OptsToWire(&m.Opts, true))
		add("rooms", nonNil(m.Rooms))
	case MsgDisconnectSockets:
		add("opts", OptsToWire(&m.Opts, true))
		add("close", m.Close)
	case MsgFetchSockets:
		add("opts", OptsToWire(&m.Opts, true))
		add("requestId", m.RequestID)
	case MsgFetchSocketsResponse:
		add("requestId", m.RequestID)
		socks := make([]any, 0, len(m.Sockets))
		for i := range m.Sockets {
			socks = append(socks, Normalize(m.Sockets[i]))
		}
		add("sockets", socks)
		mayHaveBinary = true
	case MsgServerSideEmit:
		if m.HasRequestID {
			add("requestId", m.RequestID)
		}
		args := make([]any, len(m.Args))
		for i, a := range m.Args {
			args[i] = Normalize(a)
		}
		add("packet", args)
		mayHaveBinary = true
	case MsgServerSideEmitResponse, MsgBroadcastAck:
		add("requestId", m.RequestID)
		add("packet", Normalize(m.Arg))
		mayHaveBinary = true
	case MsgBroadcastClientCount:
		add("requestId", m.RequestID)
		add("clientCount", int64(m.ClientCount))
	default:
		return nil, invalid("unknown cluster message type %d", m.Type)
	}
	msg := msgpack.Map{{Key: "type", Value: int64(m.Type)}, {Key: "data", Value: data}, {Key: "uid", Value: m.UID}, {Key: "nsp", Value: m.Nsp}}
	if mayHaveBinary && HasBinary(data) {
		return msgpack.Marshal(msg)
	}
	return AppendJSON(nil, msg, nil)
}

// DecodeCluster decodes a sharded adapter message (JSON when the first byte
// is '{', msgpack otherwise).
func DecodeCluster(b []byte) (*ClusterMessage, error) {
	top, err := decodeObject(b)
	if err != nil {
		return nil, err
	}
	m := &ClusterMessage{}
	if m.Type, err = getType(top); err != nil {
		return nil, err
	}
	if m.UID, _, err = getString(top, "uid"); err != nil {
		return nil, err
	}
	if m.Nsp, _, err = getString(top, "nsp"); err != nil {
		return nil, err
	}
	dv, _ := top.Get("data")
	data, ok := dv.(msgpack.Map)
	if !ok {
		return nil, invalid("cluster message data is %T, want an object", dv)
	}
	if m.RequestID, m.HasRequestID, err = getString(data, "requestId"); err != nil {
		return nil, err
	}
	if ov, ok := data.Get("opts"); ok {
		if m.Opts, err = OptsFromWire(ov); err != nil {
			return nil, err
		}
	}
	switch m.Type {
	case MsgBroadcast:
		pv, _ := data.Get("packet")
		if m.Packet, err = PacketFromWire(pv, m.Nsp); err != nil {
			return nil, err
		}
	case MsgSocketsJoin, MsgSocketsLeave:
		rv, _ := data.Get("rooms")
		if m.Rooms, err = StringList(rv); err != nil {
			return nil, err
		}
	case MsgDisconnectSockets:
		cv, _ := data.Get("close")
		m.Close = truthy(cv)
	case MsgFetchSockets:
	case MsgFetchSocketsResponse:
		sv, _ := data.Get("sockets")
		list, ok := sv.([]any)
		if !ok && sv != nil {
			return nil, invalid("sockets is %T, want an array", sv)
		}
		if m.Sockets, err = SocketInfos(list); err != nil {
			return nil, err
		}
	case MsgServerSideEmit:
		pv, _ := data.Get("packet")
		arr, ok := pv.([]any)
		if !ok {
			return nil, invalid("serverSideEmit packet is %T, want an array", pv)
		}
		m.Args = Plain(arr).([]any)
	case MsgServerSideEmitResponse, MsgBroadcastAck:
		pv, _ := data.Get("packet")
		m.Arg = Plain(pv)
	case MsgBroadcastClientCount:
		cv, _ := data.Get("clientCount")
		n, ok := toInt(cv)
		if !ok || n < 0 {
			return nil, invalid("clientCount is %v", cv)
		}
		m.ClientCount = int(n)
	default:
		return nil, invalid("unknown cluster message type %d", m.Type)
	}
	return m, nil
}
