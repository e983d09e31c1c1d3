package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"
)

// onPacket handles one Engine.IO packet (a text message).
func (s *Server) onPacket(c *conn, p []byte) {
	if len(p) == 0 {
		s.closeWith(c, 1003, "empty packet")
		return
	}
	switch p[0] {
	case '3': // pong
		if c.hb == hbAwait {
			c.hb = hbPonged
		}
	case '2': // a client ping (Engine.IO v3 habit): answer it
		s.send(c, frame(opText, "3", string(p[1:])))
	case '4':
		s.onSIO(c, p[1:])
	case '6': // noop
	case '1':
		s.closeConn(c)
	default:
		s.closeWith(c, 1003, "bad engine.io packet")
	}
}

// sioHead splits a Socket.IO packet: type, namespace ("/" when absent),
// ack id (-1 when absent) and the JSON payload.
func sioHead(b []byte) (typ byte, nsp string, id int64, data []byte, err error) {
	if len(b) == 0 || b[0] < '0' || b[0] > '6' {
		return 0, "", -1, nil, errors.New("bad socket.io packet type")
	}
	typ, b, nsp, id = b[0], b[1:], "/", -1
	if len(b) > 0 && b[0] == '/' {
		i := 0
		for i < len(b) && b[i] != ',' {
			i++
		}
		nsp, b = string(b[:i]), b[min(i+1, len(b)):]
	}
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i > 0 {
		if id, err = strconv.ParseInt(string(b[:i]), 10, 64); err != nil {
			return 0, "", -1, nil, errors.New("bad ack id")
		}
	}
	return typ, nsp, id, b[i:], nil
}

func (s *Server) onSIO(c *conn, b []byte) {
	typ, nsp, id, data, err := sioHead(b)
	if err != nil {
		s.closeWith(c, 1003, err.Error())
		return
	}
	if nsp != "/" {
		if typ == '0' {
			s.send(c, frame(opText, "44"+nsp+`,{"message":"Invalid namespace"}`))
		}
		return
	}
	switch typ {
	case '0':
		s.onConnect(c, data)
	case '1':
		s.closeConn(c) // a disconnect of the only namespace ends the connection here
	case '2':
		if c.st != stReady {
			s.ack(c, id, `{"success":false,"code":"NOT_CONNECTED","message":"connect first"}`)
			return
		}
		s.onEvent(c, id, data)
	case '3': // acks from the client: none are asked for
	default:
		s.closeWith(c, 1003, "unsupported socket.io packet")
	}
}

func (s *Server) onConnect(c *conn, data []byte) {
	if c.st != stOpen {
		return // already connected or connecting
	}
	sid := c.user
	if len(data) > 0 {
		var auth struct {
			SessionID any `json:"sessionID"`
		}
		if json.Unmarshal(data, &auth) != nil {
			s.closeWith(c, 1003, "invalid CONNECT payload")
			return
		}
		if v, ok := auth.SessionID.(string); ok && sid == "" {
			sid = v
		}
	}
	if sid == "" {
		s.connectError(c, "NO_SESSION", "Authentication required")
		return
	}
	c.st = stAuth
	if s.rdb == nil {
		s.connected(c, sid)
		return
	}
	s.wg.Add(1)
	go s.lookup(c, sid)
}

// lookup reads the connect-redis session and posts the result to the loop.
func (s *Server) lookup(c *conn, sid string) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.life, 5*time.Second)
	defer cancel()
	r := authResult{c: c}
	raw, err := s.rdb.Get(ctx, "sess:"+sid).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		r.code = "SESSION_NOT_FOUND"
	case err != nil:
		r.code = "SESSION_STORE_UNAVAILABLE"
	default:
		r.user, r.code = passportUser(raw)
	}
	s.authMu.Lock()
	s.authed = append(s.authed, r)
	s.authMu.Unlock()
	s.notify()
}

// passportUser returns passport.user of a session document, or an error code.
func passportUser(raw []byte) (user, code string) {
	var sess struct {
		Passport struct {
			User any `json:"user"`
		} `json:"passport"`
	}
	if json.Unmarshal(raw, &sess) != nil {
		return "", "SESSION_INVALID"
	}
	switch u := sess.Passport.User.(type) {
	case string:
		if u != "" {
			return u, ""
		}
	case float64:
		return strconv.FormatFloat(u, 'f', -1, 64), ""
	}
	return "", "UNAUTHORIZED"
}

// drainAuth applies finished session lookups (and consumes the eventfd).
func (s *Server) drainAuth() {
	var buf [8]byte
	_, _ = unix.Read(s.efd, buf[:])
	s.authMu.Lock()
	done := s.authed
	s.authed = nil
	s.authMu.Unlock()
	for _, r := range done {
		if r.c.st != stAuth {
			continue // closed meanwhile
		}
		if r.code != "" {
			r.c.st = stOpen
			s.connectError(r.c, r.code, "session refused")
			continue
		}
		s.connected(r.c, r.user)
	}
}

func (s *Server) connected(c *conn, user string) {
	c.st, c.user = stReady, user
	s.send(c, frame(opText, fmt.Sprintf(`40{"sid":"s%x"}`, c.id)))
}

func (s *Server) connectError(c *conn, code, msg string) {
	s.send(c, frame(opText, fmt.Sprintf(`44{"message":%q,"data":{"code":%q}}`, msg, code)))
}

func (s *Server) ack(c *conn, id int64, payload string) {
	if id >= 0 {
		s.send(c, frame(opText, "43"+strconv.FormatInt(id, 10)+"["+payload+"]"))
	}
}

var symbolRE = regexp.MustCompile(`^[A-Z0-9.\-]{1,12}$`)

const maxSymbols = 50

func (s *Server) onEvent(c *conn, id int64, data []byte) {
	var args []json.RawMessage
	var name string
	if json.Unmarshal(data, &args) != nil || len(args) == 0 || json.Unmarshal(args[0], &name) != nil {
		s.closeWith(c, 1003, "invalid EVENT payload")
		return
	}
	switch name {
	case "subscribe:portfolio":
		s.join(c, "portfolio:"+c.user)
		s.ack(c, id, `{"success":true}`)
	case "subscribe:trades":
		s.join(c, "trades:"+c.user)
		s.ack(c, id, `{"success":true}`)
	case "subscribe:watchlist":
		var req struct {
			Symbols []string `json:"symbols"`
		}
		ok := len(args) > 1 && json.Unmarshal(args[1], &req) == nil && len(req.Symbols) > 0 && len(req.Symbols) <= maxSymbols
		for _, sym := range req.Symbols {
			ok = ok && symbolRE.MatchString(sym)
		}
		if !ok {
			s.ack(c, id, fmt.Sprintf(`{"success":false,"code":"INVALID_SYMBOLS","message":"symbols must be 1-%d ticker strings"}`, maxSymbols))
			return
		}
		for _, sym := range req.Symbols {
			s.join(c, "watchlist:"+sym)
		}
		list, _ := json.Marshal(req.Symbols)
		s.ack(c, id, `{"success":true,"symbols":`+string(list)+`}`)
	default:
		s.ack(c, id, `{"success":false,"code":"UNKNOWN_EVENT","message":"unknown event"}`)
	}
}

// join adds c to the room name (idempotent).
func (s *Server) join(c *conn, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[name]
	if r == nil {
		r = &room{name: name}
		s.rooms[name] = r
	}
	for _, x := range c.room {
		if x == r {
			return
		}
	}
	r.members = append(r.members, c)
	c.room = append(c.room, r)
}

// leaveAll removes c from its rooms; empty rooms are dropped.
func (s *Server) leaveAll(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range c.room {
		for i, m := range r.members {
			if m == c {
				last := len(r.members) - 1
				r.members[i], r.members[last] = r.members[last], nil
				r.members = r.members[:last]
				break
			}
		}
		if len(r.members) == 0 {
			delete(s.rooms, r.name)
		}
	}
	c.room = nil
}

// broadcast queues one pre-encoded frame for every member of the rooms (a
// connection in several of them gets it once) and returns the recipients.
func (s *Server) broadcast(rooms []string, f []byte) int {
	n := 0
	s.mu.Lock()
	s.epoch++
	for _, name := range rooms {
		r := s.rooms[name]
		if r == nil {
			continue
		}
		for _, c := range r.members {
			if len(rooms) > 1 {
				if c.mark == s.epoch {
					continue
				}
				c.mark = s.epoch
			}
			s.enqueue(c, f)
			n++
		}
	}
	s.mu.Unlock()
	if n > 0 {
		s.wakeFlusher()
	}
	return n
}
