package tables

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"gocloud.dev/blob/memblob"

	"github.com/shelfml/shelf/model"
)

func TestVersionPublishAndVerify(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	if _, err := OpenVersion(ctx, b, "m", "v1"); !errors.Is(err, ErrNoVersion) {
		t.Fatalf("missing version: %v", err)
	}
	v, err := NewVersion(ctx, b, "m", "v1")
	if err != nil {
		t.Fatal(err)
	}
	v.Put(ctx, "b.bin", []byte("bbbb"))
	v.Put(ctx, "a/x.json", []byte("{}"))
	// Files without a manifest are not a version, and LATEST cannot point there.
	if _, err := OpenVersion(ctx, b, "m", "v1"); !errors.Is(err, ErrNoVersion) {
		t.Fatalf("version without manifest visible: %v", err)
	}
	if err := SetLatest(ctx, b, "m", "v1"); err == nil {
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
	if err := SetLatest(ctx, b, "m", "v1"); err != nil {
		t.Fatal(err)
	}
	if id, _ := Latest(ctx, b, "m"); id != "v1" {
		t.Fatalf("LATEST %q", id)
	}
	if ids, _ := ListVersions(ctx, b, "m"); len(ids) != 1 || ids[0] != "v1" {
		t.Fatalf("versions %v", ids)
	}
	// Same size, other content: caught by the checksum.
	b.WriteAll(ctx, VersionPrefix("m", "v1")+"b.bin", []byte("cccc"), nil)
	if _, err := ReadVersionFile(ctx, b, m, "b.bin"); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("corrupt file: %v", err)
	}
	// Truncated: caught when opening.
	b.WriteAll(ctx, VersionPrefix("m", "v1")+"b.bin", []byte("cc"), nil)
	if _, err := OpenVersion(ctx, b, "m", "v1"); err == nil {
		t.Fatal("truncated file accepted")
	}
	// A re-run unpublishes the manifest before rewriting files.
	if _, err := NewVersion(ctx, b, "m", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenVersion(ctx, b, "m", "v1"); !errors.Is(err, ErrNoVersion) {
		t.Fatalf("manifest survived a re-run start: %v", err)
	}
}

func TestPartitionCommit(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	write := func(i, n int) {
		w, err := NewWriter[RecommendationRow](ctx, b, PartKey(Recommendations, "2024-01-01", i, n))
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]RecommendationRow{{UserID: "u", Rank: 1, ItemID: "i", ModelVersion: "v"}})
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 3) // a stray part of an earlier 3-way sharding
	write(0, 2)
	if _, err := CommitPartition(ctx, b, Recommendations, "2024-01-01", 2, "v"); err == nil || !strings.Contains(err.Error(), "1 of 2 parts missing") {
		t.Fatalf("commit with a missing part: %v", err)
	}
	if _, err := ReadSuccess(ctx, b, Recommendations, "2024-01-01"); !errors.Is(err, ErrNotCommitted) {
		t.Fatalf("uncommitted partition readable: %v", err)
	}
	write(1, 2)
	s, err := CommitPartition(ctx, b, Recommendations, "2024-01-01", 2, "v")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Parts) != 2 || s.ModelVersion != "v" {
		t.Fatalf("success: %+v", s)
	}
	if ok, _ := b.Exists(ctx, PartKey(Recommendations, "2024-01-01", 0, 3)); ok {
		t.Fatal("stray part kept")
	}
	if err := InvalidatePartition(ctx, b, Recommendations, "2024-01-01"); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSuccess(ctx, b, Recommendations, "2024-01-01"); !errors.Is(err, ErrNotCommitted) {
		t.Fatalf("invalidated partition still committed: %v", err)
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
