package synth

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/io/events"
	"github.com/shelfml/shelf/io/tables"
)

func small() Options {
	return Options{Events: 20000, Users: 500, Items: 800, Days: 10, End: time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC), Seed: 3, PartsPerDay: 2}
}

func TestGenerateDeterministicAndReadable(t *testing.T) {
	ctx := context.Background()
	a, b := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
	sa, err := Generate(ctx, a, small())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(ctx, b, small()); err != nil {
		t.Fatal(err)
	}
	if sa.Events != 20000 || sa.Files != 21 || sa.Views+sa.Carts+sa.Purchases != sa.Events || sa.Purchases == 0 {
		t.Fatalf("stats %+v", sa)
	}
	for d := 1; d <= 10; d++ {
		key := fmt.Sprintf("dt=2024-03-%02d/part-00001.parquet", d)
		x, err1 := a.ReadAll(ctx, key)
		y, err2 := b.ReadAll(ctx, key)
		if err1 != nil || err2 != nil || string(x) != string(y) {
			t.Fatalf("%s differs between runs with one seed (%v %v)", key, err1, err2)
		}
	}
	in, acc, err := events.Read(ctx, a, events.Options{Config: EventsConfig(), Skip: []string{CatalogKey},
		Start: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2024, 3, 11, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	// The catalog lists every item with the category its events carry.
	cat, cacc, err := events.ReadCatalog(ctx, a, events.CatalogOptions{Config: configs.CatalogConfig{Path: CatalogKey,
		Columns: configs.CatalogColumnsConfig{Item: "item_id", Category: "category", Price: "price"}}})
	if err != nil {
		t.Fatal(err)
	}
	if cacc.Read != 800 || cacc.Used != 800 || cat.Items.Len() != 800 {
		t.Fatalf("catalog: %+v, %d items", cacc, cat.Items.Len())
	}
	if acc.Read != sa.Events || !acc.Balanced() || acc.RejectRatio() != 0 {
		t.Fatalf("accounting %+v", acc)
	}
	// The planted signal: most of a user's events are in their preferred category.
	tastes := Tastes(small())
	rows, err := tables.ReadAll[Row](ctx, a, "dt=2024-03-05/part-00000.parquet")
	if err != nil {
		t.Fatal(err)
	}
	inTaste := 0
	for _, r := range rows {
		i, ok := cat.Items.Lookup(r.ItemID)
		if c, known := cat.CategoryOf(i); !ok || !known || cat.Categories.ID(c) != r.Category {
			t.Fatalf("event item %s category %s: catalog disagrees", r.ItemID, r.Category)
		}
		var u, c int
		fmt.Sscanf(r.UserID, "u%d", &u)
		fmt.Sscanf(r.Category, "c%d", &c)
		if int(tastes[u]) == c {
			inTaste++
		}
	}
	if share := float64(inTaste) / float64(len(rows)); share < 0.5 {
		t.Fatalf("only %.2f of events in the users' preferred category", share)
	}
	if in.Users.Len() < 300 || in.Items.Len() < 300 {
		t.Fatalf("%d users, %d items", in.Users.Len(), in.Items.Len())
	}
}

func BenchmarkGenerate(b *testing.B) {
	o := small()
	o.Events = 200000
	for i := 0; i < b.N; i++ {
		if _, err := Generate(context.Background(), memblob.OpenBucket(nil), o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(o.Events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestGenerateFewItems: fewer items than the minimum of four categories
// (shelf gen --items 1) still generates.
func TestGenerateFewItems(t *testing.T) {
	for items := 1; items <= 4; items++ {
		o := small()
		o.Items, o.Events = items, 500
		st, err := Generate(context.Background(), memblob.OpenBucket(nil), o)
		if err != nil || st.Events != 500 {
			t.Fatalf("%d items: %+v, %v", items, st, err)
		}
	}
}
