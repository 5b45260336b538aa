package jobs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/shelfml/shelf/model"
)

// pseudonym maps external user ids to HMAC-SHA256(key, id), hex, 128 bits:
// stable for one key (so runs, LATEST comparisons and split stages agree),
// not reversible without it.
type pseudonym struct{ key []byte }

func (p pseudonym) on() bool { return len(p.key) > 0 }

func (p pseudonym) id(s string) string {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// tag identifies the key without revealing it (part of the run key, so a
// different key gives a different version).
func (p pseudonym) tag() string {
	if !p.on() {
		return ""
	}
	return p.id("\x00shelf-pseudonym-key-tag")
}

// apply replaces the user vocabulary's ids by their pseudonyms.
func (p pseudonym) apply(in *model.Interactions) error {
	ids := make([]string, in.Users.Len())
	for i, id := range in.Users.IDs() {
		ids[i] = p.id(id)
	}
	v, err := model.VocabFromIDs(ids)
	if err != nil {
		return fmt.Errorf("pseudonymise user ids: %w", err)
	}
	in.Users = v
	return nil
}
