package nn

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/shelfml/shelf/model"
)

// Checkpoint is the complete state of a ranking training run between two
// mini-batches. As model.Weights (ToWeights) it is stored like any model:
// the model's own tensors, "adam.m.*"/"adam.v.*" moments, "best.*" for the
// best validated epoch, and "train.*" counters. Integers and float64s are
// stored exactly as 16-bit chunks in float32 elements, so a round trip
// through the weights file is lossless.
type Checkpoint struct {
	Epoch, Batch int   // epochs done; batches done in the next epoch
	Step         int64 // Adam steps taken
	Model        *model.RankingModel
	Moments      []model.Tensor      // "adam.m.<param>", "adam.v.<param>"
	Side         []model.Tensor      // "side.<feature>" embedding tables (RankingData.Side)
	Best         *model.RankingModel // nil until an epoch was validated
	BestScore    float64
	BadEpochs    int
	Stopped      bool
	History      []EpochStats
	// Partial-epoch loss accounting and the sampling RNG (nil at an epoch
	// boundary: epoch e's RNG is derived from (Seed, e)).
	LossSum, WeightSum float64
	Samples            int
	RNG                []byte
	Fingerprint        uint64 // of the data and options (see fingerprint)
}

const checkpointVersion = 1

// ToWeights exports c as named tensors.
func (c *Checkpoint) ToWeights() *model.Weights {
	w := c.Model.ToWeights()
	for _, t := range c.Moments {
		w.Put(t)
	}
	for _, t := range c.Side {
		w.Put(t)
	}
	if c.Best != nil {
		for _, t := range c.Best.ToWeights().Tensors {
			t.Name = "best." + t.Name
			w.Put(t)
		}
	}
	b := func(x bool) uint64 {
		if x {
			return 1
		}
		return 0
	}
	w.Put(u64Tensor("train.state", []uint64{checkpointVersion, uint64(c.Epoch), uint64(c.Batch), uint64(c.Step),
		uint64(c.BadEpochs), b(c.Stopped), b(c.Best != nil), math.Float64bits(c.BestScore),
		math.Float64bits(c.LossSum), math.Float64bits(c.WeightSum), uint64(c.Samples), c.Fingerprint}))
	var h []uint64
	for _, s := range c.History {
		h = append(h, uint64(s.Epoch), math.Float64bits(s.Loss), math.Float64bits(s.Validation), uint64(s.Samples), math.Float64bits(s.Seconds))
	}
	w.Put(u64Tensor("train.history", h))
	rng := make([]float32, len(c.RNG))
	for i, x := range c.RNG {
		rng[i] = float32(x)
	}
	w.Put(model.Tensor{Name: "train.rng", Shape: []int{len(rng)}, Data: rng})
	return w
}

// CheckpointFromWeights restores a checkpoint exported by ToWeights.
func CheckpointFromWeights(w *model.Weights) (*Checkpoint, error) {
	st, err := getU64s(w, "train.state")
	if err != nil {
		return nil, err
	}
	if len(st) != 12 || st[0] != checkpointVersion {
		return nil, fmt.Errorf("checkpoint: train.state has %d values (version %v), want 12 (version %d)", len(st), st[:min(1, len(st))], checkpointVersion)
	}
	c := &Checkpoint{Epoch: int(st[1]), Batch: int(st[2]), Step: int64(st[3]), BadEpochs: int(st[4]), Stopped: st[5] == 1,
		BestScore: math.Float64frombits(st[7]), LossSum: math.Float64frombits(st[8]), WeightSum: math.Float64frombits(st[9]),
		Samples: int(st[10]), Fingerprint: st[11]}
	hasBest := st[6] == 1
	if c.Model, err = model.RankingFromWeights(w); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	best := &model.Weights{}
	for _, t := range w.Tensors {
		switch {
		case strings.HasPrefix(t.Name, "adam."):
			c.Moments = append(c.Moments, t)
		case strings.HasPrefix(t.Name, "side."):
			c.Side = append(c.Side, t)
		case strings.HasPrefix(t.Name, "best."):
			t.Name = strings.TrimPrefix(t.Name, "best.")
			best.Tensors = append(best.Tensors, t)
		}
	}
	if hasBest {
		if c.Best, err = model.RankingFromWeights(best); err != nil {
			return nil, fmt.Errorf("checkpoint: best: %w", err)
		}
	}
	h, err := getU64s(w, "train.history")
	if err != nil {
		return nil, err
	}
	if len(h)%5 != 0 {
		return nil, fmt.Errorf("checkpoint: train.history has %d values, want a multiple of 5", len(h))
	}
	for i := 0; i < len(h); i += 5 {
		c.History = append(c.History, EpochStats{Epoch: int(h[i]), Loss: math.Float64frombits(h[i+1]),
			Validation: math.Float64frombits(h[i+2]), Samples: int(h[i+3]), Seconds: math.Float64frombits(h[i+4])})
	}
	if r, ok := w.Get("train.rng"); ok && len(r.Data) > 0 {
		c.RNG = make([]byte, len(r.Data))
		for i, x := range r.Data {
			if x < 0 || x > 255 || x != float32(math.Trunc(float64(x))) {
				return nil, errors.New("checkpoint: train.rng holds a non-byte value")
			}
			c.RNG[i] = byte(x)
		}
	}
	if c.Batch > 0 && c.RNG == nil {
		return nil, errors.New("checkpoint: stopped inside an epoch but has no sampler state")
	}
	return c, nil
}

// side returns the Data of side feature name's table.
func (c *Checkpoint) side(name string) ([]float32, bool) {
	for _, t := range c.Side {
		if t.Name == "side."+name {
			return t.Data, true
		}
	}
	return nil, false
}

// moment returns the Data of the named moment tensor.
func (c *Checkpoint) moment(name string) ([]float32, bool) {
	for _, t := range c.Moments {
		if t.Name == name {
			return t.Data, true
		}
	}
	return nil, false
}

// u64Tensor stores each uint64 as four exact 16-bit chunks (low first).
func u64Tensor(name string, vs []uint64) model.Tensor {
	d := make([]float32, 0, 4*len(vs))
	for _, v := range vs {
		for k := 0; k < 4; k++ {
			d = append(d, float32(uint16(v>>(16*k))))
		}
	}
	return model.Tensor{Name: name, Shape: []int{len(vs), 4}, Data: d}
}

func getU64s(w *model.Weights, name string) ([]uint64, error) {
	t, ok := w.Get(name)
	if !ok {
		return nil, fmt.Errorf("checkpoint: missing tensor %s", name)
	}
	if len(t.Data)%4 != 0 {
		return nil, fmt.Errorf("checkpoint: tensor %s has %d values, want a multiple of 4", name, len(t.Data))
	}
	vs := make([]uint64, len(t.Data)/4)
	for i := range vs {
		for k := 0; k < 4; k++ {
			x := t.Data[4*i+k]
			if x < 0 || x > math.MaxUint16 || x != float32(math.Trunc(float64(x))) {
				return nil, fmt.Errorf("checkpoint: tensor %s holds a non-integer chunk %g", name, x)
			}
			vs[i] |= uint64(x) << (16 * k)
		}
	}
	return vs, nil
}
