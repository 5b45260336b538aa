package events

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/shelfml/shelf/configs"
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

// malformedCase is one file of testdata/malformed and what Read makes of it.
type malformedCase struct {
	name  string
	build func(t testing.TB) []byte
	cfg   func(c *configs.EventsConfig)
	// either an error …
	errColumn, errContains string
	// … or exact counts.
	want *counts
}

func bigString(n int) string { return strings.Repeat("x", n) }

var malformedCases = []malformedCase{
	{name: "truncated", build: func(t testing.TB) []byte {
		b := std(t, []any{"u1", "i1", at(0), "view"}, []any{"u2", "i2", at(0), "view"})
		return b[:len(b)/2]
	}, errContains: "not valid Parquet"},
	{name: "not_parquet", build: func(testing.TB) []byte {
		return []byte("user_id,item_id,ts\nu1,i1,2024-06-01\n")
	}, errContains: "not valid Parquet"},
	{name: "empty", build: func(testing.TB) []byte { return []byte{} }, errContains: "0 bytes"},
	{name: "bad_footer_length", build: func(t testing.TB) []byte {
		b := std(t, []any{"u1", "i1", at(0), "view"})
		b = append([]byte(nil), b...)
		b[len(b)-8], b[len(b)-7], b[len(b)-6], b[len(b)-5] = 0xff, 0xff, 0xff, 0x7f
		return b
	}, errContains: "not valid Parquet"},
	{name: "missing_user", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema([]arrow.Field{field("item_id", arrow.BinaryTypes.String), field("ts", tsMS), field("event_type", arrow.BinaryTypes.String)}, nil)
		return parquetBytes(t, sc, [][]any{{"i1", at(0), "view"}}, 0)
	}, errColumn: "user_id", errContains: "missing (mapped as user_id)"},
	{name: "missing_quantity", build: func(t testing.TB) []byte {
		return std(t, []any{"u1", "i1", at(0), "view"})
	}, cfg: func(c *configs.EventsConfig) { c.Columns.Quantity = "qty" }, errColumn: "qty", errContains: "missing (mapped as quantity)"},
	{name: "user_bool", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema([]arrow.Field{field("user_id", arrow.FixedWidthTypes.Boolean), field("item_id", arrow.BinaryTypes.String), field("ts", tsMS), field("event_type", arrow.BinaryTypes.String)}, nil)
		return parquetBytes(t, sc, [][]any{{true, "i1", at(0), "view"}}, 0)
	}, errColumn: "user_id", errContains: "unsupported type bool"},
	{name: "item_list", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema([]arrow.Field{field("user_id", arrow.BinaryTypes.String), field("item_id", arrow.ListOf(arrow.BinaryTypes.String)), field("ts", tsMS), field("event_type", arrow.BinaryTypes.String)}, nil)
		return parquetBytes(t, sc, [][]any{{"u1", []string{"i1", "i2"}, at(0), "view"}}, 0)
	}, errColumn: "item_id", errContains: "unsupported type list"},
	{name: "ts_struct", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema([]arrow.Field{field("user_id", arrow.BinaryTypes.String), field("item_id", arrow.BinaryTypes.String),
			field("ts", arrow.StructOf(field("sec", arrow.PrimitiveTypes.Int64))), field("event_type", arrow.BinaryTypes.String)}, nil)
		return parquetBytes(t, sc, [][]any{{"u1", "i1", 1717236000, "view"}}, 0)
	}, errColumn: "ts", errContains: "unsupported type struct"},
	{name: "filter_prefix_on_int", build: func(t testing.TB) []byte {
		sc := arrow.NewSchema(append(stdSch.Fields(), field("qty", arrow.PrimitiveTypes.Int64)), nil)
		return parquetBytes(t, sc, [][]any{{"u1", "i1", at(0), "view", 1}}, 0)
	}, cfg: func(c *configs.EventsConfig) {
		c.Filters = []configs.FilterConfig{{Name: "f", Column: "qty", Op: "prefix", Value: "C"}}
	}, errColumn: "qty", errContains: "needs a string column"},
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
	for _, c := range malformedCases {
		data := malformedFile(t, c)
		for _, bk := range bucketKinds {
			t.Run(c.name+"/"+bk.name, func(t *testing.T) {
				key := c.name + ".parquet"
				cfg := testConfig()
				if c.cfg != nil {
					c.cfg(&cfg)
				}
				opts := Options{Config: cfg, Start: winStart, End: winEnd, Now: wallClock, mem: checkedMem(t)}
				in, acct, err := Read(context.Background(), bk.open(t, map[string][]byte{key: data}), opts)
				if !acct.Balanced() {
					t.Errorf("accounting not balanced: %+v", acct)
				}
				if c.want == nil {
					var de *DataError
					if !errors.As(err, &de) {
						t.Fatalf("err = %v (%T), want *DataError", err, err)
					}
					if de.File != key || de.Column != c.errColumn || !strings.Contains(de.Reason, c.errContains) {
						t.Errorf("err = %q (file %q column %q), want file %q column %q reason containing %q",
							de, de.File, de.Column, key, c.errColumn, c.errContains)
					}
					return
				}
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				got := counts{Read: acct.Read, Used: acct.Used, Outside: acct.OutsideWindow, Dup: acct.Duplicate, Rejected: acct.Rejected}
				if fmt.Sprint(got) != fmt.Sprint(*c.want) {
					t.Errorf("counts = %+v, want %+v", got, *c.want)
				}
				if int64(len(in.Events)) != acct.Used {
					t.Errorf("%d events, accounting says %d used", len(in.Events), acct.Used)
				}
			})
		}
	}
}
