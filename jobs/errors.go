package jobs

import (
	"context"
	"errors"

	"github.com/shelfml/shelf/io/events"
)

// Exit codes (STYLE.md): 0 ok, 1 retryable, 2 permanent.
const (
	ExitOK        = 0
	ExitRetryable = 1
	ExitPermanent = 2
)

// PermanentError marks failures that retrying cannot fix: bad config, bad
// data, a refused quality gate, a lock held by another run.
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

// ExitCode maps an error to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var pe *PermanentError
	var de *events.DataError
	if errors.As(err, &pe) || errors.As(err, &de) {
		return ExitPermanent
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ExitRetryable
	}
	return ExitRetryable
}
