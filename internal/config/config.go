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

// minClusterSecretLen is the shortest cluster secret accepted.
const minClusterSecretLen = 32

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
// without the program name), then getenv, then the defaults. With getenv an
// empty value counts as unset; the gateway itself uses LoadEnv with
// os.LookupEnv, where a set-but-empty variable is an error. With -h or
// -help it writes the list of settings to standard output and returns
// flag.ErrHelp. Any other error is one line naming the setting at fault.
func Load(args []string, getenv func(string) string) (*Config, error) {
	return LoadWithUsage(args, getenv, os.Stdout)
}

// LoadWithUsage is Load writing the -h output to usage.
func LoadWithUsage(args []string, getenv func(string) string, usage io.Writer) (*Config, error) {
	return LoadEnv(args, func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	}, usage)
}

// LoadEnv is Load reading the environment through lookup (os.LookupEnv in
// production): a variable that is set but empty is an error, not "unset".
// Secret settings (see fileSettings) may also be given as
// TRADEWIRE_<NAME>_FILE, the path of a file holding the value; one trailing
// newline is trimmed, and giving both forms is an error.
func LoadEnv(args []string, lookup func(string) (string, bool), usage io.Writer) (*Config, error) {
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
		fileVal, fileSet, err := readSecretFile(s, lookup)
		if err != nil {
			return nil, err
		}
		if flags[i].set {
			raw, source = flags[i].value, "-"+s.flag()
		} else if v, ok := lookup(s.env()); ok {
			if fileSet {
				return nil, fmt.Errorf("both %s and %s_FILE are set: give one", s.env(), s.env())
			}
			if v == "" {
				return nil, fmt.Errorf("%s is set but empty: unset it or give a value", s.env())
			}
			raw, source = v, s.env()
		} else if fileSet {
			raw, source = fileVal, s.env()+"_FILE"
		}
		raw = strings.TrimSpace(raw)
		explicit[s.name] = source != ""
		if source == "" {
			source = "default of " + s.env()
		}
		ptr := s.field(c)
		err = parseInto(ptr, raw)
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

// fileSettings may be read from TRADEWIRE_<NAME>_FILE.
var fileSettings = map[string]bool{
	"SESSION_SECRETS": true, "API_KEYS": true, "REDIS_URL": true, "MONGO_URL": true,
	"CLUSTER_SECRET": true, "SESSION_REDIS_URL": true,
}

// deploymentSettings are the settings that only a deployment gives: any of
// them set means dev mode is not switched on by itself.
var deploymentSettings = []string{
	"REDIS_URL", "MONGO_URL", "SESSION_STORE", "SESSION_SECRETS", "SESSION_REDIS_URL", "API_KEYS",
	"TRUSTED_PROXIES", "INGEST_STREAM", "ADVERTISE_URL", "CLUSTER_SECRET",
}

// readSecretFile reads TRADEWIRE_<NAME>_FILE for a file setting.
func readSecretFile(s setting, lookup func(string) (string, bool)) (string, bool, error) {
	if !fileSettings[s.name] {
		return "", false, nil
	}
	name := s.env() + "_FILE"
	path, ok := lookup(name)
	if !ok {
		return "", false, nil
	}
	if strings.TrimSpace(path) == "" {
		return "", false, fmt.Errorf("%s is set but empty: unset it or give a file path", name)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", name, err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if strings.TrimSpace(v) == "" {
		return "", false, fmt.Errorf("%s: file %s is empty", name, path)
	}
	return v, true, nil
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
	for _, name := range deploymentSettings {
		if name == "SESSION_STORE" && c.SessionStore == StoreMemory {
			continue // asking for memory sessions is asking for dev mode
		}
		if explicit[name] {
			c.deployment = append(c.deployment, EnvPrefix+name)
		}
	}
	if explicit["DEV_MODE"] {
		c.devMode = c.DevModeSetting
	} else {
		c.devMode = len(c.deployment) == 0
	}
	if c.SessionStore == "" {
		switch {
		case c.MongoURL != "":
			c.SessionStore = StoreMongo
		case c.devMode:
			c.SessionStore = StoreMemory
		}
	}
	if !explicit["DEMO_FEED"] {
		c.DemoFeed = c.DevMode()
	}
	if !explicit["DASHBOARD"] {
		c.Dashboard = c.DevMode()
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
	if !c.devMode {
		switch {
		case c.SessionStore == "" && len(c.deployment) == 0:
			return fmt.Errorf("%sDEV_MODE=false requires a session store: set %sSESSION_STORE (redis or mongo) or %sMONGO_URL", p, p, p)
		case c.SessionStore == "":
			return fmt.Errorf("no session store: %s set without %sSESSION_STORE or %sMONGO_URL (set %sDEV_MODE=true for dev mode)", strings.Join(c.deployment, ", "), p, p, p)
		case c.SessionStore == StoreMemory:
			return fmt.Errorf("%sSESSION_STORE=memory is for dev mode only: use redis or mongo, or set %sDEV_MODE=true", p, p)
		}
		if c.RedisURL != "" && len(c.ClusterSecret) < minClusterSecretLen {
			return fmt.Errorf("%sCLUSTER_SECRET (%d+ characters, the same on every node) is required with %sREDIS_URL: it authenticates the node routes in the shared Redis", p, minClusterSecretLen, p)
		}
		for _, o := range c.CORSOrigins {
			if o == "*" {
				return fmt.Errorf("%sCORS_ORIGINS=* is refused outside dev mode: sessions are cookies, so any site could open a socket as its visitor; list the allowed origins", p)
			}
		}
	} else if c.SessionStore == StoreMongo {
		return fmt.Errorf("%sDEV_MODE=true works with the memory or redis session store, not mongo", p)
	}
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
			k = strings.TrimSuffix(strings.TrimSuffix(k, ":publish"), ":read") // scope suffix
			if len(k) < minAPIKeyLen {
				return fmt.Errorf("invalid %sAPI_KEYS: key %d is shorter than %d characters (allowed only in dev mode)", p, i+1, minAPIKeyLen)
			}
		}
	}
	if c.DebugAddr != "" && !c.DebugAddrPublic && !IsLoopback(c.DebugAddr) {
		return fmt.Errorf("%sDEBUG_ADDR %q is not a loopback address: pprof must not be reachable from the network (use 127.0.0.1:PORT, or set %sDEBUG_ADDR_PUBLIC=true to expose it on purpose)", p, c.DebugAddr, p)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return fmt.Errorf("%sTLS_CERT_FILE and %sTLS_KEY_FILE go together: give both or neither", p, p)
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

// DevMode reports whether the gateway runs in dev mode: asked for with
// TRADEWIRE_DEV_MODE=true, or nothing deployment-like configured. Dev mode
// enables /dev/login, a generated API key and, by default, the demo feed,
// allows the memory session store, and lifts the session-secret,
// API-key-length, cluster-secret and CORS * checks.
func (c *Config) DevMode() bool { return c.devMode }

// DevModeExplicit reports whether dev mode was asked for explicitly.
func (c *Config) DevModeExplicit() bool { return c.devMode && c.DevModeSetting }

// DeploymentSettings lists the deployment-like settings given (environment names).
func (c *Config) DeploymentSettings() []string { return c.deployment }

// LogValue renders every setting for the startup log, keyed by the lower-case
// environment name without the prefix; secrets are redacted and URLs lose
// their passwords. dev_mode is the resolved dev mode, not the setting.
func (c *Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(settings)+1)
	for _, s := range settings {
		if s.name == "DEV_MODE" {
			continue // the resolved dev_mode follows
		}
		key := strings.ToLower(s.name)
		ptr := s.field(c)
		switch s.secret {
		case secretValue:
			v := ""
			switch p := ptr.(type) {
			case *[]string:
				if len(*p) > 0 {
					v = fmt.Sprintf("%s x%d", logging.Redacted, len(*p))
				}
			case *string:
				if *p != "" {
					v = logging.Redacted
				}
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
	b.WriteString("-flag=false. A secret setting (SESSION_SECRETS, API_KEYS, REDIS_URL, MONGO_URL,\n")
	b.WriteString("SESSION_REDIS_URL, CLUSTER_SECRET) may instead be read from the file named by\n")
	b.WriteString("TRADEWIRE_<NAME>_FILE. A variable that is set but empty is an error.\n\n")
	b.WriteString("Dev mode (POST /dev/login, memory sessions, demo feed, generated API key, no\n")
	b.WriteString("secrets required) is on only with -dev-mode / TRADEWIRE_DEV_MODE=true, or when\n")
	b.WriteString("no deployment setting (REDIS_URL, MONGO_URL, SESSION_STORE, SESSION_SECRETS,\n")
	b.WriteString("SESSION_REDIS_URL, API_KEYS, TRUSTED_PROXIES, INGEST_STREAM, ADVERTISE_URL,\n")
	b.WriteString("CLUSTER_SECRET) is given. Any of them without a session store exits with code 2.\n\n")
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

// IsLoopback reports whether the listen address addr (host:port) accepts
// connections from this machine only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
