package publish

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/iotest"
)

func serve(h http.Handler, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// FuzzAPIBody: any body gets 202, 400 or 413 with a JSON answer; a 400
// for a batch item points into the batch; 202 counts what was broadcast;
// nothing is broadcast for a refused request.
func FuzzAPIBody(f *testing.F) {
	for _, s := range []string{
		validEvent,
		`[` + validEvent + `,{"type":"quote.update","symbol":"aapl","quote":{"p":1}}]`,
		`[` + validEvent + `,5]`,
		`{"type":"trade.executed","userId":"u1","trade":{"symbol":"AAPL","side":"buy","quantity":1,"price":1}}`,
		`{"type":"market.status","status":{},"extra":1}`,
		validEmit,
		`[{"event":"a","rooms":["r"],"except":["e"],"data":[1]},{"event":"connect"}]`,
		`null`, `[]`, ``, `{"a":`,
	} {
		f.Add(false, []byte(s))
		f.Add(true, []byte(s))
	}
	f.Fuzz(func(t *testing.T, emit bool, body []byte) {
		rec := &recorder{}
		h := NewHandler(rec, []string{testKey}, quietLogger())
		mux := http.NewServeMux()
		h.Mount(mux)
		path := "/api/v1/events"
		if emit {
			path = "/api/v1/emit"
		}
		w := serve(mux, path, body)
		var r Response
		if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
			t.Fatalf("%d answer %q is not JSON", w.Code, w.Body.String())
		}
		calls := len(rec.take())
		switch w.Code {
		case http.StatusAccepted:
			if r.Error != nil || r.Accepted != calls || calls == 0 {
				t.Fatalf("202 %s with %d broadcasts", w.Body.String(), calls)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if r.Error == nil || r.Error.Code == "" || r.Error.Message == "" || calls != 0 {
				t.Fatalf("%d %s with %d broadcasts", w.Code, w.Body.String(), calls)
			}
			if r.Error.Index != nil {
				items, err := splitBatch(body)
				if err != nil || *r.Error.Index < 0 || *r.Error.Index >= len(items) {
					t.Fatalf("index %d outside the batch (%v)", *r.Error.Index, err)
				}
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
	})
}

func TestUnreadableBody(t *testing.T) {
	rec := &recorder{}
	h := NewHandler(rec, []string{testKey}, quietLogger())
	mux := http.NewServeMux()
	h.Mount(mux)
	req := httptest.NewRequest(http.MethodPost, "/api/v1/events", iotest.ErrReader(errBroadcast))
	req.Header.Set("X-API-Key", testKey)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	var r Response
	_ = json.Unmarshal(w.Body.Bytes(), &r)
	if w.Code != http.StatusBadRequest || r.Error == nil || r.Error.Code != "INVALID_PAYLOAD" || r.Error.Message != "cannot read body" {
		t.Errorf("%d %s", w.Code, w.Body.String())
	}
	if len(rec.take()) != 0 {
		t.Error("broadcast from an unreadable body")
	}
}
