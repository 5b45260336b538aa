package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/io/tables"
)

// configHash hashes the settings that define results: the effective config
// without its operational settings (configs.Operational: date, storage URLs,
// shards, lease, workers, …), so one config serves every environment and the
// stages of one date agree on the version whatever their sharding.
func configHash(cfg configs.Config) (string, []byte, error) {
	b, err := cfg.ResultDefining().Marshal()
	if err != nil {
		return "", nil, fmt.Errorf("encode config: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), b, nil
}

// runKey identifies a run: same date, config and code ⇒ same key, so a
// retried or re-run attempt finds its lock, checkpoints and report.
func runKey(date, cfgHash, code string) string {
	h := sha256.New()
	fmt.Fprintf(h, "run\x00%s\x00%s\x00%s", date, cfgHash, code)
	return "r" + hex.EncodeToString(h.Sum(nil))[:12]
}

// versionID names the model version: same run key and input objects
// (keys, sizes and content identities) ⇒ same id, wherever the files were
// copied from.
func versionID(date, run string, inputs []tables.InputObject) string {
	h := sha256.New()
	io.WriteString(h, run)
	for _, in := range inputs {
		fmt.Fprintf(h, "\x00%s\x00%d\x00%s\x00%s", in.Key, in.Size, in.MD5, in.ModTime)
		if in.ETag != "" || in.SHA256 != "" {
			fmt.Fprintf(h, "\x00%s\x00%s", in.ETag, in.SHA256)
		}
	}
	return date + "-" + hex.EncodeToString(h.Sum(nil))[:12]
}
