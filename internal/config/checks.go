package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tradewire/tradewire/internal/logging"
)

// Checks of single values. Each receives a pointer to the parsed field and
// may normalise it.

// maxSendQueue is the largest SEND_QUEUE_LIMIT: the websocket layer counts
// a connection's queued bytes in 32 bits.
const maxSendQueue = GiB

// sendQueue accepts 1 byte to maxSendQueue.
func sendQueue(ptr any) error {
	if err := positive(ptr); err != nil {
		return err
	}
	if *ptr.(*ByteSize) > maxSendQueue {
		return fmt.Errorf("must be at most %s", maxSendQueue)
	}
	return nil
}

func positive(ptr any) error {
	var bad bool
	switch p := ptr.(type) {
	case *int:
		bad = *p <= 0
	case *time.Duration:
		bad = *p <= 0
	case *ByteSize:
		bad = *p <= 0
	}
	if bad {
		return errors.New("must be greater than 0")
	}
	return nil
}

func nonNegative(ptr any) error {
	var bad bool
	switch p := ptr.(type) {
	case *int:
		bad = *p < 0
	case *time.Duration:
		bad = *p < 0
	}
	if bad {
		return errors.New("must not be negative")
	}
	return nil
}

func nonEmpty(ptr any) error {
	if *ptr.(*string) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// oneOf accepts the given words, case-insensitively, and stores them lower case.
func oneOf(words ...string) func(any) error {
	return func(ptr any) error {
		p := ptr.(*string)
		v := strings.ToLower(*p)
		for _, w := range words {
			if v == w {
				*p = v
				return nil
			}
		}
		var shown []string
		for _, w := range words {
			if w != "" {
				shown = append(shown, w)
			}
		}
		return fmt.Errorf("want one of %s", strings.Join(shown, ", "))
	}
}

func checkLevel(ptr any) error {
	p := ptr.(*string)
	if _, err := logging.ParseLevel(*p); err != nil {
		return errors.New("want debug, info, warn or error")
	}
	*p = strings.ToLower(*p)
	return nil
}

func checkAddr(ptr any) error {
	_, port, err := net.SplitHostPort(*ptr.(*string))
	if err != nil {
		return errors.New("want host:port, e.g. :8080 or 127.0.0.1:8080")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("port must be a number from 0 to 65535")
	}
	return nil
}

func checkPath(ptr any) error {
	p := ptr.(*string)
	if !strings.HasPrefix(*p, "/") || strings.ContainsAny(*p, "?# ") {
		return errors.New("want an absolute path such as /socket.io/")
	}
	*p = strings.TrimRight(*p, "/") + "/"
	return nil
}

func nodeIDChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
}

func checkNodeID(ptr any) error {
	id := *ptr.(*string)
	if len(id) > 64 {
		return errors.New("longer than 64 characters")
	}
	for i := 0; i < len(id); i++ {
		if !nodeIDChar(id[i]) {
			return fmt.Errorf("character %q not allowed (letters, digits, . _ : -)", id[i])
		}
	}
	return nil
}

func checkCookieName(ptr any) error {
	name := *ptr.(*string)
	if name == "" {
		return errors.New("must not be empty")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return fmt.Errorf("character %q not allowed in a cookie name", c)
		}
	}
	return nil
}

// checkOrigins accepts "*" alone, or origins scheme://host[:port], which it
// stores lower case without a trailing slash, as browsers send them.
func checkOrigins(ptr any) error {
	p := ptr.(*[]string)
	for i, o := range *p {
		if o == "*" {
			if len(*p) > 1 {
				return errors.New("* allows every origin and cannot be combined with others")
			}
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("%q is not an origin (want scheme://host[:port], e.g. https://app.example.com)", o)
		}
		(*p)[i] = strings.ToLower(u.Scheme + "://" + u.Host)
	}
	return nil
}

func checkRedisURL(ptr any) error {
	if raw := *ptr.(*string); raw != "" {
		_, err := ParseRedisURL(raw)
		return err
	}
	return nil
}

func checkMongoURL(ptr any) error {
	raw := *ptr.(*string)
	if raw == "" {
		return nil
	}
	var rest string
	switch {
	case strings.HasPrefix(raw, "mongodb://"):
		rest = strings.TrimPrefix(raw, "mongodb://")
	case strings.HasPrefix(raw, "mongodb+srv://"):
		rest = strings.TrimPrefix(raw, "mongodb+srv://")
	default:
		return errors.New("want a mongodb:// or mongodb+srv:// URL")
	}
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	if rest == "" {
		return errors.New("no host in the URL")
	}
	return nil
}

// maxRatePerMinute is the highest rate the limiter accepts.
const maxRatePerMinute = 60_000_000

// rate is a positive number of requests per minute the limiter can hold.
func rate(ptr any) error {
	if err := positive(ptr); err != nil {
		return err
	}
	if v := *ptr.(*int); v > maxRatePerMinute {
		return fmt.Errorf("must be at most %d", maxRatePerMinute)
	}
	return nil
}

func checkClusterSecret(ptr any) error {
	if v := *ptr.(*string); v != "" && len(v) < minClusterSecretLen {
		return fmt.Errorf("shorter than %d characters", minClusterSecretLen)
	}
	return nil
}

func checkKeyPrefix(ptr any) error {
	v := *ptr.(*string)
	switch {
	case v == "":
		return errors.New("must not be empty")
	case strings.ContainsAny(v, "{} \t\r\n"):
		return errors.New("must not contain braces or spaces")
	}
	return nil
}

func optionalAddr(ptr any) error {
	if *ptr.(*string) == "" {
		return nil
	}
	return checkAddr(ptr)
}
