package jobs

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
)

// TestForgetUsers: a shop erases three users. The next run drops their
// events before anything sees them, counts them in the report, marks the
// version trained before the request, moves LATEST off it, and no object of
// the new version or of the tables it commits holds their ids — the
// embedding tables have no rows for them at all.
func TestForgetUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("trains several models")
	}
	ctx := context.Background()
	b := memBuckets(t)
	cfg := testConfig(t)
	first, err := newRunner(cfg, b, false).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m1, err := tables.OpenVersion(ctx, b.out, cfg.Name, first.Version)
	if err != nil {
		t.Fatal(err)
	}
	data, err := tables.ReadVersionFile(ctx, b.out, m1, "vocab/users.parquet")
	if err != nil {
		t.Fatal(err)
	}
	v1, err := tables.DecodeVocab(data)
	if err != nil {
		t.Fatal(err)
	}
	erased := []string{v1.ID(0), v1.ID(7), v1.ID(int32(v1.Len() - 1))}
	list := "# erasure requests of the week\nuser_id\n" + strings.Join(erased, "\n") + "\n\n"
	if err := b.events.WriteAll(ctx, "privacy/forget.txt", []byte(list), nil); err != nil {
		t.Fatal(err)
	}
	cfg.Privacy.ForgetURL = "test://events/privacy/forget.txt"
	second, err := newRunner(cfg, b, false).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second.Skipped || second.Version == first.Version {
		t.Fatalf("a new erasure list must give a new version: %+v", second)
	}
	if a := second.Accounting; a.ForgottenUsers != 3 || a.Forgotten == 0 || !a.Balanced() {
		t.Fatalf("accounting: %d users, %d rows forgotten (balanced %v)", a.ForgottenUsers, a.Forgotten, a.Balanced())
	}
	if latest, _ := tables.Latest(ctx, b.out, cfg.Name); latest != second.Version {
		t.Fatalf("LATEST = %s, want the version without the erased users %s", latest, second.Version)
	}
	if m1, _ = tables.OpenVersion(ctx, b.out, cfg.Name, first.Version); !m1.HoldsForgotten() || m1.Privacy.Holds != 3 {
		t.Fatalf("the earlier version is not marked: %+v", m1.Privacy)
	}
	m2, err := tables.OpenVersion(ctx, b.out, cfg.Name, second.Version)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Privacy == nil || m2.Privacy.ForgottenUsers != 3 || m2.HoldsForgotten() {
		t.Fatalf("new version's privacy record: %+v", m2.Privacy)
	}
	// No object of the new version, of the date's committed tables or of the
	// run's folder holds an erased id: vocabularies and table rows decoded,
	// every byte searched.
	for _, rel := range []string{"vocab/users.parquet", "evaluate/users.parquet"} {
		data, err := tables.ReadVersionFile(ctx, b.out, m2, rel)
		if err != nil {
			t.Fatal(err)
		}
		v, err := tables.DecodeVocab(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range erased {
			if _, ok := v.Lookup(id); ok {
				t.Errorf("%s holds erased user %s", rel, id)
			}
		}
		if rel == "vocab/users.parquet" {
			w, err := tables.ReadVersionFile(ctx, b.out, m2, "weights.shlfw")
			if err != nil {
				t.Fatal(err)
			}
			wt, err := model.ReadWeights(bytes.NewReader(w))
			if err != nil {
				t.Fatal(err)
			}
			rm, err := model.RankingFromWeights(wt)
			if err != nil {
				t.Fatal(err)
			}
			if rm.NUsers != v.Len() {
				t.Errorf("user_emb has %d rows for %d users", rm.NUsers, v.Len())
			}
		}
	}
	prefixes := []string{tables.VersionPrefix(cfg.Name, second.Version), tables.PartitionPrefix(tables.Recommendations, cfg.Date),
		tables.PartitionPrefix(tables.PurchasePredictions, cfg.Date), "runs/" + cfg.Date + "/" + second.RunID + "/"}
	n := 0
	for _, p := range prefixes {
		objs, err := blobs.List(ctx, b.out, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			data, err := b.out.ReadAll(ctx, o.Key)
			if err != nil {
				t.Fatal(err)
			}
			n++
			for _, id := range erased {
				if bytes.Contains(data, []byte(id)) {
					t.Errorf("%s holds erased user %s", o.Key, id)
				}
			}
		}
	}
	for _, key := range committedParts(t, b.out, tables.Recommendations, cfg.Date, cfg.Score.Shards) {
		rows, err := tables.ReadAll[tables.RecommendationRow](ctx, b.out, key)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			for _, id := range erased {
				if r.UserID == id {
					t.Fatalf("%s has rows of erased user %s", key, id)
				}
			}
		}
	}
	if n < 15 {
		t.Fatalf("only %d objects searched", n)
	}
	// The same list again: nothing to do.
	again, err := newRunner(cfg, b, false).Run(ctx)
	if err != nil || !again.Skipped {
		t.Fatalf("rerun with the same list: skipped=%v, %v", again != nil && again.Skipped, err)
	}
}
