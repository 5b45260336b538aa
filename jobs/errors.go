package jobs

import (
	"context"
	"errors"

	"gocloud.dev/gcerrors"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/events"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model/nn"
)

// Exit codes (STYLE.md): 0 ok, 1 retryable, 2 permanent.
const (
	ExitOK        = 0
	ExitRetryable = 1
	ExitPermanent = 2
)

// PermanentError marks failures that retrying cannot fix: bad config, bad
// data, a refused quality gate, a version or date that does not exist.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as permanent (nil stays nil).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// RetryableError marks a failure that a later attempt can pass although it
// looks permanent: a score shard started before its model was trained.
type RetryableError struct{ Err error }

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// Retryable wraps err as retryable (nil stays nil).
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &RetryableError{Err: err}
}

// ExitCode maps an error to the process exit code; ErrorClass names the
// class (the README's exit-code table lists every class).
func ExitCode(err error) int {
	code, _ := Classify(err)
	return code
}

// Error classes, as Classify reports them.
const (
	ClassOK          = "ok"
	ClassPermanent   = "permanent"   // bad config, flags, data, refused gate
	ClassMissing     = "missing"     // a version or date partition that does not exist
	ClassNotYet      = "not_yet"     // what this step needs is not there yet (score before train)
	ClassBadURL      = "bad_url"     // a bucket URL that cannot be opened
	ClassDenied      = "denied"      // the store refused our credentials (401/403)
	ClassInterrupted = "interrupted" // SIGTERM/SIGINT, a deadline, or the lock lost to another run
	ClassLocked      = "locked"      // another live run holds the date
	ClassStorage     = "storage"     // transient or unknown storage and network errors
)

// Classify maps an error to its exit code and class. Permanent means a
// retry would fail the same way; everything else — storage trouble,
// interruptions, a live lock — may pass on a later attempt.
func Classify(err error) (int, string) {
	var pe *PermanentError
	var re *RetryableError
	var de *events.DataError
	switch {
	case err == nil:
		return ExitOK, ClassOK
	case errors.As(err, &re):
		return ExitRetryable, ClassNotYet
	case errors.As(err, &pe) || errors.As(err, &de) || errors.Is(err, nn.ErrDiverged):
		return ExitPermanent, ClassPermanent
	case errors.Is(err, tables.ErrNoVersion), errors.Is(err, tables.ErrNotCommitted):
		return ExitPermanent, ClassMissing
	case errors.Is(err, blobs.ErrOpen):
		return ExitPermanent, ClassBadURL
	case gcerrors.Code(err) == gcerrors.PermissionDenied || isAuthStatus(err):
		return ExitPermanent, ClassDenied
	case errors.Is(err, blobs.ErrLockLost), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ExitRetryable, ClassInterrupted
	case errors.Is(err, blobs.ErrLocked):
		return ExitRetryable, ClassLocked
	default:
		return ExitRetryable, ClassStorage
	}
}

// isAuthStatus finds an HTTP 401 or 403 from a cloud SDK in err (gocloud
// maps some of them to Unknown).
func isAuthStatus(err error) bool {
	var aws interface{ HTTPStatusCode() int }
	if errors.As(err, &aws) {
		c := aws.HTTPStatusCode()
		return c == 401 || c == 403
	}
	var goog interface{ HTTPCode() int }
	if errors.As(err, &goog) {
		c := goog.HTTPCode()
		return c == 401 || c == 403
	}
	return false
}
