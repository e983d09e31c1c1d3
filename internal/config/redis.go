package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/tradewire/tradewire/internal/logging"
)

const defaultRedisPort = "6379"

// RedisTarget is TRADEWIRE_REDIS_URL parsed.
type RedisTarget struct {
	// Cluster is set for redis+cluster:// and rediss+cluster:// URLs.
	Cluster bool
	// TLS is set for rediss:// and rediss+cluster://.
	TLS bool
	// Addrs are the nodes as host:port (the seed nodes of a cluster), or the
	// socket path of a unix:// URL.
	Addrs []string
	// ClientURL is the URL in the form go-redis parses: pass it to
	// redis.ParseClusterURL when Cluster is set (the extra seed nodes become
	// addr= parameters), else to redis.ParseURL. It holds the password.
	ClientURL string
}

// LogValue keeps the password out of logs.
func (t RedisTarget) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("cluster", t.Cluster),
		slog.Bool("tls", t.TLS),
		slog.String("addrs", strings.Join(t.Addrs, ",")),
		slog.String("url", logging.RedactURLs(t.ClientURL)),
	)
}

// ParseRedisURL parses the forms accepted by TRADEWIRE_REDIS_URL:
//
//	redis://[user:password@]host[:port][/db][?options]
//	rediss://...                          (TLS)
//	unix://[user:password@]/path/to/socket[?db=N]
//	redis+cluster://[user:password@]host[:port],host[:port]...[?options]
//	rediss+cluster://...                  (cluster over TLS)
//
// The port defaults to 6379. Errors never repeat the password.
func ParseRedisURL(raw string) (RedisTarget, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return RedisTarget{}, errors.New("not a URL (want redis://host:port, rediss://, unix:// or redis+cluster://host:port,host:port)")
	}
	switch strings.ToLower(scheme) {
	case "redis", "rediss":
		return parseRedisSingle(raw, strings.EqualFold(scheme, "rediss"))
	case "unix":
		u, err := parseURL(raw)
		if err != nil {
			return RedisTarget{}, err
		}
		if u.Path == "" {
			return RedisTarget{}, errors.New("no socket path in the unix:// URL")
		}
		return RedisTarget{Addrs: []string{u.Path}, ClientURL: raw}, nil
	case "redis+cluster", "rediss+cluster":
		return parseRedisCluster(strings.EqualFold(scheme, "rediss+cluster"), rest)
	}
	return RedisTarget{}, fmt.Errorf("unsupported scheme %q (want redis, rediss, unix, redis+cluster or rediss+cluster)", scheme)
}

func parseRedisSingle(raw string, tls bool) (RedisTarget, error) {
	u, err := parseURL(raw)
	if err != nil {
		return RedisTarget{}, err
	}
	if u.Hostname() == "" {
		return RedisTarget{}, errors.New("no host in the URL")
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return RedisTarget{}, fmt.Errorf("database %q is not a number", db)
		}
	}
	port := u.Port()
	if port == "" {
		port = defaultRedisPort
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return RedisTarget{}, fmt.Errorf("invalid port %q", port)
	}
	return RedisTarget{TLS: tls, Addrs: []string{net.JoinHostPort(u.Hostname(), port)}, ClientURL: raw}, nil
}

func parseRedisCluster(tls bool, rest string) (RedisTarget, error) {
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	userinfo := ""
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		userinfo, authority = authority[:i+1], authority[i+1:]
	}
	path, query, _ := strings.Cut(tail, "?")
	if strings.Contains(query, "#") || strings.Contains(path, "#") {
		return RedisTarget{}, errors.New("fragments are not allowed")
	}
	if db := strings.Trim(path, "/"); db != "" && db != "0" {
		return RedisTarget{}, errors.New("a cluster has only database 0")
	}
	var addrs []string
	for _, h := range strings.Split(authority, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if strings.HasSuffix(h, "]") || !strings.Contains(h, ":") {
			h += ":" + defaultRedisPort
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" {
			return RedisTarget{}, fmt.Errorf("node %q is not host:port", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return RedisTarget{}, fmt.Errorf("node %q has an invalid port", h)
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	if len(addrs) == 0 {
		return RedisTarget{}, errors.New("no cluster nodes in the URL")
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return RedisTarget{}, errors.New("invalid query string")
	}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	scheme := "redis"
	if tls {
		scheme = "rediss"
	}
	client := scheme + "://" + userinfo + addrs[0]
	if len(q) > 0 {
		client += "?" + q.Encode()
	}
	if _, err := parseURL(client); err != nil {
		return RedisTarget{}, err
	}
	return RedisTarget{Cluster: true, TLS: tls, Addrs: addrs, ClientURL: client}, nil
}

// parseURL is url.Parse with errors that do not repeat the URL.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, fmt.Errorf("malformed URL: %v", ue.Err)
		}
		return nil, errors.New("malformed URL")
	}
	return u, nil
}
