package events

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
)

// projection is what decoding one file's batches needs beyond its columns.
type projection struct {
	cols    *fileColumns
	filters []*filter // compiled for this file's types, config order
	ts      *tsColumn
}

// decodeFile streams one object's record batches to send, in row order,
// and says which decoder read it ("pages" or "arrow").
func (r *reader) decodeFile(ctx context.Context, fi int, o object, send func(*batch) bool) (string, error) {
	var p *projection
	decoder := "arrow"
	bind := func(cols *fileColumns) (err error) {
		if p, err = r.project(cols); err != nil {
			return err
		}
		if plan := r.planPages(cols, p); plan != nil {
			decoder = "pages"
			cols.pages = func(ra io.ReaderAt, total int64) error {
				return r.decodePages(ctx, fi, o.key, ra, o.size, total, cols.readBuf, plan, send)
			}
		}
		return nil
	}
	err := r.scan.scanFile(ctx, o, bind, func(rec arrow.Record, start int64) error {
		b, err := r.decodeBatch(fi, o.key, rec, p, start)
		if err != nil {
			return err
		}
		if !send(b) {
			return fmt.Errorf("read events %s: %w", o.key, ctx.Err())
		}
		return nil
	})
	return decoder, err
}

// project checks every mapped and filter column against the file's schema
// and chooses the columns to read.
func (r *reader) project(fcol *fileColumns) (*projection, error) {
	key, need := fcol.key, fcol.need
	cols := r.opts.Config.Columns
	p := &projection{cols: fcol}
	if _, err := need(cols.User, "user_id", checkIDType, true); err != nil {
		return nil, err
	}
	if _, err := need(cols.Item, "item_id", checkIDType, true); err != nil {
		return nil, err
	}
	tsType, err := need(cols.TS, "ts", checkTSType, true)
	if err != nil {
		return nil, err
	}
	p.ts = &tsColumn{unit: r.unit, layout: r.opts.Config.Timestamp.Layout, loc: r.loc}
	switch kindOf(tsType) {
	case kindInt:
		if r.unit == 0 {
			return nil, r.scan.dataErr(key, cols.TS, "ts: integer epoch needs events.timestamp.unit s, ms, us or ns, got %q", r.opts.Config.Timestamp.Unit)
		}
	case kindString:
		if p.ts.layout == "" {
			p.ts.layout = time.RFC3339Nano
		}
	}
	optional := []struct {
		name, role string
		check      func(arrow.DataType) error
		read       bool
	}{
		{cols.EventType, "event_type", checkStringType, true},
		{cols.Quantity, "quantity", checkNumberType, true},
		{cols.Price, "price", checkNumberType, true},
		// model.Event has no session or query yet: checked, not read.
		{cols.Session, "session_id", checkStringOrIntType, false},
		{cols.Query, "query", checkStringType, false},
	}
	for _, c := range optional {
		if c.name == "" {
			continue
		}
		if _, err := need(c.name, c.role, c.check, c.read); err != nil {
			return nil, err
		}
	}
	for _, fc := range r.opts.Config.Filters {
		dt, err := need(fc.Column, "filter "+fc.Name, func(arrow.DataType) error { return nil }, true)
		if err != nil {
			return nil, err
		}
		f, err := compileFilter(fc, dt)
		if err != nil {
			return nil, r.scan.dataErr(key, fc.Column, "%v", err)
		}
		p.filters = append(p.filters, f)
	}
	return p, nil
}

// timeReason is why a row at unix second sec is rejected: before 1970 or
// after the wall clock ("" when neither). Without a clock, after 2106-02-07
// (model.Event holds unix seconds as uint32) is the future.
func (r *reader) timeReason(sec int64) string {
	switch {
	case sec < 0:
		return ReasonTSBefore1970
	case r.hasNow && sec > r.nowSec, sec > math.MaxUint32:
		return ReasonFutureTS
	}
	return ""
}

// outsideWindow reports whether sec falls outside [Start, End).
func (r *reader) outsideWindow(sec int64) bool {
	return (r.hasStart && sec < r.startSec) || (r.hasEnd && sec >= r.endSec)
}

// formatSec is a rejected timestamp's reported value.
func formatSec(sec int64) string { return time.Unix(sec, 0).UTC().Format(time.RFC3339) }

// decodeBatch validates one record batch; start is its first row in the file.
func (r *reader) decodeBatch(fi int, key string, rec arrow.Record, p *projection, start int64) (b *batch, err error) {
	cols := r.opts.Config.Columns
	column := func(name string) arrow.Array { return p.cols.column(rec, name) }
	bindErr := func(name string, err error) error {
		return &DataError{File: key, Column: name, Row: start, Reason: fmt.Sprintf("file is not valid Parquet: %v", err)}
	}
	userCol := &idColumn{name: cols.User, null: ReasonNullUser, bad: ReasonBadUserID}
	itemCol := &idColumn{name: cols.Item, null: ReasonNullItem, bad: ReasonBadItemID}
	user, err := userCol.bind(column(cols.User))
	if err != nil {
		return nil, bindErr(cols.User, err)
	}
	item, err := itemCol.bind(column(cols.Item))
	if err != nil {
		return nil, bindErr(cols.Item, err)
	}
	ts, err := p.ts.bind(column(cols.TS))
	if err != nil {
		return nil, bindErr(cols.TS, err)
	}
	var evType func(int) (string, bool)
	if cols.EventType != "" {
		if evType, err = stringAccessor(column(cols.EventType)); err != nil {
			return nil, bindErr(cols.EventType, err)
		}
	}
	number := func(name string) (func(int) float64, error) {
		if name == "" {
			return func(int) float64 { return 0 }, nil
		}
		get, err := bindNumber(column(name))
		if err != nil {
			return nil, bindErr(name, err)
		}
		return get, nil
	}
	qty, err := number(cols.Quantity)
	if err != nil {
		return nil, err
	}
	price, err := number(cols.Price)
	if err != nil {
		return nil, err
	}
	pass := make([]func(int) bool, len(p.filters))
	for j, f := range p.filters {
		if pass[j], err = f.bind(column(f.cfg.Column)); err != nil {
			return nil, bindErr(f.cfg.Column, err)
		}
	}

	n := int(rec.NumRows())
	b = &batch{file: fi, rows: int64(n), cands: newCands(n)}
	values := r.opts.Rejects != nil
	forget := r.opts.Forget
	if len(forget) == 0 {
		forget = nil
	}
	reject := func(i int, col, reason, value string) {
		rj := Reject{File: key, Row: start + int64(i), Reason: reason}
		if values {
			rj.Column, rj.Value = col, truncate(value)
		}
		b.rejects = append(b.rejects, rj)
	}
rows:
	for i := 0; i < n; i++ {
		sec, reason, raw := ts(i)
		if reason == "" {
			reason = r.timeReason(sec)
		}
		if reason != "" {
			if values && raw == "" && reason != ReasonNullTS {
				raw = formatSec(sec)
			}
			reject(i, cols.TS, reason, raw)
			continue
		}
		if r.outsideWindow(sec) {
			b.outside++
			continue
		}
		for j, f := range p.filters {
			if !pass[j](i) {
				v := ""
				if values {
					if a := column(f.cfg.Column); a.IsValid(i) {
						v = a.ValueStr(i)
					}
				}
				reject(i, f.cfg.Column, f.reason, v)
				continue rows
			}
		}
		u, reason := user(i)
		if reason != "" {
			reject(i, cols.User, reason, u)
			continue
		}
		if forget != nil && forget[u] {
			b.forgot = append(b.forgot, strings.Clone(u))
			continue
		}
		it, reason := item(i)
		if reason != "" {
			reject(i, cols.Item, reason, it)
			continue
		}
		typ := r.defType
		if evType != nil {
			name, _ := evType(i)
			if t, ok := r.typeIdx[name]; ok {
				typ = int(t)
			} else if r.opts.Config.UnknownEventType != "default" {
				reject(i, cols.EventType, ReasonUnknownEventType, name)
				continue
			}
		}
		q, pr := qty(i), price(i)
		if !amountOK(q) {
			reject(i, cols.Quantity, ReasonBadQuantity, strconv.FormatFloat(q, 'g', -1, 64))
			continue
		}
		if !amountOK(pr) {
			reject(i, cols.Price, ReasonBadPrice, strconv.FormatFloat(pr, 'g', -1, 64))
			continue
		}
		b.cands = append(b.cands, candidate{user: u, item: it, uref: -1, iref: -1, ts: sec, typ: uint8(typ), qty: float32(q), price: float32(pr)})
	}
	rec.Retain() // candidates alias its strings until merged
	b.rec = rec
	return b, nil
}
