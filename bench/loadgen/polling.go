package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
)

// PollConn is an Engine.IO v4 long-polling client session. Next and Send are
// called from one goroutine; each GET or POST is one HTTP request.
type PollConn struct {
	hc      *http.Client
	base    string // http://host:port/socket.io/?EIO=4&transport=polling
	header  http.Header
	sid     string
	queue   [][]byte
	ctx     context.Context
	cancel  context.CancelFunc
	counter atomic.Uint64
}

// DialPolling performs the polling handshake (bounded by ctx) and returns
// the session, which lives until life ends or Close, and its open packet.
func DialPolling(ctx, life context.Context, hc *http.Client, baseURL string, header http.Header) (*PollConn, OpenPacket, error) {
	cctx, cancel := context.WithCancel(life)
	p := &PollConn{hc: hc, base: baseURL, header: header, ctx: cctx, cancel: cancel}
	body, err := p.do(ctx, http.MethodGet, nil)
	if err != nil {
		cancel()
		return nil, OpenPacket{}, err
	}
	pkts := SplitPayload(body)
	o, err := ParseOpen(pkts[0])
	if err != nil {
		cancel()
		return nil, o, err
	}
	p.sid = o.SID
	p.queue = pkts[1:]
	return p, o, nil
}

func (p *PollConn) url() string {
	u := p.base + "&t=" + strconv.FormatUint(p.counter.Add(1), 36)
	if p.sid != "" {
		u += "&sid=" + p.sid
	}
	return u
}

func (p *PollConn) do(ctx context.Context, method string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.url(), rd)
	if err != nil {
		return nil, err
	}
	for k, v := range p.header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("engine.io polling %s: HTTP %d: %s", method, resp.StatusCode, truncate(b, 200))
	}
	return b, nil
}

// Next returns the next Engine.IO packet, long-polling when none is queued.
func (p *PollConn) Next() ([]byte, error) {
	for len(p.queue) == 0 {
		body, err := p.do(p.ctx, http.MethodGet, nil)
		if err != nil {
			return nil, err
		}
		p.queue = SplitPayload(body)
	}
	pkt := p.queue[0]
	p.queue = p.queue[1:]
	if !ValidEIOPacket(pkt) {
		return nil, fmt.Errorf("engine.io: bad packet %q", truncate(pkt, 64))
	}
	return pkt, nil
}

// Send POSTs the packets as one payload.
func (p *PollConn) Send(pkts ...[]byte) error {
	body, err := p.do(p.ctx, http.MethodPost, JoinPayload(pkts...))
	if err != nil {
		return err
	}
	if string(body) != "ok" {
		return fmt.Errorf("engine.io polling POST: unexpected body %q", truncate(body, 64))
	}
	return nil
}

// Close aborts any request in flight (like a dropped network link).
func (p *PollConn) Close() error {
	p.cancel()
	return nil
}
