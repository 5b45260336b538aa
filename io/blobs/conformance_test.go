package blobs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/blobs/blobstest"
	"gocloud.dev/blob"
)

// backend is one store the conformance suite runs against.
type backend struct {
	name string
	url  func(t testing.TB) string
}

var backends = []backend{
	{"mem", func(testing.TB) string { return "mem://" }},
	{"file", func(t testing.TB) string { return "file://" + filepath.ToSlash(t.TempDir()) }},
	{"s3", blobstest.StartS3},     // gofakes3, in-process
	{"minio", blobstest.MinIOURL}, // a real S3 implementation (.ci/services/minio.sh)
	{"gcs", blobstest.StartGCS},
	{"azure", blobstest.AzuriteURL},
}

// conformance cases; each gets the backend's bucket and a fresh key prefix.
var conformance = []struct {
	name string
	run  func(t *testing.T, b *blob.Bucket, prefix string)
}{
	{"ReadWrite", testReadWrite},
	{"ReaderAt", testReaderAt},
	{"List", testList},
	{"IfNotExist", testIfNotExist},
	{"Delete", testDelete},
	{"Pointer", testPointer},
	{"Lock", testLock},
	{"LockRace", testLockRace},
}

func TestConformance(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			u := be.url(t)
			ctx := context.Background()
			b, err := blobs.Open(ctx, u)
			if err != nil {
				t.Fatalf("open %s: %v", blobs.Redact(u), err)
			}
			t.Cleanup(func() { b.Close() })
			for _, c := range conformance {
				t.Run(c.name, func(t *testing.T) { c.run(t, b, c.name+"/") })
			}
		})
	}
}

// fastPolicy keeps retries quick in tests.
var fastPolicy = blobs.Policy{Attempts: 6, Base: time.Millisecond, Max: 20 * time.Millisecond, Seed: 7}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.UintN(256))
	}
	return p
}

func testReadWrite(t *testing.T, b *blob.Bucket, prefix string) {
	ctx := context.Background()
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", []byte{}},
		{"small", []byte("hello shelf")},
		{"binary", randBytes(1, 70_000)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := prefix + c.name
			if err := blobs.WriteFile(ctx, b, key, c.data, fastPolicy); err != nil {
				t.Fatal(err)
			}
			got, err := blobs.ReadFile(ctx, b, key, fastPolicy)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.data) {
				t.Fatalf("read %d bytes, want %d equal bytes", len(got), len(c.data))
			}
			// Overwrite replaces.
			repl := append([]byte("v2:"), c.data...)
			if err := blobs.WriteFile(ctx, b, key, repl, fastPolicy); err != nil {
				t.Fatal(err)
			}
			if got, err = blobs.ReadFile(ctx, b, key, fastPolicy); err != nil || !bytes.Equal(got, repl) {
				t.Fatalf("after overwrite: %d bytes, err %v", len(got), err)
			}
			ok, err := blobs.Exists(ctx, b, key)
			if err != nil || !ok {
				t.Fatalf("Exists = %v, %v; want true", ok, err)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		start := time.Now()
		_, err := blobs.ReadFile(ctx, b, prefix+"nope", blobs.Policy{Attempts: 5, Base: time.Second})
		if !blobs.IsNotFound(err) {
			t.Fatalf("ReadFile(missing) = %v, want NotFound", err)
		}
		if time.Since(start) > 900*time.Millisecond {
			t.Fatalf("NotFound was retried (took %s)", time.Since(start))
		}
		if ok, err := blobs.Exists(ctx, b, prefix+"nope"); err != nil || ok {
			t.Fatalf("Exists(missing) = %v, %v", ok, err)
		}
	})
}

func testReaderAt(t *testing.T, b *blob.Bucket, prefix string) {
	ctx := context.Background()
	const size = 10_000
	data := randBytes(2, size)
	key := prefix + "obj"
	if err := blobs.WriteFile(ctx, b, key, data, fastPolicy); err != nil {
		t.Fatal(err)
	}
	want := bytes.NewReader(data) // reference io.ReaderAt semantics
	for _, bufSize := range []int{0, 1000, 1 << 20} {
		t.Run(fmt.Sprintf("buf%d", bufSize), func(t *testing.T) {
			r, err := blobs.NewReaderAt(ctx, b, key, bufSize, blobs.WithPolicy(fastPolicy))
			if err != nil {
				t.Fatal(err)
			}
			if r.Size() != size {
				t.Fatalf("Size = %d, want %d", r.Size(), size)
			}
			reads := []struct{ off, n int64 }{
				{0, 1}, {1, 10}, {11, 100}, {500, 999}, {0, 1000}, {999, 2},
				{9_000, 1000}, {9_990, 10}, {9_990, 20}, {9_999, 1}, {9_999, 5},
				{size, 0}, {size, 1}, {size + 5, 3}, {0, size}, {0, size + 7}, {5_000, 0},
				{3, 4_000}, {42, 17},
			}
			for _, rd := range reads {
				got := make([]byte, rd.n)
				exp := make([]byte, rd.n)
				n, err := r.ReadAt(got, rd.off)
				en, eerr := want.ReadAt(exp, rd.off)
				if n != en || err != eerr || !bytes.Equal(got[:n], exp[:en]) {
					t.Errorf("ReadAt(len %d, off %d) = %d, %v; want %d, %v (bytes equal %v)",
						rd.n, rd.off, n, err, en, eerr, bytes.Equal(got[:n], exp[:en]))
				}
			}
			if _, err := r.ReadAt(make([]byte, 1), -1); err == nil {
				t.Error("ReadAt at -1: want error")
			}
		})
	}
	t.Run("concurrent", func(t *testing.T) {
		r, err := blobs.NewReaderAt(ctx, b, key, 512, blobs.WithPolicy(fastPolicy))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 1))
				for range 20 {
					off := rng.Int64N(size)
					p := make([]byte, 1+rng.IntN(800))
					n, err := r.ReadAt(p, off)
					if err != nil && err != io.EOF {
						errs <- err
						return
					}
					if !bytes.Equal(p[:n], data[off:off+int64(n)]) {
						errs <- fmt.Errorf("wrong bytes at %d", off)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	t.Run("readahead", func(t *testing.T) {
		r, err := blobs.NewReaderAt(ctx, b, key, 4096, blobs.WithPolicy(fastPolicy))
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, 100)
		for off := int64(0); off < size; off += 100 {
			if _, err := r.ReadAt(p, off); err != nil && err != io.EOF {
				t.Fatal(err)
			}
		}
		if got := r.Requests(); got > 4 {
			t.Errorf("100 sequential 100-byte reads with a 4 KiB buffer sent %d requests, want ≤ 4", got)
		}
	})
	t.Run("empty", func(t *testing.T) {
		if err := blobs.WriteFile(ctx, b, prefix+"empty", nil, fastPolicy); err != nil {
			t.Fatal(err)
		}
		r, err := blobs.NewReaderAt(ctx, b, prefix+"empty", 64)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := r.ReadAt(make([]byte, 4), 0); n != 0 || err != io.EOF {
			t.Fatalf("ReadAt on empty = %d, %v; want 0, EOF", n, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := blobs.NewReaderAt(ctx, b, prefix+"missing", 64); !blobs.IsNotFound(err) {
			t.Fatalf("NewReaderAt(missing) = %v, want NotFound", err)
		}
	})
}

func writeKeys(t *testing.T, b *blob.Bucket, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if err := blobs.WriteFile(context.Background(), b, k, []byte(k), fastPolicy); err != nil {
			t.Fatal(err)
		}
	}
}

func listKeys(t *testing.T, b *blob.Bucket, prefix string) []string {
	t.Helper()
	objs, err := blobs.List(context.Background(), b, prefix)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

func testList(t *testing.T, b *blob.Bucket, prefix string) {
	p := prefix
	writeKeys(t, b, p+"z", p+"a/b/2", p+"a/b-x", p+"a/b/sub/3", p+"a/b/1", p+"a/c", p+"ab")
	cases := []struct {
		prefix string
		want   []string
	}{
		{p + "a/", []string{p + "a/b-x", p + "a/b/1", p + "a/b/2", p + "a/b/sub/3", p + "a/c"}},
		{p + "a/b/", []string{p + "a/b/1", p + "a/b/2", p + "a/b/sub/3"}},
		{p + "a", []string{p + "a/b-x", p + "a/b/1", p + "a/b/2", p + "a/b/sub/3", p + "a/c", p + "ab"}},
		{p + "none/", nil},
	}
	for _, c := range cases {
		got := listKeys(t, b, c.prefix)
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("List(%q) = %q, want %q", c.prefix, got, c.want)
		}
	}
}

func testIfNotExist(t *testing.T, b *blob.Bucket, prefix string) {
	ctx := context.Background()
	key := prefix + "once"
	created, err := blobs.WriteIfNotExists(ctx, b, key, []byte("first"))
	if err != nil || !created {
		t.Fatalf("first create = %v, %v; want true", created, err)
	}
	created, err = blobs.WriteIfNotExists(ctx, b, key, []byte("second"))
	if err != nil || created {
		t.Fatalf("second create = %v, %v; want false, nil", created, err)
	}
	got, err := blobs.ReadFile(ctx, b, key, fastPolicy)
	if err != nil || string(got) != "first" {
		t.Fatalf("content after second create = %q, %v; want first", got, err)
	}
}

func testDelete(t *testing.T, b *blob.Bucket, prefix string) {
	ctx := context.Background()
	p := prefix
	writeKeys(t, b, p+"run/1/a", p+"run/1/b/c", p+"run/10/a", p+"run/2/a")
	if err := blobs.DeletePrefix(ctx, b, p+"run/1/"); err != nil {
		t.Fatal(err)
	}
	if got, want := listKeys(t, b, p), []string{p + "run/10/a", p + "run/2/a"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after DeletePrefix: %q, want %q", got, want)
	}
	if err := blobs.DeletePrefix(ctx, b, p+"nothing/"); err != nil {
		t.Fatalf("DeletePrefix of nothing: %v", err)
	}
	if err := blobs.DeletePrefix(ctx, b, ""); err == nil {
		t.Fatal("DeletePrefix(\"\") must refuse")
	}
	if err := b.Delete(ctx, p+"run/2/a"); err != nil {
		t.Fatal(err)
	}
	if ok, err := blobs.Exists(ctx, b, p+"run/2/a"); err != nil || ok {
		t.Fatalf("Exists after delete = %v, %v", ok, err)
	}
}

func testPointer(t *testing.T, b *blob.Bucket, prefix string) {
	ctx := context.Background()
	key := prefix + "LATEST"
	if _, err := blobs.ReadPointer(ctx, b, key); !blobs.IsNotFound(err) {
		t.Fatalf("ReadPointer(missing) = %v, want NotFound", err)
	}
	for _, v := range []string{"20241102-ab12", "20241103-cd34"} {
		if err := blobs.WritePointer(ctx, b, key, v); err != nil {
			t.Fatal(err)
		}
		if got, err := blobs.ReadPointer(ctx, b, key); err != nil || got != v {
			t.Fatalf("ReadPointer = %q, %v; want %q", got, err, v)
		}
	}
	if err := blobs.WritePointer(ctx, b, key, "two\nlines"); err == nil {
		t.Fatal("WritePointer accepted a multi-line value")
	}
}

// clock is a settable time source for lock expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testLock(t *testing.T, b *blob.Bucket, prefix string) {
	ctx := context.Background()
	key := prefix + "runs/2024-11-02/lock"
	clk := &clock{t: time.Date(2024, 11, 3, 1, 0, 0, 0, time.UTC)}
	lease := 10 * time.Minute

	a, err := blobs.AcquireLock(ctx, b, key, "run-a", blobs.LockOptions{Lease: lease, Now: clk.now})
	if err != nil {
		t.Fatalf("acquire a: %v", err)
	}
	if !a.Expires().Equal(clk.now().Add(lease)) {
		t.Errorf("a expires %s, want %s", a.Expires(), clk.now().Add(lease))
	}

	// Conflict: live lock, no force.
	_, err = blobs.AcquireLock(ctx, b, key, "run-b", blobs.LockOptions{Lease: lease, Now: clk.now})
	var le *blobs.LockedError
	if !errors.Is(err, blobs.ErrLocked) || !errors.As(err, &le) {
		t.Fatalf("acquire b on live lock = %v, want ErrLocked", err)
	}
	if le.Owner != "run-a" || !strings.Contains(err.Error(), "run-a") || !strings.Contains(err.Error(), "2024-11-03T01:10:00Z") {
		t.Errorf("ErrLocked should name holder and expiry: %v", err)
	}

	// Refresh extends the lease.
	clk.add(5 * time.Minute)
	if err := a.Refresh(ctx); err != nil {
		t.Fatalf("refresh a: %v", err)
	}
	clk.add(9 * time.Minute) // 14 min after acquire, 9 after refresh: still live
	if _, err := blobs.AcquireLock(ctx, b, key, "run-b", blobs.LockOptions{Lease: lease, Now: clk.now}); !errors.Is(err, blobs.ErrLocked) {
		t.Fatalf("acquire b after refresh = %v, want ErrLocked", err)
	}

	// Expiry: a dead run's lock is taken over.
	clk.add(2 * time.Minute)
	bl, err := blobs.AcquireLock(ctx, b, key, "run-b", blobs.LockOptions{Lease: lease, Now: clk.now})
	if err != nil {
		t.Fatalf("take over expired lock: %v", err)
	}
	if err := a.Refresh(ctx); !errors.Is(err, blobs.ErrLockLost) {
		t.Fatalf("refresh of taken-over lock = %v, want ErrLockLost", err)
	}
	if err := a.Release(ctx); !errors.Is(err, blobs.ErrLockLost) {
		t.Fatalf("release of taken-over lock = %v, want ErrLockLost", err)
	}

	// Force overrides a live lock.
	c, err := blobs.AcquireLock(ctx, b, key, "run-c", blobs.LockOptions{Lease: lease, Force: true, Now: clk.now})
	if err != nil {
		t.Fatalf("force: %v", err)
	}
	if err := bl.Release(ctx); !errors.Is(err, blobs.ErrLockLost) {
		t.Fatalf("release of forced-out lock = %v, want ErrLockLost", err)
	}
	if ok, _ := blobs.Exists(ctx, b, key); !ok {
		t.Fatal("losing holder's Release deleted the new holder's lock")
	}

	// Release frees it; releasing twice is fine; then anyone can take it.
	if err := c.Release(ctx); err != nil {
		t.Fatalf("release c: %v", err)
	}
	if err := c.Release(ctx); err != nil {
		t.Fatalf("second release c: %v", err)
	}
	d, err := blobs.AcquireLock(ctx, b, key, "run-d", blobs.LockOptions{Lease: lease, Now: clk.now})
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	if err := d.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// testLockRace: many runs start at once; exactly one gets the lock.
func testLockRace(t *testing.T, b *blob.Bucket, prefix string) {
	ctx := context.Background()
	key := prefix + "lock"
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("run-%d", i)
			_, err := blobs.AcquireLock(ctx, b, key, owner, blobs.LockOptions{Lease: time.Minute})
			switch {
			case err == nil:
				mu.Lock()
				winners = append(winners, owner)
				mu.Unlock()
			case !errors.Is(err, blobs.ErrLocked):
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	if len(winners) != 1 {
		t.Fatalf("winners = %q, want exactly one", winners)
	}
}
