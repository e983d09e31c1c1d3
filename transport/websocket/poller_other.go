//go:build !linux

package websocket

import "errors"

type poller struct{}

func newPoller(*Server) (*poller, error) {
	return nil, errors.New("websocket: epoll mode needs Linux; use ModeGoroutine")
}
func (p *poller) add(*Conn) error       { return nil }
func (p *poller) remove(*Conn)          {}
func (p *poller) stop()                 {}
func (p *poller) awaitWritable(c *Conn) { c.writable() }
