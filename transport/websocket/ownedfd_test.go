package websocket

import (
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// isOpen reports whether fd is an open descriptor of this process.
func isOpen(fd int32) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

func newPipeFD(t *testing.T) *ownedFD {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[1]) })
	return &ownedFD{num: int32(p[0])}
}

func TestOwnedFDClosesOnlyOnceUnheld(t *testing.T) {
	f := newPipeFD(t)
	if !f.acquire() || !f.acquire() {
		t.Fatal("acquire on an open descriptor failed")
	}
	f.close()
	if f.acquire() {
		t.Fatal("acquire succeeded after close")
	}
	if !isOpen(f.num) {
		t.Fatal("closed while two holders still used it")
	}
	f.release()
	if !isOpen(f.num) {
		t.Fatal("closed while a holder still used it")
	}
	f.release()
	if isOpen(f.num) {
		t.Fatal("still open after the last holder released a closing descriptor")
	}
	f.close() // a second close is a no-op, not a close of a reused number
}

func TestOwnedFDCloseWithoutHolders(t *testing.T) {
	f := newPipeFD(t)
	f.close()
	if isOpen(f.num) {
		t.Fatal("an unheld descriptor stayed open after close")
	}
}

// Under -race: holders racing a close never find the descriptor closed
// under them, and it ends closed.
func TestOwnedFDHoldersRaceClose(t *testing.T) {
	for range 50 {
		f := newPipeFD(t)
		var wg sync.WaitGroup
		bad := make(chan string, 16)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 200 {
					if !f.acquire() {
						return
					}
					if !isOpen(f.num) {
						bad <- "descriptor closed while held"
					}
					f.release()
				}
			}()
		}
		runtime.Gosched()
		f.close()
		wg.Wait()
		close(bad)
		for msg := range bad {
			t.Fatal(msg)
		}
		if isOpen(f.num) {
			t.Fatal("descriptor open after close and every release")
		}
	}
}

func TestRemoteAddrAfterCloseInEpollMode(t *testing.T) {
	h := newRecordingHandler(true)
	_, addr := startServer(t, Options{Mode: ModeEpoll}, h)
	c := dialGorilla(t, addr)
	sc := h.conn(t)
	if got := sc.RemoteAddr(); got == nil || got.String() != c.LocalAddr().String() {
		t.Fatalf("RemoteAddr %v, client %v", got, c.LocalAddr())
	}
	sc.Abort()
	if got := sc.RemoteAddr(); got != nil {
		t.Fatalf("RemoteAddr of a closed connection = %v, want nil", got)
	}
}
