package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestProgressOnTerminal opens a pseudo-terminal as stderr: bars are drawn
// on it and log lines go through the terminal writer.
func TestProgressOnTerminal(t *testing.T) {
	ptm, pts := openPTY(t)
	p, logw := progressOn(pts, false)
	if p.Terminal == nil || logw != p.Terminal {
		t.Fatalf("a terminal on stderr: progress %+v, log writer %T", p, logw)
	}
	got := make(chan string, 1)
	go func() {
		var b strings.Builder
		buf := make([]byte, 4096)
		for !strings.Contains(b.String(), "msg=hello") {
			n, err := ptm.Read(buf)
			if err != nil {
				break
			}
			b.Write(buf[:n])
		}
		got <- b.String()
	}()
	m := p.Start(slog.Default(), "2024-11-02 score/0", "users", 10)
	m.Set(5)
	slog.New(slog.NewTextHandler(logw, nil)).Info("hello")
	select {
	case s := <-got:
		if !strings.Contains(s, "2024-11-02 score/0") || !strings.Contains(s, "[") || !strings.Contains(s, "\x1b[2K") {
			t.Errorf("no bar on the terminal: %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing read from the terminal")
	}
	m.Finish()
	p.Close()
}

func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	fd := int(ptm.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pts: %v", err)
	}
	t.Cleanup(func() { pts.Close() })
	if err := unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 30, Col: 120}); err != nil {
		t.Fatal(err)
	}
	return ptm, pts
}
