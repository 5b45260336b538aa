package tables

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/shelfml/shelf/io/blobs"
)

// Table names.
const (
	Recommendations     = "recommendations"
	PurchasePredictions = "purchase_predictions"
)

// Footer key-value metadata of every table part: which version wrote it,
// which shard of how many, and how many users it covers. Commit checks them.
const (
	MetaModelVersion = "shelf.model_version"
	MetaPart         = "shelf.part" // "<i>/<n>"
	MetaUsers        = "shelf.users"
)

// PartitionPrefix is the folder of one table's partition for date D.
func PartitionPrefix(table, date string) string { return "tables/" + table + "/dt=" + date + "/" }

// PartName is the committed file name of shard i of n written by version:
// the version is in the name, so a new version's parts never overwrite the
// parts an existing _SUCCESS lists.
func PartName(i, n int, version string) string {
	return fmt.Sprintf("part-%05d-of-%05d.%s.parquet", i, n, version)
}

// Identity names a table's parts: the version, and for a re-score (the
// version applied to later inputs) ".r" and the inputs' digest.
func Identity(version, tag string) string {
	if tag == "" {
		return version
	}
	return version + ".r" + tag
}

// StagedPartKey is where a scorer writes shard i of n of version's table,
// outside tables/ (directory readers never see it): commit verifies the
// staged parts and copies them into the partition.
func StagedPartKey(table, date, version string, i, n int) string {
	return fmt.Sprintf("runs/%s/staged/%s/%s/part-%05d-of-%05d.parquet", date, version, table, i, n)
}

func stagedPrefix(table, date, version string) string {
	return fmt.Sprintf("runs/%s/staged/%s/%s/", date, version, table)
}

// SuccessKey is the partition's completion marker.
func SuccessKey(table, date string) string { return PartitionPrefix(table, date) + "_SUCCESS" }

// Success is the content of _SUCCESS: what a reader may trust.
type Success struct {
	Table        string `json:"table"`
	Date         string `json:"date"`
	ModelVersion string `json:"model_version"`
	// ScoredInputs is set on a re-scored table (shelf rescore): the digest
	// of the inputs the version was applied to ("" = the version's own).
	ScoredInputs string      `json:"scored_inputs,omitempty"`
	Source       string      `json:"source,omitempty"` // what produced the rows: model, or the baseline that replaced it
	Rows         int64       `json:"rows"`
	Parts        []FileEntry `json:"parts"`
}

// Fence is called before each write or delete that changes what readers
// trust; an error stops the publish before that write (a run that lost its
// lock must not write). Nil means no fence.
type Fence func(ctx context.Context) error

func (f Fence) check(ctx context.Context) error {
	if f == nil {
		return nil
	}
	return f(ctx)
}

// PartInfo is what a part's footer says about it.
type PartInfo struct {
	Version string
	Part    string
	Users   int64
	Rows    int64
	Size    int64
}

// ReadPartInfo reads the footer of a table part with range reads.
func ReadPartInfo(ctx context.Context, b *blob.Bucket, key string) (PartInfo, error) {
	r, err := blobs.NewReaderAt(ctx, b, key, 64<<10)
	if err != nil {
		return PartInfo{}, err
	}
	f, err := parquet.OpenFile(r, r.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return PartInfo{}, fmt.Errorf("%s: not a readable Parquet file: %w", key, err)
	}
	info := PartInfo{Rows: f.NumRows(), Size: r.Size()}
	info.Version, _ = f.Lookup(MetaModelVersion)
	info.Part, _ = f.Lookup(MetaPart)
	if u, ok := f.Lookup(MetaUsers); ok {
		info.Users, _ = strconv.ParseInt(u, 10, 64)
	}
	return info, nil
}

// CommitOptions are the checks and markers of one partition's commit.
type CommitOptions struct {
	Version string
	// Tag tells a re-score's parts (the version applied to later inputs;
	// Tag = their digest) from the version's own; "" = the version's own.
	Tag    string
	Shards int
	Users  int64  // users the parts must cover together (0 = unchecked)
	Source string // recorded in _SUCCESS
	Fence  Fence
}

// CommitPartition publishes the staged parts of o.Version: it checks that
// all o.Shards staged parts exist and that each one's footer names this
// version, its own shard and (together) o.Users users; copies them into the
// partition under version-named files; replaces _SUCCESS (one atomic write:
// readers switch from the old parts to the new ones); then removes every
// other part of the partition and the staged copies. Until the new _SUCCESS
// lands, the old one and the parts it lists stay in place; a crash anywhere
// leaves either the old committed state or the new one, and a retry
// finishes the job. Committing a version that _SUCCESS already names with
// every part present is a no-op.
func CommitPartition(ctx context.Context, b *blob.Bucket, table, date string, o CommitOptions) (*Success, error) {
	prefix := PartitionPrefix(table, date)
	id := Identity(o.Version, o.Tag)
	if s, err := ReadSuccess(ctx, b, table, date); err == nil && s.ModelVersion == o.Version && s.ScoredInputs == o.Tag && len(s.Parts) == o.Shards {
		if err := checkParts(ctx, b, prefix, s); err == nil {
			return s, cleanPartition(ctx, b, table, date, s, o.Fence)
		}
	} else if err != nil && !errors.Is(err, ErrNotCommitted) {
		return nil, err
	}
	s := &Success{Table: table, Date: date, ModelVersion: o.Version, ScoredInputs: o.Tag, Source: o.Source}
	var missing []string
	var users int64
	for i := 0; i < o.Shards; i++ {
		key := StagedPartKey(table, date, id, i, o.Shards)
		info, err := ReadPartInfo(ctx, b, key)
		if blobs.IsNotFound(err) {
			missing = append(missing, fmt.Sprintf("%d", i))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("commit %s: %w", prefix, err)
		}
		if want := fmt.Sprintf("%d/%d", i, o.Shards); info.Version != o.Version || info.Part != want {
			return nil, fmt.Errorf("commit %s: staged %s was written by version %q as part %q, not by %s as part %s",
				prefix, key, info.Version, info.Part, o.Version, want)
		}
		users += info.Users
		s.Rows += info.Rows
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("commit %s: %d of %d parts of version %s missing (shards %s not scored: run `shelf score --shard i --shards %d` for them)",
			prefix, len(missing), o.Shards, o.Version, strings.Join(missing, ", "), o.Shards)
	}
	if o.Users > 0 && users != o.Users {
		return nil, fmt.Errorf("commit %s: the %d parts cover %d users, version %s has %d", prefix, o.Shards, users, o.Version, o.Users)
	}
	for i := 0; i < o.Shards; i++ {
		src := StagedPartKey(table, date, id, i, o.Shards)
		dst := prefix + PartName(i, o.Shards, id)
		if err := o.Fence.check(ctx); err != nil {
			return nil, fmt.Errorf("commit %s: %w", prefix, err)
		}
		// The parts of this version's own name are not listed by any
		// _SUCCESS but ours: writing them changes nothing readers trust.
		size, sum, err := blobs.Copy(ctx, b, dst, src)
		if err != nil {
			return nil, fmt.Errorf("commit %s: %w", prefix, err)
		}
		s.Parts = append(s.Parts, FileEntry{Path: PartName(i, o.Shards, id), Size: size, SHA256: sum})
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := o.Fence.check(ctx); err != nil {
		return nil, fmt.Errorf("commit %s: %w", prefix, err)
	}
	if err := putObject(ctx, b, SuccessKey(table, date), append(data, '\n')); err != nil {
		return nil, err
	}
	return s, cleanPartition(ctx, b, table, date, s, o.Fence)
}

// checkParts verifies that every part s lists exists with its size.
func checkParts(ctx context.Context, b *blob.Bucket, prefix string, s *Success) error {
	for _, p := range s.Parts {
		a, err := b.Attributes(ctx, prefix+p.Path)
		if err != nil {
			return err
		}
		if a.Size != p.Size {
			return fmt.Errorf("%s%s has %d bytes, _SUCCESS says %d", prefix, p.Path, a.Size, p.Size)
		}
	}
	return nil
}

// cleanPartition removes the partition's objects that s does not list
// (parts of earlier versions or shardings, stray files) and the version's
// staged parts, after s is committed.
func cleanPartition(ctx context.Context, b *blob.Bucket, table, date string, s *Success, fence Fence) error {
	prefix := PartitionPrefix(table, date)
	keep := map[string]bool{SuccessKey(table, date): true}
	for _, p := range s.Parts {
		keep[prefix+p.Path] = true
	}
	objs, err := blobs.List(ctx, b, prefix)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if keep[o.Key] {
			continue
		}
		if err := fence.check(ctx); err != nil {
			return fmt.Errorf("clean %s: %w", prefix, err)
		}
		if err := b.Delete(ctx, o.Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("remove %s: %w", o.Key, err)
		}
	}
	if err := blobs.DeletePrefix(ctx, b, stagedPrefix(table, date, Identity(s.ModelVersion, s.ScoredInputs))); err != nil {
		return fmt.Errorf("remove staged parts: %w", err)
	}
	return nil
}

// ReadSuccess returns a committed partition's marker, or an error wrapping
// ErrNotCommitted when there is none.
func ReadSuccess(ctx context.Context, b *blob.Bucket, table, date string) (*Success, error) {
	data, err := blobs.ReadFile(ctx, b, SuccessKey(table, date), blobs.DefaultPolicy())
	if blobs.IsNotFound(err) {
		return nil, fmt.Errorf("%s: %w", PartitionPrefix(table, date), ErrNotCommitted)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", SuccessKey(table, date), err)
	}
	var s Success
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&s); err != nil {
		return nil, fmt.Errorf("decode %s: %w", SuccessKey(table, date), err)
	}
	return &s, nil
}

// ErrNotCommitted means a partition has no _SUCCESS.
var ErrNotCommitted = errors.New("table partition not committed (no _SUCCESS)")

// ListParts lists the staged parts of a version's table (for tests and tools).
func ListParts(ctx context.Context, b *blob.Bucket, table, date, version string) ([]string, error) {
	objs, err := blobs.List(ctx, b, stagedPrefix(table, date, version))
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	sort.Strings(keys)
	return keys, nil
}
