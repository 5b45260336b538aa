package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"gocloud.dev/blob/fileblob"

	"github.com/shelfml/shelf/model"
)

const sampleKey = "online_retail_sample.parquet"

func sampleBytes(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join(testdataDir, "online-retail", sampleKey))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sampleOptions reads the whole bundled slice (Dec 2010 – Mar 2011).
func sampleOptions(t testing.TB) Options {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	end := time.Date(2011, 4, 1, 0, 0, 0, 0, london)
	return Options{Config: onlineRetailConfig(), Start: end.AddDate(-1, 0, 0), End: end, Now: end}
}

// sampleSummary is the golden accounting of the bundled sample.
type sampleSummary struct {
	Read, Used, OutsideWindow, Duplicate int64
	Rejected                             map[string]int64
	RejectRatio                          float64
	Users, Items, Events                 int
	FirstTS, LastTS                      string
	Purchases                            int
}

func TestReadSampleGolden(t *testing.T) {
	data := sampleBytes(t)
	var first *model.Interactions
	for _, bk := range bucketKinds {
		t.Run(bk.name, func(t *testing.T) {
			opts := sampleOptions(t)
			opts.mem = checkedMem(t)
			in, acct, err := Read(context.Background(), bk.open(t, map[string][]byte{sampleKey: data}), opts)
			if err != nil {
				t.Fatal(err)
			}
			if !acct.Balanced() {
				t.Fatalf("not balanced: %+v", acct)
			}
			if err := acct.Check(0.01); err != nil {
				t.Errorf("Check(1%%) = %v", err)
			}
			purchases := 0
			for _, e := range in.Events {
				if in.IsPurchase(e) {
					purchases++
				}
			}
			s := sampleSummary{Read: acct.Read, Used: acct.Used, OutsideWindow: acct.OutsideWindow, Duplicate: acct.Duplicate,
				Rejected: acct.Rejected, RejectRatio: acct.RejectRatio(), Users: in.Users.Len(), Items: in.Items.Len(),
				Events: len(in.Events), Purchases: purchases,
				FirstTS: time.Unix(in.Events[0].Time(), 0).UTC().Format(time.RFC3339),
				LastTS:  time.Unix(in.Events[len(in.Events)-1].Time(), 0).UTC().Format(time.RFC3339)}
			got, err := json.MarshalIndent(s, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "golden/online_retail_sample_accounting.json", append(got, '\n'))
			if s.Users < 1000 {
				t.Errorf("sample has %d users, want >= 1000", s.Users)
			}
			if !slices.IsSortedFunc(in.Events, compareEvents) {
				t.Error("events not in model.SortEvents order")
			}
			if len(acct.Files) != 1 || acct.Files[0].Rows != acct.Read || acct.Files[0].Size != int64(len(data)) {
				t.Errorf("file stats = %+v", acct.Files)
			}
			// Same result through every store, and deterministic vocab.
			if first == nil {
				first = in
				return
			}
			if !reflect.DeepEqual(first.Users.IDs(), in.Users.IDs()) || !reflect.DeepEqual(first.Items.IDs(), in.Items.IDs()) ||
				!reflect.DeepEqual(first.Events, in.Events) {
				t.Error("mem:// and file:// reads differ")
			}
		})
	}
}

// TestSampleSchema checks the bundled slice keeps the source's Arrow schema.
func TestSampleSchema(t *testing.T) {
	pf, err := file.NewParquetReader(strings.NewReader(string(sampleBytes(t))))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := fr.Schema()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		id   arrow.Type
	}{{"InvoiceNo", arrow.STRING}, {"StockCode", arrow.STRING}, {"Description", arrow.STRING}, {"Quantity", arrow.INT64},
		{"InvoiceDate", arrow.STRING}, {"UnitPrice", arrow.FLOAT64}, {"CustomerID", arrow.FLOAT64}, {"Country", arrow.STRING}}
	if sc.NumFields() != len(want) {
		t.Fatalf("schema = %s", sc)
	}
	for i, w := range want {
		if f := sc.Field(i); f.Name != w.name || f.Type.ID() != w.id || !f.Nullable {
			t.Errorf("field %d = %s, want nullable %s %s", i, f, w.name, w.id)
		}
	}
}

func TestReadPartitions(t *testing.T) {
	row := func(ts time.Time) []byte { return std(t, []any{"u1", "i1", ts, "view"}) }
	files := map[string][]byte{
		"events/dt=2024-05-31/part-0.parquet": row(time.Date(2024, 5, 31, 12, 0, 0, 0, time.UTC)),
		"events/dt=2024-05-31/part-1.parquet": row(time.Date(2024, 5, 31, 12, 0, 0, 0, time.UTC)),
		"events/dt=2024-06-01/part-0.parquet": row(time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)),
		"events/dt=2024-06-30/part-0.parquet": row(time.Date(2024, 6, 30, 12, 0, 0, 0, time.UTC)),
		"events/dt=2024-07-01/part-0.parquet": row(time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC)),
		"events/dt=notadate/part-0.parquet":   row(time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC)),
		"events/dt=2024-06-01/_SUCCESS":       nil,
		"flat.parquet":                        row(time.Date(2024, 6, 2, 12, 0, 0, 0, time.UTC)),
	}
	opts := Options{Config: testConfig(), Start: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC),
		End: time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC), mem: checkedMem(t)}
	in, acct, err := Read(context.Background(), memBucket(t, files), opts)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range acct.Files {
		keys = append(keys, f.Key)
	}
	wantKeys := []string{"events/dt=2024-06-01/part-0.parquet", "events/dt=2024-06-30/part-0.parquet", "events/dt=notadate/part-0.parquet", "flat.parquet"}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("files = %q, want %q", keys, wantKeys)
	}
	if acct.PartitionsSkipped != 2 || acct.Read != 4 || acct.Used != 3 || acct.OutsideWindow != 1 || len(in.Events) != 3 {
		t.Errorf("accounting = %+v", acct)
	}
	if acct.Files[0].MD5 == "" {
		t.Error("md5 missing from file stats")
	}
}

func TestReadRejectSink(t *testing.T) {
	var rows [][]any
	for i := 0; i < 7; i++ {
		rows = append(rows, []any{"u1", "i1", at(time.Duration(i) * time.Second), "view"})
	}
	rows[2][0] = nil
	rows[5][1] = "é" + bigString(MaxIDLen) // id_too_long, value truncated on a rune boundary
	rows[6][3] = "click"
	data := parquetBytes(t, stdSch, rows, 2)
	var log rejectLog
	opts := Options{Config: testConfig(), Start: winStart, End: winEnd, Now: wallClock, Rejects: &log, mem: checkedMem(t)}
	_, acct, err := Read(context.Background(), memBucket(t, map[string][]byte{"a.parquet": data}), opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []Reject{
		{File: "a.parquet", Row: 2, Column: "user_id", Reason: "null_user"},
		{File: "a.parquet", Row: 5, Column: "item_id", Reason: "id_too_long", Value: "é" + bigString(254)},
		{File: "a.parquet", Row: 6, Column: "event_type", Reason: "unknown_event_type", Value: "click"},
	}
	if !reflect.DeepEqual(log.rows, want) {
		t.Errorf("rejects = %+v\nwant %+v", log.rows, want)
	}
	if acct.Used != 4 {
		t.Errorf("used = %d, want 4", acct.Used)
	}
}

type failingSink struct{}

func (failingSink) Reject(Reject) error { return errors.New("disk full") }

func TestReadErrors(t *testing.T) {
	data := std(t, []any{nil, "i1", at(0), "view"})
	cases := []struct {
		name    string
		ctx     func() context.Context
		opts    func(o *Options)
		wantErr func(error) bool
	}{
		{"cancelled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, nil, func(err error) bool { return errors.Is(err, context.Canceled) }},
		{"sink fails", context.Background, func(o *Options) { o.Rejects = failingSink{} },
			func(err error) bool { return err != nil && strings.Contains(err.Error(), "disk full") }},
		{"bad default type", context.Background, func(o *Options) { o.Config.Columns.EventType = ""; o.Config.DefaultEventType = "nope" },
			func(err error) bool { var de *DataError; return errors.As(err, &de) }},
		{"int ts without unit", context.Background, func(o *Options) {
			o.Config.Timestamp.Unit = ""
			o.Config.Columns.TS = "n"
		}, func(err error) bool { var de *DataError; return errors.As(err, &de) && de.Column == "n" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := map[string][]byte{"a.parquet": data}
			if c.name == "int ts without unit" {
				sc := arrow.NewSchema(append(stdSch.Fields(), field("n", arrow.PrimitiveTypes.Int64)), nil)
				files["a.parquet"] = parquetBytes(t, sc, [][]any{{"u", "i", at(0), "view", 1}}, 0)
			}
			opts := Options{Config: testConfig(), mem: checkedMem(t)}
			if c.opts != nil {
				c.opts(&opts)
			}
			_, acct, err := Read(c.ctx(), memBucket(t, files), opts)
			if !c.wantErr(err) {
				t.Errorf("err = %v", err)
			}
			if !acct.Balanced() {
				t.Errorf("not balanced: %+v", acct)
			}
			var de *DataError
			if c.name == "cancelled" && errors.As(err, &de) {
				t.Error("cancellation reported as bad data")
			}
		})
	}
}

func TestAccountingCheck(t *testing.T) {
	cases := []struct {
		name    string
		acct    Accounting
		max     float64
		wantErr string
	}{
		{"clean", Accounting{Read: 100, Used: 100}, 0.01, ""},
		{"filters do not count", Accounting{Read: 100, Used: 50, Rejected: map[string]int64{"filtered_guest": 50}}, 0.01, ""},
		{"at the limit", Accounting{Read: 100, Used: 99, Rejected: map[string]int64{"null_user": 1}}, 0.01, ""},
		{"over", Accounting{Read: 100, Used: 90, Rejected: map[string]int64{"null_user": 6, "bad_ts": 4},
			Files: []FileStat{
				{Key: "dt=2024-11-01/a.parquet", Rejected: map[string]int64{"bad_ts": 4, "filtered_x": 30}},
				{Key: "dt=2024-11-02/part-3.parquet", Rejected: map[string]int64{"null_user": 5, "bad_ts": 0}},
				{Key: "dt=2024-11-03/b.parquet", Rejected: map[string]int64{"null_user": 1}},
			}}, 0.01,
			"events dt=2024-11-02/part-3.parquet: rejected 10.00% of all rows, max 1.00%; worst file has 5 rejected rows, mostly null_user (5)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.acct.Check(c.max)
			if c.wantErr == "" {
				if err != nil {
					t.Errorf("Check = %v", err)
				}
				return
			}
			var de *DataError
			if !errors.As(err, &de) || err.Error() != c.wantErr {
				t.Errorf("Check = %v\nwant %s", err, c.wantErr)
			}
		})
	}
}

func TestDataErrorMessage(t *testing.T) {
	cases := []struct {
		e    DataError
		want string
	}{
		{DataError{File: "dt=2024-11-02/part-3.parquet", Column: "user_id", Row: 17, Reason: "bad"},
			"events dt=2024-11-02/part-3.parquet: column user_id: row 17: bad"},
		{DataError{File: "a.parquet", Row: -1, Reason: "file is not valid Parquet"}, "events a.parquet: file is not valid Parquet"},
		{DataError{Row: -1, Reason: "config: x"}, "events: config: x"},
	}
	for _, c := range cases {
		if got := c.e.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, s := range []string{"", "abc", bigString(256), bigString(257), bigString(255) + "é", bigString(253) + "日本"} {
		got := truncate(s)
		if len(got) > maxValueLen || !strings.HasPrefix(s, got) || !utf8Valid(got) {
			t.Errorf("truncate(%d bytes) = %d bytes", len(s), len(got))
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// TestHiddenAndStagingFilesAreSkipped: Spark/Hadoop staging (_temporary/,
// half-written) and hidden (.x) files under the events prefix are not read,
// and are counted; the other files read as without them.
func TestHiddenAndStagingFilesAreSkipped(t *testing.T) {
	data := sampleBytes(t)
	for _, bk := range bucketKinds {
		t.Run(bk.name, func(t *testing.T) {
			ctx := context.Background()
			clean, cleanAcct, err := Read(ctx, bk.open(t, map[string][]byte{sampleKey: data}), sampleOptions(t))
			if err != nil {
				t.Fatal(err)
			}
			b := bk.open(t, map[string][]byte{
				sampleKey:                           data,
				"_temporary/0/part-1.parquet":       data[:len(data)/3], // a writer still at work
				"dt=2011-03-01/.part-2.parquet.crc": []byte("x"),
				"dt=2011-03-01/.part-2.parquet":     []byte("not parquet"),
				"dt=2011-03-01/_SUCCESS":            nil,
				"nested/_staging/part-3.parquet":    []byte("junk"),
			})
			in, acct, err := Read(ctx, b, sampleOptions(t))
			if err != nil {
				t.Fatalf("hidden files were read: %v", err)
			}
			if acct.HiddenFilesSkipped != 3 {
				t.Errorf("hidden files skipped = %d, want 3", acct.HiddenFilesSkipped)
			}
			if len(in.Events) != len(clean.Events) || acct.Read != cleanAcct.Read || len(acct.Files) != 1 {
				t.Errorf("read %d events from %d files, want %d from 1", len(in.Events), len(acct.Files), len(clean.Events))
			}
		})
	}
}

// TestInputIdentityIsContent: on a file system without gocloud's metadata
// sidecars (files written by Spark, cp, rsync) the identity of an input is
// the SHA-256 of its bytes, so a copy (new modification time) is the same
// input and other bytes of the same size are not.
func TestInputIdentityIsContent(t *testing.T) {
	ctx := context.Background()
	data := sampleBytes(t)
	id := func(content []byte) string {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, sampleKey), content, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := fileblob.OpenBucket(dir, &fileblob.Options{Metadata: fileblob.MetadataDontWrite})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		objs, _, err := listParquet(ctx, b, "events", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if objs[0].md5 != "" || len(objs[0].sha256) != 64 {
			t.Fatalf("identity %+v: want a SHA-256 and no MD5", objs[0])
		}
		return objs[0].sha256
	}
	first := id(data)
	time.Sleep(20 * time.Millisecond)
	if again := id(data); again != first {
		t.Fatalf("a copy has another identity: %q vs %q", again, first)
	}
	other := slices.Clone(data)
	other[len(other)/2] ^= 1
	if id(other) == first {
		t.Fatal("other bytes of the same size have the same identity")
	}
}

// TestManyRowGroupsAllocateLittle: memory follows rows, not layout. A file
// of thousands of tiny row groups once made every column chunk reader
// allocate (and zero) a full read buffer: gigabytes of churn and a peak of
// hundreds of MB for a 23 MB file. The buffers are now sized to the largest
// projected chunk, so reading allocates a small multiple of the file.
func TestManyRowGroupsAllocateLittle(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("writes a file of 4,000 row groups; allocation bounds do not hold under -race")
	}
	rows := make([][]any, 0, 100_000)
	for i := 0; i < 100_000; i++ {
		rows = append(rows, []any{fmt.Sprintf("u%d", i%5000), fmt.Sprintf("i%d", i%3000), at(time.Duration(i) * time.Second), "view"})
	}
	data := parquetBytes(t, stdSch, rows, 25, parquet.WithCompression(compress.Codecs.Snappy))
	for _, arrowOnly := range []bool{false, true} {
		b := memBucket(t, map[string][]byte{"x.parquet": data})
		opts := Options{Config: testConfig(), Start: winStart, End: winEnd, Now: wallClock, ArrowRecords: arrowOnly}
		opts.Config.ReadBufferSize = 4 << 20
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, acct, err := Read(context.Background(), b, opts)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s decoder: %d rows from a %d-byte file of 4,000 row groups, %d MB allocated", acct.Files[0].Decoder, acct.Used, len(data), alloc>>20)
		if acct.Used != 100_000 {
			t.Fatalf("used %d rows", acct.Used)
		}
		limit := 64 * uint64(len(data))
		if arrowOnly {
			limit *= 8 // Arrow's page reader allocates a fixed 16 KiB per column chunk on top
		}
		if alloc > limit {
			t.Errorf("%s decoder allocated %d MB for a %d-byte file: buffers follow the layout", acct.Files[0].Decoder, alloc>>20, len(data))
		}
	}
}
