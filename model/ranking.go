package model

import (
	"fmt"
	"strconv"

	"github.com/shelfml/shelf/internal/f32"
)

// RankingModel is the trained ranking network in engine-free form:
//
//	logit(u, i) = <U[u], V[i]> + b[i] + MLP([U[u], V[i], U[u]⊙V[i]])
//
// The MLP is Dense(3·Dim→H1), ReLU, …, Dense(Hk→1) with no output activation;
// P(interaction) = sigmoid(logit). The dot-product part alone
// (<U[u], V[i]> + b[i]) is the retrieval tower used to pick candidates.
type RankingModel struct {
	Dim      int
	NUsers   int
	NItems   int
	User     []float32 // NUsers×Dim
	Item     []float32 // NItems×Dim
	ItemBias []float32 // NItems
	Layers   []Dense
}

// Dense is one fully connected layer, y = x·W + B with W stored In×Out row-major.
type Dense struct {
	In, Out int
	W       []float32
	B       []float32
}

// UserVec returns user u's embedding (a view).
func (m *RankingModel) UserVec(u int32) []float32 {
	return m.User[int(u)*m.Dim : int(u+1)*m.Dim]
}

// ItemVec returns item i's embedding (a view).
func (m *RankingModel) ItemVec(i int32) []float32 {
	return m.Item[int(i)*m.Dim : int(i+1)*m.Dim]
}

// Retrieval is the dot-product tower's score <U[u], V[i]> + b[i].
func (m *RankingModel) Retrieval(u, i int32) float32 {
	return Dot(m.UserVec(u), m.ItemVec(i)) + m.ItemBias[i]
}

// Scratch holds reusable buffers for Logits; one per goroutine.
type Scratch struct {
	a, b []float32
	base []float32 // first layer's bias plus the user part, shared by all rows
	dots []float32 // per row, the tower's dot product
}

// PackedHead is the MLP head's weights packed for the matrix-multiply
// kernel (layer 0's item rows, then every later layer with more than one
// output), for serving a model that no longer changes.
type PackedHead struct {
	w [][]float32 // per layer; nil for single-output layers
}

// PackHead packs m's head; m must not change while the result is used.
func (m *RankingModel) PackHead() *PackedHead {
	p := &PackedHead{}
	for li, l := range m.Layers {
		var panel []float32
		if l.Out > 1 {
			in, w := l.In, l.W
			if li == 0 {
				in, w = l.In-m.Dim, l.W[m.Dim*l.Out:]
			}
			panel = f32.PackB(nil, false, in, l.Out, w, l.Out)
		}
		p.w = append(p.w, panel)
	}
	return p
}

// Logits computes the full model's logit for user u and each item into out.
// The head runs as matrix products over all the items at once
// (internal/f32.Gemm); layer 0's user block is the same on every row, so it
// is folded into a per-call bias. Each logit depends only on (u, item), not
// on the other items of the call.
func (m *RankingModel) Logits(u int32, items []int32, out []float32, s *Scratch) {
	m.LogitsPacked(u, items, out, s, nil)
}

// LogitsPacked is Logits with the head packed by PackHead (nil: packed per
// call); the logits are the same bits either way.
func (m *RankingModel) LogitsPacked(u int32, items []int32, out []float32, s *Scratch, head *PackedHead) {
	n := len(items)
	if n == 0 {
		return
	}
	d := m.Dim
	uv := m.UserVec(u)
	// layer 0's input without the user block: [V[i], U[u]⊙V[i]]
	in := 2 * d
	s.a = grow(s.a, n*in)
	x := s.a
	// The rows and, in the same pass, the tower's <U[u], V[i]> as Σ U⊙V.
	s.dots = grow(s.dots, n)
	if d > 0 {
		f32.GatherProd(x, m.Item, items, d, uv, s.dots)
	} else {
		clear(s.dots)
	}
	if len(m.Layers) == 0 { // a dot-product model (the sequence encoder's states)
		for r, it := range items {
			out[r] = s.dots[r] + m.ItemBias[it]
		}
		return
	}
	cur, curW := x, in
	for li, l := range m.Layers {
		bias := l.B
		w := l.W
		if li == 0 {
			s.base = grow(s.base, l.Out)
			copy(s.base, l.B)
			for k, xv := range uv {
				if xv != 0 {
					f32.Axpy(xv, l.W[k*l.Out:(k+1)*l.Out], s.base)
				}
			}
			bias, w = s.base, l.W[d*l.Out:]
		}
		s.b = grow(s.b, n*l.Out)
		y := s.b
		hidden := li < len(m.Layers)-1 // ReLU after it, fused into the product
		switch {
		case l.Out == 1:
			for r := range n {
				y[r] = bias[0] + Dot(cur[r*curW:(r+1)*curW], w[:curW])
			}
			if hidden {
				f32.Relu(y[:n])
			}
		default:
			for r := range n {
				copy(y[r*l.Out:(r+1)*l.Out], bias)
			}
			switch {
			case head != nil:
				f32.GemmPackedB(n, l.Out, curW, cur, curW, head.w[li], true, hidden, y, l.Out)
			case hidden:
				f32.GemmReLU(false, false, n, l.Out, curW, 1, cur, curW, w, l.Out, 1, y, l.Out)
			default:
				f32.Gemm(false, false, n, l.Out, curW, 1, cur, curW, w, l.Out, 1, y, l.Out)
			}
		}
		s.a, s.b = s.b, s.a
		cur, curW = s.a, l.Out
	}
	for r, it := range items {
		out[r] = cur[r] + s.dots[r] + m.ItemBias[it]
	}
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// Dot is the inner product of equal-length vectors (internal/f32.Dot).
func Dot(a, b []float32) float32 { return f32.Dot(a, b) }

// Axpy computes y += a·x.
func Axpy(a float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += a * v
	}
}

// ToWeights exports the model as named tensors.
func (m *RankingModel) ToWeights() *Weights {
	w := &Weights{}
	w.Put(Tensor{Name: "user_emb", Shape: []int{m.NUsers, m.Dim}, Data: m.User})
	w.Put(Tensor{Name: "item_emb", Shape: []int{m.NItems, m.Dim}, Data: m.Item})
	w.Put(Tensor{Name: "item_bias", Shape: []int{m.NItems}, Data: m.ItemBias})
	for i, l := range m.Layers {
		p := "mlp." + strconv.Itoa(i)
		w.Put(Tensor{Name: p + ".w", Shape: []int{l.In, l.Out}, Data: l.W})
		w.Put(Tensor{Name: p + ".b", Shape: []int{l.Out}, Data: l.B})
	}
	return w
}

// RankingFromWeights rebuilds a model from ToWeights' tensors, checking shapes.
func RankingFromWeights(w *Weights) (*RankingModel, error) {
	get := func(name string, rank int) (Tensor, error) {
		t, ok := w.Get(name)
		if !ok {
			return t, fmt.Errorf("ranking weights: missing tensor %s", name)
		}
		if len(t.Shape) != rank {
			return t, fmt.Errorf("ranking weights: tensor %s has rank %d, want %d", name, len(t.Shape), rank)
		}
		return t, nil
	}
	u, err := get("user_emb", 2)
	if err != nil {
		return nil, err
	}
	it, err := get("item_emb", 2)
	if err != nil {
		return nil, err
	}
	b, err := get("item_bias", 1)
	if err != nil {
		return nil, err
	}
	m := &RankingModel{Dim: u.Shape[1], NUsers: u.Shape[0], NItems: it.Shape[0], User: u.Data, Item: it.Data, ItemBias: b.Data}
	if it.Shape[1] != m.Dim || b.Shape[0] != m.NItems {
		return nil, fmt.Errorf("ranking weights: item_emb %v / item_bias %v disagree with user_emb %v", it.Shape, b.Shape, u.Shape)
	}
	in := 3 * m.Dim
	for i := 0; ; i++ {
		p := "mlp." + strconv.Itoa(i)
		lw, ok := w.Get(p + ".w")
		if !ok {
			break
		}
		lb, err := get(p+".b", 1)
		if err != nil {
			return nil, err
		}
		if len(lw.Shape) != 2 || lw.Shape[0] != in || lb.Shape[0] != lw.Shape[1] {
			return nil, fmt.Errorf("ranking weights: layer %d shape %v/%v, want input %d", i, lw.Shape, lb.Shape, in)
		}
		m.Layers = append(m.Layers, Dense{In: in, Out: lw.Shape[1], W: lw.Data, B: lb.Data})
		in = lw.Shape[1]
	}
	if len(m.Layers) == 0 || in != 1 {
		return nil, fmt.Errorf("ranking weights: MLP must end in one output, ends in %d", in)
	}
	return m, nil
}
