package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/schema"
	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// The page decoder reads a file's projected columns page by page with
// parquet-go instead of materialising Arrow records: a dictionary-encoded
// string column arrives as int32 indices into its dictionary, so an id is
// validated and mapped once per dictionary entry rather than hashed once per
// row, and nothing is copied per row. It applies when every read column is
// flat and of a layout it handles (below) and no filter is configured;
// other files go through Arrow's record reader. Both give the same rows,
// rejects and accounting (tested on the same files).

// pageKind is a column's physical layout as the page decoder reads it.
type pageKind int

const (
	pageString pageKind = iota + 1 // BYTE_ARRAY: dictionary indices or plain values
	pageInt32
	pageInt64
	pageFloat
	pageDouble
)

// pageCol is one read column of a page plan.
type pageCol struct {
	name     string
	leaf     int
	kind     pageKind
	optional bool // max definition level 1 (0: required)
}

// pagePlan is how the page decoder reads one file; nil columns are unmapped.
type pagePlan struct {
	user, item, ts, evType, qty, price *pageCol
	tsPer                              int64 // ts units per second
}

// planPages returns the page plan for a file whose columns were bound by
// project, or nil when any read column needs Arrow's record reader.
func (r *reader) planPages(fc *fileColumns, p *projection) *pagePlan {
	if r.opts.ArrowRecords || len(p.filters) > 0 || fc.pf == nil {
		return nil
	}
	cols := r.opts.Config.Columns
	desc := fc.pf.MetaData().Schema
	col := func(name string, want func(arrow.DataType, *schema.Column) pageKind) (*pageCol, bool) {
		if name == "" {
			return nil, true
		}
		idx := fc.sc.FieldIndices(name)
		if len(idx) != 1 {
			return nil, false
		}
		leaf := fc.man.Fields[idx[0]].ColIndex
		if leaf < 0 || leaf >= desc.NumColumns() {
			return nil, false
		}
		d := desc.Column(leaf)
		if d.MaxRepetitionLevel() != 0 || d.MaxDefinitionLevel() > 1 || d.ColumnPath().String() != name {
			return nil, false
		}
		k := want(fc.sc.Field(idx[0]).Type, d)
		if k == 0 {
			return nil, false
		}
		return &pageCol{name: name, leaf: leaf, kind: k, optional: d.MaxDefinitionLevel() == 1}, true
	}
	str := func(dt arrow.DataType, d *schema.Column) pageKind {
		if (dt.ID() == arrow.STRING || dt.ID() == arrow.BINARY) && d.PhysicalType() == parquet.Types.ByteArray {
			return pageString
		}
		return 0
	}
	num := func(dt arrow.DataType, d *schema.Column) pageKind {
		pt := d.PhysicalType()
		switch {
		case dt.ID() == arrow.INT32 && pt == parquet.Types.Int32:
			return pageInt32
		case dt.ID() == arrow.INT64 && pt == parquet.Types.Int64:
			return pageInt64
		case dt.ID() == arrow.FLOAT32 && pt == parquet.Types.Float:
			return pageFloat
		case dt.ID() == arrow.FLOAT64 && pt == parquet.Types.Double:
			return pageDouble
		}
		return 0
	}
	plan := &pagePlan{}
	ts := func(dt arrow.DataType, d *schema.Column) pageKind {
		if d.PhysicalType() != parquet.Types.Int64 {
			return 0
		}
		// The stored unit, not the Arrow type's: a schema stored by the
		// writer may restore timestamp[s] over millisecond values.
		per := storedTSPer(d)
		switch dt.(type) {
		case *arrow.TimestampType:
			plan.tsPer = per
		case *arrow.Int64Type:
			if per != 0 {
				return 0
			}
			plan.tsPer = r.unit
		default:
			return 0
		}
		return pageInt64
	}
	var ok [6]bool
	plan.user, ok[0] = col(cols.User, str)
	plan.item, ok[1] = col(cols.Item, str)
	plan.ts, ok[2] = col(cols.TS, ts)
	plan.evType, ok[3] = col(cols.EventType, str)
	plan.qty, ok[4] = col(cols.Quantity, num)
	plan.price, ok[5] = col(cols.Price, num)
	for _, o := range ok {
		if !o {
			return nil
		}
	}
	if plan.tsPer <= 0 {
		return nil
	}
	return plan
}

// storedTSPer is the units per second of a Parquet timestamp column (0: not
// a timestamp, or a unit the page decoder does not know).
func storedTSPer(d *schema.Column) int64 {
	u := schema.TimeUnitUnknown
	switch lt := d.LogicalType().(type) {
	case schema.TimestampLogicalType:
		u = lt.TimeUnit()
	case *schema.TimestampLogicalType:
		u = lt.TimeUnit()
	default:
		switch d.ConvertedType() {
		case schema.ConvertedTypes.TimestampMillis:
			return 1e3
		case schema.ConvertedTypes.TimestampMicros:
			return 1e6
		}
		return 0
	}
	switch u {
	case schema.TimeUnitMillis:
		return 1e3
	case schema.TimeUnitMicros:
		return 1e6
	case schema.TimeUnitNanos:
		return 1e9
	}
	return 0
}

// pageDict is a string column chunk's dictionary: its entries once, and the
// vocabulary index of each, filled by the merge as entries are first met.
type pageDict struct {
	vals []string
	ids  []int32 // −1 until merged
	typ  []int16 // event types: the type index of each entry, −1 unknown
}

// cursor walks one column chunk's pages.
type cursor struct {
	col     *pageCol
	pages   pq.Pages
	page    pq.Page
	n, at   int    // rows in the page, next row
	vi      int    // next non-null value
	def     []byte // definition levels of optional columns
	i32     []int32
	i64     []int64
	f32     []float32
	f64     []float64
	idx     []int32 // dictionary indices of the page's non-null values (strings)
	indexed bool    // the page is dictionary-encoded
	dict    *pageDict
	src     pq.Dictionary // the chunk dictionary the dict* fields were built from
	dictLen int
	dictI32 []int32
	dictI64 []int64
	dictF32 []float32
	dictF64 []float64
	xI32    []int32 // dictionary pages' values looked up (owned, reused)
	xI64    []int64
	xF32    []float32
	xF64    []float64
	strs    []string // plain string values of the page
	types   map[string]uint8
}

// errPage marks a page decoding failure (the file, not storage).
type errPage struct{ err error }

func (e errPage) Error() string { return e.err.Error() }
func (e errPage) Unwrap() error { return e.err }

// fill makes the current page have rows left, reading the next one when
// the current one is exhausted.
func (c *cursor) fill() error {
	for c.at >= c.n {
		if c.page != nil {
			pq.Release(c.page)
			c.page = nil
		}
		pg, err := c.pages.ReadPage()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errPage{fmt.Errorf("column %s ends before its row group", c.col.name)}
			}
			return errPage{fmt.Errorf("column %s: %w", c.col.name, err)}
		}
		if err := c.load(pg); err != nil {
			pq.Release(pg)
			return errPage{fmt.Errorf("column %s: %w", c.col.name, err)}
		}
		c.page = pg
	}
	return nil
}

// physical is the parquet-go value kind of a page kind.
func (k pageKind) physical() encoding.Kind {
	switch k {
	case pageString:
		return encoding.ByteArray
	case pageInt32:
		return encoding.Int32
	case pageInt64:
		return encoding.Int64
	case pageFloat:
		return encoding.Float
	case pageDouble:
		return encoding.Double
	}
	return encoding.Undefined
}

// load points the cursor's views at pg's values.
func (c *cursor) load(pg pq.Page) error {
	n := int(pg.NumRows())
	c.def = nil
	nv := n
	if c.col.optional {
		c.def = pg.DefinitionLevels()
		if len(c.def) != n {
			return fmt.Errorf("page of %d rows has %d definition levels", n, len(c.def))
		}
		nv = 0
		for _, d := range c.def {
			if d > 1 {
				return fmt.Errorf("definition level %d over 1", d)
			}
			nv += int(d)
		}
	}
	data := pg.Data()
	want := c.col.kind.physical()
	var idx []int32
	d := pg.Dictionary()
	if d != nil {
		if data.Kind() != encoding.Int32 {
			return fmt.Errorf("dictionary page of %v indices", data.Kind())
		}
		idx = data.Int32()
		if d != c.src {
			if err := c.loadDict(d, want); err != nil {
				return err
			}
		}
		for _, j := range idx {
			if j < 0 || int(j) >= c.dictLen {
				return fmt.Errorf("dictionary index %d outside its %d entries", j, c.dictLen)
			}
		}
	} else if data.Kind() != want {
		return fmt.Errorf("%v values in a %v column", data.Kind(), want)
	}
	var got int
	switch c.col.kind {
	case pageString:
		c.idx, c.indexed, c.strs = idx, d != nil, c.strs[:0]
		if d != nil {
			got = len(idx)
		} else {
			vals, offs := data.ByteArray()
			if len(offs) > 0 {
				s := string(vals) // one copy per page; rows alias it
				for k := 0; k+1 < len(offs); k++ {
					c.strs = append(c.strs, s[offs[k]:offs[k+1]])
				}
			}
			got = len(c.strs)
		}
	case pageInt32:
		c.i32, got = pick(d != nil, idx, c.dictI32, data.Int32, &c.xI32)
	case pageInt64:
		c.i64, got = pick(d != nil, idx, c.dictI64, data.Int64, &c.xI64)
	case pageFloat:
		c.f32, got = pick(d != nil, idx, c.dictF32, data.Float, &c.xF32)
	case pageDouble:
		c.f64, got = pick(d != nil, idx, c.dictF64, data.Double, &c.xF64)
	}
	if got != nv {
		return fmt.Errorf("page holds %d values for %d non-null rows", got, nv)
	}
	c.n, c.at, c.vi = n, 0, 0
	return nil
}

// pick is a numeric page's values: the page's own (parquet-go memory, valid
// until the page is released), or its dictionary indices looked up into
// *own, a buffer of the cursor's that never aliases a page.
func pick[T any](indexed bool, idx []int32, dict []T, plain func() []T, own *[]T) ([]T, int) {
	if !indexed {
		v := plain()
		return v, len(v)
	}
	buf := (*own)[:0]
	for _, j := range idx {
		buf = append(buf, dict[j])
	}
	*own = buf
	return buf, len(buf)
}

// loadDict copies the chunk dictionary's entries out of parquet-go memory.
func (c *cursor) loadDict(d pq.Dictionary, want encoding.Kind) error {
	data := d.Page().Data()
	if data.Kind() != want {
		return fmt.Errorf("%v dictionary in a %v column", data.Kind(), want)
	}
	c.src = d
	switch c.col.kind {
	case pageInt32:
		c.dictI32 = slices.Clone(data.Int32())
		c.dictLen = len(c.dictI32)
	case pageInt64:
		c.dictI64 = slices.Clone(data.Int64())
		c.dictLen = len(c.dictI64)
	case pageFloat:
		c.dictF32 = slices.Clone(data.Float())
		c.dictLen = len(c.dictF32)
	case pageDouble:
		c.dictF64 = slices.Clone(data.Double())
		c.dictLen = len(c.dictF64)
	case pageString:
		vals, offs := data.ByteArray()
		s := string(vals)
		pd := &pageDict{}
		for k := 0; k+1 < len(offs); k++ {
			pd.vals = append(pd.vals, s[offs[k]:offs[k+1]])
		}
		pd.ids = make([]int32, len(pd.vals))
		for k := range pd.ids {
			pd.ids[k] = -1
		}
		if c.types != nil {
			pd.typ = make([]int16, len(pd.vals))
			for k, v := range pd.vals {
				pd.typ[k] = -1
				if t, ok := c.types[v]; ok {
					pd.typ[k] = int16(t)
				}
			}
		}
		c.dict, c.dictLen = pd, len(pd.vals)
	}
	return nil
}

// next consumes the cursor's next row: its value position and whether it
// is non-null.
func (c *cursor) next() (int, bool) {
	r := c.at
	c.at++
	if c.def != nil && c.def[r] == 0 {
		return 0, false
	}
	v := c.vi
	c.vi++
	return v, true
}

// str is the string at value position v and its dictionary entry (−1: plain).
func (c *cursor) str(v int) (string, int32) {
	if c.indexed {
		j := c.idx[v]
		return c.dict.vals[j], j
	}
	return c.strs[v], -1
}

// num is the number at value position v as float64.
func (c *cursor) num(v int) float64 {
	switch c.col.kind {
	case pageInt32:
		return float64(c.i32[v])
	case pageInt64:
		return float64(c.i64[v])
	case pageFloat:
		return float64(c.f32[v])
	case pageDouble:
		return c.f64[v]
	}
	return 0
}

func (c *cursor) close() {
	if c.page != nil {
		pq.Release(c.page)
		c.page = nil
	}
	if c.pages != nil {
		c.pages.Close()
	}
}

// decodePages decodes one file by plan, sending batches of at most
// batchRows rows (never spanning row groups) in row order.
func (r *reader) decodePages(ctx context.Context, fi int, key string, ra io.ReaderAt, size, total, readBuf int64, plan *pagePlan, send func(*batch) bool) error {
	f, err := pq.OpenFile(ra, size, pq.SkipPageIndex(true), pq.SkipBloomFilters(true), pq.ReadBufferSize(int(readBuf)))
	if err != nil {
		return errPage{fmt.Errorf("open: %w", err)}
	}
	cols := []*pageCol{plan.user, plan.item, plan.ts, plan.evType, plan.qty, plan.price}
	var row int64
	for g, rg := range f.RowGroups() {
		chunks := rg.ColumnChunks()
		curs := make([]*cursor, len(cols))
		closeAll := func() {
			for _, c := range curs {
				if c != nil {
					c.close()
				}
			}
		}
		for k, pc := range cols {
			if pc == nil {
				continue
			}
			if pc.leaf >= len(chunks) {
				closeAll()
				return errPage{fmt.Errorf("row group %d has no column %d", g, pc.leaf)}
			}
			if err := r.checkPages(ra, key, g, row, &f.Metadata().RowGroups[g].Columns[pc.leaf], rg.NumRows()); err != nil {
				closeAll()
				return err
			}
			curs[k] = &cursor{col: pc, pages: chunks[pc.leaf].Pages()}
		}
		if curs[3] != nil {
			curs[3].types = r.typeIdx
		}
		err := r.decodeRowGroup(ctx, fi, key, g, rg.NumRows(), &row, curs, plan, send)
		closeAll()
		if err != nil {
			return err
		}
	}
	if row != total {
		return errPage{fmt.Errorf("read %d rows, metadata says %d", row, total)}
	}
	return nil
}

// decodeRowGroup decodes row group g's n rows starting at file row *row.
func (r *reader) decodeRowGroup(ctx context.Context, fi int, key string, g int, n int64, row *int64, curs []*cursor, plan *pagePlan, send func(*batch) bool) error {
	user, item, ts, evType, qty, price := curs[0], curs[1], curs[2], curs[3], curs[4], curs[5]
	cols := r.opts.Config.Columns
	values := r.opts.Rejects != nil
	limit := r.scan.limits.MaxValueBytes
	forget := r.opts.Forget
	if len(forget) == 0 {
		forget = nil
	}
	for left := n; left > 0; {
		b := &batch{file: fi, cands: newCands(int(min(left, batchRows)))}
		reject := func(i int64, col, reason, value string) {
			rj := Reject{File: key, Row: i, Reason: reason}
			if values {
				rj.Column, rj.Value = col, truncate(value)
			}
			b.rejects = append(b.rejects, rj)
		}
		long := func(c *cursor, i int64, s string) error {
			return r.scan.limitErr(key, c.col.name, i, "max_value_bytes", "row group %d: a %d-byte value, over %d", g, len(s), limit)
		}
		for b.rows < batchRows && left > 0 {
			m := min(batchRows-b.rows, left)
			for _, c := range curs {
				if c == nil {
					continue
				}
				if err := c.fill(); err != nil {
					return errPage{fmt.Errorf("row group %d, row %d: %w", g, *row, err)}
				}
				m = min(m, int64(c.n-c.at))
			}
			if user.indexed {
				b.udict = user.dict
			}
			if item.indexed {
				b.idict = item.dict
			}
		rows:
			for i := *row; i < *row+m; i++ {
				// Every column's cursor moves on every row, kept or not.
				tv, tok := ts.next()
				uv, uok := user.next()
				iv, iok := item.next()
				var ev, qv, pv int
				var eok, qok, pok bool
				if evType != nil {
					ev, eok = evType.next()
				}
				if qty != nil {
					qv, qok = qty.next()
				}
				if price != nil {
					pv, pok = price.next()
				}
				// Value sizes first, like the record reader's batch check.
				var us, is, es string
				var uref, iref int32 = -1, -1
				if uok {
					if us, uref = user.str(uv); int64(len(us)) > limit {
						return long(user, i, us)
					}
				}
				if iok {
					if is, iref = item.str(iv); int64(len(is)) > limit {
						return long(item, i, is)
					}
				}
				typ, etRef := r.defType, int32(-1)
				if eok {
					if es, etRef = evType.str(ev); int64(len(es)) > limit {
						return long(evType, i, es)
					}
				}
				if !tok {
					reject(i, cols.TS, ReasonNullTS, "")
					continue
				}
				sec := floorDiv(ts.i64[tv], plan.tsPer)
				if reason := r.timeReason(sec); reason != "" {
					raw := ""
					if values {
						raw = formatSec(sec)
					}
					reject(i, cols.TS, reason, raw)
					continue
				}
				if r.outsideWindow(sec) {
					b.outside++
					continue
				}
				if v, reason := checkStringID(us, uok, ReasonNullUser, ReasonBadUserID); reason != "" {
					reject(i, cols.User, reason, v)
					continue
				}
				if forget != nil && forget[us] {
					b.forgot = append(b.forgot, strings.Clone(us))
					continue
				}
				if v, reason := checkStringID(is, iok, ReasonNullItem, ReasonBadItemID); reason != "" {
					reject(i, cols.Item, reason, v)
					continue
				}
				if evType != nil {
					known := false
					if etRef >= 0 {
						if t := evType.dict.typ[etRef]; t >= 0 {
							typ, known = int(t), true
						}
					} else if t, ok := r.typeIdx[es]; ok {
						typ, known = int(t), true
					}
					if !known && r.opts.Config.UnknownEventType != "default" {
						reject(i, cols.EventType, ReasonUnknownEventType, es)
						continue rows
					}
				}
				c := candidate{user: us, item: is, uref: uref, iref: iref, ts: sec, typ: uint8(typ)}
				if qok {
					q := qty.num(qv)
					if !amountOK(q) {
						reject(i, cols.Quantity, ReasonBadQuantity, strconv.FormatFloat(q, 'g', -1, 64))
						continue rows
					}
					c.qty = float32(q)
				}
				if pok {
					pr := price.num(pv)
					if !amountOK(pr) {
						reject(i, cols.Price, ReasonBadPrice, strconv.FormatFloat(pr, 'g', -1, 64))
						continue rows
					}
					c.price = float32(pr)
				}
				b.cands = append(b.cands, c)
			}
			*row += m
			b.rows += m
			left -= m
		}
		if !send(b) {
			return fmt.Errorf("read events %s: %w", key, ctx.Err())
		}
	}
	return nil
}

// checkPages walks a column chunk's page headers (one small read each, no
// page bodies) before parquet-go reads it: parquet-go allocates what a page
// header declares, so a header declaring more than a column chunk may hold
// is refused here, as Arrow's capped allocator refuses it on the record
// path. rows bounds the values a page of a flat column may count.
func (r *reader) checkPages(ra io.ReaderAt, key string, g int, first int64, cc *format.ColumnChunk, rows int64) error {
	md := cc.MetaData
	base := md.DataPageOffset
	if md.DictionaryPageOffset != 0 {
		base = md.DictionaryPageOffset
	}
	end := base + md.TotalCompressedSize
	if base < 0 || md.TotalCompressedSize < 0 {
		return errPage{fmt.Errorf("row group %d: column chunk at %d of %d bytes", g, base, md.TotalCompressedSize)}
	}
	capBytes := r.scan.bufferCap()
	// Headers are parsed from a window of the chunk read ahead (64 KiB, more
	// for a header that needs it), re-read only when a header leaves it.
	var win []byte
	var winOff int64
	for off := base; off < end; {
		var h format.PageHeader
		var n int64
		for want := int64(64 << 10); ; want *= 8 {
			if off < winOff || off+min(want, end-off) > winOff+int64(len(win)) && winOff+int64(len(win)) < end {
				w := min(max(want, 64<<10), end-off)
				win = slices.Grow(win[:0], int(w))[:w]
				winOff = off
				if _, err := ra.ReadAt(win, off); err != nil && !errors.Is(err, io.EOF) {
					return err
				}
			}
			br := bytes.NewReader(win[off-winOff:])
			var proto thrift.CompactProtocol
			h = format.PageHeader{}
			err := thrift.NewDecoder(proto.NewReader(br)).Decode(&h)
			if err == nil {
				n = int64(len(win)) - (off - winOff) - int64(br.Len())
				break
			}
			if winOff+int64(len(win)) >= end || want >= capBytes || !(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
				return errPage{fmt.Errorf("row group %d: page header at %d: %w", g, off, err)}
			}
		}
		var values int64
		switch {
		case h.DataPageHeader.Valid:
			values = int64(h.DataPageHeader.V.NumValues)
		case h.DataPageHeaderV2.Valid:
			values = int64(h.DataPageHeaderV2.V.NumValues)
		case h.DictionaryPageHeader.Valid:
			values = int64(h.DictionaryPageHeader.V.NumValues)
		}
		switch {
		case int64(h.UncompressedPageSize) > capBytes || int64(h.CompressedPageSize) > capBytes:
			return r.scan.limitErr(key, "", -1, "max_column_chunk_bytes",
				"decoding row group %d (rows from %d) needs a %d-byte buffer, over %d: its pages declare more than its metadata",
				g, first, max(h.UncompressedPageSize, h.CompressedPageSize), capBytes)
		case h.CompressedPageSize < 0 || int64(h.CompressedPageSize) > end-off-n:
			return errPage{fmt.Errorf("row group %d: page at %d of %d bytes overruns its column chunk", g, off, h.CompressedPageSize)}
		case h.UncompressedPageSize < 0 || values < 0 || values > rows && !h.DictionaryPageHeader.Valid:
			return errPage{fmt.Errorf("row group %d: page at %d declares %d values, %d bytes", g, off, values, h.UncompressedPageSize)}
		}
		off += n + int64(h.CompressedPageSize)
	}
	return nil
}
