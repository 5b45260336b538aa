package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"gocloud.dev/blob"
)

// ReaderAt is an io.ReaderAt (plus Size) over one object, built on range
// reads because blob.Reader has no ReadAt. Reads smaller than the buffer
// fetch a whole buffer from the read offset on (read-ahead), so the many
// small reads of Parquet page headers cost one request per block. Larger reads
// go straight to the store. Safe for concurrent use; each range read is
// retried under its Policy and checked for truncation.
type ReaderAt struct {
	ctx     context.Context
	b       *blob.Bucket
	key     string
	size    int64
	bufSize int
	policy  Policy

	requests atomic.Int64

	mu     sync.Mutex
	bufOff int64
	buf    []byte // cached block [bufOff, bufOff+len(buf))
}

// ReaderOption configures NewReaderAt.
type ReaderOption func(*ReaderAt)

// WithPolicy sets the retry policy of each range read (default DefaultPolicy).
func WithPolicy(p Policy) ReaderOption { return func(r *ReaderAt) { r.policy = p } }

// NewReaderAt stats key and returns a ReaderAt over it. ctx bounds every later
// read (io.ReaderAt has no ctx). bufSize ≤ 0 disables read-ahead.
func NewReaderAt(ctx context.Context, b *blob.Bucket, key string, bufSize int, opts ...ReaderOption) (*ReaderAt, error) {
	r := &ReaderAt{ctx: ctx, b: b, key: key, bufSize: bufSize, policy: DefaultPolicy()}
	for _, o := range opts {
		o(r)
	}
	err := Retry(ctx, r.policy, "stat "+key, func(ctx context.Context) error {
		a, err := b.Attributes(ctx, key)
		if err != nil {
			return err
		}
		r.size = a.Size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open reader: %w", err)
	}
	return r, nil
}

// Size is the object's size in bytes when the ReaderAt was made.
func (r *ReaderAt) Size() int64 { return r.size }

// Requests counts the range reads sent so far (including retries).
func (r *ReaderAt) Requests() int64 { return r.requests.Load() }

// ReadAt implements io.ReaderAt: it fills p unless the object ends first, in
// which case it returns the bytes up to the end and io.EOF.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s at %d: negative offset", r.key, off)
	}
	if off >= r.size {
		return 0, io.EOF // as bytes.Reader, also for an empty p
	}
	want := len(p)
	if rem := r.size - off; int64(want) > rem {
		want = int(rem)
	}
	dst := p[:want]
	if want <= r.bufSize {
		if !r.fromCache(dst, off) {
			end := min(off+int64(r.bufSize), r.size)
			block := make([]byte, end-off)
			if err := r.fetch(block, off); err != nil {
				return 0, err
			}
			copy(dst, block)
			r.mu.Lock()
			r.buf, r.bufOff = block, off
			r.mu.Unlock()
		}
	} else if err := r.fetch(dst, off); err != nil {
		return 0, err
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}

func (r *ReaderAt) fromCache(dst []byte, off int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buf == nil || off < r.bufOff || off+int64(len(dst)) > r.bufOff+int64(len(r.buf)) {
		return false
	}
	copy(dst, r.buf[off-r.bufOff:])
	return true
}

// fetch fills dst from [off, off+len(dst)) with one range read, retried.
func (r *ReaderAt) fetch(dst []byte, off int64) error {
	op := fmt.Sprintf("read %s [%d, %d)", r.key, off, off+int64(len(dst)))
	return RetryBytes(r.ctx, r.policy, op, int64(len(dst)), func(ctx context.Context) error {
		r.requests.Add(1)
		rr, err := r.b.NewRangeReader(ctx, r.key, off, int64(len(dst)), nil)
		if err != nil {
			return err
		}
		defer rr.Close()
		if rr.Size() != r.size {
			return fmt.Errorf("object size changed from %d to %d: %w", r.size, rr.Size(), errObjectChanged)
		}
		n, err := io.ReadFull(rr, dst)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("got %d of %d bytes: %w", n, len(dst), ErrTruncated)
			}
			return err
		}
		return nil
	})
}

// errObjectChanged is not retryable: the caller must start over on the new
// object, not mix bytes of two versions.
var errObjectChanged = errors.New("object replaced while reading")
