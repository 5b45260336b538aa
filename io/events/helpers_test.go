package events

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/shelfml/shelf/configs"
)

var update = flag.Bool("update", false, "rewrite golden files, the malformed corpus and fuzz seeds")

const testdataDir = "../../testdata"

// onlineRetailConfig is the bundled demo's events config (configs/ holds the YAML).
func onlineRetailConfig() configs.EventsConfig {
	c := configs.Default().Events
	c.Columns = configs.ColumnsConfig{User: "CustomerID", Item: "StockCode", TS: "InvoiceDate",
		Quantity: "Quantity", Price: "UnitPrice"}
	c.Timestamp.Layout = "2006-01-02 15:04:05"
	c.Timestamp.Timezone = "Europe/London"
	c.EventTypes = []configs.EventTypeConfig{{Name: "purchase", Weight: 1, Purchase: true}}
	c.DefaultEventType = "purchase"
	c.Filters = []configs.FilterConfig{
		{Name: "guest_checkout", Column: "CustomerID", Op: "not_null"},
		{Name: "cancellation", Column: "InvoiceNo", Op: "not_prefix", Value: "C"},
		{Name: "non_positive_quantity", Column: "Quantity", Op: ">", Value: "0"},
	}
	return c
}

// checkedMem returns an allocator that fails t if Arrow memory leaks.
func checkedMem(t testing.TB) memory.Allocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// bucketKinds opens the same objects through mem:// and file://.
var bucketKinds = []struct {
	name string
	open func(t testing.TB, files map[string][]byte) *blob.Bucket
}{
	{"mem", memBucket},
	{"file", fileBucket},
}

func memBucket(t testing.TB, files map[string][]byte) *blob.Bucket {
	b := memblob.OpenBucket(nil)
	t.Cleanup(func() { b.Close() })
	upload(t, b, files)
	return b
}

func fileBucket(t testing.TB, files map[string][]byte) *blob.Bucket {
	b, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	upload(t, b, files)
	return b
}

func upload(t testing.TB, b *blob.Bucket, files map[string][]byte) {
	for k, v := range files {
		if err := b.WriteAll(context.Background(), k, v, nil); err != nil {
			t.Fatalf("upload %s: %v", k, err)
		}
	}
}

// parquetBytes writes rows (one []any per row, nil = null) with schema sc;
// rowGroup > 0 splits row groups every rowGroup rows; props override the
// defaults (Snappy, dictionaries).
func parquetBytes(t testing.TB, sc *arrow.Schema, rows [][]any, rowGroup int, props ...parquet.WriterProperty) []byte {
	t.Helper()
	mem := memory.NewGoAllocator()
	var buf bytes.Buffer
	opts := append([]parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Snappy)}, props...)
	if rowGroup > 0 {
		opts = append(opts, parquet.WithMaxRowGroupLength(int64(rowGroup)))
	}
	w, err := pqarrow.NewFileWriter(sc, &buf, parquet.NewWriterProperties(opts...),
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		t.Fatal(err)
	}
	rb := array.NewRecordBuilder(mem, sc)
	defer rb.Release()
	for _, row := range rows {
		for j, v := range row {
			appendValue(t, rb.Field(j), v)
		}
	}
	rec := rb.NewRecord()
	defer rec.Release()
	if rec.NumRows() > 0 {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func appendValue(t testing.TB, b array.Builder, v any) {
	t.Helper()
	if v == nil {
		b.AppendNull()
		return
	}
	switch b := b.(type) {
	case *array.StringBuilder:
		b.Append(v.(string))
	case *array.BinaryDictionaryBuilder:
		if err := b.AppendString(v.(string)); err != nil {
			t.Fatal(err)
		}
	case *array.Int64Builder:
		b.Append(int64(asFloat(t, v)))
	case *array.Int32Builder:
		b.Append(int32(asFloat(t, v)))
	case *array.Uint64Builder:
		b.Append(v.(uint64))
	case *array.Float64Builder:
		b.Append(asFloat(t, v))
	case *array.Float32Builder:
		b.Append(float32(asFloat(t, v)))
	case *array.BooleanBuilder:
		b.Append(v.(bool))
	case *array.TimestampBuilder:
		unit := b.Type().(*arrow.TimestampType).Unit
		ts, err := arrow.TimestampFromTime(v.(time.Time), unit)
		if err != nil {
			t.Fatal(err)
		}
		b.Append(ts)
	case *array.ListBuilder:
		b.Append(true)
		for _, s := range v.([]string) {
			b.ValueBuilder().(*array.StringBuilder).Append(s)
		}
	case *array.StructBuilder:
		b.Append(true)
		b.FieldBuilder(0).(*array.Int64Builder).Append(int64(v.(int)))
	default:
		t.Fatalf("appendValue: unsupported builder %T", b)
	}
}

// asFloat reads an int, int64 or float64 fixture value.
func asFloat(t testing.TB, v any) float64 {
	switch v := v.(type) {
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case float64:
		return v
	}
	t.Fatalf("asFloat: %T", v)
	return 0
}

// golden compares got with testdata file name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(testdataDir, name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden (run with -update if intended)\n got: %s\nwant: %s", name, got, want)
	}
}

// rejectLog is a RejectSink that keeps everything.
type rejectLog struct{ rows []Reject }

func (l *rejectLog) Reject(r Reject) error {
	l.rows = append(l.rows, r)
	return nil
}
