package events

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"

	"github.com/shelfml/shelf/io/synth"
)

// pageLayout is one way a writer may lay out the same events.
type pageLayout struct {
	name     string
	ts       arrow.DataType // timestamp of some unit, or int64 epoch seconds
	qty      arrow.DataType
	price    arrow.DataType
	nullable bool
	props    []parquet.WriterProperty
	rowGroup int
}

func pageLayouts() []pageLayout {
	small := []parquet.WriterProperty{parquet.WithDataPageSize(2 << 10), parquet.WithBatchSize(97)}
	return []pageLayout{
		{name: "dict_ms_required", ts: arrow.FixedWidthTypes.Timestamp_ms, qty: arrow.PrimitiveTypes.Int32, price: arrow.PrimitiveTypes.Float64, props: small, rowGroup: 700},
		{name: "dict_us_nullable", ts: arrow.FixedWidthTypes.Timestamp_us, qty: arrow.PrimitiveTypes.Int64, price: arrow.PrimitiveTypes.Float32, nullable: true, props: small, rowGroup: 1300},
		{name: "plain_s_zstd", ts: arrow.FixedWidthTypes.Timestamp_s, qty: arrow.PrimitiveTypes.Float64, price: arrow.PrimitiveTypes.Float64, nullable: true,
			props: append([]parquet.WriterProperty{parquet.WithDictionaryDefault(false), parquet.WithCompression(compress.Codecs.Zstd)}, small...)},
		{name: "v2_ns_uncompressed", ts: arrow.FixedWidthTypes.Timestamp_ns, qty: arrow.PrimitiveTypes.Int32, price: arrow.PrimitiveTypes.Int64, nullable: true,
			props: append([]parquet.WriterProperty{parquet.WithDataPageVersion(parquet.DataPageV2), parquet.WithCompression(compress.Codecs.Uncompressed)}, small...), rowGroup: 999},
		{name: "epoch_mixed_dict", ts: arrow.PrimitiveTypes.Int64, qty: arrow.PrimitiveTypes.Float32, price: arrow.PrimitiveTypes.Float64, nullable: true,
			props: append([]parquet.WriterProperty{parquet.WithDictionaryFor("item_id", false), parquet.WithDictionaryPageSizeLimit(512)}, small...), rowGroup: 2500},
	}
}

// pageRows are random rows with every outcome: nulls, empty and over-long
// ids, unknown types, timestamps before 1970, in the future and outside
// the window, duplicates.
func pageRows(rng *rand.Rand, n int, epoch bool) [][]any {
	id := func(prefix string, k int) any {
		switch r := rng.IntN(200); {
		case r == 0:
			return nil
		case r == 1:
			return ""
		case r == 2:
			return strings.Repeat("x", MaxIDLen+1)
		}
		return fmt.Sprintf("%s%d", prefix, rng.IntN(k))
	}
	types := []any{"view", "view", "view", "cart", "purchase", "unknown", nil}
	var rows [][]any
	for range n {
		var ts any
		switch r := rng.IntN(300); {
		case r == 0:
			ts = nil
		case r == 1:
			ts = time.Unix(-86400*3, 0).UTC()
		case r == 2:
			ts = wallClock.Add(48 * time.Hour)
		case r == 3:
			ts = winStart.Add(-time.Hour)
		default:
			ts = winStart.Add(time.Duration(rng.IntN(200*86400)) * time.Second)
		}
		if epoch && ts != nil {
			ts = ts.(time.Time).Unix()
		}
		row := []any{id("u", 300), id("i", 900), ts, types[rng.IntN(len(types))], nil, nil}
		if rng.IntN(10) > 0 {
			row[4] = rng.IntN(5)
		}
		if rng.IntN(10) > 0 {
			row[5] = float64(rng.IntN(5000)) / 100
		}
		rows = append(rows, row)
		if rng.IntN(50) == 0 {
			rows = append(rows, row) // exact duplicate
		}
	}
	return rows
}

// TestPageDecoderMatchesArrow reads the same files with the page decoder
// and with Arrow's record reader: interactions (vocabulary order
// included), accounting and rejects must be identical.
func TestPageDecoderMatchesArrow(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, l := range pageLayouts() {
		t.Run(l.name, func(t *testing.T) {
			epoch := l.ts.ID() == arrow.INT64
			sc := arrow.NewSchema([]arrow.Field{
				{Name: "user_id", Type: arrow.BinaryTypes.String, Nullable: l.nullable},
				{Name: "item_id", Type: arrow.BinaryTypes.String, Nullable: l.nullable},
				{Name: "ts", Type: l.ts, Nullable: l.nullable},
				{Name: "event_type", Type: arrow.BinaryTypes.String, Nullable: l.nullable},
				{Name: "qty", Type: l.qty, Nullable: true},
				{Name: "price", Type: l.price, Nullable: true},
			}, nil)
			files := map[string][]byte{}
			for f := range 3 {
				rows := pageRows(rng, 3000+rng.IntN(3000), epoch)
				if !l.nullable {
					rows = dropNulls(rows)
				}
				files[fmt.Sprintf("dt=2024-0%d-01/part.parquet", f+1)] = parquetBytes(t, sc, rows, l.rowGroup, l.props...)
			}
			cfg := testConfig()
			cfg.Columns.Quantity, cfg.Columns.Price = "qty", "price"
			if epoch {
				cfg.Timestamp.Unit = "s"
			}
			comparePaths(t, files, Options{Config: cfg, Start: winStart, End: winEnd, Now: wallClock}, true)
		})
	}
	t.Run("shelf_gen", func(t *testing.T) {
		b := memBucket(t, nil)
		o := synth.Options{Events: 30000, Users: 2000, Items: 500, Days: 20, End: time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC), Seed: 3}
		if _, err := synth.Generate(context.Background(), b, o); err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{}
		it := b.List(nil)
		for {
			obj, err := it.Next(context.Background())
			if err != nil {
				break
			}
			if strings.HasSuffix(obj.Key, ".parquet") && !strings.HasPrefix(obj.Key, "catalog") {
				data, err := b.ReadAll(context.Background(), obj.Key)
				if err != nil {
					t.Fatal(err)
				}
				files[obj.Key] = data
			}
		}
		end := o.End.AddDate(0, 0, 1)
		comparePaths(t, files, Options{Config: synth.EventsConfig(), Start: end.AddDate(0, 0, -15), End: end, Now: end}, false)
	})
}

func dropNulls(rows [][]any) [][]any {
	var out [][]any
	for _, r := range rows {
		if r[0] != nil && r[1] != nil && r[2] != nil && r[3] != nil {
			out = append(out, r)
		}
	}
	return out
}

// comparePaths reads files through both decoders and fails on any
// difference. Every file must take the page decoder; wantRejects says the
// files hold rows of every kind.
func comparePaths(t *testing.T, files map[string][]byte, opts Options, wantRejects bool) {
	t.Helper()
	type result struct {
		users, items []string
		events       any
		acct         *Accounting
		rejects      []Reject
		decoders     []string
	}
	bucket := memBucket(t, files)
	read := func(arrowOnly bool) result {
		o := opts
		o.ArrowRecords = arrowOnly
		if !arrowOnly { // Arrow's record reader leaks a few buffers on v2 data pages
			o.mem = checkedMem(t)
		}
		log := &rejectLog{}
		o.Rejects = log
		in, acct, err := Read(context.Background(), bucket, o)
		if err != nil {
			t.Fatalf("arrow=%v: %v", arrowOnly, err)
		}
		r := result{events: in.Events, acct: acct, rejects: log.rows}
		for u := range in.Users.Len() {
			r.users = append(r.users, in.Users.ID(int32(u)))
		}
		for i := range in.Items.Len() {
			r.items = append(r.items, in.Items.ID(int32(i)))
		}
		for k := range acct.Files {
			r.decoders = append(r.decoders, acct.Files[k].Decoder)
			acct.Files[k].Decoder = ""
		}
		return r
	}
	a, p := read(true), read(false)
	for k, d := range a.decoders {
		if d != "arrow" || p.decoders[k] != "pages" {
			t.Fatalf("file %d decoded by %q / %q", k, d, p.decoders[k])
		}
	}
	if a.acct.Used == 0 || wantRejects && len(a.rejects) == 0 {
		t.Fatalf("degenerate data: %d rejects, %d used", len(a.rejects), a.acct.Used)
	}
	switch {
	case !reflect.DeepEqual(a.users, p.users):
		t.Fatalf("user vocabularies differ: %d vs %d ids", len(a.users), len(p.users))
	case !reflect.DeepEqual(a.items, p.items):
		t.Fatalf("item vocabularies differ: %d vs %d ids", len(a.items), len(p.items))
	case !reflect.DeepEqual(a.events, p.events):
		t.Fatal("events differ")
	case !reflect.DeepEqual(a.acct, p.acct):
		for k := range a.acct.Files {
			if !reflect.DeepEqual(a.acct.Files[k], p.acct.Files[k]) {
				t.Fatalf("file %d accounting differs:\narrow %+v\npages %+v", k, a.acct.Files[k], p.acct.Files[k])
			}
		}
		a.acct.Files, p.acct.Files = nil, nil
		t.Fatalf("accounting differs:\narrow %+v\npages %+v", a.acct, p.acct)
	case !reflect.DeepEqual(a.rejects, p.rejects):
		for k := range min(len(a.rejects), len(p.rejects)) {
			if a.rejects[k] != p.rejects[k] {
				t.Fatalf("reject %d: arrow %+v, pages %+v", k, a.rejects[k], p.rejects[k])
			}
		}
		t.Fatalf("%d rejects vs %d", len(a.rejects), len(p.rejects))
	}
}
