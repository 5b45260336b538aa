package tables

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"gocloud.dev/blob"

	"github.com/shelfml/shelf/io/blobs"
)

// ManifestFormat is the version of manifest.json's schema.
const ManifestFormat = 1

// FileEntry records one published file of a version or table partition.
type FileEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// InputObject identifies one input file the version was trained on.
type InputObject struct {
	Key     string `json:"key"`
	Size    int64  `json:"size"`
	MD5     string `json:"md5,omitempty"`
	ETag    string `json:"etag,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	ModTime string `json:"mod_time,omitempty"`
}

// Window is the data window of a run.
type Window struct {
	Start           string `json:"start"`      // inclusive, RFC 3339
	End             string `json:"end"`        // exclusive
	TestStart       string `json:"test_start"` // holdout start
	ValidationStart string `json:"validation_start,omitempty"`
	Source          string `json:"source,omitempty"` // "config", "data": how the windows were set
	Reason          string `json:"reason,omitempty"`
}

// GateResult is the quality gate's decision.
type GateResult struct {
	Passed       bool     `json:"passed"`
	Metric       string   `json:"metric"`
	Model        float64  `json:"model"`
	BestBaseline string   `json:"best_baseline"`
	Baseline     float64  `json:"baseline"`
	Latest       *float64 `json:"latest,omitempty"`
	LatestID     string   `json:"latest_version,omitempty"`
	Tolerance    float64  `json:"tolerance"`
	Reason       string   `json:"reason"`
	// Publish is what this version's recommendations are made from:
	// "model" (its ranker), or a baseline's name when the model lost to it
	// or the evidence was too little. Empty in versions from before this
	// field: "model" if Passed.
	Publish string `json:"publish,omitempty"`
	// Kept names the version whose table of this date stays, when it beat
	// this one on the same window (a rerun of a date): this version then
	// publishes no recommendations table.
	Kept string `json:"kept,omitempty"`
	// TestUsers is the evidence: holdout users with targets (the gate needs
	// eval.min_users of them to prefer the model over a baseline).
	TestUsers int `json:"test_users"`
}

// Source is what the version's table is made from ("" = no table).
func (g GateResult) Source() string {
	switch {
	case g.Kept != "":
		return ""
	case g.Publish == "" && g.Passed:
		return "model"
	}
	return g.Publish
}

// Manifest describes a model version; written last, its presence makes the version real.
type Manifest struct {
	Format       int                           `json:"format"`
	Name         string                        `json:"name"`
	Version      string                        `json:"version"`
	Date         string                        `json:"date"`
	CodeVersion  string                        `json:"code_version"`
	ConfigSHA256 string                        `json:"config_sha256"`
	Seed         int64                         `json:"seed"`
	Window       Window                        `json:"window"`
	Inputs       []InputObject                 `json:"inputs"`
	Files        []FileEntry                   `json:"files"`
	Metrics      map[string]map[string]float64 `json:"metrics"`
	Gate         GateResult                    `json:"gate"`
	Selection    Selection                     `json:"selection"`
	Purchase     *PurchaseSummary              `json:"purchase,omitempty"`
	// Users is how many users the recommendations table of this version
	// holds: commit checks that its parts cover exactly them.
	Users int64 `json:"users"`
	// Privacy records the erasure list this version was trained with, and
	// — written later, by a run with a newer list — whether the version
	// holds users that list erases (then it is never LATEST again).
	Privacy *Privacy `json:"privacy,omitempty"`
}

// Privacy is a version's relation to the erasure list (privacy.forget_url).
type Privacy struct {
	ForgetList     string `json:"forget_list_sha256,omitempty"` // list the version was trained with ("" = none)
	ForgottenUsers int64  `json:"forgotten_users,omitempty"`    // users of it present in the window, dropped
	// CheckedList is the latest list this version was checked against, and
	// Holds how many of that list's users its vocabularies contain.
	CheckedList string `json:"checked_list_sha256,omitempty"`
	Holds       int64  `json:"holds_forgotten_users,omitempty"`
	CheckedOn   string `json:"checked_on,omitempty"` // as-of date of the run that checked
}

// HoldsForgotten reports whether the version is known to hold erased users.
func (m *Manifest) HoldsForgotten() bool { return m.Privacy != nil && m.Privacy.Holds > 0 }

// Rewrite replaces a published version's manifest with m (same files), for
// marks added after publishing (Privacy). One atomic write.
func Rewrite(ctx context.Context, b *blob.Bucket, m *Manifest, fence Fence) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	if err := fence.check(ctx); err != nil {
		return fmt.Errorf("rewrite manifest of %s: %w", m.Version, err)
	}
	return putObject(ctx, b, VersionPrefix(m.Name, m.Version)+"manifest.json", append(data, '\n'))
}

// PurchaseSummary is the purchase model's gate decision; the full
// evaluation is in purchase/metrics.json.
type PurchaseSummary struct {
	// Skipped says why the purchase stage stepped aside on this data.
	Skipped    string  `json:"skipped,omitempty"`
	GatePassed bool    `json:"gate_passed"`
	GateReason string  `json:"gate_reason"`
	AUC        float64 `json:"auc"`
	LogLoss    float64 `json:"log_loss"`
	ECE        float64 `json:"ece"`
}

// Selection records what model selection on the validation window chose.
type Selection struct {
	Epochs     int     `json:"epochs"`
	KNN        float64 `json:"blend_knn"`        // ItemKNN weight of the published hybrid ranker
	Popularity float64 `json:"blend_popularity"` // popularity weight
	// The hybrid's ItemKNN component: neighbour-list length and half-life
	// (days) of the user's history weights; 0 neighbours = the config's largest.
	KNNNeighbors       int     `json:"knn_neighbors,omitempty"`
	KNNHistoryHalfLife float64 `json:"knn_history_half_life_days,omitempty"`
	// KNNHistoryHalfLifeEvents is the half-life in recency rank (0 = none).
	KNNHistoryHalfLifeEvents float64 `json:"knn_history_half_life_events,omitempty"`
	// KNNSimilarity is the component's item-item model (cosine, rp3beta,
	// ease; "" = cosine) and KNNSimilarityParam its parameter (rp3beta's
	// beta, ease's lambda as a multiple of the mean item degree).
	KNNSimilarity      string  `json:"knn_similarity,omitempty"`
	KNNSimilarityParam float64 `json:"knn_similarity_param,omitempty"`
	// BaselineNeighbors is the ItemKNN baseline's neighbour-list length.
	BaselineNeighbors int `json:"itemknn_neighbors,omitempty"`
	// Sequence is the sequence encoder's weight in the hybrid (0 = not in
	// it) and SequenceEpochs its epochs, chosen on the validation window.
	Sequence       float64 `json:"blend_sequence,omitempty"`
	SequenceEpochs int     `json:"sequence_epochs,omitempty"`
	// Publish is the recommender of the published table (GateResult.Publish).
	Publish string `json:"publish,omitempty"`
	// Evidence says what selection fell back on when the validation window
	// held too little ("" = chosen on validation).
	Evidence   string             `json:"evidence,omitempty"`
	Validation map[string]float64 `json:"validation"` // gate metric per setting tried
}

// VersionPrefix is where a version's files live.
func VersionPrefix(name, id string) string { return "models/" + name + "/" + id + "/" }

// Version collects the files of one model version while it is being written.
type Version struct {
	b     *blob.Bucket
	name  string
	id    string
	fence Fence
	prev  map[string]FileEntry // the files of an existing manifest of this id (a rerun)
	files []FileEntry
}

// NewVersion starts writing version id of model name. An existing manifest
// of the same id (a rerun of the same date, inputs, config and code) stays
// in place until Commit replaces it: every file is replaced by one atomic
// write, and a rerun that reproduces a file's bytes — as the same inputs do —
// leaves it untouched, so readers keep a complete version throughout. fence
// is checked before every write.
func NewVersion(ctx context.Context, b *blob.Bucket, name, id string, fence Fence) (*Version, error) {
	v := &Version{b: b, name: name, id: id, fence: fence}
	m, err := OpenVersion(ctx, b, name, id)
	switch {
	case err == nil:
		v.prev = map[string]FileEntry{}
		for _, f := range m.Files {
			v.prev[f.Path] = f
		}
	case errors.Is(err, ErrNoVersion):
	default:
		// A manifest that exists but does not check out is rewritten whole.
	}
	return v, nil
}

// ErrNotReproduced means a rerun of a published version made a file with
// other bytes than the published one. The same date, inputs, config and code
// must reproduce every file (the version id stands for them); replacing the
// file in place would leave the version's readers a file its manifest does
// not describe, so the published version is kept as it is and the run fails.
var ErrNotReproduced = errors.New("this rerun did not reproduce a file of the published version (same date, inputs, config and code must give the same bytes); the published version is left unchanged")

// Put writes one file of the version and records its checksum. It reports
// whether it wrote (always, for a new version; for a rerun of a published
// one, only a file missing or damaged there). A file whose bytes differ from
// the published manifest's is not written: ErrNotReproduced.
func (v *Version) Put(ctx context.Context, rel string, data []byte) (changed bool, err error) {
	key := VersionPrefix(v.name, v.id) + rel
	e := fileEntry(rel, data)
	v.files = append(v.files, e)
	if old, ok := v.prev[rel]; ok {
		if old == e {
			if a, err := v.b.Attributes(ctx, key); err == nil && a.Size == e.Size {
				return false, nil
			}
			// The committed file is missing or damaged: rewriting it repairs the version.
		} else {
			return false, fmt.Errorf("%s: %w: the published file is %d bytes (sha256 %s), this run's %d bytes (sha256 %s)",
				key, ErrNotReproduced, old.Size, old.SHA256, e.Size, e.SHA256)
		}
	}
	if err := v.fence.check(ctx); err != nil {
		return false, fmt.Errorf("write %s: %w", key, err)
	}
	if err := putObject(ctx, v.b, key, data); err != nil {
		return false, err
	}
	return true, nil
}

// Reproduces reports whether data is what the published manifest this
// rerun started from holds for rel (true for a new version or a new file).
func (v *Version) Reproduces(rel string, data []byte) bool {
	old, ok := v.prev[rel]
	return !ok || old == fileEntry(rel, data)
}

// fileEntry is data's manifest entry under rel.
func fileEntry(rel string, data []byte) FileEntry {
	sum := sha256.Sum256(data)
	return FileEntry{Path: rel, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}

// Withdraw removes the published manifest this rerun started from, so the
// version does not exist for readers until Commit publishes the rerun's; its
// files may then be rewritten. Only for a version nothing names (see
// VersionInUse): a rerun on another CPU family rounds the last bits of its
// weights otherwise.
func (v *Version) Withdraw(ctx context.Context) error {
	if v.prev == nil {
		return nil
	}
	if err := v.fence.check(ctx); err != nil {
		return fmt.Errorf("withdraw %s: %w", v.id, err)
	}
	key := VersionPrefix(v.name, v.id) + "manifest.json"
	if err := v.b.Delete(ctx, key); err != nil && !blobs.IsNotFound(err) {
		return fmt.Errorf("withdraw %s: delete %s: %w", v.id, key, err)
	}
	v.prev = nil
	return nil
}

// VersionInUse names what refers readers to version id of model name: its
// LATEST, or the _SUCCESS of a committed table partition (of the version's
// own date or a later one: a re-score publishes a later date from an earlier
// fit); "" when nothing does.
func VersionInUse(ctx context.Context, b *blob.Bucket, name, id string) (string, error) {
	latest, err := Latest(ctx, b, name)
	if err != nil {
		return "", err
	}
	if latest == id {
		return LatestKey(name), nil
	}
	date := id // "<D>-<hash>"
	if len(id) >= len("2006-01-02") {
		date = id[:len("2006-01-02")]
	}
	for _, table := range []string{Recommendations, PurchasePredictions} {
		prefix := "tables/" + table + "/"
		it := b.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
		for {
			obj, err := it.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return "", fmt.Errorf("list %s: %w", prefix, err)
			}
			d, ok := strings.CutPrefix(strings.TrimSuffix(obj.Key, "/"), prefix+"dt=")
			if !obj.IsDir || !ok || d < date {
				continue
			}
			s, err := ReadSuccess(ctx, b, table, d)
			if errors.Is(err, ErrNotCommitted) {
				continue
			}
			if err != nil {
				return "", err
			}
			if s.ModelVersion == id {
				return SuccessKey(table, d), nil
			}
		}
	}
	return "", nil
}

// Commit writes manifest.json last, listing every file put.
func (v *Version) Commit(ctx context.Context, m Manifest) error {
	m.Format, m.Name, m.Version = ManifestFormat, v.name, v.id
	m.Files = append([]FileEntry(nil), v.files...)
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	if err := v.fence.check(ctx); err != nil {
		return fmt.Errorf("write manifest of %s: %w", v.id, err)
	}
	return putObject(ctx, v.b, VersionPrefix(v.name, v.id)+"manifest.json", append(data, '\n'))
}

// ErrNoVersion means the version has no manifest: it does not exist for readers.
var ErrNoVersion = errors.New("model version not published (no manifest)")

// OpenVersion reads and checks a version's manifest. It verifies the size of
// every listed file; ReadVersionFile verifies content checksums.
func OpenVersion(ctx context.Context, b *blob.Bucket, name, id string) (*Manifest, error) {
	key := VersionPrefix(name, id) + "manifest.json"
	data, err := blobs.ReadFile(ctx, b, key, blobs.DefaultPolicy())
	if blobs.IsNotFound(err) {
		return nil, fmt.Errorf("%s: %w", VersionPrefix(name, id), ErrNoVersion)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	var m Manifest
	// Unknown fields are allowed: additions keep the format number, breaking changes bump it.
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("%s: manifest format %d, this shelf reads %d", key, m.Format, ManifestFormat)
	}
	for _, f := range m.Files {
		attrs, err := b.Attributes(ctx, VersionPrefix(name, id)+f.Path)
		if err != nil {
			return nil, fmt.Errorf("version %s: file %s: %w", id, f.Path, err)
		}
		if attrs.Size != f.Size {
			return nil, fmt.Errorf("version %s: file %s has %d bytes, manifest says %d", id, f.Path, attrs.Size, f.Size)
		}
	}
	return &m, nil
}

// ReadVersionFile reads one file of a published version and checks its sha256.
func ReadVersionFile(ctx context.Context, b *blob.Bucket, m *Manifest, rel string) ([]byte, error) {
	for _, f := range m.Files {
		if f.Path != rel {
			continue
		}
		key := VersionPrefix(m.Name, m.Version) + rel
		data, err := blobs.ReadFile(ctx, b, key, blobs.DefaultPolicy())
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", key, err)
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != f.SHA256 {
			return nil, fmt.Errorf("%s: sha256 mismatch with manifest (corrupt or replaced)", key)
		}
		return data, nil
	}
	return nil, fmt.Errorf("version %s has no file %s", m.Version, rel)
}

// LatestKey is the LATEST pointer object of a model.
func LatestKey(name string) string { return "models/" + name + "/LATEST" }

// SetLatest points LATEST at a version that must already have its manifest.
func SetLatest(ctx context.Context, b *blob.Bucket, name, id string, fence Fence) error {
	if _, err := OpenVersion(ctx, b, name, id); err != nil {
		return fmt.Errorf("move LATEST: %w", err)
	}
	if err := fence.check(ctx); err != nil {
		return fmt.Errorf("move LATEST: %w", err)
	}
	return putObject(ctx, b, LatestKey(name), []byte(id+"\n"))
}

// Latest returns the version LATEST points to, or "" when there is none.
func Latest(ctx context.Context, b *blob.Bucket, name string) (string, error) {
	data, err := blobs.ReadFile(ctx, b, LatestKey(name), blobs.DefaultPolicy())
	if blobs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", LatestKey(name), err)
	}
	return strings.TrimSpace(string(data)), nil
}

// ListVersions returns the ids of published versions (those with a manifest), sorted.
func ListVersions(ctx context.Context, b *blob.Bucket, name string) ([]string, error) {
	prefix := "models/" + name + "/"
	it := b.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	var ids []string
	for {
		obj, err := it.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		if !obj.IsDir {
			continue
		}
		id := strings.TrimSuffix(strings.TrimPrefix(obj.Key, prefix), "/")
		if ok, err := b.Exists(ctx, VersionPrefix(name, id)+"manifest.json"); err != nil {
			return nil, err
		} else if ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}
