package blobs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/blobs/blobstest"
)

// TestFaultySurvives: with 15-20 % of requests failing (503, connection
// reset, body cut mid-way) and some delayed, Retry-backed writes and reads still
// return exactly the bytes written.
func TestFaultySurvives(t *testing.T) {
	cases := []struct {
		name string
		cfg  blobstest.FaultConfig
	}{
		{"mixed 15%", blobstest.FaultConfig{Seed: 1, FailRate: 0.05, ResetRate: 0.05, TruncateRate: 0.05, DelayRate: 0.05, Delay: 5 * time.Millisecond}},
		{"truncate 20%", blobstest.FaultConfig{Seed: 3, TruncateRate: 0.20}},
	}
	policy := blobs.Policy{Attempts: 10, Base: time.Millisecond, Max: 10 * time.Millisecond, Seed: 9}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			u, stats := blobstest.StartFaultyS3(t, c.cfg)
			b, err := blobs.Open(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()

			const objects = 12
			want := make([][]byte, objects)
			for i := range want {
				want[i] = randBytes(uint64(100+i), 20_000+i*3_001)
				if err := blobs.WriteFile(ctx, b, fmt.Sprintf("obj/%02d", i), want[i], policy); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			for i := range want {
				got, err := blobs.ReadFile(ctx, b, fmt.Sprintf("obj/%02d", i), policy)
				if err != nil {
					t.Fatalf("read %d: %v", i, err)
				}
				if !bytes.Equal(got, want[i]) {
					t.Fatalf("read %d: %d bytes differ from the %d written", i, len(got), len(want[i]))
				}
			}
			for i := range 4 {
				r, err := blobs.NewReaderAt(ctx, b, fmt.Sprintf("obj/%02d", i), 2048, blobs.WithPolicy(policy))
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(uint64(i), 7))
				for range 25 {
					off := rng.Int64N(r.Size())
					p := make([]byte, 1+rng.IntN(5000))
					n, err := r.ReadAt(p, off)
					if err != nil && err != io.EOF {
						t.Fatalf("ReadAt %d: %v", off, err)
					}
					if !bytes.Equal(p[:n], want[i][off:off+int64(n)]) {
						t.Fatalf("ReadAt %d: wrong bytes", off)
					}
				}
			}
			if stats.Faults() == 0 {
				t.Fatalf("no faults injected in %d requests: test proves nothing", stats.Requests.Load())
			}
			t.Logf("requests %d: 503 %d, resets %d, truncated %d, delayed %d",
				stats.Requests.Load(), stats.Failed.Load(), stats.Resets.Load(), stats.Truncated.Load(), stats.Delayed.Load())
		})
	}
}

// TestTruncationDetected: when every download is cut, reads fail with an
// error instead of returning short data.
func TestTruncationDetected(t *testing.T) {
	ctx := context.Background()
	u, stats := blobstest.StartFaultyS3(t, blobstest.FaultConfig{Seed: 4, TruncateRate: 1})
	b, err := blobs.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data := randBytes(5, 50_000)
	policy := blobs.Policy{Attempts: 2, Base: time.Millisecond, Seed: 1}
	if err := blobs.WriteFile(ctx, b, "k", data, policy); err != nil { // PUTs are not cut
		t.Fatal(err)
	}
	cases := []struct {
		name string
		read func() (int, error)
	}{
		{"ReadFile", func() (int, error) { d, err := blobs.ReadFile(ctx, b, "k", policy); return len(d), err }},
		{"ReaderAt", func() (int, error) {
			r, err := blobs.NewReaderAt(ctx, b, "k", 0, blobs.WithPolicy(policy))
			if err != nil {
				return 0, err
			}
			return r.ReadAt(make([]byte, 40_000), 100)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := c.read()
			if err == nil {
				t.Fatalf("read returned %d bytes and no error through a cutting proxy", n)
			}
			if !errors.Is(err, blobs.ErrTruncated) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("err = %v, want ErrTruncated or unexpected EOF", err)
			}
			if !blobs.IsRetryable(err) {
				t.Errorf("truncation should be retryable: %v", err)
			}
		})
	}
	if stats.Truncated.Load() == 0 {
		t.Fatal("proxy truncated nothing")
	}
}

// TestNotFoundNotRetried: a 404 costs one request, whatever the policy.
func TestNotFoundNotRetried(t *testing.T) {
	ctx := context.Background()
	u, stats := blobstest.StartFaultyS3(t, blobstest.FaultConfig{})
	b, err := blobs.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = blobs.ReadFile(ctx, b, "missing", blobs.Policy{Attempts: 5, Base: time.Millisecond})
	if !blobs.IsNotFound(err) {
		t.Fatalf("err = %v, want NotFound", err)
	}
	if n := stats.Requests.Load(); n != 1 {
		t.Fatalf("%d requests for a missing object, want 1", n)
	}
}
