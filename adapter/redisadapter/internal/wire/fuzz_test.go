package wire

import (
	"testing"
)

func seeds(f *testing.F) {
	for _, h := range []string{vecA1, vecR7, vecR9, vecE1, vecE2, vecE3, vecE4, vecE5, vecS2} {
		f.Add(unhex(f, h))
	}
	for _, s := range []string{vecS1, `{"uid":"emitter","type":6,"data":["hello",{"z":1}]}`,
		`{"type":4,"opts":{"rooms":["room1"],"except":[]},"close":true}`, `{"requestId":"r","sockets":[{"id":"a"}]}`} {
		f.Add([]byte(s))
	}
}

// Decoders never panic; what they accept re-encodes and decodes the same way.
func FuzzDecodeBroadcast(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBroadcast(data)
		if err != nil {
			return
		}
		out, err := EncodeBroadcast(b.UID, b.Packet, &b.Opts)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		b2, err := DecodeBroadcast(out)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		if string(b2.Packet.Data) != string(b.Packet.Data) || len(b2.Packet.Attachments) != len(b.Packet.Attachments) {
			t.Fatalf("round trip changed packet: %s -> %s", b.Packet.Data, b2.Packet.Data)
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRequest(data)
		if err != nil {
			return
		}
		out, err := EncodeRequest(r)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := DecodeRequest(out); err != nil {
			t.Fatalf("decode re-encoded %q: %v", out, err)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeResponse(data)
		if err != nil {
			return
		}
		_, _ = r.SocketIDs()
		_, _ = r.SocketInfos()
	})
}

func FuzzDecodeCluster(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeCluster(data)
		if err != nil {
			return
		}
		out, err := EncodeCluster(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := DecodeCluster(out); err != nil {
			t.Fatalf("decode re-encoded %q: %v", out, err)
		}
	})
}
