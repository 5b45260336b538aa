package events

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"gocloud.dev/blob"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/model"
)

// Reasons of rejected catalog rows (with ReasonNullItem, ReasonBadItemID and
// ReasonIDTooLong).
const (
	ReasonUnknownItem          = "unknown_item"          // not in CatalogOptions.Items
	ReasonConflictingDuplicate = "conflicting_duplicate" // item seen before with another category or price
	ReasonBadPrice             = "bad_price"             // NaN, infinite, negative or beyond MaxAmount (events: not negative)
	ReasonBadCategory          = "bad_category"          // non-integral double category id
)

// CatalogOptions configures one ReadCatalog.
type CatalogOptions struct {
	Config configs.CatalogConfig
	Limits configs.LimitsConfig // the events' limits; unset fields take the defaults
	// Items is the interactions' item vocabulary: rows of other items are
	// rejected "unknown_item". Nil accepts every item into Catalog.Items.
	Items *model.Vocab
	// AsOf picks, when the catalog prefix holds dt=YYYY-MM-DD partitions,
	// the newest one on or before its day; zero picks the newest.
	AsOf time.Time
	// Rejects receives every rejected row; may be nil.
	Rejects RejectSink

	mem memory.Allocator // Arrow allocator; tests set a checked one
}

// Catalog holds the item attributes, indexed like Items.
type Catalog struct {
	Items      *model.Vocab
	Categories *model.Vocab // category value ↔ dense id, in first-seen order
	Category   []int32      // per item; -1 = unknown (no row, null category or no category column)
	Price      []float32    // per item; NaN = unknown (no row, null price or no price column)
	Listed     []bool       // per item: has a catalog row
}

// CategoryOf returns item's category id, if known.
func (c *Catalog) CategoryOf(item int32) (int32, bool) {
	if int(item) >= len(c.Category) || c.Category[item] < 0 {
		return -1, false
	}
	return c.Category[item], true
}

// PriceOf returns item's price, if known.
func (c *Catalog) PriceOf(item int32) (float32, bool) {
	if int(item) >= len(c.Price) || math.IsNaN(float64(c.Price[item])) {
		return 0, false
	}
	return c.Price[item], true
}

// ReadCatalog reads the item catalog (Config.Path under bucket: one .parquet
// key, or every *.parquet below the prefix, in key order) into per-item
// category ids and prices. Every row read is used, counted as Duplicate (the
// same item again with identical values) or rejected with a reason; the
// first row of an item wins over later conflicting ones. The Accounting
// (OutsideWindow always 0) is returned even with an error and is always
// Balanced. A catalog that is missing, unreadable or of the wrong types
// yields a *DataError with Input "catalog".
func ReadCatalog(ctx context.Context, bucket *blob.Bucket, opts CatalogOptions) (*Catalog, *Accounting, error) {
	acct := &Accounting{Rejected: map[string]int64{}}
	cfg := opts.Config
	s := newScanner("catalog", bucket, opts.mem, 0, opts.Limits)
	if !cfg.Enabled() || cfg.Columns.Item == "" {
		return nil, acct, &DataError{Input: "catalog", Row: -1, Reason: "config: catalog.path and catalog.columns.item_id are required"}
	}
	objs, _, err := listParquet(ctx, bucket, "catalog", cfg.Prefix(), nil)
	if err != nil {
		return nil, acct, err
	}
	objs, acct.PartitionsSkipped = newestPartition(objs, opts.AsOf)
	if len(objs) == 0 {
		return nil, acct, s.dataErr(cfg.Prefix(), "", "no *.parquet object (on or before the as-of date) to read")
	}
	acct.Files = make([]FileStat, len(objs))
	for i, o := range objs {
		acct.Files[i] = o.stat()
	}
	cr := &catalogReader{opts: opts, scan: s, acct: acct,
		cat: &Catalog{Items: opts.Items, Categories: model.NewVocab()}, fixed: opts.Items != nil}
	if !cr.fixed {
		cr.cat.Items = model.NewVocab()
	}
	cr.grow()
	for i, o := range objs {
		if err := s.scanFile(ctx, o, cr.project, func(rec arrow.Record, start int64) error {
			return cr.batch(&acct.Files[i], o.key, rec, start)
		}); err != nil {
			return nil, acct, err
		}
	}
	cr.grow()
	return cr.cat, acct, nil
}

// catalogReader accumulates a catalog file by file.
type catalogReader struct {
	opts  CatalogOptions
	scan  *scanner
	acct  *Accounting
	cat   *Catalog
	fixed bool // items come from opts.Items
	cols  *fileColumns
	first []string // per item: where its first row was, for conflict messages
}

// grow sizes the per-item slices to the item vocabulary.
func (cr *catalogReader) grow() {
	c := cr.cat
	for len(c.Category) < c.Items.Len() {
		c.Category = append(c.Category, -1)
		c.Price = append(c.Price, float32(math.NaN()))
		c.Listed = append(c.Listed, false)
		cr.first = append(cr.first, "")
	}
}

func (cr *catalogReader) project(fc *fileColumns) error {
	cols := cr.opts.Config.Columns
	cr.cols = fc
	if _, err := fc.need(cols.Item, "item_id", checkIDType, true); err != nil {
		return err
	}
	if cols.Category != "" {
		if _, err := fc.need(cols.Category, "category", checkIDType, true); err != nil {
			return err
		}
	}
	if cols.Price != "" {
		if _, err := fc.need(cols.Price, "price", checkNumberType, true); err != nil {
			return err
		}
	}
	return nil
}

// batch validates one record batch and merges its rows.
func (cr *catalogReader) batch(fs *FileStat, key string, rec arrow.Record, start int64) error {
	cols := cr.opts.Config.Columns
	bindErr := func(name string, err error) error {
		return &DataError{Input: "catalog", File: key, Column: name, Row: start, Reason: fmt.Sprintf("file is not valid Parquet: %v", err)}
	}
	item, err := (&idColumn{null: ReasonNullItem, bad: ReasonBadItemID}).bind(cr.cols.column(rec, cols.Item))
	if err != nil {
		return bindErr(cols.Item, err)
	}
	category := func(int) (string, string) { return "", "" }
	if cols.Category != "" {
		// null or empty: no category, not a rejection
		if category, err = (&idColumn{bad: ReasonBadCategory}).bind(cr.cols.column(rec, cols.Category)); err != nil {
			return bindErr(cols.Category, err)
		}
	}
	price := func(int) (float64, bool) { return 0, false }
	if cols.Price != "" {
		if price, err = floatAccessor(cr.cols.column(rec, cols.Price)); err != nil {
			return bindErr(cols.Price, err)
		}
	}

	n := int(rec.NumRows())
	fs.Rows += int64(n)
	cr.acct.Read += int64(n)
	var rejects []Reject
	for i := 0; i < n; i++ {
		row := start + int64(i)
		reject := func(col, reason, value string) {
			cr.acct.Rejected[reason]++
			fs.Rejected[reason]++
			rejects = append(rejects, Reject{File: key, Row: row, Column: col, Reason: reason, Value: truncate(value)})
		}
		id, reason := item(i)
		if reason != "" {
			reject(cols.Item, reason, id)
			continue
		}
		idx, known := cr.cat.Items.Lookup(id)
		if !known && cr.fixed {
			reject(cols.Item, ReasonUnknownItem, id)
			continue
		}
		catName, reason := category(i)
		if reason != "" {
			reject(cols.Category, reason, catName)
			continue
		}
		p, hasPrice := price(i)
		if hasPrice && (!amountOK(p) || p < 0) {
			reject(cols.Price, ReasonBadPrice, strconv.FormatFloat(p, 'g', -1, 64))
			continue
		}
		pf := float32(math.NaN())
		if hasPrice {
			pf = float32(p)
		}
		catID := int32(-1)
		if catName != "" {
			var ok bool
			if catID, ok = cr.cat.Categories.Lookup(catName); !ok {
				catID = -2 // new: differs from any earlier row's
			}
		}
		if known && cr.cat.Listed[idx] {
			c := cr.cat
			switch {
			case catID != c.Category[idx]:
				reject(cols.Category, ReasonConflictingDuplicate, fmt.Sprintf("%s (first row %s: %s)", catName, cr.first[idx], categoryName(c, c.Category[idx])))
			case math.Float32bits(pf) != math.Float32bits(c.Price[idx]):
				reject(cols.Price, ReasonConflictingDuplicate, fmt.Sprintf("%v (first row %s: %v)", pf, cr.first[idx], c.Price[idx]))
			default:
				cr.acct.Duplicate++
			}
			continue
		}
		if !known {
			idx = addID(cr.cat.Items, id)
			cr.grow()
		}
		if catID == -2 {
			catID = addID(cr.cat.Categories, catName)
		}
		cr.cat.Category[idx], cr.cat.Price[idx], cr.cat.Listed[idx] = catID, pf, true
		cr.first[idx] = fmt.Sprintf("%s:%d", key, row)
		cr.acct.Used++
	}
	if cr.opts.Rejects != nil {
		for _, rj := range rejects {
			if err := cr.opts.Rejects.Reject(rj); err != nil {
				return fmt.Errorf("write reject of catalog %s row %d: %w", key, rj.Row, err)
			}
		}
	}
	return nil
}

func categoryName(c *Catalog, id int32) string {
	if id < 0 {
		return ""
	}
	return c.Categories.ID(id)
}

// newestPartition keeps, of the objects in dt=YYYY-MM-DD partitions, those
// of the newest day on or before asOf's (any day when asOf is zero);
// objects outside partitions are kept. It returns how many partitions it
// left out.
func newestPartition(objs []object, asOf time.Time) ([]object, int) {
	var limit time.Time
	if !asOf.IsZero() {
		limit = time.Date(asOf.Year(), asOf.Month(), asOf.Day(), 0, 0, 0, 0, time.UTC)
	}
	parts := map[string]time.Time{}
	var newest string
	for _, o := range objs {
		part, day, ok := partitionDay(o.key, time.UTC)
		if !ok {
			continue
		}
		parts[part] = day
		if (limit.IsZero() || !day.After(limit)) && (newest == "" || day.After(parts[newest]) || day.Equal(parts[newest]) && part > newest) {
			newest = part
		}
	}
	kept := objs[:0]
	for _, o := range objs {
		if part, _, ok := partitionDay(o.key, time.UTC); ok && part != newest {
			continue
		}
		kept = append(kept, o)
	}
	skipped := len(parts)
	if newest != "" {
		skipped--
	}
	return kept, skipped
}
