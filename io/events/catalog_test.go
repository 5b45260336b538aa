package events

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/shelfml/shelf/configs"
)

// catalogView is what a Catalog says about each item, by external id.
type catalogView map[string]struct {
	Category string // "" = unknown
	Price    float32
	HasPrice bool
}

func viewCatalog(c *Catalog) catalogView {
	v := catalogView{}
	for i, id := range c.Items.IDs() {
		if !c.Listed[i] {
			continue
		}
		e := v[id]
		if cat, ok := c.CategoryOf(int32(i)); ok {
			e.Category = c.Categories.ID(cat)
		}
		e.Price, e.HasPrice = c.PriceOf(int32(i))
		v[id] = e
	}
	return v
}

func TestReadCatalog(t *testing.T) {
	var log rejectLog
	opts := catalogTestOptions("catalog/items.parquet", configs.LimitsConfig{})
	opts.Rejects, opts.mem = &log, checkedMem(t)
	cat, acct, err := ReadCatalog(context.Background(), memBucket(t, map[string][]byte{"catalog/items.parquet": catalogRows(t)}), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !acct.Balanced() || acct.Read != 12 || acct.Used != 4 || acct.Duplicate != 1 {
		t.Fatalf("accounting %+v", acct)
	}
	want := catalogView{
		"i1": {Category: "shoes", Price: 10, HasPrice: true},
		"i2": {Category: "hats"},
		"i3": {Price: 5, HasPrice: true},
		"i4": {Price: 0, HasPrice: true},
	}
	if got := viewCatalog(cat); !reflect.DeepEqual(got, want) {
		t.Errorf("catalog = %+v\nwant %+v", got, want)
	}
	if cat.Items != opts.Items || cat.Items.Len() != 4 || !reflect.DeepEqual(cat.Categories.IDs(), []string{"shoes", "hats"}) {
		t.Errorf("items %v, categories %v", cat.Items.IDs(), cat.Categories.IDs())
	}
	f := "catalog/items.parquet"
	wantRejects := []Reject{
		{File: f, Row: 2, Column: "item_id", Reason: "null_item"},
		{File: f, Row: 3, Column: "item_id", Reason: "unknown_item", Value: "i9"},
		{File: f, Row: 4, Column: "price", Reason: "bad_price", Value: "-1"},
		{File: f, Row: 5, Column: "price", Reason: "bad_price", Value: "NaN"},
		{File: f, Row: 7, Column: "category", Reason: "conflicting_duplicate", Value: "bags (first row catalog/items.parquet:0: shoes)"},
		{File: f, Row: 8, Column: "price", Reason: "conflicting_duplicate", Value: "12 (first row catalog/items.parquet:0: 10)"},
		{File: f, Row: 11, Column: "item_id", Reason: "id_too_long", Value: bigString(maxValueLen)},
	}
	if !reflect.DeepEqual(log.rows, wantRejects) {
		t.Errorf("rejects = %+v\nwant %+v", log.rows, wantRejects)
	}
	if _, ok := cat.PriceOf(99); ok {
		t.Error("price of an item beyond the vocabulary")
	}
}

// TestReadCatalogOwnItems: without Items every valid item is accepted, and
// integer ids and categories read like the events' ids.
func TestReadCatalogOwnItems(t *testing.T) {
	sc := arrow.NewSchema([]arrow.Field{field("sku", arrow.PrimitiveTypes.Int64), field("cat", arrow.PrimitiveTypes.Int32)}, nil)
	data := parquetBytes(t, sc, [][]any{{85123, 7}, {22423, nil}, {85123, 7}, {nil, 1}}, 0)
	opts := CatalogOptions{Config: configs.CatalogConfig{Path: "items.parquet", Columns: configs.CatalogColumnsConfig{Item: "sku", Category: "cat"}}, mem: checkedMem(t)}
	cat, acct, err := ReadCatalog(context.Background(), memBucket(t, map[string][]byte{"items.parquet": data}), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !acct.Balanced() || acct.Used != 2 || acct.Duplicate != 1 || acct.Rejected["null_item"] != 1 {
		t.Fatalf("accounting %+v", acct)
	}
	want := catalogView{"85123": {Category: "7"}, "22423": {}}
	if got := viewCatalog(cat); !reflect.DeepEqual(got, want) {
		t.Errorf("catalog = %+v, want %+v", got, want)
	}
}

// TestReadCatalogPartitions: a prefix with dt= partitions reads only the
// newest on or before the as-of date; the events reader skips the catalog
// when told to.
func TestReadCatalogPartitions(t *testing.T) {
	snap := func(price float64) []byte { return parquetBytes(t, catalogSch, [][]any{{"i1", "shoes", price}}, 0) }
	files := map[string][]byte{
		"catalog/dt=2024-05-30/part-0.parquet": snap(1),
		"catalog/dt=2024-06-01/part-0.parquet": snap(2),
		"catalog/dt=2024-06-01/part-1.parquet": parquetBytes(t, catalogSch, [][]any{{"i2", "hats", 3.0}}, 0),
		"catalog/dt=2024-06-01/_SUCCESS":       nil,
		"catalog/dt=2024-06-02/part-0.parquet": snap(4),
		"catalogue.parquet":                    snap(5), // shares the prefix's letters, not its folder
		"dt=2024-06-01/events.parquet":         std(t, []any{"u1", "i1", at(0), "view"}),
	}
	bucket := memBucket(t, files)
	for _, tc := range []struct {
		asOf      time.Time
		wantPrice float32
		wantFiles int
		skipped   int
	}{
		{time.Date(2024, 6, 1, 23, 0, 0, 0, time.UTC), 2, 2, 2},
		{time.Time{}, 4, 1, 2},
		{time.Date(2024, 5, 31, 0, 0, 0, 0, time.UTC), 1, 1, 2},
	} {
		opts := catalogTestOptions("catalog", configs.LimitsConfig{})
		opts.AsOf, opts.mem = tc.asOf, checkedMem(t)
		cat, acct, err := ReadCatalog(context.Background(), bucket, opts)
		if err != nil {
			t.Fatal(err)
		}
		if p, _ := cat.PriceOf(0); p != tc.wantPrice || len(acct.Files) != tc.wantFiles || acct.PartitionsSkipped != tc.skipped {
			t.Errorf("as of %v: price %v, %d files, %d partitions skipped; want %v, %d, %d", tc.asOf, p, len(acct.Files), acct.PartitionsSkipped, tc.wantPrice, tc.wantFiles, tc.skipped)
		}
	}
	opts := catalogTestOptions("catalog", configs.LimitsConfig{})
	opts.AsOf = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	_, _, err := ReadCatalog(context.Background(), bucket, opts)
	var de *DataError
	if !errors.As(err, &de) || de.Error() != "catalog catalog/: no *.parquet object (on or before the as-of date) to read" {
		t.Errorf("catalog before every partition: %v", err)
	}

	cfg := configs.Default()
	cfg.Events.URL, cfg.Catalog.Path = "mem://", "catalog"
	in, acct, err := Read(context.Background(), bucket, Options{Config: testConfig(), Skip: []string{cfg.CatalogInEvents()}, mem: checkedMem(t)})
	if err == nil || !strings.Contains(err.Error(), "catalogue.parquet") {
		t.Errorf("catalogue.parquet is outside the catalog folder and no event file: %v", err)
	}
	delete(files, "catalogue.parquet")
	in, acct, err = Read(context.Background(), memBucket(t, files), Options{Config: testConfig(), Skip: []string{cfg.CatalogInEvents()}, mem: checkedMem(t)})
	if err != nil || len(acct.Files) != 1 || len(in.Events) != 1 {
		t.Errorf("events beside the catalog: %v, %+v", err, acct)
	}
}

func TestReadCatalogErrors(t *testing.T) {
	good := map[string][]byte{"items.parquet": catalogRows(t)}
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		edit  func(o *CatalogOptions)
		want  string
	}{
		{"no path", good, func(o *CatalogOptions) { o.Config.Path = "" }, "catalog: config: catalog.path and catalog.columns.item_id are required"},
		{"missing object", good, func(o *CatalogOptions) { o.Config.Path = "nope.parquet" }, "catalog nope.parquet: no *.parquet object (on or before the as-of date) to read"},
		{"empty object", map[string][]byte{"items.parquet": {}}, nil, "catalog items.parquet: empty object (0 bytes) is not a Parquet file"},
		{"category list", map[string][]byte{"items.parquet": parquetBytes(t, arrow.NewSchema([]arrow.Field{field("item_id", arrow.BinaryTypes.String),
			field("category", arrow.ListOf(arrow.BinaryTypes.String))}, nil), [][]any{{"i1", []string{"a", "b"}}}, 0)},
			func(o *CatalogOptions) { o.Config.Columns.Price = "" },
			"catalog items.parquet: column category: category: unsupported type list<list: utf8, nullable> (want string, integer or double)"},
		{"sink fails", good, func(o *CatalogOptions) { o.Rejects = failingSink{} }, "write reject of catalog items.parquet row 2: disk full"},
		{"too many rows", good, func(o *CatalogOptions) { o.Limits.MaxRowsPerFile = 5 },
			"catalog items.parquet: 12 rows, over 5 per file (limit events.limits.max_rows_per_file; raise it, or SHELF_EVENTS_LIMITS_MAX_ROWS_PER_FILE, if the file is genuine)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := catalogTestOptions("items.parquet", configs.LimitsConfig{})
			opts.mem = checkedMem(t)
			if tc.edit != nil {
				tc.edit(&opts)
			}
			_, acct, err := ReadCatalog(context.Background(), memBucket(t, tc.files), opts)
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v\nwant %s", err, tc.want)
			}
			if !acct.Balanced() {
				t.Errorf("not balanced: %+v", acct)
			}
		})
	}
}
