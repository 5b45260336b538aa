package tables

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/model"
)

func TestVersionPublishAndVerify(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	if _, err := OpenVersion(ctx, b, "m", "v1"); !errors.Is(err, ErrNoVersion) {
		t.Fatalf("missing version: %v", err)
	}
	v, err := NewVersion(ctx, b, "m", "v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	v.Put(ctx, "b.bin", []byte("bbbb"))
	v.Put(ctx, "a/x.json", []byte("{}"))
	// Files without a manifest are not a version, and LATEST cannot point there.
	if _, err := OpenVersion(ctx, b, "m", "v1"); !errors.Is(err, ErrNoVersion) {
		t.Fatalf("version without manifest visible: %v", err)
	}
	if err := SetLatest(ctx, b, "m", "v1", nil); err == nil {
		t.Fatal("LATEST moved to a version without manifest")
	}
	if err := v.Commit(ctx, Manifest{Date: "2024-01-01"}); err != nil {
		t.Fatal(err)
	}
	m, err := OpenVersion(ctx, b, "m", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 2 || m.Files[0].Path != "a/x.json" || m.Name != "m" || m.Version != "v1" || m.Format != ManifestFormat {
		t.Fatalf("manifest: %+v", m)
	}
	if got, err := ReadVersionFile(ctx, b, m, "b.bin"); err != nil || string(got) != "bbbb" {
		t.Fatalf("read: %q %v", got, err)
	}
	if err := SetLatest(ctx, b, "m", "v1", nil); err != nil {
		t.Fatal(err)
	}
	if id, _ := Latest(ctx, b, "m"); id != "v1" {
		t.Fatalf("LATEST %q", id)
	}
	if ids, _ := ListVersions(ctx, b, "m"); len(ids) != 1 || ids[0] != "v1" {
		t.Fatalf("versions %v", ids)
	}

	// A rerun keeps the manifest readers trust until its own replaces it,
	// and leaves files with the same bytes alone.
	re, err := NewVersion(ctx, b, "m", "v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenVersion(ctx, b, "m", "v1"); err != nil {
		t.Fatalf("a rerun's start unpublished the version: %v", err)
	}
	if changed, err := re.Put(ctx, "b.bin", []byte("bbbb")); err != nil || changed {
		t.Fatalf("same bytes: changed=%v %v", changed, err)
	}
	// Other bytes under the same id are refused, not written under the
	// version's readers.
	if changed, err := re.Put(ctx, "a/x.json", []byte(`{"a":1}`)); !errors.Is(err, ErrNotReproduced) || changed ||
		!strings.Contains(err.Error(), "a/x.json") {
		t.Fatalf("other bytes: changed=%v %v", changed, err)
	}
	if got, _ := b.ReadAll(ctx, VersionPrefix("m", "v1")+"a/x.json"); string(got) != "{}" {
		t.Fatalf("the refused file was written: %q", got)
	}
	if err := Verify(ctx, b, "m", "2024-01-01"); err != nil {
		t.Fatalf("the refused rerun damaged the version: %v", err)
	}
	// A published file that went missing is written again, and a file the
	// version did not have is added.
	re, _ = NewVersion(ctx, b, "m", "v1", nil)
	b.Delete(ctx, VersionPrefix("m", "v1")+"b.bin")
	if changed, err := re.Put(ctx, "b.bin", []byte("bbbb")); err != nil || !changed {
		t.Fatalf("missing file: changed=%v %v", changed, err)
	}
	if changed, err := re.Put(ctx, "a/x.json", []byte("{}")); err != nil || changed {
		t.Fatalf("same bytes: changed=%v %v", changed, err)
	}
	if changed, err := re.Put(ctx, "c.json", []byte("[]")); err != nil || !changed {
		t.Fatalf("new file: changed=%v %v", changed, err)
	}
	if err := re.Commit(ctx, Manifest{Date: "2024-01-01"}); err != nil {
		t.Fatal(err)
	}
	if err := Verify(ctx, b, "m", "2024-01-01"); err != nil {
		t.Fatal(err)
	}

	// A fence that refuses stops every write.
	lost := errors.New("lock lost")
	fenced, _ := NewVersion(ctx, b, "m", "v2", func(context.Context) error { return lost })
	if _, err := fenced.Put(ctx, "b.bin", []byte("x")); !errors.Is(err, lost) {
		t.Fatalf("fenced put: %v", err)
	}
	if err := fenced.Commit(ctx, Manifest{}); !errors.Is(err, lost) {
		t.Fatalf("fenced commit: %v", err)
	}
	if err := SetLatest(ctx, b, "m", "v1", func(context.Context) error { return lost }); !errors.Is(err, lost) {
		t.Fatalf("fenced LATEST: %v", err)
	}

	// Same size, other content: caught by the checksum.
	m, _ = OpenVersion(ctx, b, "m", "v1")
	b.WriteAll(ctx, VersionPrefix("m", "v1")+"b.bin", []byte("cccc"), nil)
	if _, err := ReadVersionFile(ctx, b, m, "b.bin"); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("corrupt file: %v", err)
	}
	// Truncated: caught when opening.
	b.WriteAll(ctx, VersionPrefix("m", "v1")+"b.bin", []byte("cc"), nil)
	if _, err := OpenVersion(ctx, b, "m", "v1"); err == nil {
		t.Fatal("truncated file accepted")
	}
}

// stagePart writes shard i of n of version as a scorer does.
func stagePart(t *testing.T, b *blob.Bucket, date, version string, i, n int, users int) {
	t.Helper()
	ctx := context.Background()
	w, err := NewWriter[RecommendationRow](ctx, b, StagedPartKey(Recommendations, date, version, i, n),
		Meta{MetaModelVersion, version}, Meta{MetaPart, fmt.Sprintf("%d/%d", i, n)}, Meta{MetaUsers, fmt.Sprint(users)})
	if err != nil {
		t.Fatal(err)
	}
	for u := range users {
		w.Write([]RecommendationRow{{UserID: fmt.Sprintf("u%d-%d", i, u), Rank: 1, ItemID: "i", ModelVersion: version}})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPartitionCommit(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	const date = "2024-01-01"
	for _, id := range []string{"v1", "v2", "v3"} { // the versions the parts name
		v, _ := NewVersion(ctx, b, "m", id, nil)
		if err := v.Commit(ctx, Manifest{Date: date}); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(version string, shards int, users int64) (*Success, error) {
		return CommitPartition(ctx, b, Recommendations, date, CommitOptions{Version: version, Shards: shards, Users: users, Source: "model"})
	}
	stagePart(t, b, date, "v1", 0, 2, 3)
	if _, err := commit("v1", 2, 5); err == nil || !strings.Contains(err.Error(), "1 of 2 parts of version v1 missing (shards 1 not scored") {
		t.Fatalf("commit with a missing part: %v", err)
	}
	if _, err := ReadSuccess(ctx, b, Recommendations, date); !errors.Is(err, ErrNotCommitted) {
		t.Fatalf("uncommitted partition readable: %v", err)
	}
	stagePart(t, b, date, "v1", 1, 2, 2)
	if _, err := commit("v1", 2, 9); err == nil || !strings.Contains(err.Error(), "cover 5 users, version v1 has 9") {
		t.Fatalf("commit with a user count mismatch: %v", err)
	}
	s1, err := commit("v1", 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(s1.Parts) != 2 || s1.ModelVersion != "v1" || s1.Rows != 5 || s1.Parts[0].Path != PartName(0, 2, "v1") {
		t.Fatalf("success: %+v", s1)
	}
	if again, err := commit("v1", 2, 5); err != nil || again.Parts[1] != s1.Parts[1] {
		t.Fatalf("committing again: %+v %v", again, err)
	}
	if err := Verify(ctx, b, "m", date); err != nil {
		t.Fatal(err)
	}

	// A stale part: shard 1 of v2 never ran, but v1's staged shard 1 is put
	// where v2's would be. Commit refuses it and v1 stays committed.
	stagePart(t, b, date, "v2", 0, 2, 3)
	v1part, _ := b.ReadAll(ctx, PartitionPrefix(Recommendations, date)+PartName(1, 2, "v1"))
	b.WriteAll(ctx, StagedPartKey(Recommendations, date, "v2", 1, 2), v1part, nil)
	if _, err := commit("v2", 2, 5); err == nil || !strings.Contains(err.Error(), `written by version "v1"`) {
		t.Fatalf("stale part accepted: %v", err)
	}
	if s, _ := ReadSuccess(ctx, b, Recommendations, date); s.ModelVersion != "v1" {
		t.Fatalf("a refused commit changed _SUCCESS: %+v", s)
	}

	// A new version with another sharding: the old parts stay until the new
	// _SUCCESS is written, then go.
	for i := range 3 {
		stagePart(t, b, date, "v3", i, 3, 1)
	}
	var sawOld bool
	fence := func(context.Context) error {
		if s, _ := ReadSuccess(ctx, b, Recommendations, date); s.ModelVersion == "v1" {
			if err := checkParts(ctx, b, PartitionPrefix(Recommendations, date), s); err != nil {
				t.Errorf("while v3 is copied in, v1's _SUCCESS lists a missing part: %v", err)
			}
			sawOld = true
		}
		return nil
	}
	s3, err := CommitPartition(ctx, b, Recommendations, date, CommitOptions{Version: "v3", Shards: 3, Users: 3, Fence: fence})
	if err != nil {
		t.Fatal(err)
	}
	if !sawOld || len(s3.Parts) != 3 {
		t.Fatalf("sawOld=%v success %+v", sawOld, s3)
	}
	objs, _ := blobs.List(ctx, b, PartitionPrefix(Recommendations, date))
	if len(objs) != 4 {
		var keys []string
		for _, o := range objs {
			keys = append(keys, o.Key)
		}
		t.Fatalf("partition holds %v, want v3's 3 parts and _SUCCESS", keys)
	}
	if staged, _ := ListParts(ctx, b, Recommendations, date, "v3"); len(staged) != 0 {
		t.Fatalf("staged parts left after commit: %v", staged)
	}
	if err := Verify(ctx, b, "m", date); err != nil {
		t.Fatal(err)
	}
}

func TestWriterDeterministicAndAbort(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	reason := "r"
	rows := []RecommendationRow{{UserID: "u1", Rank: 1, ItemID: "a", Score: 0.5, ReasonItemID: &reason, Source: "model", ModelVersion: "v"},
		{UserID: "u1", Rank: 2, ItemID: "b", Score: 0.25, Source: "popularity", ModelVersion: "v"}}
	var files [][]byte
	for _, key := range []string{"x.parquet", "y.parquet"} {
		w, err := NewWriter[RecommendationRow](ctx, b, key)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(rows)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		data, _ := b.ReadAll(ctx, key)
		files = append(files, data)
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Fatal("same rows gave different bytes")
	}
	got, err := ReadAll[RecommendationRow](ctx, b, "x.parquet")
	if err != nil || len(got) != 2 || *got[0].ReasonItemID != "r" || got[1].ReasonItemID != nil {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	w, _ := NewWriter[RecommendationRow](ctx, b, "aborted.parquet")
	w.Write(rows)
	w.Abort()
	if ok, _ := b.Exists(ctx, "aborted.parquet"); ok {
		t.Fatal("aborted file visible")
	}
}

// TestWriterRowGroups: a part longer than RowGroupRows is written in row
// groups of at most that many rows, all of them read back in order.
func TestWriterRowGroups(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	w, err := NewWriter[RecommendationRow](ctx, b, "big.parquet")
	if err != nil {
		t.Fatal(err)
	}
	n := 2*RowGroupRows + 123
	rows := make([]RecommendationRow, 0, 4096)
	for i := 0; i < n; i++ {
		rows = append(rows, RecommendationRow{UserID: fmt.Sprint("u", i/10), Rank: int32(i%10 + 1), ItemID: fmt.Sprint("i", i%977), Source: "model", ModelVersion: "v"})
		if len(rows) == cap(rows) || i == n-1 {
			if err := w.Write(rows); err != nil {
				t.Fatal(err)
			}
			rows = rows[:0]
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := b.ReadAll(ctx, "big.parquet")
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for _, rg := range f.RowGroups() {
		sizes = append(sizes, rg.NumRows())
	}
	if want := []int64{RowGroupRows, RowGroupRows, 123}; !slices.Equal(sizes, want) {
		t.Fatalf("row groups %v, want %v", sizes, want)
	}
	got, err := ReadAll[RecommendationRow](ctx, b, "big.parquet")
	if err != nil || len(got) != n {
		t.Fatalf("read %d rows, %v", len(got), err)
	}
	for _, i := range []int{0, RowGroupRows - 1, RowGroupRows, n - 1} {
		if got[i].UserID != fmt.Sprint("u", i/10) || got[i].Rank != int32(i%10+1) || got[i].ItemID != fmt.Sprint("i", i%977) {
			t.Fatalf("row %d: %+v", i, got[i])
		}
	}
}

func TestVocabRoundTrip(t *testing.T) {
	v := model.NewVocab()
	for _, id := range []string{"12346", "", "ünï", "x"} {
		v.Add(id)
	}
	data, err := EncodeVocab(v)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeVocab(data)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(back.IDs(), ",") != strings.Join(v.IDs(), ",") {
		t.Fatalf("got %v", back.IDs())
	}
	if _, err := DecodeVocab(data[:len(data)/2]); err == nil {
		t.Fatal("truncated vocab accepted")
	}
}

// TestVersionInUse: LATEST, or a committed partition of the version's date
// or a later one (a re-score), names a version; other versions' and earlier
// dates' partitions do not.
func TestVersionInUse(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	id := "2024-01-02-abcdef012345"
	success := func(table, date, version string) {
		t.Helper()
		data, _ := json.Marshal(Success{ModelVersion: version})
		if err := b.WriteAll(ctx, SuccessKey(table, date), data, nil); err != nil {
			t.Fatal(err)
		}
	}
	use := func() string {
		t.Helper()
		u, err := VersionInUse(ctx, b, "m", id)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	success(Recommendations, "2024-01-02", "2024-01-02-other0000000")
	success(Recommendations, "2024-01-01", id)                                                                        // cannot be: an earlier date is never scored by a later fit
	b.WriteAll(ctx, PartitionPrefix(Recommendations, "2024-01-03")+"part-00000-of-00001.x.parquet", []byte("x"), nil) // staged, no _SUCCESS
	if u := use(); u != "" {
		t.Fatalf("in use by %q", u)
	}
	success(PurchasePredictions, "2024-01-04", id)
	if u := use(); u != SuccessKey(PurchasePredictions, "2024-01-04") {
		t.Fatalf("in use by %q", u)
	}
	b.WriteAll(ctx, LatestKey("m"), []byte(id+"\n"), nil)
	if u := use(); u != LatestKey("m") {
		t.Fatalf("in use by %q", u)
	}
}
