package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/url"
	"sync/atomic"
	"syscall"
	"time"

	"gocloud.dev/gcerrors"
)

// ErrTruncated reports that a read returned fewer bytes than the object (or
// range) holds: a connection cut mid-body. It is retryable.
var ErrTruncated = errors.New("truncated read")

// ErrCorrupt reports that the bytes read do not match the object's stored
// MD5. It is retryable (the object may have been replaced during the read).
var ErrCorrupt = errors.New("content does not match stored checksum")

// Policy is exponential backoff with jitter: attempt i (from 0) is followed by
// a sleep drawn from [d/2, d) with d = min(Max, Base·2^i). Every attempt
// runs under a deadline of Timeout plus the time its bytes take at MinRate,
// so a stalled request (accepted, never answered; a trickling body) fails
// and is retried instead of hanging the run.
type Policy struct {
	Attempts int           // total tries, including the first; <1 means 1
	Base     time.Duration // first backoff
	Max      time.Duration // cap of a single backoff; 0 = no cap
	// Seed makes the jitter deterministic (tests). 0 draws a random seed per
	// Retry call, so that concurrent shards do not retry in lockstep.
	Seed uint64
	// Timeout is the floor of every attempt's deadline; 0 = no deadline.
	Timeout time.Duration
	// MinRate (bytes per second) adds size/MinRate to the deadline of an
	// attempt that moves size bytes; 0 = the floor alone.
	MinRate float64
}

// Deadline is the time an attempt moving n bytes may take (0: none).
func (p Policy) Deadline(n int64) time.Duration {
	if p.Timeout <= 0 {
		return 0
	}
	d := p.Timeout
	if p.MinRate > 0 && n > 0 {
		d += time.Duration(float64(n) / p.MinRate * float64(time.Second))
	}
	return d
}

// defaults are the settings DefaultPolicy returns; set once at start-up
// from the run's storage.* config (Configure).
var defaults atomic.Pointer[Policy]

// Configure sets the deadlines and attempts of DefaultPolicy: every
// attempt gets timeout plus its bytes at minRate, and each call tries
// attempts times. The command calls it once from its config, before any I/O.
func Configure(timeout time.Duration, minRate float64, attempts int) {
	p := Policy{Attempts: attempts, Base: 200 * time.Millisecond, Max: 5 * time.Second, Timeout: timeout, MinRate: minRate}
	defaults.Store(&p)
}

// DefaultPolicy is used by helpers that take no Policy (Exists, List,
// DeletePrefix, locks, ReaderAt without WithPolicy). Cloud SDKs retry some
// errors themselves too; this covers what they give up on, and truncations.
// Until Configure is called: 5 attempts, 30 s + 1 MiB/s deadlines.
func DefaultPolicy() Policy {
	if p := defaults.Load(); p != nil {
		return *p
	}
	return Policy{Attempts: 5, Base: 200 * time.Millisecond, Max: 5 * time.Second, Timeout: 30 * time.Second, MinRate: 1 << 20}
}

// Delays returns the sleeps Retry would make between its attempts, for a
// non-zero Seed. It documents and tests the schedule.
func (p Policy) Delays() []time.Duration {
	rng := p.rng()
	var out []time.Duration
	for i := 0; i < p.attempts()-1; i++ {
		out = append(out, p.backoff(i, rng))
	}
	return out
}

func (p Policy) attempts() int {
	if p.Attempts < 1 {
		return 1
	}
	return p.Attempts
}

func (p Policy) rng() *rand.Rand {
	seed := p.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

func (p Policy) backoff(i int, rng *rand.Rand) time.Duration {
	d := p.Base
	for j := 0; j < i && (p.Max <= 0 || d < p.Max); j++ {
		d *= 2
	}
	if p.Max > 0 && d > p.Max {
		d = p.Max
	}
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + time.Duration(rng.Int64N(int64(d-half)+1))
}

// Retry runs fn until it succeeds, returns a non-retryable error (see
// IsRetryable), the attempts are used up, or ctx is done. op names the
// operation in the returned error ("read s3://b/key"). Each attempt runs
// under the policy's deadline for a request without a body.
func Retry(ctx context.Context, p Policy, op string, fn func(ctx context.Context) error) error {
	return RetryBytes(ctx, p, op, 0, fn)
}

// ErrStalled marks an attempt that ran past its deadline while the run's
// own context was still live: a stalled request. It is retryable.
var ErrStalled = errors.New("request stalled past its deadline")

// RetryBytes is Retry for attempts that move size bytes: each gets the
// policy's deadline for that size.
func RetryBytes(ctx context.Context, p Policy, op string, size int64, fn func(ctx context.Context) error) error {
	rng := p.rng()
	n := p.attempts()
	var err error
	for i := 0; i < n; i++ {
		if cerr := ctx.Err(); cerr != nil {
			if err == nil {
				err = cerr
			}
			return fmt.Errorf("%s: %w", op, err)
		}
		err = attempt(ctx, p.Deadline(size), fn)
		if err == nil {
			return nil
		}
		if !IsRetryable(err) {
			return fmt.Errorf("%s: %w", op, err)
		}
		if i == n-1 {
			break
		}
		t := time.NewTimer(p.backoff(i, rng))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (retry interrupted: %v)", op, err, ctx.Err())
		case <-t.C:
		}
	}
	return fmt.Errorf("%s: giving up after %d attempts: %w", op, n, err)
}

// attempt runs fn under deadline d (none when 0); a deadline of its own
// that expires is ErrStalled, the caller's cancellation stays as it is.
func attempt(ctx context.Context, d time.Duration, fn func(ctx context.Context) error) error {
	if d <= 0 {
		return fn(ctx)
	}
	actx, cancel := context.WithTimeoutCause(ctx, d, fmt.Errorf("%w (%s)", ErrStalled, d))
	defer cancel()
	err := fn(actx)
	if err != nil && ctx.Err() == nil && actx.Err() != nil {
		return fmt.Errorf("%w: %w", context.Cause(actx), err)
	}
	return err
}

// IsRetryable reports whether err is transient: gcerrors DeadlineExceeded,
// Internal or ResourceExhausted; HTTP 408/429/5xx (gocloud has no Unavailable
// code: drivers report a 503 as Unknown wrapping the SDK error); network
// failures (connection reset/refused, unexpected EOF, transport errors); and
// ErrTruncated/ErrCorrupt. NotFound, InvalidArgument, FailedPrecondition,
// PermissionDenied, AlreadyExists, Unimplemented and cancellation never are.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	switch gcerrors.Code(err) {
	case gcerrors.NotFound, gcerrors.InvalidArgument, gcerrors.FailedPrecondition,
		gcerrors.PermissionDenied, gcerrors.AlreadyExists, gcerrors.Unimplemented,
		gcerrors.Canceled:
		return false
	case gcerrors.DeadlineExceeded, gcerrors.Internal, gcerrors.ResourceExhausted:
		return true
	}
	if errors.Is(err, ErrTruncated) || errors.Is(err, ErrCorrupt) || errors.Is(err, errDriverPanic) || errors.Is(err, ErrStalled) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) {
		return true
	}
	if code, ok := httpStatus(err); ok {
		return code == 408 || code == 429 || code >= 500
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EROFS) {
		return false // local file errors (file://): a retry finds the same
	}
	var oe *net.OpError
	var ne net.Error
	if errors.As(err, &oe) || (errors.As(err, &ne) && ne.Timeout()) {
		return true
	}
	var ue *url.Error // the HTTP client failed to get a response
	return errors.As(err, &ue)
}

// httpStatus finds an HTTP status in SDK errors without importing the SDKs:
// AWS (HTTPStatusCode) and Google API (HTTPCode) errors expose methods.
func httpStatus(err error) (int, bool) {
	var aws interface{ HTTPStatusCode() int }
	if errors.As(err, &aws) {
		return aws.HTTPStatusCode(), true
	}
	var goog interface{ HTTPCode() int }
	if errors.As(err, &goog) {
		if c := goog.HTTPCode(); c > 0 {
			return c, true
		}
	}
	return 0, false
}

// IsNotFound reports whether err means the object (or bucket) does not exist.
func IsNotFound(err error) bool {
	return err != nil && gcerrors.Code(err) == gcerrors.NotFound
}
