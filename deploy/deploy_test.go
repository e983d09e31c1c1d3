// Package deploy holds no code: its tests check the deployment files (the
// Dockerfile, compose, Kubernetes, Prometheus and Grafana files) against the
// server itself, since no container runtime runs where the tests do.
package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tradewire/tradewire/internal/config"
	"github.com/tradewire/tradewire/internal/gateway"
	"github.com/tradewire/tradewire/internal/testutil/redistest"
)

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if err == io.EOF {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, d)
	}
}

func yamlDoc(t *testing.T, path string) map[string]any {
	t.Helper()
	docs := yamlDocs(t, path)
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents, want 1", path, len(docs))
	}
	return docs[0]
}

// get walks a decoded YAML/JSON tree: string keys index maps, ints lists.
func get(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %q: not a map in %v", k, path)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("at [%d]: not a long enough list in %v", k, path)
			}
			v = l[k]
		}
	}
	return v
}

func str(t *testing.T, v any, path ...any) string {
	t.Helper()
	s, ok := get(t, v, path...).(string)
	if !ok {
		t.Fatalf("%v: not a string", path)
	}
	return s
}

func num(t *testing.T, v any, path ...any) int {
	t.Helper()
	n, ok := get(t, v, path...).(int)
	if !ok {
		t.Fatalf("%v: not an integer", path)
	}
	return n
}

func TestYAMLAndJSONParse(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(p) {
		case ".yaml", ".yml":
			if len(yamlDocs(t, p)) == 0 {
				t.Errorf("%s: no YAML document", p)
			}
			n++
		case ".json":
			b, _ := os.ReadFile(p)
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Errorf("%s: %v", p, err)
			}
			n++
		}
		return nil
	})
	if err != nil || n < 10 {
		t.Fatalf("walked %d files: %v", n, err)
	}
}

// kubeRef is a Kubernetes $(VAR) reference in an env value.
var kubeRef = regexp.MustCompile(`\$\([A-Za-z_][A-Za-z0-9_]*\)`)

var settingName = regexp.MustCompile(`TRADEWIRE_[A-Z0-9_]*[A-Z0-9]`)

// TestSettingNamesAreReal: every TRADEWIRE_* name in the deployment files is
// a setting of internal/config (read from the code at test time), or
// <setting>_FILE for a secret setting.
func TestSettingNamesAreReal(t *testing.T) {
	known := map[string]config.Setting{}
	for _, s := range config.Settings() {
		known[s.Env] = s
	}
	files := []string{"../Dockerfile", "../scripts/cluster"}
	_ = filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, "_test.go") {
			files = append(files, p)
		}
		return err
	})
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range settingName.FindAllString(string(b), -1) {
			seen[name] = true
			if _, ok := known[name]; ok {
				continue
			}
			if base, ok := strings.CutSuffix(name, "_FILE"); ok {
				if s, ok := known[base]; ok && s.Redaction != "" {
					continue // a secret read from a file: TestKubernetesDeployment loads it
				}
			}
			if name == "TRADEWIRE_FERRETDB_BIN" && f == "../scripts/cluster" {
				continue // the test helper's variable (internal/testutil/mongotest), not a server setting
			}
			t.Errorf("%s names %s, which is not a tradewire setting", f, name)
		}
	}
	if len(seen) < 10 {
		t.Fatalf("only %d names found", len(seen))
	}
}

// container returns the tradewire container of the Deployment.
func deployment(t *testing.T) (dep map[string]any, pod map[string]any, ctr map[string]any) {
	dep = yamlDoc(t, "kubernetes/deployment.yaml")
	pod = get(t, dep, "spec", "template", "spec").(map[string]any)
	ctr = get(t, pod, "containers", 0).(map[string]any)
	return
}

// podEnv builds the container's environment as the kubelet would: field
// references resolved to sample values, $(VAR) expanded, secret files
// written to a temporary directory standing for the mount.
func podEnv(t *testing.T, ctr map[string]any, podIP string) map[string]string {
	t.Helper()
	secret := yamlDoc(t, "kubernetes/secret.example.yaml")
	secretName := str(t, secret, "metadata", "name")
	dir := t.TempDir()
	_, pod, _ := deployment(t)
	mounts := map[string]string{} // mount path -> temp dir
	for _, v := range get(t, ctr, "volumeMounts").([]any) {
		vol := str(t, v, "name")
		for _, pv := range get(t, pod, "volumes").([]any) {
			if str(t, pv, "name") != vol {
				continue
			}
			if got := str(t, pv, "secret", "secretName"); got != secretName {
				t.Fatalf("volume %s mounts secret %q, the example secret is %q", vol, got, secretName)
			}
			for k, val := range get(t, secret, "stringData").(map[string]any) {
				if err := os.WriteFile(filepath.Join(dir, k), []byte(val.(string)+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			mounts[str(t, v, "mountPath")] = dir
		}
	}
	env := map[string]string{}
	for _, e := range get(t, ctr, "env").([]any) {
		name := str(t, e, "name")
		if v, ok := e.(map[string]any)["value"]; ok {
			s := fmt.Sprint(v)
			for mp, d := range mounts {
				if rest, ok := strings.CutPrefix(s, mp+"/"); ok {
					if _, err := os.Stat(filepath.Join(d, rest)); err != nil {
						t.Errorf("%s points at %s, which the secret does not hold", name, s)
					}
					s = filepath.Join(d, rest)
				}
			}
			env[name] = kubeRef.ReplaceAllStringFunc(s, func(ref string) string {
				k := ref[2 : len(ref)-1]
				v, ok := env[k]
				if !ok {
					t.Errorf("%s refers to %s, defined later or not at all", name, ref)
				}
				return v
			})
			continue
		}
		switch field := str(t, e, "valueFrom", "fieldRef", "fieldPath"); field {
		case "status.podIP":
			env[name] = podIP
		case "metadata.name":
			env[name] = "tradewire-7d4b9c-x2x9z"
		default:
			t.Fatalf("%s: unexpected fieldRef %s", name, field)
		}
	}
	return env
}

func load(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Load(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("the deployment's settings do not load: %v", err)
	}
	return cfg
}

func addrPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestKubernetesDeployment loads the Deployment's environment with the
// server's own configuration code and checks probes, ports, grace periods,
// selectors and the objects that reference each other.
func TestKubernetesDeployment(t *testing.T) {
	dep, pod, ctr := deployment(t)
	env := podEnv(t, ctr, "10.1.2.3")
	cfg := load(t, env)
	if cfg.DevMode() {
		t.Fatal("the Deployment starts in dev mode (its secret files were not read?)")
	}
	secret := yamlDoc(t, "kubernetes/secret.example.yaml")
	if cfg.MongoURL != str(t, secret, "stringData", "mongo-url") || cfg.RedisURL != str(t, secret, "stringData", "redis-url") {
		t.Fatalf("secret files not applied: mongo %q redis %q", cfg.MongoURL, cfg.RedisURL)
	}
	if len(cfg.SessionSecrets) != 1 || cfg.SessionSecrets[0] != str(t, secret, "stringData", "session-secrets") {
		t.Fatalf("session secrets %v", cfg.SessionSecrets)
	}
	if cfg.AdvertiseURL != "http://10.1.2.3:"+strconv.Itoa(addrPort(t, cfg.Addr)) {
		t.Fatalf("advertise URL %q is not the pod IP and the listen port", cfg.AdvertiseURL)
	}

	// Ports and probes.
	ports := map[string]int{}
	for _, p := range get(t, ctr, "ports").([]any) {
		ports[str(t, p, "name")] = num(t, p, "containerPort")
	}
	if ports["http"] != addrPort(t, cfg.Addr) {
		t.Fatalf("containerPort http %d, server listens on %s", ports["http"], cfg.Addr)
	}
	probes := map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/healthz"}
	for probe, want := range probes {
		if got := str(t, ctr, probe, "httpGet", "path"); got != want {
			t.Errorf("%s path %q, want %q", probe, got, want)
		}
		if port := str(t, ctr, probe, "httpGet", "port"); ports[port] == 0 {
			t.Errorf("%s port %q is not a container port", probe, port)
		}
	}
	servesProbes(t, probes)

	// Grace: the preStop pause, then the drain and shutdown must fit.
	grace := time.Duration(num(t, pod, "terminationGracePeriodSeconds")) * time.Second
	preStop := time.Duration(num(t, ctr, "lifecycle", "preStop", "sleep", "seconds")) * time.Second
	if preStop < 2*time.Second {
		t.Errorf("preStop pause %s is too short for endpoints to drop the pod", preStop)
	}
	if cfg.DrainWindow >= cfg.ShutdownTimeout || preStop+cfg.ShutdownTimeout >= grace {
		t.Errorf("terminationGracePeriodSeconds %s must exceed preStop %s + shutdown timeout %s (> drain window %s)", grace, preStop, cfg.ShutdownTimeout, cfg.DrainWindow)
	}

	// Selectors, anti-affinity, PDB, Service, Ingress.
	labels := get(t, dep, "spec", "template", "metadata", "labels").(map[string]any)
	matches := func(what string, sel any) {
		for k, v := range sel.(map[string]any) {
			if labels[k] != v {
				t.Errorf("%s selects %s=%v, pods have %v", what, k, v, labels)
			}
		}
	}
	matches("Deployment", get(t, dep, "spec", "selector", "matchLabels"))
	matches("anti-affinity", get(t, pod, "affinity", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution", 0, "podAffinityTerm", "labelSelector", "matchLabels"))
	pdb := yamlDoc(t, "kubernetes/pdb.yaml")
	matches("PodDisruptionBudget", get(t, pdb, "spec", "selector", "matchLabels"))
	if replicas := num(t, dep, "spec", "replicas"); num(t, pdb, "spec", "maxUnavailable") >= replicas {
		t.Error("the PDB allows every replica to go at once")
	}
	svc := yamlDoc(t, "kubernetes/service.yaml")
	matches("Service", get(t, svc, "spec", "selector"))
	svcPort := get(t, svc, "spec", "ports", 0).(map[string]any)
	if tp := fmt.Sprint(svcPort["targetPort"]); ports[tp] == 0 && tp != strconv.Itoa(ports["http"]) {
		t.Errorf("Service targetPort %s is not a container port", tp)
	}
	ing := yamlDoc(t, "kubernetes/ingress.yaml")
	backend := get(t, ing, "spec", "rules", 0, "http", "paths", 0, "backend", "service")
	if str(t, backend, "name") != str(t, svc, "metadata", "name") || str(t, backend, "port", "name") != svcPort["name"] {
		t.Errorf("Ingress backend %v does not name the Service and its port", backend)
	}
	timeout, _ := strconv.Atoi(str(t, ing, "metadata", "annotations", "nginx.ingress.kubernetes.io/proxy-read-timeout"))
	if time.Duration(timeout)*time.Second <= cfg.PingInterval+cfg.PingTimeout {
		t.Errorf("Ingress read timeout %ds cuts idle websockets (heartbeat %s + %s)", timeout, cfg.PingInterval, cfg.PingTimeout)
	}
	kust := yamlDoc(t, "kubernetes/kustomization.yaml")
	for _, r := range get(t, kust, "resources").([]any) {
		if _, err := os.Stat(filepath.Join("kubernetes", r.(string))); err != nil {
			t.Errorf("kustomization resource %v: %v", r, err)
		}
	}
}

// servesProbes starts a real gateway and checks it answers 200 on every
// probe path.
func servesProbes(t *testing.T, probes map[string]string) {
	t.Helper()
	cfg, err := config.Load([]string{"-addr", "127.0.0.1:0"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	url := startGateway(t, cfg)
	for probe, path := range probes {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: GET %s = %d", probe, path, resp.StatusCode)
		}
	}
	resp, err := http.Get(url + "/no-such-probe")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the server answers 200 on any path: the probe check proves nothing")
		}
	}
}

func startGateway(t *testing.T, cfg *config.Config) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			t.Error("gateway did not stop")
		}
	})
	return "http://" + l.Addr().String()
}

// TestCompose loads each gateway service's environment (secrets from their
// files) and checks the load balancer round-robins over exactly those nodes.
func TestCompose(t *testing.T) {
	c := yamlDoc(t, "compose.yaml")
	services := get(t, c, "services").(map[string]any)
	secrets := get(t, c, "secrets").(map[string]any)
	var nodes []string
	for name, s := range services {
		envAny, ok := s.(map[string]any)["environment"].(map[string]any)
		if !ok {
			continue
		}
		env := map[string]string{}
		for k, v := range envAny {
			s := fmt.Sprint(v)
			if rest, ok := strings.CutPrefix(s, "/run/secrets/"); ok {
				f, ok := secrets[rest].(map[string]any)
				if !ok {
					t.Fatalf("%s: %s names undeclared secret %s", name, k, rest)
				}
				s = filepath.Join(".", str(t, f, "file"))
			}
			env[k] = s
		}
		cfg := load(t, env)
		if cfg.DevMode() {
			t.Errorf("%s starts in dev mode", name)
		}
		if cfg.AdvertiseURL != fmt.Sprintf("http://%s:%d", name, addrPort(t, cfg.Addr)) || cfg.NodeID != name {
			t.Errorf("%s: advertise %q node id %q", name, cfg.AdvertiseURL, cfg.NodeID)
		}
		grace, err := time.ParseDuration(str(t, s, "stop_grace_period"))
		if err != nil || grace <= cfg.ShutdownTimeout {
			t.Errorf("%s: stop_grace_period %v must exceed the shutdown timeout %s", name, grace, cfg.ShutdownTimeout)
		}
		nodes = append(nodes, fmt.Sprintf("%s:%d", name, addrPort(t, cfg.Addr)))
	}
	sort.Strings(nodes)
	if len(nodes) != 3 {
		t.Fatalf("gateway services %v, want 3", nodes)
	}
	conf, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	var upstream []string
	sc := bufio.NewScanner(strings.NewReader(string(conf)))
	for sc.Scan() {
		line := strings.TrimSpace(strings.SplitN(sc.Text(), "#", 2)[0])
		f := strings.Fields(strings.TrimSuffix(line, ";"))
		if len(f) >= 2 && f[0] == "server" && f[1] != "{" {
			upstream = append(upstream, f[1])
		}
		if len(f) > 0 && (f[0] == "ip_hash" || f[0] == "hash" || f[0] == "sticky" || f[0] == "least_conn") {
			t.Errorf("nginx.conf: %q is not round robin", line)
		}
	}
	sort.Strings(upstream)
	if strings.Join(upstream, " ") != strings.Join(nodes, " ") {
		t.Errorf("nginx upstream %v, gateway nodes %v", upstream, nodes)
	}
	for _, want := range []string{"proxy_set_header Upgrade $http_upgrade", "proxy_set_header Connection $connection_upgrade", "proxy_http_version 1.1"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("nginx.conf lacks %q (websockets)", want)
		}
	}
	if m := regexp.MustCompile(`proxy_read_timeout (\d+)s`).FindStringSubmatch(string(conf)); m == nil {
		t.Error("nginx.conf: no proxy_read_timeout")
	} else if n, _ := strconv.Atoi(m[1]); time.Duration(n)*time.Second <= 45*time.Second {
		t.Errorf("proxy_read_timeout %ss cuts idle websockets", m[1])
	}
	if lb := services["lb"].(map[string]any); len(get(t, lb, "ports").([]any)) == 0 {
		t.Error("the load balancer publishes no port")
	}
}

// TestDockerfile checks the image's build and runtime instructions.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var froms []string
	instr := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if strings.ToUpper(f[0]) == "FROM" {
			froms = append(froms, f[1])
			instr = map[string]string{} // instructions of the last stage only
		}
		instr[strings.ToUpper(f[0])] = strings.TrimSpace(line[len(f[0]):])
	}
	if len(froms) < 2 {
		t.Fatalf("not multi-stage: %v", froms)
	}
	final := froms[len(froms)-1]
	if !strings.Contains(final, "distroless/static") && final != "scratch" {
		t.Errorf("final base %s is neither distroless static nor scratch", final)
	}
	if !strings.Contains(string(b), "CGO_ENABLED=0") || !strings.Contains(string(b), "./cmd/tradewire") {
		t.Error("the binary is not built statically from ./cmd/tradewire")
	}
	if u := instr["USER"]; u == "" || u == "root" || strings.HasPrefix(u, "0") {
		t.Errorf("USER %q: not non-root", u)
	}
	if instr["STOPSIGNAL"] != "SIGTERM" {
		t.Errorf("STOPSIGNAL %q", instr["STOPSIGNAL"])
	}
	env := map[string]string{}
	for _, m := range regexp.MustCompile(`(TRADEWIRE_[A-Z_]+)=(\S+)`).FindAllStringSubmatch(instr["ENV"], -1) {
		env[m[1]] = m[2]
	}
	cfg := load(t, env)
	port := strconv.Itoa(addrPort(t, cfg.Addr))
	if instr["EXPOSE"] != port {
		t.Errorf("EXPOSE %q, server listens on %s", instr["EXPOSE"], cfg.Addr)
	}
	hc := instr["HEALTHCHECK"]
	if !strings.Contains(hc, `"healthcheck", "http://127.0.0.1:`+port+`/healthz"`) {
		t.Errorf("HEALTHCHECK %q does not probe /healthz on port %s", hc, port)
	}
}

var metricName = regexp.MustCompile(`\b(?:tradewire|process|go)_[a-z0-9_]+\b`)

// TestAlertsAndDashboard runs promtool on the rules and checks that every
// metric the rules and the dashboard name is in a scrape of a running
// gateway with Redis and the ingress stream on.
func TestAlertsAndDashboard(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (scripts/test does)")
	}
	for _, args := range [][]string{{"check", "rules", "prometheus/alerts.yaml"}, {"test", "rules", "prometheus/alerts_test.yaml"}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	used := map[string][]string{}
	rules := yamlDoc(t, "prometheus/alerts.yaml")
	ops, err := os.ReadFile("../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := headingAnchors(string(ops))
	nAlerts := 0
	for _, g := range get(t, rules, "groups").([]any) {
		for _, r := range get(t, g, "rules").([]any) {
			name := str(t, r, "alert")
			nAlerts++
			for _, m := range metricName.FindAllString(str(t, r, "expr"), -1) {
				used[m] = append(used[m], "alert "+name)
			}
			rb := str(t, r, "annotations", "runbook")
			if a, ok := strings.CutPrefix(rb, "docs/OPERATIONS.md#"); !ok || !anchors[a] {
				t.Errorf("alert %s: runbook %q is not a heading of docs/OPERATIONS.md", name, rb)
			}
		}
	}
	var dash map[string]any
	b, _ := os.ReadFile("grafana/tradewire.json")
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	nExpr := 0
	for _, p := range get(t, dash, "panels").([]any) {
		targets, _ := p.(map[string]any)["targets"].([]any)
		for _, tg := range targets {
			nExpr++
			for _, m := range metricName.FindAllString(str(t, tg, "expr"), -1) {
				used[m] = append(used[m], "panel "+str(t, p, "title"))
			}
		}
	}
	if nAlerts < 7 || nExpr < 20 {
		t.Fatalf("%d alerts, %d dashboard queries", nAlerts, nExpr)
	}

	scraped := scrape(t)
	for m, where := range used {
		if !scraped[m] {
			t.Errorf("%s (used by %s) is not in a scrape of the gateway", m, strings.Join(where, ", "))
		}
	}
}

// headingAnchors returns GitHub's anchors of the Markdown headings.
func headingAnchors(md string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		out[b.String()] = true
	}
	return out
}

// scrape starts a gateway with Redis, the Redis adapter and the ingress
// stream, and returns the sample names of its /metrics.
func scrape(t *testing.T) map[string]bool {
	t.Helper()
	rs := redistest.Start(t)
	env := map[string]string{
		// TRADEWIRE_DEV_MODE and TRADEWIRE_CLUSTER_SECRET are ignored by
		// configurations that do not know them.
		"TRADEWIRE_DEV_MODE":       "true",
		"TRADEWIRE_CLUSTER_SECRET": "deploy-test-cluster-secret-0123456789",
		"TRADEWIRE_REDIS_URL":      rs.URL(),
		"TRADEWIRE_INGEST_STREAM":  "deploy-test-events",
		"TRADEWIRE_LOG_LEVEL":      "error",
	}
	cfg, err := config.Load([]string{"-addr", "127.0.0.1:0"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	url := startGateway(t, cfg)
	deadline := time.Now().Add(20 * time.Second)
	for {
		names := map[string]bool{}
		resp, err := http.Get(url + "/metrics")
		if err == nil {
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				if line == "" || line[0] == '#' {
					continue
				}
				if i := strings.IndexAny(line, "{ "); i > 0 {
					names[line[:i]] = true
				}
			}
			resp.Body.Close()
		}
		// The ingress consumer group appears once the consumer runs.
		if names["tradewire_ingest_pending_entries"] && names["tradewire_redis_adapter_up"] || time.Now().After(deadline) {
			if len(names) < 50 {
				t.Fatalf("scrape has %d series names: %v", len(names), err)
			}
			return names
		}
		time.Sleep(100 * time.Millisecond)
	}
}
