package auth_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tradewire/tradewire/auth"
	"github.com/tradewire/tradewire/auth/memstore"
)

// Dev mode: a memory store, a session created in Go, and the cookie a
// browser would send.
func Example() {
	store := memstore.New(time.Hour)
	sid := store.Create("64b7f0c2a1b2c3d4e5f60718", "admin", "premium")

	a, err := auth.New(auth.Config{Secrets: []string{"dev-secret"}}, store, store)
	if err != nil {
		panic(err)
	}
	id, err := a.Authenticate(context.Background(), auth.Credentials{
		Cookie: auth.SignedCookie("connect.sid", sid, "dev-secret"),
	})
	fmt.Println(id.UserID, id.Role, id.Tier, err)
	if err := auth.RequireTier(id, "premium", "enterprise"); err != nil {
		fmt.Println(err)
	}

	_, err = a.Authenticate(context.Background(), auth.Credentials{SessionID: sid}) // raw id
	fmt.Println(auth.CodeOf(err))
	// Output:
	// 64b7f0c2a1b2c3d4e5f60718 admin premium <nil>
	// UNAUTHORIZED
}
