package blobs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shelfml/shelf/io/blobs"
	"gocloud.dev/blob/memblob"
)

// httpErr mimics an AWS SDK response error (HTTPStatusCode method).
type httpErr int

func (e httpErr) Error() string       { return fmt.Sprintf("http %d", int(e)) }
func (e httpErr) HTTPStatusCode() int { return int(e) }

func TestIsRetryable(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	_, notFound := b.ReadAll(ctx, "missing")
	if err := b.WriteAll(ctx, "k", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	precond := b.WriteAll(ctx, "k", []byte("y"), &blobWriterIfNotExist)
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"not found", notFound, false},
		{"precondition", precond, false},
		{"canceled", context.Canceled, false},
		{"wrapped canceled", fmt.Errorf("read: %w", context.Canceled), false},
		{"plain", errors.New("bad column"), false},
		{"deadline", context.DeadlineExceeded, true},
		{"http 503", fmt.Errorf("op: %w", httpErr(503)), true},
		{"http 500", httpErr(500), true},
		{"http 429", httpErr(429), true},
		{"http 408", httpErr(408), true},
		{"http 400", httpErr(400), false},
		{"http 403", httpErr(403), false},
		{"conn reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true},
		{"conn refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{"unexpected eof", io.ErrUnexpectedEOF, true},
		{"url error", &url.Error{Op: "Get", URL: "http://x", Err: io.EOF}, true},
		{"truncated", fmt.Errorf("read k: %w", blobs.ErrTruncated), true},
		{"corrupt", blobs.ErrCorrupt, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := blobs.IsRetryable(c.err); got != c.want {
				t.Errorf("IsRetryable(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}

func TestRetry(t *testing.T) {
	p := blobs.Policy{Attempts: 4, Base: time.Millisecond, Max: 4 * time.Millisecond, Seed: 1}
	transient := httpErr(503)
	permanent := errors.New("permanent")
	cases := []struct {
		name      string
		failures  int   // calls that fail before success
		failWith  error // error of the failing calls
		wantCalls int
		wantErr   string // substring; "" = success
	}{
		{"first try", 0, transient, 1, ""},
		{"recovers", 3, transient, 4, ""},
		{"exhausted", 10, transient, 4, "giving up after 4 attempts"},
		{"permanent not retried", 10, permanent, 1, "permanent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			err := blobs.Retry(context.Background(), p, "write k", func(context.Context) error {
				calls++
				if calls <= c.failures {
					return c.failWith
				}
				return nil
			})
			if calls != c.wantCalls {
				t.Errorf("calls = %d, want %d", calls, c.wantCalls)
			}
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Errorf("err = %v, want %q", err, c.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "write k: ") {
				t.Errorf("error should name the operation: %v", err)
			}
			if err != nil && !errors.Is(err, c.failWith) {
				t.Errorf("error should wrap the cause: %v", err)
			}
		})
	}
	t.Run("ctx cancelled during backoff", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		slow := blobs.Policy{Attempts: 5, Base: time.Hour}
		calls := 0
		done := make(chan error)
		go func() {
			done <- blobs.Retry(ctx, slow, "op", func(context.Context) error { calls++; return transient })
		}()
		time.Sleep(10 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if err == nil || calls != 1 {
				t.Fatalf("err = %v, calls = %d", err, calls)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Retry did not stop on cancel")
		}
	})
}

func TestPolicyDelays(t *testing.T) {
	p := blobs.Policy{Attempts: 8, Base: 10 * time.Millisecond, Max: 200 * time.Millisecond, Seed: 42}
	d1, d2 := p.Delays(), p.Delays()
	if len(d1) != 7 {
		t.Fatalf("%d delays, want 7", len(d1))
	}
	cap := p.Base
	for i := range d1 {
		if d1[i] != d2[i] {
			t.Fatalf("same seed, different delays: %v vs %v", d1, d2)
		}
		if d1[i] < cap/2 || d1[i] > cap {
			t.Errorf("delay %d = %s, want in [%s, %s]", i, d1[i], cap/2, cap)
		}
		cap = min(cap*2, p.Max)
	}
	p.Seed = 43
	if fmt.Sprint(p.Delays()) == fmt.Sprint(d1) {
		t.Error("different seeds gave identical jitter")
	}
}
