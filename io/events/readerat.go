package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"gocloud.dev/blob"

	"github.com/shelfml/shelf/io/blobs"
)

// rangeReaderAt is an io.ReaderAt (and io.Seeker, which Parquet needs to find
// the footer) over one object, each ReadAt being one range request. It
// remembers the first storage error so that callers can tell an I/O failure
// from a malformed file after Arrow has wrapped (or flattened) the error.
type rangeReaderAt struct {
	ctx    context.Context
	bucket *blob.Bucket
	key    string
	size   int64

	mu    sync.Mutex
	pos   int64
	err   error  // first storage error
	whole []byte // the object, when prefetched
}

// prefetch reads the whole object with one request; later reads are served
// from memory. For objects no larger than the read buffer, whose footer,
// column chunks and page headers would otherwise each cost a request.
func (r *rangeReaderAt) prefetch() error {
	buf := make([]byte, r.size)
	if _, err := r.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	r.whole = buf
	return nil
}

func newRangeReaderAt(ctx context.Context, bucket *blob.Bucket, key string, size int64) *rangeReaderAt {
	return &rangeReaderAt{ctx: ctx, bucket: bucket, key: key, size: size}
}

// Size is the object's size in bytes.
func (r *rangeReaderAt) Size() int64 { return r.size }

// ReadAt reads len(p) bytes at off with one range request; fewer bytes come
// with io.EOF only at the end of the object.
func (r *rangeReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s at %d: negative offset", r.key, off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.whole != nil {
		n := copy(p, r.whole[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	want := int64(len(p))
	if rest := r.size - off; want > rest {
		want = rest
	}
	// One range request per attempt, under a deadline for its size; a cut
	// body (fewer bytes than asked), a stall, a 5xx or a reset is retried
	// with back-off, and the error that remains names its cause.
	op := fmt.Sprintf("read %s [%d, %d)", r.key, off, off+want)
	err := blobs.RetryBytes(r.ctx, blobs.DefaultPolicy(), op, want, func(ctx context.Context) error {
		rd, err := r.bucket.NewRangeReader(ctx, r.key, off, want, nil)
		if err != nil {
			return err
		}
		defer rd.Close()
		if rd.Size() != r.size {
			return fmt.Errorf("object is %d bytes now, %d when listed: replaced while reading", rd.Size(), r.size)
		}
		n, err := io.ReadFull(rd, p[:want])
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("got %d of %d bytes: %w", n, want, blobs.ErrTruncated)
		}
		return err
	})
	if err != nil {
		return 0, r.fail(err)
	}
	if want < int64(len(p)) {
		return int(want), io.EOF
	}
	return int(want), nil
}

// Seek implements io.Seeker over the object's size.
func (r *rangeReaderAt) Seek(offset int64, whence int) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.size + offset
	default:
		return 0, fmt.Errorf("seek %s: invalid whence %d", r.key, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("seek %s: negative position %d", r.key, abs)
	}
	r.pos = abs
	return abs, nil
}

func (r *rangeReaderAt) fail(err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
	return err
}

// ioErr returns the first storage error seen, if any.
func (r *rangeReaderAt) ioErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
