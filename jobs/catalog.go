package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"

	"gocloud.dev/blob"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/events"
	"github.com/shelfml/shelf/model"
	"github.com/shelfml/shelf/model/nn"
)

// priceBuckets is the number of price quantile buckets of the price side feature.
const priceBuckets = 10

// readCatalog reads the configured item catalog for the ingested items
// (catalog.path under catalog.url, default the events bucket) and returns it
// with its files, which become part of the version's inputs.
func (e *env) readCatalog(ctx context.Context, in *model.Interactions) (*events.Catalog, []events.FileStat, error) {
	cc := e.cfg.Catalog
	b, url := e.evb, e.cfg.Events.URL
	if cc.URL != "" && cc.URL != e.cfg.Events.URL {
		open := e.r.Open
		if open == nil {
			open = blobs.Open
		}
		var err error
		if b, err = open(ctx, cc.URL); err != nil {
			return nil, nil, fmt.Errorf("catalog %s: %w", blobs.Redact(cc.URL), err)
		}
		if e.r.Open == nil {
			defer func(b *blob.Bucket) { b.Close() }(b)
		}
		url = cc.URL
	}
	done := e.stages.begin("catalog")
	cat, acc, err := events.ReadCatalog(ctx, b, events.CatalogOptions{Config: cc, Limits: e.cfg.Events.Limits, Items: in.Items, AsOf: e.day})
	if err != nil {
		return nil, nil, fmt.Errorf("read item catalog from %s: %w", blobs.Redact(url), err)
	}
	known := 0
	for _, c := range cat.Category {
		if c >= 0 {
			known++
		}
	}
	done(slog.Int64("rows", acc.Read), slog.Int64("used", acc.Used), slog.Int64("duplicate", acc.Duplicate),
		slog.Any("rejected", acc.Rejected), slog.Int("items_with_category", known), slog.Int("categories", cat.Categories.Len()))
	return cat, acc.Files, nil
}

// sideFeatures are the catalog's item attributes in slice s's item indices:
// the category, and the price's decile among the catalog's priced items.
// None without a catalog.
func (e *env) sideFeatures(s *slice) []nn.SideFeature {
	cat := e.catalog
	if cat == nil {
		return nil
	}
	var out []nn.SideFeature
	if n := cat.Categories.Len(); n > 0 {
		f := nn.SideFeature{Name: "category", Of: make([]int32, len(s.items)), Values: n}
		for l, g := range s.items {
			f.Of[l] = -1
			if c, ok := cat.CategoryOf(g); ok {
				f.Of[l] = c
			}
		}
		out = append(out, f)
	}
	var prices []float64
	for i := range cat.Price {
		if p, ok := cat.PriceOf(int32(i)); ok {
			prices = append(prices, float64(p))
		}
	}
	if len(prices) >= priceBuckets {
		slices.Sort(prices)
		edges := make([]float64, priceBuckets-1) // upper bounds of buckets 0..8
		for k := range edges {
			edges[k] = prices[(k+1)*len(prices)/priceBuckets]
		}
		f := nn.SideFeature{Name: "price_bucket", Of: make([]int32, len(s.items)), Values: priceBuckets}
		for l, g := range s.items {
			f.Of[l] = -1
			if p, ok := cat.PriceOf(g); ok {
				b, _ := slices.BinarySearch(edges, math.Nextafter(float64(p), math.Inf(1)))
				f.Of[l] = int32(b)
			}
		}
		out = append(out, f)
	}
	return out
}
