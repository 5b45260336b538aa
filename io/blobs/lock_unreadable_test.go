package blobs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gocloud.dev/blob/fileblob"
)

// A file:// lock whose metadata sidecar a killed process left empty cannot be
// read; after the grace period it is taken over instead of blocking every
// later run.
func TestAcquireLockTakesOverUnreadable(t *testing.T) {
	dir := t.TempDir()
	b, err := fileblob.OpenBucket(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	l, err := AcquireLock(ctx, b, "runs/lock", "first", LockOptions{Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_ = l
	if err := os.WriteFile(filepath.Join(dir, "runs", "lock.attrs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readLock(ctx, b, "runs/lock"); err == nil {
		t.Fatal("the damaged lock is still readable; the test does not damage it")
	}
	defer func(g time.Duration) { unreadableLockGrace = g }(unreadableLockGrace)
	unreadableLockGrace = 10 * time.Millisecond
	l2, err := AcquireLock(ctx, b, "runs/lock", "second", LockOptions{Lease: time.Hour})
	if err != nil {
		t.Fatalf("unreadable lock not taken over: %v", err)
	}
	if l2.Owner() != "second" {
		t.Fatalf("owner %q", l2.Owner())
	}
	// a live, readable lock still refuses
	if _, err := AcquireLock(ctx, b, "runs/lock", "third", LockOptions{Lease: time.Hour}); err == nil {
		t.Fatal("a live lock was taken over")
	}
}
