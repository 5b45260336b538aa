package blobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
)

// ErrLocked is matched (errors.Is) by the *LockedError AcquireLock returns
// when another live owner holds the lock.
var ErrLocked = errors.New("locked")

// ErrLockLost means the lock object no longer carries our token (it expired
// and was taken over, was forced, or was deleted), or our lease ran out
// without a confirmed renewal: whoever holds it now may be writing.
var ErrLockLost = errors.New("lock lost")

// LockedError names the holder of a live lock.
type LockedError struct {
	Key     string
	Owner   string
	Expires time.Time
	Alive   bool // the holder renewed its lease while we waited
}

func (e *LockedError) Error() string {
	s := fmt.Sprintf("lock %s is held by %q until %s", e.Key, e.Owner, e.Expires.UTC().Format(time.RFC3339))
	if e.Alive {
		s += " and is being renewed (a live run)"
	}
	return s + " (use force to override)"
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
	// Where the holder runs: a holder on this host, in this PID namespace,
	// whose process is gone (or is another process now) is dead at once,
	// without waiting for its lease.
	Host  string `json:"host,omitempty"`
	PID   int    `json:"pid,omitempty"`
	PIDNS string `json:"pid_ns,omitempty"`
	Start string `json:"start,omitempty"` // the process's start time in clock ticks since boot
}

// LockOptions controls AcquireLock.
type LockOptions struct {
	Lease time.Duration    // how long the lock lives after its last renewal
	Force bool             // take over a live lock
	Now   func() time.Time // wall clock judging expiry (nil = time.Now); hosts' clocks must roughly agree
	// Wait is how long to wait for a holder that stops renewing (a killed
	// run on another host) to let its lease run out; a holder that renews
	// meanwhile is alive and the wait ends at once. 0 = do not wait.
	Wait time.Duration
	// Poll is the interval between looks at a held lock while waiting
	// (default Lease/6, between 50 ms and 5 s).
	Poll time.Duration
}

// Lock is one writer's hold on a run key: an object created with
// if-not-exists that holds owner, token and lease expiry. A Heartbeat keeps
// it renewed; Fence before every write that readers trust; Release at the
// end.
//
// Taking over an expired (or forced) lock deletes it and creates it again
// with if-not-exists, so of two runs racing for the same expired lock at most
// one create succeeds, except for one window the stores allow no better
// answer to without conditional deletes: a slow racer can delete the winner's
// fresh object between the winner's create and its own. The loser of that
// window finds out at its next Fence, Refresh or Release (ErrLockLost).
// Likewise Refresh and Fence read, then write: a takeover landing between
// the two is not seen until the next look. Both windows last one request.
type Lock struct {
	b     *blob.Bucket
	key   string
	owner string
	token string
	lease time.Duration
	now   func() time.Time

	mu        sync.Mutex
	acquired  time.Time
	expires   time.Time
	confirmed time.Time // monotonic: last time the object was seen to carry our token
	released  bool
	lost      error
}

// Key is the lock object's key.
func (l *Lock) Key() string { return l.key }

// Owner is the owner string this lock was acquired with.
func (l *Lock) Owner() string { return l.owner }

// Token is this acquisition's random token (the fencing token).
func (l *Lock) Token() string { return l.token }

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

// heldTokens are the tokens of the locks this process holds: a lock naming
// this very process with a token not among them is debris of an earlier
// incarnation (a restarted container is PID 1 again).
var heldTokens sync.Map

// AcquireLock takes the lock object at key for owner. A live lock held by
// someone else yields a *LockedError (errors.Is ErrLocked) unless
// o.Force is set. An expired one is taken over, and so is one whose holder
// is known dead (same host and PID namespace, process gone), one that
// stays unreadable for unreadableLockGrace, and — after waiting up to
// o.Wait — one whose holder stopped renewing it.
func AcquireLock(ctx context.Context, b *blob.Bucket, key, owner string, o LockOptions) (*Lock, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	if o.Lease <= 0 {
		return nil, fmt.Errorf("acquire lock %s: lease must be positive, got %s", key, o.Lease)
	}
	token, err := newToken()
	if err != nil {
		return nil, fmt.Errorf("acquire lock %s: %w", key, err)
	}
	l := &Lock{b: b, key: key, owner: owner, token: token, lease: o.Lease, now: now}
	poll := o.Poll
	if poll <= 0 {
		poll = min(max(o.Lease/6, 50*time.Millisecond), 5*time.Second)
	}
	deadline := time.Now().Add(o.Wait)
	var seen *lockBody // the holder as first seen while waiting
	for takeovers := 0; ; {
		t := now()
		l.acquired = t
		body, err := l.body(t)
		if err != nil {
			return nil, fmt.Errorf("acquire lock %s: %w", key, err)
		}
		created, err := WriteIfNotExists(ctx, b, key, body)
		if IsNotFound(err) {
			// A create finds nothing missing but the bucket itself.
			return nil, fmt.Errorf("acquire lock %s: the bucket does not exist: %w: %w", key, ErrOpen, err)
		}
		if err != nil {
			return nil, fmt.Errorf("acquire lock %s: %w", key, err)
		}
		if created {
			l.expires, l.confirmed = t.Add(o.Lease), time.Now()
			heldTokens.Store(token, true)
			return l, nil
		}
		cur, err := readLock(ctx, b, key)
		if err != nil && !IsNotFound(err) && !o.Force {
			// A creation in progress is readable within milliseconds; a lock
			// still unreadable after the grace period is a dead writer's debris
			// and is taken over.
			if err := sleepCtx(ctx, unreadableLockGrace); err != nil {
				return nil, err
			}
			cur, err = readLock(ctx, b, key)
			if err != nil && !IsNotFound(err) {
				if err := deleteKey(ctx, b, key); err != nil {
					return nil, fmt.Errorf("acquire lock %s: existing lock unreadable (use force to override): %w", key, err)
				}
				if takeovers++; takeovers > maxTakeovers {
					return nil, fmt.Errorf("acquire lock %s: still contended after %d takeovers", key, maxTakeovers)
				}
				continue
			}
		}
		if IsNotFound(err) {
			continue // released meanwhile: try to create again
		}
		live := err == nil && now().Before(cur.Expires) && !o.Force && !holderDead(cur)
		if live {
			if seen != nil && (cur.Token != seen.Token || !cur.Renewed.Equal(seen.Renewed)) {
				return nil, fmt.Errorf("acquire lock %s: %w", key, &LockedError{Key: key, Owner: cur.Owner, Expires: cur.Expires, Alive: true})
			}
			if seen == nil {
				seen = cur
			}
			// Waiting helps only when the lease can run out before the
			// deadline: a dead holder's lock expires at cur.Expires.
			if left := time.Until(deadline); left < poll || cur.Expires.After(now().Add(left)) {
				return nil, fmt.Errorf("acquire lock %s: %w", key, &LockedError{Key: key, Owner: cur.Owner, Expires: cur.Expires})
			}
			if err := sleepCtx(ctx, poll); err != nil {
				return nil, err
			}
			continue
		}
		// Expired, dead, forced, or unreadable+forced: take over.
		if err := deleteKey(ctx, b, key); err != nil {
			return nil, fmt.Errorf("acquire lock %s: remove expired lock: %w", key, err)
		}
		if takeovers++; takeovers > maxTakeovers {
			return nil, fmt.Errorf("acquire lock %s: still contended after %d takeovers", key, maxTakeovers)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Refresh extends the lease by its full length from now. It fails with
// ErrLockLost if the lock is no longer ours.
func (l *Lock) Refresh(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refreshLocked(ctx)
}

func (l *Lock) refreshLocked(ctx context.Context) error {
	if l.released {
		return fmt.Errorf("refresh lock %s: already released: %w", l.key, ErrLockLost)
	}
	if l.lost != nil {
		return l.lost
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
	l.expires, l.confirmed = t.Add(l.lease), time.Now()
	return nil
}

// Fence is called right before a write that readers trust: it fails with
// ErrLockLost unless the lock object still carries our token. When our
// lease ran out since the last confirmation (the process was paused: a
// SIGSTOP, a long GC, a frozen node), it renews first, so a paused run
// either still holds the lock or stops here, before its next write.
func (l *Lock) Fence(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return fmt.Errorf("fence %s: released: %w", l.key, ErrLockLost)
	}
	if l.lost != nil {
		return l.lost
	}
	if time.Since(l.confirmed) >= l.lease {
		if err := l.refreshLocked(ctx); err != nil {
			if errors.Is(err, ErrLockLost) {
				l.lost = err
			}
			return fmt.Errorf("fence %s: lease ran out %s after the last renewal: %w", l.key, time.Since(l.confirmed).Round(time.Millisecond), err)
		}
		return nil
	}
	if err := l.checkOwned(ctx); err != nil {
		if errors.Is(err, ErrLockLost) {
			l.lost = err
		}
		return fmt.Errorf("fence %s: %w", l.key, err)
	}
	l.confirmed = time.Now()
	return nil
}

// Heartbeat renews the lease every third of it until stop is called. A
// failed renewal is retried every second; when the lock is lost, or the
// lease runs out without a confirmed renewal, onLost is called once (the
// caller cancels its work there) and the heartbeat ends. warn receives the
// transient failures.
func (l *Lock) Heartbeat(ctx context.Context, onLost func(error), warn func(error)) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		every := l.lease / 3
		wait := every
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			err := l.Refresh(ctx)
			switch {
			case err == nil:
				wait = every
				continue
			case errors.Is(err, ErrLockLost):
			case ctx.Err() != nil:
				return
			default:
				l.mu.Lock()
				since := time.Since(l.confirmed)
				l.mu.Unlock()
				if since < l.lease {
					if warn != nil {
						warn(err)
					}
					wait = min(time.Second, every)
					continue
				}
				err = fmt.Errorf("lease ran out %s after the last confirmed renewal (%v): %w", since.Round(time.Millisecond), err, ErrLockLost)
			}
			l.mu.Lock()
			if l.lost == nil {
				l.lost = err
			}
			l.mu.Unlock()
			onLost(err)
			return
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		<-finished
	}
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
	heldTokens.Delete(l.token)
	if err := l.checkOwned(ctx); err != nil {
		l.released = true
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
	self := currentProcess()
	return json.Marshal(lockBody{Owner: l.owner, Token: l.token, Acquired: l.acquired.UTC(), Renewed: t.UTC(), Expires: t.Add(l.lease).UTC(),
		Host: self.host, PID: self.pid, PIDNS: self.pidNS, Start: self.start})
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

// process identifies a running process across hosts and restarts.
type process struct {
	host, pidNS, start string
	pid                int
}

var self = sync.OnceValue(func() process {
	host, _ := os.Hostname()
	ns, _ := os.Readlink("/proc/self/ns/pid")
	return process{host: host, pid: os.Getpid(), pidNS: ns, start: procStart(os.Getpid())}
})

// currentProcess is this process's identity (a variable for tests).
var currentProcess = self

// holderDead reports whether the lock's holder is known to be gone: it ran
// on this host in this PID namespace and its process no longer exists, or
// that PID is now another process (its start time differs), or it is this
// process but holds no such lock (a restarted container: PID 1 again).
// Anything else — another host, another namespace, no identity recorded —
// is judged by its lease alone.
func holderDead(cur *lockBody) bool {
	me := currentProcess()
	if cur.Host == "" || cur.PIDNS == "" || cur.Host != me.host || cur.PIDNS != me.pidNS || cur.PID <= 0 {
		return false
	}
	if cur.PID == me.pid && cur.Start == me.start {
		_, held := heldTokens.Load(cur.Token)
		return !held
	}
	start := procStart(cur.PID)
	return start == "" || (cur.Start != "" && start != cur.Start)
}

// procStart is a process's start time (field 22 of /proc/<pid>/stat), ""
// when there is no such process.
func procStart(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces and parentheses: fields
	// are counted after its last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19] // field 22 overall: state is field 3 = f[0]
}
