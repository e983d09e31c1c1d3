// Package config loads the gateway's settings from command-line flags,
// TRADEWIRE_* environment variables and defaults, in that order of
// precedence, and validates them.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tradewire/tradewire/internal/logging"
)

// EnvPrefix starts the name of every environment variable read by Load.
const EnvPrefix = "TRADEWIRE_"

// minAPIKeyLen is the shortest API key accepted outside dev mode.
const minAPIKeyLen = 16

type secretKind uint8

const (
	secretNone  secretKind = iota
	secretValue            // never shown
	secretURL              // shown with its password redacted
)

type setting struct {
	name   string              // environment variable without EnvPrefix
	def    string              // default, parsed like any input
	show   string              // default as shown by -h when def is not the whole story
	help   string              // one-line description
	field  func(*Config) any   // pointer to the Config field
	check  func(ptr any) error // optional check (and normalisation) of the parsed value
	secret secretKind          // how the value is redacted in logs and errors
}

func (s setting) env() string  { return EnvPrefix + s.name }
func (s setting) flag() string { return strings.ToLower(strings.ReplaceAll(s.name, "_", "-")) }

// Setting describes one setting for help output and documentation.
type Setting struct {
	Env         string // environment variable, e.g. TRADEWIRE_PING_INTERVAL
	Flag        string // flag name without the dash, e.g. ping-interval
	Default     string // default as text
	Description string
	// Redaction is how the value appears in logs: "" (as is), "value"
	// (never shown) or "password" (a URL whose password is hidden).
	Redaction string
}

// Settings lists every setting in the order of -h.
func Settings() []Setting {
	out := make([]Setting, len(settings))
	for i, s := range settings {
		def := s.def
		if s.show != "" {
			def = s.show
		}
		out[i] = Setting{Env: s.env(), Flag: s.flag(), Default: def, Description: s.help, Redaction: [...]string{"", "value", "password"}[s.secret]}
	}
	return out
}

// Load returns the configuration given by args (command-line arguments
// without the program name), then getenv (os.Getenv in production), then
// the defaults. An empty environment variable counts as unset. With -h or
// -help it writes the list of settings to standard output and returns
// flag.ErrHelp. Any other error is one line naming the setting at fault.
func Load(args []string, getenv func(string) string) (*Config, error) {
	return LoadWithUsage(args, getenv, os.Stdout)
}

// LoadWithUsage is Load writing the -h output to usage.
func LoadWithUsage(args []string, getenv func(string) string, usage io.Writer) (*Config, error) {
	fs := flag.NewFlagSet("tradewire", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	flags := make([]*rawFlag, len(settings))
	c := &Config{}
	for i, s := range settings {
		_, isBool := s.field(c).(*bool)
		flags[i] = &rawFlag{isBool: isBool}
		fs.Var(flags[i], s.flag(), s.help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if werr := WriteUsage(usage); werr != nil {
				return nil, werr
			}
			return nil, flag.ErrHelp
		}
		return nil, fmt.Errorf("%v (run with -h to list the settings)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (every setting is a -flag=value; run with -h to list them)", fs.Arg(0))
	}

	explicit := make(map[string]bool, len(settings))
	for i, s := range settings {
		raw, source := s.def, ""
		if flags[i].set {
			raw, source = flags[i].value, "-"+s.flag()
		} else if v := getenv(s.env()); v != "" {
			raw, source = v, s.env()
		}
		raw = strings.TrimSpace(raw)
		explicit[s.name] = source != ""
		if source == "" {
			source = "default of " + s.env()
		}
		ptr := s.field(c)
		err := parseInto(ptr, raw)
		if err == nil && s.check != nil {
			err = s.check(ptr)
		}
		if err != nil {
			if s.secret == secretValue {
				return nil, fmt.Errorf("invalid %s: %v", source, err)
			}
			shown := raw
			if s.secret == secretURL {
				shown = logging.RedactURLs(raw)
			}
			return nil, fmt.Errorf("invalid %s %q: %v", source, shown, err)
		}
	}
	if err := c.derive(explicit); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// rawFlag records a flag's text; parsing happens after all sources are known.
type rawFlag struct {
	value  string
	set    bool
	isBool bool
}

func (f *rawFlag) String() string   { return f.value }
func (f *rawFlag) IsBoolFlag() bool { return f.isBool }
func (f *rawFlag) Set(v string) error {
	f.value, f.set = v, true
	return nil
}

// parseInto parses raw into the field ptr points to.
func parseInto(ptr any, raw string) error {
	switch p := ptr.(type) {
	case *string:
		*p = raw
	case *bool:
		v, err := strconv.ParseBool(raw)
		if err != nil {
			return errors.New("not a boolean (want true or false)")
		}
		*p = v
	case *int:
		v, err := strconv.Atoi(raw)
		if err != nil {
			return errors.New("not an integer")
		}
		*p = v
	case *time.Duration:
		v, err := time.ParseDuration(raw)
		if err != nil {
			return errors.New("not a duration (want a number with a unit: 50ms, 25s, 2m, 1h)")
		}
		*p = v
	case *ByteSize:
		v, err := ParseByteSize(raw)
		if err != nil {
			return err
		}
		*p = v
	case *[]string:
		*p = splitList(raw)
	case *[]netip.Prefix:
		v, err := parsePrefixes(raw)
		if err != nil {
			return err
		}
		*p = v
	default:
		panic(fmt.Sprintf("config: no parser for %T", ptr))
	}
	return nil
}

func splitList(raw string) []string {
	var out []string
	for _, part := range strings.Split(raw, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func parsePrefixes(raw string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range splitList(raw) {
		if !strings.Contains(part, "/") {
			addr, err := netip.ParseAddr(part)
			if err != nil {
				return nil, fmt.Errorf("%q is neither a CIDR nor an IP address", part)
			}
			out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR (want e.g. 10.0.0.0/8 or fd00::/8)", part)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("%q has host bits set; did you mean %s?", part, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

// derive fills the settings whose defaults depend on other settings.
func (c *Config) derive(explicit map[string]bool) error {
	if c.NodeID == "" {
		c.NodeID = stableNodeID(c.AdvertiseURL, c.Addr)
	}
	if c.SessionStore == "" {
		c.SessionStore = StoreMemory
		if c.MongoURL != "" {
			c.SessionStore = StoreMongo
		}
	}
	if !explicit["DEMO_FEED"] {
		c.DemoFeed = c.DevMode()
	}
	if c.RedisURL != "" {
		t, err := ParseRedisURL(c.RedisURL)
		if err != nil { // checkRedisURL accepted it already
			return fmt.Errorf("invalid %sREDIS_URL: %w", EnvPrefix, err)
		}
		c.Redis = t
	}
	return nil
}

// stableNodeID is the default node id: the advertise URL's host:port, or
// the hostname and the listen port, so a restarted node keeps its id (and
// its ingest consumer, its subscription leases). With no fixed port (":0")
// it falls back to a random id.
func stableNodeID(advertise, addr string) string {
	var id string
	if u, err := url.Parse(advertise); err == nil && advertise != "" && u.Host != "" {
		id = u.Host
	} else if _, port, err := net.SplitHostPort(addr); err == nil && port != "" && port != "0" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "tradewire"
		}
		id = host + ":" + port
	}
	if id == "" {
		return defaultNodeID()
	}
	b := []byte(id)
	for i, ch := range b {
		if !nodeIDChar(ch) {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[len(b)-64:] // keep the port
	}
	return string(b)
}

// defaultNodeID is a random id: hostname-<6 hex digits>.
func defaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "tradewire"
	}
	b := []byte(host)
	for i, ch := range b {
		if !nodeIDChar(ch) {
			b[i] = '-'
		}
	}
	if len(b) > 48 {
		b = b[:48]
	}
	var suffix [3]byte
	_, _ = rand.Read(suffix[:]) // crypto/rand.Read never fails on supported platforms
	return string(b) + "-" + hex.EncodeToString(suffix[:])
}

// validate checks constraints between settings.
func (c *Config) validate() error {
	p := EnvPrefix
	switch c.SessionStore {
	case StoreMongo:
		if c.MongoURL == "" {
			return fmt.Errorf("%sSESSION_STORE=mongo requires %sMONGO_URL", p, p)
		}
	case StoreRedis:
		if c.RedisURL == "" && c.SessionRedisURL == "" {
			return fmt.Errorf("%sSESSION_STORE=redis requires %sREDIS_URL or %sSESSION_REDIS_URL", p, p, p)
		}
	case StoreMemory:
		if c.MongoURL != "" {
			return fmt.Errorf("%sSESSION_STORE=memory cannot be combined with %sMONGO_URL: memory sessions exist only in dev mode (unset %sMONGO_URL, or use the mongo store)", p, p, p)
		}
	}
	if !c.DevMode() && len(c.SessionSecrets) == 0 {
		return fmt.Errorf("%sSESSION_SECRETS is required with %sSESSION_STORE=%s (the express-session secrets that sign the %s cookie)", p, p, c.SessionStore, c.SessionCookie)
	}
	if !c.DevMode() {
		for i, k := range c.APIKeys {
			if len(k) < minAPIKeyLen {
				return fmt.Errorf("invalid %sAPI_KEYS: key %d is shorter than %d characters (allowed only in dev mode)", p, i+1, minAPIKeyLen)
			}
		}
	}
	if c.RedisSharded && c.RedisURL == "" {
		return fmt.Errorf("%sREDIS_SHARDED=true requires %sREDIS_URL", p, p)
	}
	if c.IngestStream != "" && c.RedisURL == "" {
		return fmt.Errorf("%sINGEST_STREAM requires %sREDIS_URL", p, p)
	}
	if c.DrainWindow >= c.ShutdownTimeout {
		return fmt.Errorf("%sDRAIN_WINDOW (%s) must be shorter than %sSHUTDOWN_TIMEOUT (%s)", p, c.DrainWindow, p, c.ShutdownTimeout)
	}
	return nil
}

// DevMode reports whether no session store is configured: memory sessions,
// no MongoDB. Dev mode enables /dev/login and, by default, the demo feed,
// and lifts the session-secret and API-key-length requirements.
func (c *Config) DevMode() bool {
	return (c.SessionStore == "" || c.SessionStore == StoreMemory) && c.MongoURL == ""
}

// LogValue renders every setting for the startup log, keyed by the lower-case
// environment name without the prefix; secrets are redacted and URLs lose
// their passwords. It also reports dev_mode.
func (c *Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(settings)+1)
	for _, s := range settings {
		key := strings.ToLower(s.name)
		ptr := s.field(c)
		switch s.secret {
		case secretValue:
			n := 0
			if l, ok := ptr.(*[]string); ok {
				n = len(*l)
			}
			v := ""
			if n > 0 {
				v = fmt.Sprintf("%s x%d", logging.Redacted, n)
			}
			attrs = append(attrs, slog.String(key, v))
			continue
		case secretURL:
			attrs = append(attrs, slog.String(key, logging.RedactURLs(*ptr.(*string))))
			continue
		}
		attrs = append(attrs, valueAttr(key, ptr))
	}
	attrs = append(attrs, slog.Bool("dev_mode", c.DevMode()))
	return slog.GroupValue(attrs...)
}

func valueAttr(key string, ptr any) slog.Attr {
	switch p := ptr.(type) {
	case *string:
		return slog.String(key, *p)
	case *bool:
		return slog.Bool(key, *p)
	case *int:
		return slog.Int(key, *p)
	case *time.Duration:
		return slog.String(key, p.String())
	case *ByteSize:
		return slog.Int64(key, int64(*p))
	case *[]string:
		return slog.String(key, strings.Join(*p, ","))
	case *[]netip.Prefix:
		parts := make([]string, len(*p))
		for i, pr := range *p {
			parts[i] = pr.String()
		}
		return slog.String(key, strings.Join(parts, ","))
	}
	panic(fmt.Sprintf("config: no log rendering for %T", ptr))
}

// WriteUsage writes the -h text: every setting with its flag, environment
// variable, default and description.
func WriteUsage(w io.Writer) error {
	var b strings.Builder
	b.WriteString("Usage: tradewire [-flag=value ...]\n\n")
	b.WriteString("Every setting is a flag or an environment variable; a flag overrides the\n")
	b.WriteString("environment, which overrides the default. Boolean flags take -flag or\n")
	b.WriteString("-flag=false. Dev mode (no MONGO_URL, memory sessions) enables /dev/login and\n")
	b.WriteString("the demo feed and does not require session secrets.\n\n")
	c := &Config{}
	for i, s := range Settings() {
		fmt.Fprintf(&b, "  -%s %s\n", s.Flag, typeName(settings[i].field(c)))
		fmt.Fprintf(&b, "    \t%s\n", s.Description)
		def := s.Default
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(&b, "    \tenv %s, default %s\n", s.Env, def)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdown writes the settings as a Markdown table for the operations docs.
func WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| Environment | Flag | Default | Description |\n|---|---|---|---|\n")
	for _, s := range Settings() {
		def := "`" + s.Default + "`"
		if s.Default == "" {
			def = "(empty)"
		} else if strings.Contains(s.Default, " ") {
			def = s.Default
		}
		desc := strings.ReplaceAll(s.Description, "|", `\|`)
		switch s.Redaction {
		case "value":
			desc += " (secret: never logged)"
		case "password":
			desc += " (logged without its password)"
		}
		fmt.Fprintf(&b, "| `%s` | `-%s` | %s | %s |\n", s.Env, s.Flag, def, desc)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func typeName(ptr any) string {
	switch ptr.(type) {
	case *bool:
		return "bool"
	case *int:
		return "int"
	case *time.Duration:
		return "duration"
	case *ByteSize:
		return "bytes"
	case *[]string, *[]netip.Prefix:
		return "list"
	}
	return "string"
}
