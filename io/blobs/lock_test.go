package blobs

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"
)

// asProcess makes the locks acquired in fn look as if they came from p.
func asProcess(t *testing.T, p process, fn func()) {
	t.Helper()
	old := currentProcess
	currentProcess = func() process { return p }
	defer func() { currentProcess = old }()
	fn()
}

func TestLockHolderDeadOnThisHost(t *testing.T) {
	ctx := context.Background()
	me := self()
	if me.pidNS == "" || me.start == "" {
		t.Skip("no /proc: process identity unavailable")
	}
	for _, tc := range []struct {
		name   string
		holder func() lockBody
	}{
		{"process gone", func() lockBody {
			return lockBody{Host: me.host, PIDNS: me.pidNS, PID: 1 << 30, Start: "1"}
		}},
		{"pid reused by another process", func() lockBody {
			return lockBody{Host: me.host, PIDNS: me.pidNS, PID: os.Getppid(), Start: "1"}
		}},
		{"this process restarted (not a lock it holds)", func() lockBody {
			return lockBody{Host: me.host, PIDNS: me.pidNS, PID: me.pid, Start: me.start}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := memblob.OpenBucket(nil)
			defer b.Close()
			body := tc.holder()
			body.Owner, body.Token = "dead", "t0"
			body.Renewed, body.Expires = time.Now(), time.Now().Add(time.Hour)
			data, _ := json.Marshal(body)
			if err := b.WriteAll(ctx, "lock", data, nil); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			l, err := AcquireLock(ctx, b, "lock", "next", LockOptions{Lease: time.Hour})
			if err != nil {
				t.Fatalf("dead holder not taken over: %v", err)
			}
			if time.Since(t0) > time.Second {
				t.Errorf("takeover took %s: it should not wait for the lease", time.Since(t0))
			}
			l.Release(ctx)
		})
	}
	// A lock this process holds is alive, even with the same identity.
	b := memblob.OpenBucket(nil)
	defer b.Close()
	held, err := AcquireLock(ctx, b, "lock", "first", LockOptions{Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireLock(ctx, b, "lock", "second", LockOptions{Lease: time.Hour}); !errors.Is(err, ErrLocked) {
		t.Fatalf("a lock held in this process was taken over: %v", err)
	}
	held.Release(ctx)
}

func TestLockWaitsForSilentHolder(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	other := process{host: "elsewhere", pid: 7, pidNS: "pid:[1]", start: "9"}
	lease := 400 * time.Millisecond
	asProcess(t, other, func() {
		if _, err := AcquireLock(ctx, b, "lock", "killed", LockOptions{Lease: lease}); err != nil {
			t.Fatal(err)
		}
	})
	// Without waiting: locked.
	if _, err := AcquireLock(ctx, b, "lock", "retry", LockOptions{Lease: lease}); !errors.Is(err, ErrLocked) {
		t.Fatalf("no wait: %v, want ErrLocked", err)
	}
	// Waiting a lease: the silent holder's lease runs out and it is taken over.
	t0 := time.Now()
	l, err := AcquireLock(ctx, b, "lock", "retry", LockOptions{Lease: lease, Wait: 2 * lease})
	if err != nil {
		t.Fatalf("wait for a silent holder: %v", err)
	}
	if d := time.Since(t0); d > 2*lease {
		t.Errorf("took %s", d)
	}
	l.Release(ctx)
}

func TestLockWaitEndsWhenHolderRenews(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	other := process{host: "elsewhere", pid: 7, pidNS: "pid:[1]", start: "9"}
	lease := 600 * time.Millisecond
	var live *Lock
	asProcess(t, other, func() {
		var err error
		if live, err = AcquireLock(ctx, b, "lock", "live", LockOptions{Lease: lease}); err != nil {
			t.Fatal(err)
		}
	})
	stop := live.Heartbeat(ctx, func(err error) { t.Errorf("live holder lost its lock: %v", err) }, nil)
	defer stop()
	_, err := AcquireLock(ctx, b, "lock", "retry", LockOptions{Lease: lease, Wait: 10 * lease, Poll: 50 * time.Millisecond})
	var le *LockedError
	if !errors.As(err, &le) || !le.Alive {
		t.Fatalf("waiting on a renewing holder: %v, want a LockedError with Alive", err)
	}
}

func TestLockFenceAndHeartbeatStopAPausedRun(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	lease := 300 * time.Millisecond
	a, err := AcquireLock(ctx, b, "lock", "a", LockOptions{Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Fence(ctx); err != nil {
		t.Fatalf("fence of a fresh lock: %v", err)
	}
	// Paused past its lease with nobody taking over: the fence renews.
	time.Sleep(lease + 50*time.Millisecond)
	if err := a.Fence(ctx); err != nil {
		t.Fatalf("fence after a pause without takeover: %v", err)
	}
	// Paused past its lease while another run takes over: refused.
	time.Sleep(lease + 50*time.Millisecond)
	c, err := AcquireLock(ctx, b, "lock", "c", LockOptions{Lease: time.Hour, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Fence(ctx); !errors.Is(err, ErrLockLost) {
		t.Fatalf("fence after takeover = %v, want ErrLockLost", err)
	}
	if err := a.Fence(ctx); !errors.Is(err, ErrLockLost) {
		t.Fatalf("second fence after takeover = %v, want ErrLockLost", err)
	}
	// A heartbeat tells its run at once.
	lost := make(chan error, 1)
	d, err := AcquireLock(ctx, b, "lock2", "d", LockOptions{Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	stop := d.Heartbeat(ctx, func(err error) { lost <- err }, nil)
	defer stop()
	if _, err := AcquireLock(ctx, b, "lock2", "e", LockOptions{Lease: time.Hour, Force: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-lost:
		if !errors.Is(err, ErrLockLost) {
			t.Fatalf("onLost(%v), want ErrLockLost", err)
		}
	case <-time.After(5 * lease):
		t.Fatal("heartbeat did not report the lost lock")
	}
	c.Release(ctx)
}

func TestWriteIfNotExistsRecognisesItsOwnLandedWrite(t *testing.T) {
	// The lock create's response was lost and the SDK retried it: the store
	// answers 412 with our own bytes in place. That is ours, not a conflict.
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	data := []byte(`{"token":"abc"}`)
	if created, err := WriteIfNotExists(ctx, b, "k", data); err != nil || !created {
		t.Fatalf("first create: %v %v", created, err)
	}
	if created, err := WriteIfNotExists(ctx, b, "k", data); err != nil || !created {
		t.Fatalf("the same bytes again: created=%v, %v; want ours", created, err)
	}
	if created, err := WriteIfNotExists(ctx, b, "k", []byte(`{"token":"xyz"}`)); err != nil || created {
		t.Fatalf("other bytes: created=%v, %v; want not created", created, err)
	}
}
