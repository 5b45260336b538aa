package tables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/parquet-go/parquet-go"
	"gocloud.dev/blob"

	"github.com/shelfml/shelf/io/blobs"
)

// Writer streams rows of type T into one Parquet object. Nothing is visible
// under key until Close succeeds; Abort (or a cancelled ctx) discards it.
// A stalled upload fails instead of hanging: when no byte reaches the store
// for the storage deadline (blobs.DefaultPolicy's Timeout), the upload is
// cancelled with blobs.ErrStalled (retryable), and Close gets that floor
// plus the object's bytes at the policy's MinRate.
type Writer[T any] struct {
	key    string
	ctx    context.Context // the upload's; its cause says why it was cancelled
	cancel context.CancelCauseFunc
	bw     *blob.Writer
	pw     *parquet.GenericWriter[T]
	rows   int64
	cw     *countingWriter
	stop   chan struct{}
	done   chan struct{}
}

// countingWriter counts the bytes handed to the upload and notes when a
// write that is still blocked began (the upload's buffers are full and it
// does not drain: a stall). A producer that is merely slow blocks nothing.
type countingWriter struct {
	w     io.Writer
	bytes atomic.Int64
	since atomic.Int64 // unix nanoseconds when the write in progress began; 0 = none
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.since.Store(time.Now().UnixNano())
	n, err := c.w.Write(p)
	c.since.Store(0)
	c.bytes.Add(int64(n))
	return n, err
}

// RowGroupRows is the most rows one row group of a table part holds. The
// writer keeps a row group's compressed pages in memory until it ends (a
// column chunk is contiguous in the file), so without a bound a part of 10M
// rows is held whole until Close; readers (DuckDB, Spark) also split work by
// row group.
const RowGroupRows = 1 << 18

// writerOptions keep output byte-identical for identical rows: fixed
// created_by, fixed codec, fixed row groups, no wall-clock metadata.
func writerOptions() []parquet.WriterOption {
	return []parquet.WriterOption{
		parquet.CreatedBy("shelf", "1", ""),
		parquet.Compression(&parquet.Zstd),
		parquet.PageBufferSize(1 << 20),
		parquet.MaxRowsPerRowGroup(RowGroupRows),
	}
}

// Meta is one key-value pair of a Parquet file's footer metadata.
type Meta struct{ Key, Value string }

// NewWriter opens key in b for writing Parquet rows of type T, with meta in
// the file's footer.
func NewWriter[T any](ctx context.Context, b *blob.Bucket, key string, meta ...Meta) (*Writer[T], error) {
	ctx, cancel := context.WithCancelCause(ctx)
	bw, err := b.NewWriter(ctx, key, &blob.WriterOptions{ContentType: "application/vnd.apache.parquet"})
	if err != nil {
		cancel(nil)
		return nil, fmt.Errorf("open %s for writing: %w", key, err)
	}
	opts := writerOptions()
	for _, m := range meta {
		opts = append(opts, parquet.KeyValueMetadata(m.Key, m.Value))
	}
	cw := &countingWriter{w: bw}
	w := &Writer[T]{key: key, ctx: ctx, cancel: cancel, bw: bw, pw: parquet.NewGenericWriter[T](cw, opts...), cw: cw,
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.watch(blobs.DefaultPolicy().Timeout)
	return w, nil
}

// watch cancels the upload when a write stays blocked for floor.
func (w *Writer[T]) watch(floor time.Duration) {
	defer close(w.done)
	if floor <= 0 {
		<-w.stop
		return
	}
	t := time.NewTicker(max(floor/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			if since := w.cw.since.Load(); since != 0 {
				if blocked := time.Since(time.Unix(0, since)); blocked > floor {
					w.cancel(fmt.Errorf("write %s: upload blocked for %s: %w", w.key, blocked.Round(time.Millisecond), blobs.ErrStalled))
					return
				}
			}
		}
	}
}

// Write appends rows.
func (w *Writer[T]) Write(rows []T) error {
	if _, err := w.pw.Write(rows); err != nil {
		return fmt.Errorf("write %s: %w", w.key, w.cause(err))
	}
	w.rows += int64(len(rows))
	return nil
}

// cause is err, with the stall that cancelled the upload behind it.
func (w *Writer[T]) cause(err error) error {
	if c := context.Cause(w.ctx); c != nil && errors.Is(c, blobs.ErrStalled) {
		return fmt.Errorf("%w (%v)", c, err)
	}
	return err
}

// Rows is the number of rows written so far.
func (w *Writer[T]) Rows() int64 { return w.rows }

// Close finishes the file and makes it visible.
func (w *Writer[T]) Close() error {
	defer w.cancel(nil)
	if err := w.pw.Close(); err != nil {
		w.cancel(nil)
		w.bw.Close()
		w.halt()
		return fmt.Errorf("finish %s: %w", w.key, w.cause(err))
	}
	// The last buffered bytes upload in Close: give them their time.
	p := blobs.DefaultPolicy()
	w.halt()
	var timer *time.Timer
	if d := p.Deadline(w.cw.bytes.Load()); d > 0 {
		timer = time.AfterFunc(d, func() {
			w.cancel(fmt.Errorf("close %s: upload not finished after %s: %w", w.key, d, blobs.ErrStalled))
		})
	}
	err := w.bw.Close()
	if timer != nil {
		timer.Stop()
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", w.key, w.cause(err))
	}
	return nil
}

// halt stops the watchdog.
func (w *Writer[T]) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// Abort discards the object: cancelling the writer's context before Close
// makes gocloud drop the upload.
func (w *Writer[T]) Abort() {
	w.cancel(nil)
	w.bw.Close()
	w.halt()
}

// ReadAll reads every row of a Parquet object (for vocabularies and tests).
func ReadAll[T any](ctx context.Context, b *blob.Bucket, key string) ([]T, error) {
	data, err := b.ReadAll(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	rows, err := parquet.Read[T](bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	return rows, nil
}
