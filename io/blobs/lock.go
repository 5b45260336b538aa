package blobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"gocloud.dev/blob"
)

// ErrLocked is matched (errors.Is) by the *LockedError AcquireLock returns
// when another live owner holds the lock.
var ErrLocked = errors.New("locked")

// ErrLockLost means the lock object no longer carries our token: it expired
// and was taken over, was forced, or was deleted.
var ErrLockLost = errors.New("lock lost")

// LockedError names the holder of a live lock.
type LockedError struct {
	Key     string
	Owner   string
	Expires time.Time
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("lock %s is held by %q until %s (use force to override)", e.Key, e.Owner, e.Expires.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// lockBody is the JSON content of a lock object.
type lockBody struct {
	Owner    string    `json:"owner"`
	Token    string    `json:"token"` // random per acquisition; proves ownership
	Acquired time.Time `json:"acquired"`
	Renewed  time.Time `json:"renewed"`
	Expires  time.Time `json:"expires"`
}

// Lock is one writer's hold on a run key: an object created with
// if-not-exists that holds owner and lease expiry. Refresh before the lease
// runs out; Release at the end.
//
// Taking over an expired (or forced) lock deletes it and creates it again
// with if-not-exists, so of two runs racing for the same expired lock at most
// one create succeeds, except for one window the stores allow no better
// answer to without conditional deletes: a slow racer can delete the winner's
// fresh object between the winner's create and its own. The loser of that
// window finds out at its next Refresh or Release (ErrLockLost); refresh
// well inside the lease.
type Lock struct {
	b     *blob.Bucket
	key   string
	owner string
	token string
	lease time.Duration
	now   func() time.Time

	mu       sync.Mutex
	acquired time.Time
	expires  time.Time
	released bool
}

// Key is the lock object's key.
func (l *Lock) Key() string { return l.key }

// Owner is the owner string this lock was acquired with.
func (l *Lock) Owner() string { return l.owner }

// Expires is the current end of the lease.
func (l *Lock) Expires() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expires
}

// maxTakeovers bounds the create/read/delete loop under contention.
const maxTakeovers = 5

// unreadableLockGrace is how long an unreadable lock object may be a
// creation in progress before it counts as abandoned.
var unreadableLockGrace = 2 * time.Second

// AcquireLock takes the lock object at key for owner for lease. A live lock
// held by someone else yields a *LockedError (errors.Is ErrLocked) unless
// force is set; an expired one is taken over, and so is one that stays
// unreadable for unreadableLockGrace. now is the clock (nil =
// time.Now); expiry is judged by it, so hosts' clocks must roughly agree.
func AcquireLock(ctx context.Context, b *blob.Bucket, key, owner string, lease time.Duration, force bool, now func() time.Time) (*Lock, error) {
	if now == nil {
		now = time.Now
	}
	if lease <= 0 {
		return nil, fmt.Errorf("acquire lock %s: lease must be positive, got %s", key, lease)
	}
	token, err := newToken()
	if err != nil {
		return nil, fmt.Errorf("acquire lock %s: %w", key, err)
	}
	l := &Lock{b: b, key: key, owner: owner, token: token, lease: lease, now: now}
	for range maxTakeovers {
		t := now()
		l.acquired = t
		body, err := l.body(t)
		if err != nil {
			return nil, fmt.Errorf("acquire lock %s: %w", key, err)
		}
		created, err := WriteIfNotExists(ctx, b, key, body)
		if err != nil {
			return nil, fmt.Errorf("acquire lock %s: %w", key, err)
		}
		if created {
			l.expires = t.Add(lease)
			return l, nil
		}
		cur, err := readLock(ctx, b, key)
		if err != nil && !IsNotFound(err) && !force {
			// A creation in progress is readable within milliseconds; a lock
			// still unreadable after the grace period is a dead writer's debris
			// (file:// writes its metadata sidecar in place: a process killed
			// then leaves a lock no read can parse) and is taken over.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(unreadableLockGrace):
			}
			cur, err = readLock(ctx, b, key)
			if err != nil && !IsNotFound(err) {
				if err := deleteKey(ctx, b, key); err != nil {
					return nil, fmt.Errorf("acquire lock %s: existing lock unreadable (use force to override): %w", key, err)
				}
				continue
			}
		}
		if IsNotFound(err) {
			continue // released meanwhile: try to create again
		}
		if err == nil && now().Before(cur.Expires) && !force {
			return nil, fmt.Errorf("acquire lock %s: %w", key, &LockedError{Key: key, Owner: cur.Owner, Expires: cur.Expires})
		}
		// Expired, forced, or unreadable+forced: take over.
		if err := deleteKey(ctx, b, key); err != nil {
			return nil, fmt.Errorf("acquire lock %s: remove expired lock: %w", key, err)
		}
	}
	return nil, fmt.Errorf("acquire lock %s: still contended after %d takeovers", key, maxTakeovers)
}

// Refresh extends the lease by its full length from now. It fails with
// ErrLockLost if the lock is no longer ours.
func (l *Lock) Refresh(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return fmt.Errorf("refresh lock %s: already released: %w", l.key, ErrLockLost)
	}
	if err := l.checkOwned(ctx); err != nil {
		return fmt.Errorf("refresh lock %s: %w", l.key, err)
	}
	t := l.now()
	body, err := l.body(t)
	if err != nil {
		return fmt.Errorf("refresh lock %s: %w", l.key, err)
	}
	if err := WriteFile(ctx, l.b, l.key, body, DefaultPolicy()); err != nil {
		return fmt.Errorf("refresh lock %s: %w", l.key, err)
	}
	l.expires = t.Add(l.lease)
	return nil
}

// Release deletes the lock object if it is still ours. Releasing twice is a
// no-op; releasing a lock that was taken over returns ErrLockLost and leaves
// the new holder's object alone.
func (l *Lock) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	if err := l.checkOwned(ctx); err != nil {
		return fmt.Errorf("release lock %s: %w", l.key, err)
	}
	if err := deleteKey(ctx, l.b, l.key); err != nil {
		return fmt.Errorf("release lock %s: %w", l.key, err)
	}
	l.released = true
	return nil
}

func (l *Lock) checkOwned(ctx context.Context) error {
	cur, err := readLock(ctx, l.b, l.key)
	if IsNotFound(err) {
		return fmt.Errorf("lock object is gone: %w", ErrLockLost)
	}
	if err != nil {
		return err
	}
	if cur.Token != l.token {
		return fmt.Errorf("now held by %q until %s: %w", cur.Owner, cur.Expires.UTC().Format(time.RFC3339), ErrLockLost)
	}
	return nil
}

func (l *Lock) body(t time.Time) ([]byte, error) {
	return json.Marshal(lockBody{Owner: l.owner, Token: l.token, Acquired: l.acquired.UTC(), Renewed: t.UTC(), Expires: t.Add(l.lease).UTC()})
}

func readLock(ctx context.Context, b *blob.Bucket, key string) (*lockBody, error) {
	data, err := ReadFile(ctx, b, key, DefaultPolicy())
	if err != nil {
		return nil, err
	}
	var lb lockBody
	if err := json.Unmarshal(data, &lb); err != nil {
		return nil, fmt.Errorf("decode lock %s: %w", key, err)
	}
	return &lb, nil
}

func newToken() (string, error) {
	var buf [16]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return "", fmt.Errorf("lock token: %w", err)
	}
	return hex.EncodeToString(buf[:]), nil
}
