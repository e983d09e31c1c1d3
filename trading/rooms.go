// Package trading is the gateway's domain: the rooms a trader's sockets
// join, the client events that subscribe to them, and the typed server
// events backends publish. It uses the socketio API and never touches frames.
package trading

import (
	"fmt"
	"regexp"
	"strings"
)

// Room prefixes.
const (
	UserRoomPrefix      = "user:"
	PortfolioRoomPrefix = "portfolio:"
	TradesRoomPrefix    = "trades:"
	WatchlistRoomPrefix = "watchlist:"
	// AdminRoom receives live gateway statistics (admins only).
	AdminRoom = "admin:stats"
)

// UserRoom is every socket of a user.
func UserRoom(userID string) string { return UserRoomPrefix + userID }

// PortfolioRoom receives portfolio updates and position events of a user.
func PortfolioRoom(userID string) string { return PortfolioRoomPrefix + userID }

// TradesRoom receives trade executions and failures of a user.
func TradesRoom(userID string) string { return TradesRoomPrefix + userID }

// WatchlistRoom receives quotes for one symbol.
func WatchlistRoom(symbol string) string { return WatchlistRoomPrefix + symbol }

// MaxSymbolsPerRequest bounds one subscribe:watchlist request.
const MaxSymbolsPerRequest = 50

var symbolRE = regexp.MustCompile(`^[A-Z0-9][A-Z0-9.\-]{0,14}$`)

// NormalizeSymbol upper-cases and validates a ticker symbol
// (1–15 characters: letters, digits, '.', '-').
func NormalizeSymbol(s string) (string, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if !symbolRE.MatchString(u) {
		return "", fmt.Errorf("invalid symbol %.20q", s)
	}
	return u, nil
}

// Recoverable reports whether events to a room are kept for connection
// state recovery: a user's own rooms are; quotes are not (a newer quote
// replaces an older one), nor is the admin stats room.
func Recoverable(room string) bool {
	for _, p := range userRoomPrefixes {
		if strings.HasPrefix(room, p) {
			return true
		}
	}
	return false
}

// userRoomPrefixes start the rooms that belong to one user.
var userRoomPrefixes = [...]string{UserRoomPrefix, PortfolioRoomPrefix, TradesRoomPrefix}
