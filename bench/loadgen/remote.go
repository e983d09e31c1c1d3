package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// workerMsg is one line of the coordinator <-> worker protocol (JSON lines:
// the first line to the worker is its FleetConfig, then commands).
type workerMsg struct {
	Cmd       string       `json:"cmd,omitempty"`        // ramp | snap | storm | close
	TimeoutMS int64        `json:"timeout_ms,omitempty"` // storm
	Reply     string       `json:"reply,omitempty"`
	Err       string       `json:"err,omitempty"`
	Progress  *Progress    `json:"progress,omitempty"`
	Ramp      *RampResult  `json:"ramp,omitempty"`
	Snap      *Snapshot    `json:"snap,omitempty"`
	Storm     *StormResult `json:"storm,omitempty"`
}

// ServeWorker runs a LocalFleet driven by commands read from in, writing
// replies and progress (every 500 ms) to out. It returns after "close" or
// when in ends.
func ServeWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	if !sc.Scan() {
		return errors.New("worker: no config line")
	}
	var cfg FleetConfig
	if err := json.Unmarshal(sc.Bytes(), &cfg); err != nil {
		return fmt.Errorf("worker: config: %w", err)
	}
	f, err := NewLocalFleet(cfg)
	if err != nil {
		return err
	}
	defer f.Close()
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(m workerMsg) {
		mu.Lock()
		_ = enc.Encode(m)
		mu.Unlock()
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p := f.Progress()
				send(workerMsg{Progress: &p})
			case <-stop:
				return
			}
		}
	}()
	for sc.Scan() {
		var m workerMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			send(workerMsg{Reply: "error", Err: err.Error()})
			continue
		}
		r := workerMsg{Reply: m.Cmd}
		var err error
		switch m.Cmd {
		case "ramp":
			var rr RampResult
			rr, err = f.Ramp(ctx)
			r.Ramp = &rr
		case "snap":
			var s Snapshot
			s, err = f.Snap(ctx)
			r.Snap = &s
		case "storm":
			var s StormResult
			s, err = f.Storm(ctx, time.Duration(m.TimeoutMS)*time.Millisecond)
			r.Storm = &s
		case "close":
			err = f.Close()
			if err != nil {
				r.Err = err.Error()
			}
			send(r)
			return nil
		default:
			err = fmt.Errorf("unknown command %q", m.Cmd)
		}
		if err != nil {
			r.Err = err.Error()
		}
		send(r)
	}
	return sc.Err()
}

// RemoteFleet drives a worker over a pair of streams (a child process's
// stdin/stdout).
type RemoteFleet struct {
	w        io.WriteCloser
	replies  chan workerMsg
	progress atomic.Pointer[Progress]
	mu       sync.Mutex
	cmd      *exec.Cmd
	readErr  atomic.Pointer[error]
}

// NewRemoteFleet sends cfg to the worker behind w/r and starts reading.
func NewRemoteFleet(cfg FleetConfig, w io.WriteCloser, r io.Reader) (*RemoteFleet, error) {
	f := &RemoteFleet{w: w, replies: make(chan workerMsg, 4)}
	f.progress.Store(&Progress{})
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("worker: send config: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var m workerMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				continue
			}
			if m.Progress != nil {
				f.progress.Store(m.Progress)
				continue
			}
			f.replies <- m
		}
		err := sc.Err()
		if err == nil {
			err = io.EOF
		}
		f.readErr.Store(&err)
		close(f.replies)
	}()
	return f, nil
}

// StartWorker launches argv as a worker process (its stderr goes to
// stderr) and returns the fleet that drives it.
func StartWorker(cfg FleetConfig, argv []string, stderr io.Writer) (*RemoteFleet, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	f, err := NewRemoteFleet(cfg, in, out)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	f.cmd = cmd
	return f, nil
}

func (f *RemoteFleet) call(ctx context.Context, m workerMsg) (workerMsg, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := json.Marshal(m)
	if _, err := f.w.Write(append(b, '\n')); err != nil {
		return workerMsg{}, fmt.Errorf("worker: %w", err)
	}
	select {
	case r, ok := <-f.replies:
		if !ok {
			return r, fmt.Errorf("worker: gone: %w", *f.readErr.Load())
		}
		if r.Reply != m.Cmd {
			return r, fmt.Errorf("worker: reply %q to %q: %s", r.Reply, m.Cmd, r.Err)
		}
		if r.Err != "" {
			return r, errors.New("worker: " + r.Err)
		}
		return r, nil
	case <-ctx.Done():
		return workerMsg{}, ctx.Err()
	}
}

// Ramp implements Fleet.
func (f *RemoteFleet) Ramp(ctx context.Context) (RampResult, error) {
	r, err := f.call(ctx, workerMsg{Cmd: "ramp"})
	if r.Ramp == nil {
		return RampResult{}, err
	}
	return *r.Ramp, err
}

// Snap implements Fleet.
func (f *RemoteFleet) Snap(ctx context.Context) (Snapshot, error) {
	r, err := f.call(ctx, workerMsg{Cmd: "snap"})
	if r.Snap == nil {
		return Snapshot{}, err
	}
	return *r.Snap, err
}

// Storm implements Fleet.
func (f *RemoteFleet) Storm(ctx context.Context, timeout time.Duration) (StormResult, error) {
	r, err := f.call(ctx, workerMsg{Cmd: "storm", TimeoutMS: timeout.Milliseconds()})
	if r.Storm == nil {
		return StormResult{}, err
	}
	return *r.Storm, err
}

// Progress implements Fleet with the worker's last report.
func (f *RemoteFleet) Progress() Progress { return *f.progress.Load() }

// Close stops the worker and waits for the process, if any.
func (f *RemoteFleet) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := f.call(ctx, workerMsg{Cmd: "close"})
	_ = f.w.Close()
	if f.cmd != nil {
		if err != nil {
			_ = f.cmd.Process.Kill()
		}
		if werr := f.cmd.Wait(); err == nil {
			err = werr
		}
	}
	return err
}
