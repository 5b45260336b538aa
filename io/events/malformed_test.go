package events

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/file"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/model"
)

var (
	t0        = time.Date(2024, 6, 1, 10, 0, 0, 0, time.UTC)
	winStart  = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	winEnd    = time.Date(2024, 12, 1, 0, 0, 0, 0, time.UTC)
	wallClock = time.Date(2024, 12, 1, 12, 0, 0, 0, time.UTC)
)

func field(name string, dt arrow.DataType) arrow.Field {
	return arrow.Field{Name: name, Type: dt, Nullable: true}
}

var (
	tsMS   = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}
	stdSch = arrow.NewSchema([]arrow.Field{
		field("user_id", arrow.BinaryTypes.String),
		field("item_id", arrow.BinaryTypes.String),
		field("ts", tsMS),
		field("event_type", arrow.BinaryTypes.String),
	}, nil)
)

// testConfig maps the standard fixture schema.
func testConfig() configs.EventsConfig {
	c := configs.Default().Events
	c.Columns = configs.ColumnsConfig{User: "user_id", Item: "item_id", TS: "ts", EventType: "event_type"}
	return c
}

// std builds rows of the standard schema.
func std(t testing.TB, rows ...[]any) []byte { return parquetBytes(t, stdSch, rows, 0) }

func at(d time.Duration) time.Time { return t0.Add(d) }

type counts struct {
	Read, Used, Outside, Dup int64
	Rejected                 map[string]int64
}

// malformedCase is one file of testdata/malformed and what Read (or
// ReadCatalog) makes of it.
type malformedCase struct {
	name  string
	build func(t testing.TB) []byte
	cfg   func(c *configs.EventsConfig)
	// catalog reads the file with ReadCatalog (catalogTestOptions) instead of Read.
	catalog bool
	// key places the file (default name.parquet); extra are empty
	// non-Parquet objects uploaded beside it.
	key   string
	extra []string
	// either an error …
	errColumn, errContains string
	errRow                 int64 // -1: not row-specific
	// … or exact counts.
	want *counts
}

func bigString(n int) string { return strings.Repeat("x", n) }

// highRatio is 40,000 rows whose event_type is one 50-byte value,
// plain-encoded and zstd-compressed: 2 MB of column in about 1 KB.
func highRatio(t testing.TB) []byte {
	rows := make([][]any, 40_000)
	for i := range rows {
		rows[i] = []any{"u1", "i1", at(0), bigString(50)}
	}
	return parquetBytes(t, stdSch, rows, 0, parquet.WithCompression(compress.Codecs.Zstd), parquet.WithDictionaryDefault(false))
}

var malformedCases = []malformedCase{
	{name: "truncated", build: func(t testing.TB) []byte {
		b := std(t, []any{"u1", "i1", at(0), "view"}, []any{"u2", "i2", at(0), "view"})
		return b[:len(b)/2]
	}, errRow: -1, errContains: "not valid Parquet"},
	{name: "not_parquet", build: func(testing.TB) []byte {
		return []byte("user_id,item_id,ts\nu1,i1,2024-06-01\n")
	}, errRow: -1, errContains: "not valid Parquet"},
	{name: "empty", build: func(testing.TB) []byte { return []byte{} }, errRow: -1, errContains: "0 bytes"},
	{name: "bad_footer_length", build: func(t testing.TB) []byte {
		b := std(t, []any{"u1", "i1", at(0), "view"})
		b = append([]byte(nil), b...)
		b[len(b)-8], b[len(b)-7], b[len(b)-6], b[len(b)-5] = 0xff, 0xff, 0xff, 0x7f
		return b
	}, errRow: -1, errContains: "not valid Parquet"},
	{name: "missing_user", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema([]arrow.Field{field("item_id", arrow.BinaryTypes.String), field("ts", tsMS), field("event_type", arrow.BinaryTypes.String)}, nil)
		return parquetBytes(t, sc, [][]any{{"i1", at(0), "view"}}, 0)
	}, errColumn: "user_id", errRow: -1, errContains: "missing (mapped as user_id); the file has \""},
	{name: "missing_quantity", build: func(t testing.TB) []byte {
		return std(t, []any{"u1", "i1", at(0), "view"})
	}, cfg: func(c *configs.EventsConfig) { c.Columns.Quantity = "qty" }, errColumn: "qty", errRow: -1, errContains: "missing (mapped as quantity)"},
	{name: "user_bool", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema([]arrow.Field{field("user_id", arrow.FixedWidthTypes.Boolean), field("item_id", arrow.BinaryTypes.String), field("ts", tsMS), field("event_type", arrow.BinaryTypes.String)}, nil)
		return parquetBytes(t, sc, [][]any{{true, "i1", at(0), "view"}}, 0)
	}, errColumn: "user_id", errRow: -1, errContains: "unsupported type bool"},
	{name: "item_list", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema([]arrow.Field{field("user_id", arrow.BinaryTypes.String), field("item_id", arrow.ListOf(arrow.BinaryTypes.String)), field("ts", tsMS), field("event_type", arrow.BinaryTypes.String)}, nil)
		return parquetBytes(t, sc, [][]any{{"u1", []string{"i1", "i2"}, at(0), "view"}}, 0)
	}, errColumn: "item_id", errRow: -1, errContains: "unsupported type list"},
	{name: "ts_struct", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema([]arrow.Field{field("user_id", arrow.BinaryTypes.String), field("item_id", arrow.BinaryTypes.String),
			field("ts", arrow.StructOf(field("sec", arrow.PrimitiveTypes.Int64))), field("event_type", arrow.BinaryTypes.String)}, nil)
		return parquetBytes(t, sc, [][]any{{"u1", "i1", 1717236000, "view"}}, 0)
	}, errColumn: "ts", errRow: -1, errContains: "unsupported type struct"},
	{name: "filter_prefix_on_int", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema(append(stdSch.Fields(), field("qty", arrow.PrimitiveTypes.Int64)), nil)
		return parquetBytes(t, sc, [][]any{{"u1", "i1", at(0), "view", 1}}, 0)
	}, cfg: func(c *configs.EventsConfig) {
		c.Filters = []configs.FilterConfig{{Name: "f", Column: "qty", Op: "prefix", Value: "C"}}
	}, errColumn: "qty", errRow: -1, errContains: "needs a string column"},
	{name: "bad_ids", build: func(t testing.TB) []byte {
		return std(t, []any{"u\x00nul", "i1", at(0), "view"}, []any{"u\r\nlf", "i1", at(0), "view"}, []any{"\xff\xfe", "i1", at(0), "view"},
			[]any{"   ", "i1", at(0), "view"}, []any{"u5", "i\tx", at(0), "view"}, []any{"ünï cødé", "i 2", at(0), "view"})
	}, want: &counts{Read: 6, Used: 1, Rejected: map[string]int64{"bad_user_id": 4, "bad_item_id": 1}}},
	{name: "uint64_ids", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema([]arrow.Field{field("user_id", arrow.PrimitiveTypes.Uint64), field("item_id", arrow.PrimitiveTypes.Uint64), field("ts", tsMS), field("event_type", arrow.BinaryTypes.String)}, nil)
		return parquetBytes(t, sc, [][]any{{uint64(18446744073709551615), uint64(9223372036854775808), at(0), "view"}, {uint64(1), uint64(2), at(0), "view"}}, 0)
	}, want: &counts{Read: 2, Used: 2, Rejected: map[string]int64{}}},
	{name: "nonfinite_amounts", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema(append(stdSch.Fields(), field("qty", arrow.PrimitiveTypes.Float64), field("price", arrow.PrimitiveTypes.Float64)), nil)
		return parquetBytes(t, sc, [][]any{
			{"u1", "i1", at(0), "purchase", 1.0, math.Inf(1)},
			{"u2", "i1", at(0), "purchase", math.NaN(), 2.0},
			{"u3", "i1", at(0), "purchase", 1e300, 1e300},
			{"u4", "i1", at(0), "purchase", 2.0, -1e13},
			{"u5", "i1", at(0), "purchase", -3.0, 9.99},
		}, 0)
	}, cfg: func(c *configs.EventsConfig) {
		c.Columns.Quantity, c.Columns.Price = "qty", "price"
		c.MaxRejectRatio = 1
	},
		want: &counts{Read: 5, Used: 1, Rejected: map[string]int64{"bad_price": 2, "bad_quantity": 2}}},
	{name: "all_null_user", build: func(t testing.TB) []byte {
		return std(t, []any{nil, "i1", at(0), "view"}, []any{nil, "i2", at(0), "view"}, []any{"", "i3", at(0), "view"})
	}, want: &counts{Read: 3, Rejected: map[string]int64{"null_user": 3}}},
	{name: "null_required", build: func(t testing.TB) []byte {
		return std(t,
			[]any{"u1", "i1", at(0), "view"},
			[]any{nil, "i1", at(0), "view"},
			[]any{"u1", nil, at(0), "view"},
			[]any{"u1", "", at(0), "view"},
			[]any{"u1", "i1", nil, "view"},
			[]any{"u1", "i1", at(time.Second), nil}, // null event type is unknown
		)
	}, want: &counts{Read: 6, Used: 1, Rejected: map[string]int64{"null_user": 1, "null_item": 2, "null_ts": 1, "unknown_event_type": 1}}},
	{name: "future_ts", build: func(t testing.TB) []byte {
		return std(t,
			[]any{"u1", "i1", wallClock.Add(time.Hour), "view"},
			[]any{"u1", "i1", wallClock, "view"}, // == Now: not future, but >= End
			[]any{"u1", "i1", at(0), "view"},
		)
	}, want: &counts{Read: 3, Used: 1, Outside: 1, Rejected: map[string]int64{"future_ts": 1}}},
	{name: "before_1970", build: func(t testing.TB) []byte {
		return std(t,
			[]any{"u1", "i1", time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), "view"},
			[]any{"u1", "i1", time.Date(1901, 1, 1, 0, 0, 0, 0, time.UTC), "view"},
			[]any{"u1", "i1", time.Unix(0, 0), "view"}, // 1970 exactly: valid, outside the window
		)
	}, want: &counts{Read: 3, Outside: 1, Rejected: map[string]int64{"ts_before_1970": 2}}},
	{name: "outside_window", build: func(t testing.TB) []byte {
		return std(t,
			[]any{"u1", "i1", winStart.Add(-time.Millisecond), "view"},
			[]any{"u1", "i1", winStart, "view"},
			[]any{"u1", "i1", winEnd.Add(-time.Second), "view"},
			[]any{"u1", "i1", winEnd, "view"},
		)
	}, want: &counts{Read: 4, Used: 2, Outside: 2, Rejected: map[string]int64{}}},
	{name: "unknown_event_type", build: func(t testing.TB) []byte {
		return std(t, []any{"u1", "i1", at(0), "click"}, []any{"u1", "i1", at(0), "view"}, []any{"u1", "i1", at(0), "VIEW"})
	}, want: &counts{Read: 3, Used: 1, Rejected: map[string]int64{"unknown_event_type": 2}}},
	{name: "unknown_event_type_default", build: func(t testing.TB) []byte {
		return std(t, []any{"u1", "i1", at(0), "click"}, []any{"u1", "i1", at(0), "view"}, []any{"u1", "i2", at(0), "VIEW"})
	}, cfg: func(c *configs.EventsConfig) { c.UnknownEventType = "default"; c.DefaultEventType = "view" },
		// click and view on (u1, i1) both become view at the same ts: one is a duplicate
		want: &counts{Read: 3, Used: 2, Dup: 1, Rejected: map[string]int64{}}},
	{name: "duplicates", build: func(t testing.TB) []byte {
		return std(t,
			[]any{"u1", "i1", at(0), "view"},
			[]any{"u1", "i1", at(0), "view"},
			[]any{"u1", "i1", at(0), "cart"},
			[]any{"u1", "i1", at(500 * time.Millisecond), "view"}, // same second
			[]any{"u1", "i1", at(time.Second), "view"},
		)
	}, want: &counts{Read: 5, Used: 3, Dup: 2, Rejected: map[string]int64{}}},
	{name: "huge_id", build: func(t testing.TB) []byte {
		return std(t, []any{bigString(MaxIDLen + 1), "i1", at(0), "view"}, []any{bigString(MaxIDLen), "i1", at(0), "view"},
			[]any{"u1", bigString(1 << 20), at(0), "view"})
	}, want: &counts{Read: 3, Used: 1, Rejected: map[string]int64{"id_too_long": 2}}},
	{name: "zero_rows", build: func(t testing.TB) []byte { return std(t) },
		want: &counts{Rejected: map[string]int64{}}},
	{name: "string_ts_bad", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema([]arrow.Field{field("user_id", arrow.BinaryTypes.String), field("item_id", arrow.BinaryTypes.String), field("ts", arrow.BinaryTypes.String)}, nil)
		return parquetBytes(t, sc, [][]any{
			{"u1", "i1", "2024-06-01 10:00:00"},
			{"u1", "i2", "2024-06-01T10:00:00"},
			{"u1", "i3", "01/06/2024 10:00"},
			{"u1", "i4", ""},
			{"u1", "i5", nil},
			{"u1", "i6", "2024-13-01 10:00:00"},
		}, 0)
	}, cfg: func(c *configs.EventsConfig) {
		c.Columns.EventType = ""
		c.DefaultEventType = "view"
		c.Timestamp.Layout = "2006-01-02 15:04:05"
	}, want: &counts{Read: 6, Used: 1, Rejected: map[string]int64{"bad_ts": 4, "null_ts": 1}}},
	{name: "double_ids", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema([]arrow.Field{field("user_id", arrow.PrimitiveTypes.Float64), field("item_id", arrow.PrimitiveTypes.Float64),
			field("ts", tsMS), field("event_type", arrow.BinaryTypes.String)}, nil)
		return parquetBytes(t, sc, [][]any{
			{12346.0, 1.0, at(0), "view"},
			{12346.5, 1.0, at(0), "view"},
			{12347.0, 0.25, at(0), "view"},
			{nil, 1.0, at(0), "view"},
			{1e300, 1.0, at(0), "view"},
		}, 0)
	}, want: &counts{Read: 5, Used: 1, Rejected: map[string]int64{"bad_user_id": 2, "bad_item_id": 1, "null_user": 1}}},
	{name: "int_ids_epoch_seconds", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema([]arrow.Field{field("user_id", arrow.PrimitiveTypes.Int32), field("item_id", arrow.PrimitiveTypes.Int64),
			field("ts", arrow.PrimitiveTypes.Int64)}, nil)
		sec := int(t0.Unix())
		return parquetBytes(t, sc, [][]any{{1, 10, sec}, {2, 10, sec}, {1, 11, sec + 1}, {nil, 11, sec}, {1, 11, nil}}, 0)
	}, cfg: func(c *configs.EventsConfig) {
		c.Columns.EventType = ""
		c.DefaultEventType = "purchase"
		c.Timestamp.Unit = "s"
	}, want: &counts{Read: 5, Used: 3, Rejected: map[string]int64{"null_user": 1, "null_ts": 1}}},
	{name: "dictionary_columns", build: func(t testing.TB) []byte {
		dict := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
		sc := arrow.NewSchema([]arrow.Field{field("user_id", dict), field("item_id", dict),
			field("ts", &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "America/New_York"}), field("event_type", dict)}, nil)
		return parquetBytes(t, sc, [][]any{
			{"u1", "i1", at(0), "view"}, {"u2", "i1", at(0), "cart"}, {"u1", "i2", at(0), "purchase"},
			{"u1", "i2", at(0), "nope"}, {nil, "i2", at(0), "view"},
		}, 0)
	}, want: &counts{Read: 5, Used: 3, Rejected: map[string]int64{"unknown_event_type": 1, "null_user": 1}}},
	{name: "filters_unmapped_column", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema(append(stdSch.Fields(), field("invoice", arrow.BinaryTypes.String), field("qty", arrow.PrimitiveTypes.Int64)), nil)
		return parquetBytes(t, sc, [][]any{
			{"u1", "i1", at(0), "view", "536365", 2},
			{"u1", "i2", at(0), "view", "C536379", -1}, // first failing filter wins
			{"u1", "i3", at(0), "view", "536366", 0},
			{"u1", "i4", at(0), "view", nil, 3}, // null fails not_prefix
			{nil, "i5", at(0), "view", "536367", 1},
		}, 0)
	}, cfg: func(c *configs.EventsConfig) {
		c.Filters = []configs.FilterConfig{
			{Name: "cancellation", Column: "invoice", Op: "not_prefix", Value: "C"},
			{Name: "non_positive_quantity", Column: "qty", Op: ">", Value: "0"},
		}
	}, want: &counts{Read: 5, Used: 1, Rejected: map[string]int64{"filtered_cancellation": 2, "filtered_non_positive_quantity": 1, "null_user": 1}}},
	{name: "row_groups", build: func(t testing.TB) []byte {
		var rows [][]any
		for i := 0; i < 10; i++ {
			u := any("u" + strconv.Itoa(i))
			if i%4 == 3 {
				u = nil
			}
			rows = append(rows, []any{u, "i1", at(time.Duration(i) * time.Second), "view"})
		}
		return parquetBytes(t, stdSch, rows, 3)
	}, want: &counts{Read: 10, Used: 8, Rejected: map[string]int64{"null_user": 2}}},
	{name: "zero_row_window", build: func(t testing.TB) []byte {
		return std(t, []any{"u1", "i1", winStart.AddDate(0, -1, 0), "view"}, []any{"u2", "i1", winEnd, "view"}, []any{"u2", "i2", winEnd.Add(time.Hour), "cart"})
	}, want: &counts{Read: 3, Outside: 3, Rejected: map[string]int64{}}},
	{name: "empty_partition", key: "dt=2024-06-01/part-0.parquet", extra: []string{"dt=2024-06-02/_SUCCESS", "dt=2024-06-03/_SUCCESS"},
		build: func(t testing.TB) []byte {
			return std(t, []any{"u1", "i1", at(0), "view"}, []any{"u2", "i1", at(0), "view"})
		}, want: &counts{Read: 2, Used: 2, Rejected: map[string]int64{}}},

	// Size limits (events.limits), checked before decoding from the
	// metadata, and while decoding.
	{name: "too_many_rows", build: func(t testing.TB) []byte {
		return std(t, []any{"u1", "i1", at(0), "view"}, []any{"u2", "i1", at(0), "view"}, []any{"u3", "i1", at(0), "view"})
	}, cfg: func(c *configs.EventsConfig) { c.Limits.MaxRowsPerFile = 2 }, errRow: -1,
		errContains: "3 rows, over 2 per file (limit events.limits.max_rows_per_file; raise it, or SHELF_EVENTS_LIMITS_MAX_ROWS_PER_FILE, if the file is genuine)"},
	{name: "compression_bomb", build: func(t testing.TB) []byte {
		// 2 MB of one repeated value, plain-encoded, zstd: about 1 KB on disk,
		// 2000:1. A ratio is no danger by itself: a genuine dump with a
		// plain-encoded event_type compresses like this. It is read (its
		// event type is unknown, so rejected); what cannot be held is refused
		// (the next cases, and the ratio when one is set).
		return highRatio(t)
	}, want: &counts{Read: 40_000, Rejected: map[string]int64{"unknown_event_type": 40_000}},
		cfg: func(c *configs.EventsConfig) { c.MaxRejectRatio = 1 }},
	{name: "compression_bomb_ratio_set", build: highRatio, cfg: func(c *configs.EventsConfig) { c.Limits.MaxCompressionRatio = 1000 },
		errColumn: "event_type", errRow: -1, errContains: ":1 — a decompression bomb? (limit events.limits.max_compression_ratio; raise it, or SHELF_EVENTS_LIMITS_MAX_COMPRESSION_RATIO, if the file is genuine)"},
	{name: "compression_bomb_over_budget", build: highRatio, cfg: func(c *configs.EventsConfig) { c.Limits.MaxColumnChunkBytes = 1 << 20 },
		errColumn: "event_type", errRow: -1, errContains: "bytes uncompressed, over 1048576 (limit events.limits.max_column_chunk_bytes"},
	{name: "column_chunk_too_big", build: func(t testing.TB) []byte {
		var rows [][]any
		for i := 0; i < 500; i++ {
			rows = append(rows, []any{"u1", fmt.Sprintf("item-%05d", i), at(0), "view"})
		}
		return parquetBytes(t, stdSch, rows, 0)
	}, cfg: func(c *configs.EventsConfig) { c.Limits.MaxColumnChunkBytes = 4096 }, errColumn: "item_id", errRow: -1,
		errContains: "row group 0: column chunk of "},
	{name: "row_group_too_big", build: func(t testing.TB) []byte {
		var rows [][]any
		for i := 0; i < 30; i++ {
			item := "i" + strconv.Itoa(i)
			if i/10 == 1 {
				item = bigString(300) + item
			}
			rows = append(rows, []any{"u1", item, at(0), "view"})
		}
		return parquetBytes(t, stdSch, rows, 10)
	}, cfg: func(c *configs.EventsConfig) { c.Limits.MaxRowGroupBytes = 2000 }, errRow: -1,
		errContains: "bytes uncompressed in the columns read, over 2000 (limit events.limits.max_row_group_bytes;"},
	{name: "huge_string", build: func(t testing.TB) []byte {
		return std(t, []any{"u1", "i1", at(0), "view"}, []any{"u1", "i2", at(0), "view"}, []any{"u1", "i3", at(0), bigString(100_000)})
	}, cfg: func(c *configs.EventsConfig) { c.Limits.MaxValueBytes = 64 << 10 }, errColumn: "event_type", errRow: 2,
		errContains: "row group 0: a 100000-byte value, over 65536 (limit events.limits.max_value_bytes; raise it, or SHELF_EVENTS_LIMITS_MAX_VALUE_BYTES, if the file is genuine)"},
	{name: "page_header_lies", build: pageHeaderLies, cfg: pageHeaderLimits, errRow: -1,
		errContains: "decoding row group 0 (rows from 0) needs a 100000000-byte buffer, over 8388608: its pages declare more than its metadata"},

	// The item catalog (ReadCatalog).
	{name: "catalog_unreadable", catalog: true, build: func(testing.TB) []byte {
		return []byte(`{"item_id": "i1", "category": "shoes"}`)
	}, errRow: -1, errContains: "file is not valid Parquet"},
	{name: "catalog_missing_item", catalog: true, build: func(t testing.TB) []byte {
		return parquetBytes(t, arrow.NewSchema([]arrow.Field{field("sku", arrow.BinaryTypes.String), field("category", arrow.BinaryTypes.String),
			field("price", arrow.PrimitiveTypes.Float64)}, nil), [][]any{{"i1", "shoes", 1.0}}, 0)
	}, errColumn: "item_id", errRow: -1, errContains: "missing (mapped as item_id)"},
	{name: "catalog_price_string", catalog: true, build: func(t testing.TB) []byte {
		return parquetBytes(t, arrow.NewSchema([]arrow.Field{field("item_id", arrow.BinaryTypes.String), field("category", arrow.BinaryTypes.String),
			field("price", arrow.BinaryTypes.String)}, nil), [][]any{{"i1", "shoes", "9.99"}}, 0)
	}, errColumn: "price", errRow: -1, errContains: "price: unsupported type utf8 (want integer or floating point)"},
	{name: "catalog_rows", catalog: true, build: catalogRows,
		want: &counts{Read: 12, Used: 4, Dup: 1, Rejected: map[string]int64{"null_item": 1, "unknown_item": 1, "bad_price": 2,
			"conflicting_duplicate": 2, "id_too_long": 1}}},
}

var catalogSch = arrow.NewSchema([]arrow.Field{field("item_id", arrow.BinaryTypes.String), field("category", arrow.BinaryTypes.String),
	field("price", arrow.PrimitiveTypes.Float64)}, nil)

// catalogRows has one row of every catalog outcome.
func catalogRows(t testing.TB) []byte {
	return parquetBytes(t, catalogSch, [][]any{
		{"i1", "shoes", 10.0},               // used
		{"i2", "hats", nil},                 // used, price unknown
		{nil, "x", 1.0},                     // null_item
		{"i9", "x", 1.0},                    // unknown_item
		{"i3", "shoes", -1.0},               // bad_price
		{"i3", "shoes", math.NaN()},         // bad_price
		{"i1", "shoes", 10.0},               // duplicate
		{"i1", "bags", 10.0},                // conflicting_duplicate (category)
		{"i1", "shoes", 12.0},               // conflicting_duplicate (price)
		{"i3", nil, 5.0},                    // used, no category
		{"i4", "", 0.0},                     // used, no category, free
		{bigString(MaxIDLen + 1), "x", 1.0}, // id_too_long
	}, 0)
}

// catalogTestOptions reads key as the catalog of items i1…i4.
func catalogTestOptions(key string, limits configs.LimitsConfig) CatalogOptions {
	items := model.NewVocab()
	for _, id := range []string{"i1", "i2", "i3", "i4"} {
		items.Add(id)
	}
	return CatalogOptions{Config: configs.CatalogConfig{Path: key,
		Columns: configs.CatalogColumnsConfig{Item: "item_id", Category: "category", Price: "price"}}, Limits: limits, Items: items}
}

// pageHeaderLies is a valid file whose first user_id data page header then
// claims 100,000,000 bytes uncompressed while the metadata says 1.2 MB: a
// crafted file that passes the metadata checks.
func pageHeaderLies(t testing.TB) []byte { return pageHeaderFile(t, true) }

// pageHeaderLimits lets the honest version of pageHeaderLies through.
func pageHeaderLimits(c *configs.EventsConfig) {
	c.Limits.MaxColumnChunkBytes = 8 << 20
	c.Limits.MaxCompressionRatio = 1e6 // the page is one repeated value
}

func pageHeaderFile(t testing.TB, lie bool) []byte {
	rows := make([][]any, 200_000)
	for i := range rows {
		rows[i] = []any{"u1", "i1", at(0), "view"}
	}
	b := parquetBytes(t, stdSch, rows, 0, parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithDictionaryFor("user_id", false), parquet.WithDataPageSize(4<<20))
	if !lie {
		return b
	}
	pf, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	cc, err := pf.MetaData().RowGroup(0).ColumnChunk(0)
	if err != nil {
		t.Fatal(err)
	}
	// Thrift compact PageHeader: field 1 type (i32 DATA_PAGE = 0), then
	// field 2 uncompressed_page_size as a zigzag varint, here 4 bytes long.
	off := cc.DataPageOffset()
	hdr := b[off : off+7]
	if hdr[0] != 0x15 || hdr[1] != 0x00 || hdr[2] != 0x15 || hdr[6]&0x80 != 0 || hdr[5]&0x80 == 0 {
		t.Fatalf("unexpected page header % x", hdr)
	}
	v := uint32(100_000_000) << 1 // zigzag; still 4 varint bytes
	hdr[3], hdr[4], hdr[5], hdr[6] = byte(v)|0x80, byte(v>>7)|0x80, byte(v>>14)|0x80, byte(v>>21)
	return b
}

// TestPageHeaderLiesControl: the same file with an honest page header reads
// under the same limits, so page_header_lies fails for its lie alone.
func TestPageHeaderLiesControl(t *testing.T) {
	cfg := testConfig()
	pageHeaderLimits(&cfg)
	opts := Options{Config: cfg, Start: winStart, End: winEnd, Now: wallClock, mem: checkedMem(t)}
	_, acct, err := Read(context.Background(), memBucket(t, map[string][]byte{"f.parquet": pageHeaderFile(t, false)}), opts)
	if err != nil || acct.Read != 200_000 {
		t.Fatalf("honest file: %v, %d rows read", err, acct.Read)
	}
}

// malformedFile returns the committed corpus file of c, regenerating it under -update.
func malformedFile(t *testing.T, c malformedCase) []byte {
	t.Helper()
	path := filepath.Join(testdataDir, "malformed", c.name+".parquet")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, c.build(t), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read corpus (run with -update to create): %v", err)
	}
	return b
}

func TestReadMalformed(t *testing.T) {
	if len(malformedCases) < 30 {
		t.Errorf("%d malformed cases, the corpus promises at least 30", len(malformedCases))
	}
	for _, c := range malformedCases {
		data := malformedFile(t, c)
		for _, bk := range bucketKinds {
			t.Run(c.name+"/"+bk.name, func(t *testing.T) {
				key := cmp.Or(c.key, c.name+".parquet")
				input := "events"
				if c.catalog {
					key, input = "catalog/"+key, "catalog"
				}
				files := map[string][]byte{key: data}
				for _, k := range c.extra {
					files[k] = nil
				}
				cfg := testConfig()
				if c.cfg != nil {
					c.cfg(&cfg)
				}
				var (
					acct *Accounting
					err  error
					used int64 // events or catalog items returned
				)
				if c.catalog {
					opts := catalogTestOptions(key, cfg.Limits)
					opts.mem = checkedMem(t)
					var cat *Catalog
					if cat, acct, err = ReadCatalog(context.Background(), bk.open(t, files), opts); err == nil {
						used = int64(len(slices.DeleteFunc(slices.Clone(cat.Listed), func(l bool) bool { return !l })))
					}
				} else {
					opts := Options{Config: cfg, Start: winStart, End: winEnd, Now: wallClock, mem: checkedMem(t)}
					var in *model.Interactions
					if in, acct, err = Read(context.Background(), bk.open(t, files), opts); err == nil {
						used = int64(len(in.Events))
					}
				}
				if !acct.Balanced() {
					t.Errorf("accounting not balanced: %+v", acct)
				}
				if c.want == nil {
					var de *DataError
					if !errors.As(err, &de) {
						t.Fatalf("err = %v (%T), want *DataError", err, err)
					}
					t.Log(de)
					if de.File != key || de.Column != c.errColumn || de.Row != c.errRow || !strings.Contains(de.Reason, c.errContains) ||
						!strings.HasPrefix(de.Error(), input+" "+key+": ") {
						t.Errorf("err = %q (file %q column %q row %d), want %s file %q column %q row %d reason containing %q",
							de, de.File, de.Column, de.Row, input, key, c.errColumn, c.errRow, c.errContains)
					}
					return
				}
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				got := counts{Read: acct.Read, Used: acct.Used, Outside: acct.OutsideWindow, Dup: acct.Duplicate, Rejected: acct.Rejected}
				if fmt.Sprint(got) != fmt.Sprint(*c.want) {
					t.Errorf("counts = %+v, want %+v", got, *c.want)
				}
				if used != acct.Used {
					t.Errorf("%d events or items returned, accounting says %d used", used, acct.Used)
				}
			})
		}
	}
}

// TestSmallChunkLimit: a column chunk limit far below the buffers Arrow
// reserves for a batch still reads a small file (minBufferCap).
func TestSmallChunkLimit(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxColumnChunkBytes = 1024
	opts := Options{Config: cfg, Start: winStart, End: winEnd, Now: wallClock, mem: checkedMem(t)}
	_, acct, err := Read(context.Background(), memBucket(t, map[string][]byte{"f.parquet": std(t, []any{"u1", "i1", at(0), "view"})}), opts)
	if err != nil || acct.Used != 1 {
		t.Fatalf("%v, %+v", err, acct)
	}
}
