package events

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"gocloud.dev/blob"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/internal/sysres"
	"github.com/shelfml/shelf/io/blobs"
)

// scanner streams the record batches of Parquet objects through Arrow for
// both inputs (events and catalog), within the configured size limits.
type scanner struct {
	input   string // "events" or "catalog", for messages
	bucket  *blob.Bucket
	mem     memory.Allocator
	bufSize int64
	limits  configs.LimitsConfig // every field set
}

func newScanner(input string, bucket *blob.Bucket, mem memory.Allocator, bufSize int64, l configs.LimitsConfig) *scanner {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	if bufSize <= 0 {
		bufSize = defaultBufferSize
	}
	return &scanner{input: input, bucket: bucket, mem: mem, bufSize: bufSize, limits: withDefaultLimits(l)}
}

// withDefaultLimits fills unset (non-positive) limits: the byte sizes from
// the memory this process may use (sysres.MemoryBudget: the Go memory limit,
// else the cgroup's, else the machine's), the others with the defaults.
func withDefaultLimits(l configs.LimitsConfig) configs.LimitsConfig {
	d := configs.DefaultLimits()
	if l.MaxRowsPerFile <= 0 {
		l.MaxRowsPerFile = d.MaxRowsPerFile
	}
	budget := sysres.MemoryBudget(8 << 30)
	if l.MaxRowGroupBytes <= 0 {
		l.MaxRowGroupBytes = min(max(budget/4, 256<<20), 4<<30)
	}
	if l.MaxColumnChunkBytes <= 0 {
		l.MaxColumnChunkBytes = min(max(budget/8, 64<<20), 1<<30)
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = d.MaxValueBytes
	}
	return l
}

// ratioFloor: column chunks smaller than this are not held to
// max_compression_ratio: a constant column compresses beyond any sane ratio
// and costs nothing to decode.
const ratioFloor = 1 << 20

// fileColumns binds config column names to one file's top-level columns and
// collects the Parquet leaves to read.
type fileColumns struct {
	s      *scanner
	key    string
	sc     *arrow.Schema
	man    *pqarrow.SchemaManifest
	leaves []int          // Parquet leaf column indices, in record order
	pos    map[string]int // file column name → record column
	pf     *file.Reader
	// pages, when bind sets it, decodes the file instead of Arrow's record
	// reader (the page decoder, pages.go), after the metadata checks.
	pages func(ra io.ReaderAt, total int64) error
	// readBuf is the read buffer of one column chunk reader: no larger
	// than the largest projected column chunk (set by checkMetadata), since
	// every chunk reader allocates and zeroes one, and a file of many small
	// row groups would otherwise churn a full buffer per chunk.
	readBuf int64
}

// need finds the top-level column name, checks its type and, when read is
// set, projects it. role names the mapping in errors ("user_id", "filter f").
func (c *fileColumns) need(name, role string, check func(arrow.DataType) error, read bool) (arrow.DataType, error) {
	idx := c.sc.FieldIndices(name)
	if len(idx) == 0 {
		have := make([]string, 0, c.sc.NumFields())
		for _, f := range c.sc.Fields() {
			have = append(have, strconv.Quote(f.Name))
		}
		return nil, c.s.dataErr(c.key, name, "missing (mapped as %s); the file has %s", role, strings.Join(have, ", "))
	}
	f := c.sc.Field(idx[0])
	if err := check(f.Type); err != nil {
		return nil, c.s.dataErr(c.key, name, "%s: %v", role, err)
	}
	leaf := c.man.Fields[idx[0]].ColIndex
	if leaf < 0 { // nested although its type looked flat: refuse rather than guess
		return nil, c.s.dataErr(c.key, name, "%s: unsupported nested type %s", role, f.Type)
	}
	if _, ok := c.pos[name]; read && !ok {
		c.pos[name] = len(c.leaves)
		c.leaves = append(c.leaves, leaf)
	}
	return f.Type, nil
}

// column returns the record column of a projected file column.
func (c *fileColumns) column(rec arrow.Record, name string) arrow.Array {
	return rec.Column(c.pos[name])
}

// dataErr builds a file-level *DataError.
func (s *scanner) dataErr(key, column, format string, a ...any) *DataError {
	return &DataError{Input: s.input, File: key, Column: column, Row: -1, Reason: fmt.Sprintf(format, a...)}
}

// limitErr reports a violated limit and how to raise it.
func (s *scanner) limitErr(key, column string, row int64, setting, format string, a ...any) *DataError {
	env := "SHELF_EVENTS_LIMITS_" + strings.ToUpper(setting)
	return &DataError{Input: s.input, File: key, Column: column, Row: row,
		Reason: fmt.Sprintf(format, a...) + fmt.Sprintf(" (limit events.limits.%s; raise it, or %s, if the file is genuine)", setting, env)}
}

// scanFile opens one object, lets bind check its schema and project its
// columns, checks the size limits against the file's metadata before
// decoding anything, then hands each record batch and its first row to each,
// in row order, checking value sizes and buffers while decoding. Storage
// failures come back wrapped (retryable), everything else as a *DataError.
func (s *scanner) scanFile(ctx context.Context, o object, bind func(*fileColumns) error, each func(rec arrow.Record, start int64) error) (err error) {
	if o.size == 0 {
		return s.dataErr(o.key, "", "empty object (0 bytes) is not a Parquet file")
	}
	ra := newRangeReaderAt(ctx, s.bucket, o.key, o.size)
	if o.size <= s.bufSize {
		if err := ra.prefetch(); err != nil {
			return fmt.Errorf("read %s %s: %w", s.input, o.key, err)
		}
	}
	// classify tells a storage failure (retryable) from a malformed file.
	classify := func(what string, err error) error {
		if ioErr := ra.ioErr(); ioErr != nil {
			return fmt.Errorf("read %s %s: %w", s.input, o.key, ioErr)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("read %s %s: %w", s.input, o.key, ctx.Err())
		}
		return s.dataErr(o.key, "", "file is not valid Parquet: %s: %v", what, err)
	}
	var (
		row       int64   // first row of the batch being decoded
		rgStarts  []int64 // first row of each row group
		rowGroupN = func(r int64) int { return sort.Search(len(rgStarts), func(i int) bool { return rgStarts[i] > r }) - 1 }
	)
	// Arrow panics on some corrupt inputs, and the allocator below panics on
	// an oversized buffer; a panic must never leave the reader.
	defer func() {
		if p := recover(); p != nil {
			if big, ok := p.(*bufferTooLarge); ok {
				where := "opening the file"
				if g := rowGroupN(row); g >= 0 {
					where = fmt.Sprintf("decoding row group %d (rows from %d)", g, row)
				}
				err = s.limitErr(o.key, "", -1, "max_column_chunk_bytes",
					"%s needs a %d-byte buffer, over %d: its pages declare more than its metadata", where, big.size, s.bufferCap())
				return
			}
			err = classify("decode", fmt.Errorf("%v", p))
		}
	}()

	mem := &cappedAllocator{Allocator: s.mem, max: s.bufferCap()}
	props := parquet.NewReaderProperties(mem)
	props.BufferedStreamEnabled = true // stream pages instead of loading whole column chunks
	// Each column reader allocates (and zeroes) a buffer this big: no
	// larger than the file, or small partitions spend their time in memclr.
	props.BufferSize = min(s.bufSize, max(o.size, 64<<10))
	pf, err := file.NewParquetReader(ra, file.WithReadProps(props))
	if err != nil {
		return classify("open", err)
	}
	defer pf.Close()
	// Batches no longer than the file: builders reserve (and zero) a batch's rows.
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: min(batchRows, max(1, pf.NumRows()))}, mem)
	if err != nil {
		return classify("schema", err)
	}
	sc, err := fr.Schema()
	if err != nil {
		return classify("schema", err)
	}
	cols := &fileColumns{s: s, key: o.key, sc: sc, man: fr.Manifest, pos: map[string]int{}, pf: pf}
	if err := bind(cols); err != nil {
		return err
	}
	total := pf.NumRows()
	if rgStarts, err = s.checkMetadata(o.key, pf, cols); err != nil {
		return err
	}
	props.BufferSize = cols.readBuf
	if total == 0 {
		return nil
	}
	if cols.pages != nil {
		err := cols.pages(ra, total)
		var de *DataError
		var pe errPage
		switch {
		case err == nil, errors.As(err, &de):
			return err
		case errors.As(err, &pe):
			return classify("decode", pe.err)
		}
		if ra.ioErr() != nil {
			return classify("decode", err)
		}
		return err // cancelled
	}
	rr, err := fr.GetRecordReader(ctx, cols.leaves, nil)
	if err != nil {
		return classify("open record reader", err)
	}
	defer rr.Release()
	for rr.Next() {
		rec := rr.Record()
		if row+rec.NumRows() > total {
			return s.dataErr(o.key, "", "file is not valid Parquet: more rows than the %d in its metadata", total)
		}
		for j, f := range rec.Schema().Fields() {
			if i, n := longestValue(rec.Column(j), s.limits.MaxValueBytes); i >= 0 {
				return s.limitErr(o.key, f.Name, row+int64(i), "max_value_bytes",
					"row group %d: a %d-byte value, over %d", rowGroupN(row+int64(i)), n, s.limits.MaxValueBytes)
			}
		}
		if err := each(rec, row); err != nil {
			return err
		}
		row += rec.NumRows()
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return classify(fmt.Sprintf("row %d", row), err)
	}
	if row != total {
		return s.dataErr(o.key, "", "file is not valid Parquet: read %d rows, metadata says %d", row, total)
	}
	return nil
}

// checkMetadata holds the file's declared sizes of the projected columns to
// the limits, and returns the first row of each row group.
func (s *scanner) checkMetadata(key string, pf *file.Reader, cols *fileColumns) ([]int64, error) {
	l := s.limits
	if n := pf.NumRows(); n > l.MaxRowsPerFile {
		return nil, s.limitErr(key, "", -1, "max_rows_per_file", "%d rows, over %d per file", n, l.MaxRowsPerFile)
	}
	md := pf.MetaData()
	names := make(map[int]string, len(cols.leaves))
	for name, p := range cols.pos {
		names[cols.leaves[p]] = name
	}
	starts := make([]int64, 0, pf.NumRowGroups())
	var next, biggest int64
	for g := 0; g < pf.NumRowGroups(); g++ {
		rg := md.RowGroup(g)
		starts = append(starts, next)
		if rg.NumRows() < 0 {
			return nil, s.dataErr(key, "", "file is not valid Parquet: row group %d has %d rows", g, rg.NumRows())
		}
		next += rg.NumRows()
		var sum int64
		for _, leaf := range cols.leaves {
			cc, err := rg.ColumnChunk(leaf)
			if err != nil {
				return nil, s.dataErr(key, names[leaf], "file is not valid Parquet: row group %d: %v", g, err)
			}
			u, c := cc.TotalUncompressedSize(), cc.TotalCompressedSize()
			switch {
			case u < 0 || c < 0:
				return nil, s.dataErr(key, names[leaf], "file is not valid Parquet: row group %d: negative column chunk size", g)
			case u > l.MaxColumnChunkBytes:
				return nil, s.limitErr(key, names[leaf], -1, "max_column_chunk_bytes",
					"row group %d: column chunk of %d bytes uncompressed, over %d", g, u, l.MaxColumnChunkBytes)
			case l.MaxCompressionRatio > 0 && u >= ratioFloor && float64(u) > l.MaxCompressionRatio*float64(max(c, 1)):
				return nil, s.limitErr(key, names[leaf], -1, "max_compression_ratio",
					"row group %d: column chunk of %d bytes compressed into %d (%.0f:1), over %g:1 — a decompression bomb?",
					g, u, c, float64(u)/float64(max(c, 1)), l.MaxCompressionRatio)
			}
			sum += u
			biggest = max(biggest, c)
		}
		if sum > l.MaxRowGroupBytes {
			return nil, s.limitErr(key, "", -1, "max_row_group_bytes",
				"row group %d: %d bytes uncompressed in the columns read, over %d", g, sum, l.MaxRowGroupBytes)
		}
	}
	cols.readBuf = min(s.bufSize, max(biggest+4<<10, 8<<10))
	return starts, nil
}

// longestValue returns the first row of arr holding a string or binary
// value longer than limit, and its length; -1 when there is none.
func longestValue(arr arrow.Array, limit int64) (int, int64) {
	type varLen interface {
		arrow.Array
		ValueLen(int) int
		ValueBytes() []byte
	}
	switch a := arr.(type) {
	case varLen:
		if int64(len(a.ValueBytes())) <= limit { // no value can be longer than all of them
			return -1, 0
		}
		for i := 0; i < a.Len(); i++ {
			if n := int64(a.ValueLen(i)); n > limit && a.IsValid(i) {
				return i, n
			}
		}
	case *array.Dictionary:
		d, ok := a.Dictionary().(varLen)
		if !ok || int64(len(d.ValueBytes())) <= limit {
			return -1, 0
		}
		for i := 0; i < a.Len(); i++ {
			if !a.IsValid(i) {
				continue
			}
			if j := a.GetValueIndex(i); j >= 0 && j < d.Len() {
				if n := int64(d.ValueLen(j)); n > limit {
					return i, n
				}
			}
		}
	}
	return -1, 0
}

// minBufferCap is the least cappedAllocator allows: Arrow reserves a whole
// batch's offsets up front, whatever the file.
const minBufferCap = 16 * batchRows

// bufferCap is the largest buffer decoding may allocate: a column chunk's
// worth, but never less than a batch's offsets. (The range reads' buffers
// are Go memory, not the allocator's.)
func (s *scanner) bufferCap() int64 {
	return max(s.limits.MaxColumnChunkBytes, minBufferCap)
}

// bufferTooLarge is the panic value of cappedAllocator.
type bufferTooLarge struct{ size int }

// cappedAllocator refuses buffers over max bytes. The metadata checks bound
// what a file declares; this bounds what its page headers make Arrow
// allocate, which a crafted file can set independently.
type cappedAllocator struct {
	memory.Allocator
	max int64
}

func (a *cappedAllocator) Allocate(size int) []byte {
	if int64(size) > a.max {
		panic(&bufferTooLarge{size: size})
	}
	return a.Allocator.Allocate(size)
}

func (a *cappedAllocator) Reallocate(size int, b []byte) []byte {
	if int64(size) > a.max {
		panic(&bufferTooLarge{size: size})
	}
	return a.Allocator.Reallocate(size, b)
}

// listParquet returns the *.parquet objects under prefix (recursively) in key
// order, without those under a skip prefix and those with a path component
// (below prefix) starting with "_" or "." — the Hive/Spark convention for
// staging (_temporary/, _SUCCESS) and hidden files, which are half-written or
// not data; their count is returned. Each object carries an identity of its
// content: the store's MD5 where it lists one, else its ETag (S3 multipart
// uploads, some GCS and Azure objects), else — on a local file system, whose
// modification time changes with every copy — the SHA-256 of its bytes.
func listParquet(ctx context.Context, bucket *blob.Bucket, input, prefix string, skip []string) ([]object, int, error) {
	all, err := blobs.List(ctx, bucket, prefix)
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", input, err)
	}
	var objs []object
	hidden := 0
	for _, o := range all {
		if !strings.HasSuffix(o.Key, ".parquet") || slices.ContainsFunc(skip, func(p string) bool { return p != "" && strings.HasPrefix(o.Key, p) }) {
			continue
		}
		if hiddenPath(strings.TrimPrefix(o.Key, prefix)) {
			hidden++
			continue
		}
		objs = append(objs, object{key: o.Key, size: o.Size, mod: o.ModTime, md5: hex.EncodeToString(o.MD5)})
	}
	slices.SortFunc(objs, func(a, b object) int { return strings.Compare(a.key, b.key) })
	if err := identify(ctx, bucket, objs); err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", input, err)
	}
	return objs, hidden, nil
}

// hiddenPath reports whether a key has a component starting with "_" or ".".
func hiddenPath(key string) bool {
	for _, seg := range strings.Split(key, "/") {
		if strings.HasPrefix(seg, "_") || strings.HasPrefix(seg, ".") {
			return true
		}
	}
	return false
}

// identify fills the content identity of objects the listing gave no MD5.
func identify(ctx context.Context, bucket *blob.Bucket, objs []object) error {
	var fi os.FileInfo
	local := bucket.As(&fi)
	var todo []int
	for i := range objs {
		if objs[i].md5 == "" {
			todo = append(todo, i)
		}
	}
	var next atomic.Int64
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= len(todo) || ctx.Err() != nil {
					return
				}
				o := &objs[todo[k]]
				if local {
					o.sha256, errs[w] = blobs.SHA256(ctx, bucket, o.key)
				} else {
					var a *blob.Attributes
					if a, errs[w] = blobs.Attributes(ctx, bucket, o.key); a != nil {
						o.etag = a.ETag
					}
				}
				if errs[w] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// partitionDay finds the innermost dt=YYYY-MM-DD directory of key and
// returns its prefix and day in loc; ok is false when there is none or its
// value is not a date.
func partitionDay(key string, loc *time.Location) (prefix string, day time.Time, ok bool) {
	segs := strings.Split(key, "/")
	for i := len(segs) - 2; i >= 0; i-- { // the last segment is the file name
		v, found := strings.CutPrefix(segs[i], "dt=")
		if !found {
			continue
		}
		day, err := time.ParseInLocation("2006-01-02", v, loc)
		if err != nil {
			return "", time.Time{}, false // not a date: read it, the rows decide
		}
		return strings.Join(segs[:i+1], "/"), day, true
	}
	return "", time.Time{}, false
}
