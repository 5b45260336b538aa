package tables

import (
	"bytes"
	"context"
	"fmt"

	"github.com/parquet-go/parquet-go"
	"gocloud.dev/blob"
)

// Writer streams rows of type T into one Parquet object. Nothing is visible
// under key until Close succeeds; Abort (or a cancelled ctx) discards it.
type Writer[T any] struct {
	key    string
	cancel context.CancelFunc
	bw     *blob.Writer
	pw     *parquet.GenericWriter[T]
	rows   int64
}

// writerOptions keep output byte-identical for identical rows: fixed
// created_by, fixed codec, no wall-clock metadata.
func writerOptions() []parquet.WriterOption {
	return []parquet.WriterOption{
		parquet.CreatedBy("shelf", "1", ""),
		parquet.Compression(&parquet.Zstd),
		parquet.PageBufferSize(1 << 20),
	}
}

// Meta is one key-value pair of a Parquet file's footer metadata.
type Meta struct{ Key, Value string }

// NewWriter opens key in b for writing Parquet rows of type T, with meta in
// the file's footer.
func NewWriter[T any](ctx context.Context, b *blob.Bucket, key string, meta ...Meta) (*Writer[T], error) {
	ctx, cancel := context.WithCancel(ctx)
	bw, err := b.NewWriter(ctx, key, &blob.WriterOptions{ContentType: "application/vnd.apache.parquet"})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open %s for writing: %w", key, err)
	}
	opts := writerOptions()
	for _, m := range meta {
		opts = append(opts, parquet.KeyValueMetadata(m.Key, m.Value))
	}
	return &Writer[T]{key: key, cancel: cancel, bw: bw, pw: parquet.NewGenericWriter[T](bw, opts...)}, nil
}

// Write appends rows.
func (w *Writer[T]) Write(rows []T) error {
	if _, err := w.pw.Write(rows); err != nil {
		return fmt.Errorf("write %s: %w", w.key, err)
	}
	w.rows += int64(len(rows))
	return nil
}

// Rows is the number of rows written so far.
func (w *Writer[T]) Rows() int64 { return w.rows }

// Close finishes the file and makes it visible.
func (w *Writer[T]) Close() error {
	defer w.cancel()
	if err := w.pw.Close(); err != nil {
		w.cancel()
		w.bw.Close()
		return fmt.Errorf("finish %s: %w", w.key, err)
	}
	if err := w.bw.Close(); err != nil {
		return fmt.Errorf("close %s: %w", w.key, err)
	}
	return nil
}

// Abort discards the object: cancelling the writer's context before Close
// makes gocloud drop the upload.
func (w *Writer[T]) Abort() {
	w.cancel()
	w.bw.Close()
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
