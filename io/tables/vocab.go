package tables

import (
	"bytes"
	"fmt"

	"github.com/parquet-go/parquet-go"
	"github.com/shelfml/shelf/model"
)

// EncodeVocab renders a vocabulary as a Parquet file (index, id).
func EncodeVocab(v *model.Vocab) ([]byte, error) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[VocabRow](&buf, writerOptions()...)
	rows := make([]VocabRow, 0, 4096)
	for i, id := range v.IDs() {
		rows = append(rows, VocabRow{Index: int32(i), ID: id})
		if len(rows) == cap(rows) {
			if _, err := w.Write(rows); err != nil {
				return nil, err
			}
			rows = rows[:0]
		}
	}
	if _, err := w.Write(rows); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodeVocab reads EncodeVocab's output, checking indices are dense.
func DecodeVocab(data []byte) (*model.Vocab, error) {
	rows, err := parquet.Read[VocabRow](bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("decode vocab: %w", err)
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		if int(r.Index) != i {
			return nil, fmt.Errorf("decode vocab: row %d has index %d", i, r.Index)
		}
		ids[i] = r.ID
	}
	return model.VocabFromIDs(ids)
}
