package gateway

import (
	"context"
	"errors"
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"net/http"
	"sort"
	"time"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/socketio"
	"github.com/tradewire/tradewire/trading"
)

// every runs fn every d until ctx ends or the gateway stops.
func (g *Gateway) every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.stop:
			return
		case <-t.C:
			fn()
		}
	}
}

// statsLoop pushes live gateway statistics to the admin room.
func (g *Gateway) statsLoop(ctx context.Context) {
	g.every(ctx, 5*time.Second, func() {
		if g.nsp.Adapter().(interface{ HasRoom(string) bool }).HasRoom(trading.AdminRoom) {
			_ = g.nsp.To(trading.AdminRoom).Emit(trading.EventStatsUpdate, g.Stats())
		}
	})
}

// demoPrices are the starting prices of the demo feed: the symbols people
// are likely to type into the dashboard.
var demoPrices = map[string]float64{
	"AAPL": 187.12, "MSFT": 415.5, "GOOGL": 171.3, "AMZN": 182.4, "TSLA": 248.9, "NVDA": 121.7,
	"META": 505.2, "NFLX": 640.1, "AMD": 158.3, "INTC": 31.2, "IBM": 190.4, "ORCL": 125.6,
	"JPM": 198.5, "V": 275.3, "BRK.B": 408.9, "DIS": 101.4, "KO": 62.1, "SPY": 520.4, "QQQ": 445.8,
}

// demoSymbols are the demo feed's symbols, in a stable order.
var demoSymbols = func() []string {
	out := make([]string, 0, len(demoPrices))
	for s := range demoPrices {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}()

// demoFeed publishes a synthetic quote per demo symbol every second (dev mode).
func (g *Gateway) demoFeed(ctx context.Context) {
	defer close(g.demoDone)
	prices := maps.Clone(demoPrices)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	_ = g.emitter.MarketStatus(ctx, map[string]any{"status": "open", "source": "demo"})
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.stop:
			return
		case <-t.C:
			for _, sym := range demoSymbols {
				select {
				case <-g.stop:
					return
				default:
				}
				p := prices[sym] * (1 + (rand.Float64()-0.5)/500)
				prices[sym] = p
				_ = g.emitter.Quote(ctx, sym, map[string]any{"price": float64(int(p*100)) / 100, "source": "demo"})
			}
		}
	}
}

// shutdown drains the node: readiness false, no new connections, every
// client told server:shutdown with its own reconnect delay, connections
// closed spread over the drain window, in-flight publishes finished, then
// the clients of Redis and MongoDB closed.
func (g *Gateway) shutdown(srv *http.Server) error {
	g.stopOnce.Do(func() { close(g.stop) })
	g.health.SetDraining(true)
	g.sio.Engine().StopAccepting()
	if g.stopIngest != nil {
		g.stopIngest() // finish the event in flight; the rest stays pending
	}
	window := g.cfg.DrainWindow
	deadline, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
	defer cancel()

	sockets := g.nsp.Sockets()
	sort.Slice(sockets, func(i, j int) bool { return sockets[i].ID() < sockets[j].ID() })
	g.log.Info("draining", "connections", len(sockets), "window", window.String())
	n := len(sockets)
	delays := make([]time.Duration, n)
	for i, s := range sockets {
		if n > 1 {
			delays[i] = time.Duration(int64(window) * int64(i) / int64(n))
		}
		// The client reconnects after its own close plus a jitter, so the
		// fleet does not reconnect at once.
		reconnect := delays[i] + time.Duration(rand.Int64N(int64(time.Second)))
		_ = s.Emit(trading.EventServerShutdown, map[string]any{"reconnectInMs": reconnect.Milliseconds()})
	}
	start := time.Now()
	for i, s := range sockets {
		if wait := delays[i] - time.Since(start); wait > 0 {
			select {
			case <-time.After(wait):
			case <-deadline.Done():
			}
		}
		s.CloseTransport(socketio.ReasonServerShuttingDown)
	}
	// Polling or late sessions not attached to a socket yet.
	g.sio.Engine().Close()
	if g.stopRouter != nil {
		g.stopRouter()
	}
	err := srv.Shutdown(deadline)
	if g.demoDone != nil {
		<-g.demoDone // no publish may start once inflight is waited for
	}
	done := make(chan struct{})
	go func() { g.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-deadline.Done():
	}
	_ = g.sio.Close()
	g.closeClients()
	g.log.Info("shutdown complete", "took", time.Since(start).String())
	if err == http.ErrServerClosed {
		err = nil
	}
	return err
}

// revalidateEvery is how often the session of every connected socket is
// re-read, so a logout or an expiry disconnects within ~5 s. The work is
// spread over revalidateShards ticks, one shard of the round's sessions
// each (by a hash of the session id): one batch of all 10,000 sessions every 2 s was a
// burst of CPU and garbage that set the per-user events' p99 (8 ms at
// 450 events/s against 1.5 ms without it; decision 012).
const (
	revalidateEvery  = 2 * time.Second
	revalidateShards = 8
)

// revalidateLoop disconnects sockets whose Express session was destroyed
// (logout) or expired.
func (g *Gateway) revalidateLoop(ctx context.Context) {
	g.every(ctx, revalidateEvery/revalidateShards, func() { g.revalidateTick(ctx) })
}

// revalidateTick revalidates the sessions of the next shard. Nothing is
// kept between ticks: a snapshot held for the whole round would be part of
// every connection's live memory.
func (g *Gateway) revalidateTick(ctx context.Context) {
	shard := g.revalTick % revalidateShards
	g.revalTick++
	bySID := make(map[string][]*socketio.Socket)
	var sids []string
	for _, s := range g.nsp.Sockets() {
		id := trading.IdentityOf(s)
		if id == nil || id.SessionID == "" || sessionShard(id.SessionID) != shard {
			continue
		}
		prev, seen := bySID[id.SessionID]
		if !seen {
			sids = append(sids, id.SessionID)
		}
		bySID[id.SessionID] = append(prev, s)
	}
	g.revalidate(ctx, sids, bySID)
	if shard == revalidateShards-1 {
		g.recheckRound++
	}
}

// shardSeed keys sessionShard for this process's life.
var shardSeed = maphash.MakeSeed()

// sessionShard places a session in the same tick of every round, so it is
// re-read every revalidateEvery.
func sessionShard(sid string) int {
	return int(maphash.String(shardSeed, sid) % revalidateShards)
}

// revalidate re-reads the sessions sids (sockets in bySID), disconnects the
// sockets of those that ended, then rechecks the users of the others.
func (g *Gateway) revalidate(ctx context.Context, sids []string, bySID map[string][]*socketio.Socket) {
	// The store decides (Express may have extended the session since the
	// handshake), so every session of the shard is re-read, in one batch.
	var invalid []string
	if len(sids) > 0 {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		var err error
		invalid, err = g.authn.Revalidate(rctx, sids)
		cancel()
		if err != nil {
			g.log.Warn("session revalidation incomplete", "err", err)
		}
	}
	for _, sid := range invalid {
		for _, s := range bySID[sid] {
			_ = s.Emit(trading.EventError, map[string]any{"code": "SESSION_EXPIRED", "message": "your session ended, sign in again"})
			g.log.Info("session ended, disconnecting", "socket_id", s.ID(), "user_id", trading.IdentityOf(s).UserID)
			s.Disconnect(true)
		}
		delete(bySID, sid)
	}
	g.recheckUsers(ctx, sids, bySID)
}

// recheckAllEvery is how many revalidation rounds pass between re-reads of
// every user; admins are re-read every round.
const recheckAllEvery = 15

// recheckUsers re-reads the role and tier of the users of sids (sockets in
// bySID; admins every round, so a demoted admin leaves admin:stats within
// revalidateEvery plus one lookup; everyone every recheckAllEvery rounds,
// bounding the user-store load) and disconnects the sockets whose
// identity changed: the client reconnects with its new role and tier.
func (g *Gateway) recheckUsers(ctx context.Context, sids []string, bySID map[string][]*socketio.Socket) {
	if g.users == nil || len(sids) == 0 {
		return
	}
	all := g.recheckRound%recheckAllEvery == recheckAllEvery-1
	byUser := make(map[string][]*socketio.Socket)
	for _, sid := range sids {
		for _, s := range bySID[sid] {
			if id := trading.IdentityOf(s); id != nil && (all || id.Role == "admin") {
				byUser[id.UserID] = append(byUser[id.UserID], s)
			}
		}
	}
	uctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for uid, socks := range byUser {
		if uctx.Err() != nil {
			g.log.Warn("user revalidation incomplete", "err", uctx.Err())
			return
		}
		u, err := g.users.User(uctx, uid)
		role, tier := auth.DefaultRole, auth.DefaultTier
		switch {
		case errors.Is(err, auth.ErrNoUser):
			role, tier = "", "" // deleted: any identity differs
		case err != nil:
			continue // store unavailable: keep what we have
		default:
			if u.Role != "" {
				role = u.Role
			}
			if u.Tier != "" {
				tier = u.Tier
			}
		}
		for _, s := range socks {
			id := trading.IdentityOf(s)
			if id.Role == role && id.Tier == tier {
				continue
			}
			g.authn.Invalidate(id.SessionID) // the cached identity has the old role
			_ = s.Emit(trading.EventError, map[string]any{"code": "IDENTITY_CHANGED", "message": "your role or subscription changed, reconnect"})
			g.log.Info("role or tier changed, disconnecting", "socket_id", s.ID(), "user_id", uid, "role", role, "tier", tier)
			s.Disconnect(true)
		}
	}
}

// linkWatch follows the Redis adapter's health: when this node's pub/sub
// link is lost it starts tracking what local sockets receive, and when the
// link is back it sends them, from the recovery streams, every recorded
// event they missed meanwhile, once each.
func (g *Gateway) linkWatch(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	healthy := g.node.Ready() == nil
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.stop:
			return
		case <-t.C:
		}
		ok := g.node.Ready() == nil
		switch {
		case healthy && !ok:
			g.log.Warn("cluster link lost; tracking deliveries to catch up later")
			for _, n := range g.sio.Namespaces() {
				n.LinkLost()
			}
		case !healthy && ok:
			sent := 0
			for _, n := range g.sio.Namespaces() {
				sent += n.CatchUp()
			}
			g.log.Info("cluster link restored; caught up missed events", "events", sent)
		}
		healthy = ok
	}
}
