package trading

import "strings"

// Client → server event names, and the names of their replies.
const (
	EventSubscribePortfolio   = "subscribe:portfolio"
	EventSubscribeTrades      = "subscribe:trades"
	EventSubscribeWatchlist   = "subscribe:watchlist"
	EventSubscribeAdmin       = "subscribe:admin"
	EventUnsubscribePortfolio = "unsubscribe:portfolio"
	EventUnsubscribeTrades    = "unsubscribe:trades"
	EventUnsubscribeWatchlist = "unsubscribe:watchlist"
	EventPing                 = "ping"

	EventSubscribedPortfolio   = "subscribed:portfolio"
	EventSubscribedTrades      = "subscribed:trades"
	EventSubscribedWatchlist   = "subscribed:watchlist"
	EventSubscribedAdmin       = "subscribed:admin"
	EventUnsubscribedPortfolio = "unsubscribed:portfolio"
	EventUnsubscribedTrades    = "unsubscribed:trades"
	EventUnsubscribedWatchlist = "unsubscribed:watchlist"
	EventPong                  = "pong"
)

// EventNames lists every event name of the trading API, both directions:
// the bounded label set of per-event metrics.
func EventNames() []string {
	return []string{
		EventSubscribePortfolio, EventSubscribeTrades, EventSubscribeWatchlist, EventUnsubscribeWatchlist,
		EventUnsubscribePortfolio, EventUnsubscribeTrades, EventSubscribeAdmin, EventPing,
		EventPortfolioUpdated, EventTradeExecuted, EventTradeFailed,
		EventPositionClosed, EventNotification, EventQuoteUpdate,
		EventMarketStatus, EventStatsUpdate, EventServerShutdown, EventError,
		EventSubscribedPortfolio, EventSubscribedTrades, EventSubscribedWatchlist, EventUnsubscribedWatchlist,
		EventUnsubscribedPortfolio, EventUnsubscribedTrades, EventSubscribedAdmin, EventPong,
	}
}

// The delivery policy of a broadcast, decided by the rooms it goes to. The
// gateway hands these to the adapter and the recovery store; they are the
// domain's answer, the transport only applies it.

// RecoverableRooms reports whether a broadcast to rooms is kept for
// connection state recovery: events to a user's rooms are; quotes, market
// status, stats and replies to one socket are not (confirmations and errors
// answer requests of a connection that no longer exists).
func RecoverableRooms(rooms []string) bool {
	for _, r := range rooms {
		if Recoverable(r) {
			return true
		}
	}
	return false
}

// ConflationKey keys a quote by its symbol's room: a client that lags keeps
// only the latest quote of each symbol instead of every tick. "" for
// anything else (never conflated).
func ConflationKey(rooms []string) string {
	if len(rooms) == 1 && strings.HasPrefix(rooms[0], WatchlistRoomPrefix) {
		return rooms[0]
	}
	return ""
}

// AllOrNone reports whether a broadcast to rooms must reach all nodes or
// none, so that a refused publish can be retried without a duplicate:
// everything but quotes (a lost quote is replaced by the next one).
func AllOrNone(rooms []string) bool { return ConflationKey(rooms) == "" }

// UserPartition names the user whose recovery stream holds a broadcast to
// rooms, so one user's events stay in order cluster-wide. "" when the rooms
// belong to no user or to several (no single stream can hold it).
func UserPartition(rooms []string) string {
	user := ""
	for _, r := range rooms {
		id := roomUser(r)
		if id == "" {
			continue
		}
		if user != "" && id != user {
			return ""
		}
		user = id
	}
	return user
}

// roomUser is the user a user, portfolio or trades room belongs to ("" for other rooms).
func roomUser(room string) string {
	for _, p := range userRoomPrefixes {
		if id, ok := strings.CutPrefix(room, p); ok {
			return id
		}
	}
	return ""
}
