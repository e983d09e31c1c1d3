package gateway

import (
	"fmt"
	"time"

	"github.com/tradewire/tradewire/adminui"
	"github.com/tradewire/tradewire/internal/config"
)

// adminSessionTTL is how long an Admin UI login is reused (the npm
// package's RedisStore default).
const adminSessionTTL = 24 * time.Hour

// setupAdminUI instruments the Socket.IO server for the Socket.IO Admin UI
// when TRADEWIRE_ADMIN_UI is on. Admin logins are shared through Redis when
// the cluster has it, with the key layout of the npm package's RedisStore.
func (g *Gateway) setupAdminUI() error {
	cfg := g.cfg
	if !cfg.AdminUI {
		return nil
	}
	p := config.EnvPrefix
	noAuth := cfg.AdminUIUsername == "" && cfg.AdminUIPassword == ""
	if noAuth && !cfg.DevMode() {
		return fmt.Errorf("%sADMIN_UI=true requires %sADMIN_UI_USERNAME and %sADMIN_UI_PASSWORD (a bcrypt hash); only dev mode may run the Admin UI without a login", p, p, p)
	}
	opts := adminui.Options{
		Username: cfg.AdminUIUsername, PasswordHash: cfg.AdminUIPassword, NoAuth: noAuth,
		ReadOnly: cfg.AdminUIReadOnly, Production: cfg.AdminUIMode == "production", ServerID: cfg.AdminUIServerID, Logger: g.log,
	}
	if opts.ServerID == "" {
		opts.ServerID = cfg.NodeID
	}
	if g.rdb != nil {
		opts.Sessions = adminui.NewRedisSessions(g.rdb, "", adminSessionTTL)
	}
	in, err := adminui.Instrument(g.sio, opts)
	if err != nil {
		return fmt.Errorf("%sADMIN_UI: %w", p, err)
	}
	if noAuth {
		g.log.Warn("Admin UI without a login (dev mode)", "namespace", "/admin")
	}
	go func() { <-g.stop; in.Close() }()
	return nil
}
