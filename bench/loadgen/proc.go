package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times
// (100 on every Linux architecture Go supports).
const ClockTicks = 100

// ProcStats are a process's CPU time and memory from /proc.
type ProcStats struct {
	CPUTicks uint64 `json:"cpu_ticks"` // utime + stime
	RSSKB    uint64 `json:"rss_kb"`
	HWMKB    uint64 `json:"hwm_kb"` // peak RSS
	Threads  int    `json:"threads"`
}

// ReadProcStats reads /proc/<pid>/stat and /proc/<pid>/status.
func ReadProcStats(pid int) (ProcStats, error) {
	var s ProcStats
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	if s.CPUTicks, err = ParseStatCPU(stat); err != nil {
		return s, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	ParseStatus(status, &s)
	return s, nil
}

// ParseStatCPU returns utime+stime (fields 14 and 15) of a /proc/<pid>/stat line.
func ParseStatCPU(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no comm field")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime is field 14 -> f[11], stime f[12]
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("proc stat: bad utime/stime %q %q", f[11], f[12])
	}
	return u + s, nil
}

// ParseStatus fills VmRSS, VmHWM and Threads from /proc/<pid>/status.
func ParseStatus(status []byte, s *ProcStats) {
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			s.RSSKB = n
		case "VmHWM":
			s.HWMKB = n
		case "Threads":
			s.Threads = int(n)
		}
	}
}

// SumProcStats reads several processes (a cluster) and adds them up.
func SumProcStats(pids []int) (ProcStats, error) {
	var t ProcStats
	for _, p := range pids {
		s, err := ReadProcStats(p)
		if err != nil {
			return t, err
		}
		t.CPUTicks += s.CPUTicks
		t.RSSKB += s.RSSKB
		t.HWMKB += s.HWMKB
		t.Threads += s.Threads
	}
	return t, nil
}

// FetchDebug GETs a server's debug endpoint and returns the numeric fields
// that describe memory and concurrency (heap, goroutines, RSS, sockets...).
// It reads JSON (expvar's /debug/vars, the Node baseline's /debug/vars;
// nested keys are joined with dots, arrays skipped) or the Prometheus text
// exposition (/metrics; labelled series keep their labels in the key).
func FetchDebug(ctx context.Context, url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("debug endpoint: HTTP %d", resp.StatusCode)
	}
	out := map[string]float64{}
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] != '{' {
		if err := parsePrometheusText(body, out); err != nil {
			return nil, fmt.Errorf("debug endpoint: %w", err)
		}
		return out, nil
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("debug endpoint: %w", err)
	}
	flattenNumbers("", v, out, 0)
	return out, nil
}

// parsePrometheusText keeps the interesting samples of a text exposition.
func parsePrometheusText(body []byte, out map[string]float64) error {
	samples := 0
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			return fmt.Errorf("bad exposition line %q", truncate([]byte(line), 80))
		}
		name, val := strings.TrimSpace(line[:i]), line[i+1:]
		if j := strings.IndexByte(name, ' '); j > 0 && !strings.Contains(name, "{") {
			// "name value timestamp": the last field was the timestamp
			name, val = name[:j], strings.TrimSpace(name[j+1:])
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return fmt.Errorf("bad sample value in %q", truncate([]byte(line), 80))
		}
		samples++
		base := name
		if j := strings.IndexByte(base, '{'); j >= 0 {
			base = base[:j]
		}
		lb := strings.ToLower(base)
		for _, w := range debugKeep {
			if strings.Contains(lb, w) {
				out[name] = v
				break
			}
		}
	}
	if samples == 0 {
		return fmt.Errorf("no samples")
	}
	return nil
}

var debugKeep = []string{"heap", "goroutine", "rss", "resident", "sys", "numgc", "sockets", "clients", "conn", "external", "stack", "mallocs", "frees"}

func flattenNumbers(prefix string, v any, out map[string]float64, depth int) {
	if depth > 4 {
		return
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			flattenNumbers(key, e, out, depth+1)
		}
	case float64:
		lk := strings.ToLower(prefix)
		for _, w := range debugKeep {
			if strings.Contains(lk, w) {
				out[prefix] = x
				return
			}
		}
	}
}

// ParseMachineCPU returns busy and total ticks summed over all CPUs from the
// first line of /proc/stat (busy excludes idle and iowait).
func ParseMachineCPU(stat []byte) (busy, total uint64, err error) {
	line, _, _ := bytes.Cut(stat, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("proc stat: unexpected first line %q", line)
	}
	for i, s := range f[1:] {
		if i >= 8 { // guest times are already part of user/nice
			break
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("proc stat: %w", err)
		}
		total += v
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, total, nil
}

// ReadMachineCPU reads /proc/stat.
func ReadMachineCPU() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return ParseMachineCPU(b)
}

// LoadAvg returns the first three fields of /proc/loadavg.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
