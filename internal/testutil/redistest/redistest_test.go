package redistest

import "testing"

func TestStartKillRestart(t *testing.T) {
	s := Start(t)
	if err := Ping(s.Addr); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if s.external {
		return
	}
	s.Kill()
	if Ping(s.Addr) == nil {
		t.Fatal("server still answers after Kill")
	}
	s.Restart()
	if err := Ping(s.Addr); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	if s.URL() != "redis://"+s.Addr {
		t.Fatalf("URL = %q", s.URL())
	}
}
